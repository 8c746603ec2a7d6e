//! Dispatch: claim the due steps, re-check each against the current state,
//! record the delivery, send, and record the outcome.
//!
//! Exactly-once as far as the outside allows: a claim is a conditional write,
//! so two passes never take the same step; the delivery is recorded (keyed by
//! the send's identity) before the provider is called, so a crash between the
//! send and its record repeats that one send at most once, and a crash before
//! the send loses nothing (the claim expires and the step is taken again).
use std::collections::HashMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::json;

use super::catalogue;
use super::enrol::next_occurrence;
use super::model::{Direction, Exit, TaskKind, WorkflowStatus};
use super::render;
use super::schedule;
use super::steps::{Channel, Delivery, DeliveryStatus, ScheduledStep, StepStatus};
use crate::AppointmentStatus;
use crate::model::{EpisodeStatus, OrgConfig, PatientRecord};
use crate::ports::{
    Inserted, Mailer, PatientStore, SendError, StoreError, StoreResult, WorkflowStore,
};

/// How long a claim holds a step: a dispatcher that dies lets it go after this.
pub const CLAIM_LEASE: SignedDuration = SignedDuration::from_secs(300);
/// Steps claimed per round.
pub const CLAIM_BATCH: usize = 100;
/// Failed sends of one step before it is marked failed.
pub const MAX_ATTEMPTS: u32 = 5;

/// What one pass did (CONTRACT §5 `tendon dispatch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    pub sent: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// What to do with a claimed step, decided from the current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Not sent, and never will be (`reason` is a code).
    Skip(&'static str),
    /// Not yet: due again at this instant (a moved appointment, a text outside
    /// the 08:00 to 21:00 window).
    Later(Timestamp),
}

/// The send-time checks: the workflow is still active, the patient can be
/// reached, the appointment still stands where the schedule counted from, the
/// episode is open, a repeat has not met its exit, a text is in its window.
pub fn verdict(
    step: &ScheduledStep,
    config: &OrgConfig,
    record: Option<&PatientRecord>,
    assignments_open: bool,
    now: Timestamp,
) -> Verdict {
    let Some(wf) = config.workflows.iter().find(|w| w.id == step.workflow_id) else {
        return Verdict::Skip("workflow_removed");
    };
    if wf.status != WorkflowStatus::Active {
        return Verdict::Skip("workflow_inactive");
    }
    let Some(record) = record else {
        return Verdict::Skip("patient_missing");
    };
    let p = &record.patient;
    if p.merged_into.is_some() {
        return Verdict::Skip("patient_merged");
    }
    let channel = channel_of(step.task.kind);
    match channel {
        Channel::Email if p.email.is_none() => return Verdict::Skip("no_email"),
        Channel::Email if p.unsubscribed => return Verdict::Skip("unsubscribed"),
        Channel::Text if p.mobile.is_none() => return Verdict::Skip("no_mobile"),
        Channel::Text if p.text_opt_out => return Verdict::Skip("text_opt_out"),
        _ => {}
    }
    let episode = step.case_id.as_deref().and_then(|c| record.case_episode(c));
    let discharge_trigger = wf.trigger.event == crate::model::EventKind::EpisodeDischarged;
    if !discharge_trigger && episode.is_some_and(|e| e.status == EpisodeStatus::Discharged) {
        return Verdict::Skip("episode_discharged");
    }
    let zone = TimeZone::get(&step.zone).unwrap_or(TimeZone::UTC);
    if let Some(appt_id) = &step.appointment_id {
        let appointment = record.appointment(appt_id);
        let scheduled_trigger = matches!(
            wf.trigger.event,
            crate::model::EventKind::AppointmentScheduled
                | crate::model::EventKind::InitialEvaluationScheduled
        );
        match appointment.map(|a| a.status) {
            None | Some(AppointmentStatus::Deleted) => return Verdict::Skip("appointment_deleted"),
            Some(AppointmentStatus::Canceled)
                if wf.trigger.event != crate::model::EventKind::AppointmentCanceled =>
            {
                return Verdict::Skip("appointment_canceled");
            }
            _ => {}
        }
        if step.schedule.direction == Direction::Before && scheduled_trigger {
            let start = appointment
                .and_then(|a| a.start.as_deref())
                .and_then(|s| s.parse::<Timestamp>().ok());
            let anchor = step
                .anchor
                .as_deref()
                .and_then(|s| s.parse::<Timestamp>().ok());
            let Some(start) = start else {
                return Verdict::Skip("appointment_without_start");
            };
            if start <= now {
                return Verdict::Skip("appointment_passed");
            }
            if anchor != Some(start) {
                // Rescheduled: the reminder moves with the appointment.
                let fired = step.fired_at.parse().unwrap_or(now);
                match schedule::due(&step.schedule, fired, Some(start), &zone, step.occurrence) {
                    Some(due) if due > now => return Verdict::Later(due),
                    _ => {}
                }
            }
        }
    }
    if step.occurrence > 0
        && let Some(repeat) = &step.schedule.repeat
    {
        for exit in &repeat.until {
            let met = match exit {
                Exit::AssignmentsComplete => !assignments_open,
                Exit::EpisodeDischarged => {
                    episode.is_some_and(|e| e.status == EpisodeStatus::Discharged)
                }
                Exit::NoUpcomingAppointment => !record.appointments.iter().any(|a| {
                    a.status == AppointmentStatus::Scheduled
                        && a.start
                            .as_deref()
                            .and_then(|s| s.parse::<Timestamp>().ok())
                            .is_some_and(|s| s > now)
                }),
            };
            if met {
                return Verdict::Skip("repeat_exit");
            }
        }
    }
    if channel == Channel::Text {
        let window = schedule::in_text_window(now, &zone);
        if window > now {
            return Verdict::Later(window);
        }
    }
    Verdict::Send
}

pub fn channel_of(kind: TaskKind) -> Channel {
    match kind {
        TaskKind::Text => Channel::Text,
        _ => Channel::Email,
    }
}

/// The template context: names and the appointment, never more of the record.
fn context(
    step: &ScheduledStep,
    config: &OrgConfig,
    record: &PatientRecord,
    content: Option<&catalogue::Content>,
    unsubscribe_url: &str,
) -> serde_json::Value {
    let zone = TimeZone::get(&step.zone).unwrap_or(TimeZone::UTC);
    let appointment = step
        .appointment_id
        .as_deref()
        .and_then(|a| record.appointment(a));
    let start_local = appointment
        .and_then(|a| a.start.as_deref())
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%A, %B %-d at %-I:%M %p")
                .to_string()
        });
    let location = appointment
        .and_then(|a| a.location_id.as_deref())
        .and_then(|l| config.location(l))
        .map(|l| l.name.clone());
    json!({
        "patient": {"first_name": record.patient.first_name, "last_name": record.patient.last_name},
        "clinic": {"name": config.org.name, "location": location},
        "appointment": appointment.map(|a| json!({
            "type": a.appointment_type, "start_local": start_local,
        })),
        "content": content.map(|c| json!({"id": c.id, "name": c.name})),
        "unsubscribe_url": unsubscribe_url,
    })
}

/// The delivery a step makes: rendered, addressed, not yet sent.
pub fn build_delivery(
    step: &ScheduledStep,
    config: &OrgConfig,
    record: &PatientRecord,
    unsubscribe_url: &str,
    now: Timestamp,
) -> Result<Delivery, &'static str> {
    let task = &step.task;
    let content = match task.content.as_deref() {
        Some(c) if task.kind.assigns_content() => {
            let description = step
                .case_id
                .as_deref()
                .and_then(|c| record.case_episode(c))
                .map(|e| e.name.as_str());
            Some(catalogue::resolve(c, description).ok_or("no_content_for_case")?)
        }
        _ => None,
    };
    let ctx = context(step, config, record, content, unsubscribe_url);
    let channel = channel_of(task.kind);
    let to = match channel {
        Channel::Email => record.patient.email.clone(),
        Channel::Text => record.patient.mobile.clone(),
    }
    .ok_or("no_address")?;
    let default_subject = content.map(|c| format!("New in your program: {}", c.name));
    let subject_src = task.subject.clone().or(default_subject);
    let body_src = task.body.clone().unwrap_or_else(|| {
        "Hi {{ patient.first_name }},\n\nYour clinic has added {{ content.name }} to your program.".to_owned()
    });
    let (subject, body, html) = match channel {
        Channel::Email => {
            let footer = format!(
                "<p style=\"font-size:small\"><a href=\"{}\">Unsubscribe</a></p>",
                html_attr(unsubscribe_url)
            );
            let subject = match &subject_src {
                Some(s) => Some(render::subject(s, &ctx).map_err(|_| "template_error")?),
                None => None,
            };
            let text = render::text(&body_src, &ctx).map_err(|_| "template_error")?;
            let text = format!("{text}\n\nUnsubscribe: {unsubscribe_url}\n");
            let html = render::html(&body_src, &ctx, &footer).map_err(|_| "template_error")?;
            (subject, text, Some(html))
        }
        Channel::Text => (
            None,
            render::text(&body_src, &ctx).map_err(|_| "template_error")?,
            None,
        ),
    };
    Ok(Delivery {
        id: step.delivery_key(),
        org: step.org.clone(),
        channel,
        to,
        subject,
        body,
        html,
        content_id: content.map(|c| c.id.to_owned()),
        kind: task.kind,
        workflow_id: step.workflow_id.clone(),
        step: step.step,
        patient_id: step.patient_id.clone(),
        step_id: step.id.clone(),
        status: DeliveryStatus::Sending,
        provider_id: None,
        created_at: now.to_string(),
        sent_at: None,
    })
}

fn html_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Where a patient unsubscribes: `{base}/unsubscribe/{org}/{patient}/{token}`.
pub fn unsubscribe_url(base: &str, org: &str, patient_id: &str, token: &str) -> String {
    let seg = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "{}/unsubscribe/{}/{}/{token}",
        base.trim_end_matches('/'),
        seg(org),
        seg(patient_id)
    )
}

/// Backoff after a failed send: 1, 2, 4, 8 ... minutes.
fn backoff(attempts: u32) -> SignedDuration {
    SignedDuration::from_secs(60 * (1i64 << attempts.min(10)))
}

/// Everything dispatch needs from outside.
pub struct Dispatcher<'a, S, M> {
    pub store: &'a S,
    pub mailer: &'a M,
    /// The public base URL for unsubscribe links.
    pub public_url: &'a str,
    /// The secret unsubscribe tokens are derived with.
    pub unsubscribe_secret: &'a str,
}

impl<S, M> Dispatcher<'_, S, M>
where
    S: WorkflowStore + PatientStore + crate::ports::ConfigStore,
    M: Mailer,
{
    /// One pass as if at `at` (an EventBridge event's `time`): claims and
    /// handles due steps until none is left.
    pub async fn pass(&self, at: Timestamp) -> StoreResult<PassReport> {
        let mut report = PassReport::default();
        let until = at
            .checked_add(CLAIM_LEASE)
            .map_err(|_| StoreError::Backend("dispatch: time out of range".into()))?;
        // Each org's configuration (its workflows' status) is read once per
        // pass: a pass takes seconds, and a step of a workflow switched off
        // meanwhile is skipped by the next pass's reading at the latest.
        let mut configs: HashMap<String, Option<OrgConfig>> = HashMap::new();
        loop {
            let claimed = self.store.claim_due(at, until, CLAIM_BATCH).await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            for step in claimed {
                if !configs.contains_key(&step.org) {
                    let config = self.store.org_config(&step.org).await?;
                    configs.insert(step.org.clone(), config);
                }
                let config = configs.get(&step.org).and_then(Option::as_ref);
                match self.handle(step, config, at).await? {
                    Some(StepStatus::Sent) => report.sent += 1,
                    Some(StepStatus::Skipped) => report.skipped += 1,
                    Some(StepStatus::Failed) => report.failed += 1,
                    _ => {}
                }
            }
        }
    }

    /// Handles one claimed step; returns its final status if it has one now.
    async fn handle(
        &self,
        mut step: ScheduledStep,
        config: Option<&OrgConfig>,
        at: Timestamp,
    ) -> StoreResult<Option<StepStatus>> {
        let Some(config) = config else {
            step.status = StepStatus::Skipped;
            step.note = Some("org_missing".into());
            self.store.finish_step(&step, None).await?;
            return Ok(Some(StepStatus::Skipped));
        };
        let mut record = self.store.load_patient(&step.org, &step.patient_id).await?;
        if let Some(next) = record.as_ref().and_then(|r| r.patient.merged_into.clone()) {
            record = self.store.load_patient(&step.org, &next).await?;
        }
        let open = self
            .store
            .open_assignments(&step.org, &step.patient_id)
            .await?;
        match verdict(&step, config, record.as_ref(), open > 0, at) {
            Verdict::Skip(reason) => {
                step.status = StepStatus::Skipped;
                step.note = Some(reason.into());
                self.store.finish_step(&step, None).await?;
                tracing::info!(org = %step.org, step_id = %step.id, reason, "step skipped");
                Ok(Some(StepStatus::Skipped))
            }
            Verdict::Later(due) => {
                step.due_at = due.to_string();
                self.store.finish_step(&step, None).await?;
                Ok(None)
            }
            Verdict::Send => {
                let record = record.expect("verdict Send has a record");
                self.send(step, config, &record, at).await
            }
        }
    }

    async fn send(
        &self,
        mut step: ScheduledStep,
        config: &OrgConfig,
        record: &PatientRecord,
        at: Timestamp,
    ) -> StoreResult<Option<StepStatus>> {
        let token = unsubscribe_token(self.unsubscribe_secret, &step.org, &record.patient.id);
        let url = unsubscribe_url(self.public_url, &step.org, &record.patient.id, &token);
        let delivery = match build_delivery(&step, config, record, &url, at) {
            Ok(d) => d,
            Err(reason) => {
                step.status = StepStatus::Failed;
                step.note = Some(reason.into());
                self.store.finish_step(&step, None).await?;
                return Ok(Some(StepStatus::Failed));
            }
        };
        let delivery = match self.store.begin_delivery(&delivery).await? {
            Inserted::New => delivery,
            // Sent already (a crash after the send was recorded, or the same
            // send reached through another step record): do not send again.
            Inserted::Existing(prev) if prev.status == DeliveryStatus::Sent => {
                step.status = StepStatus::Sent;
                step.note = Some("sent_before".into());
                self.store
                    .finish_step(&step, next_occurrence(&step).as_ref())
                    .await?;
                return Ok(Some(StepStatus::Sent));
            }
            // A previous attempt recorded it and may have sent it: this is
            // the at-most-one repeat a crash costs.
            Inserted::Existing(prev) => prev,
        };
        match self.mailer.send(&delivery).await {
            Ok(provider_id) => {
                self.store
                    .complete_delivery(
                        &delivery,
                        DeliveryStatus::Sent,
                        Some(&provider_id),
                        &at.to_string(),
                    )
                    .await?;
                step.status = StepStatus::Sent;
                self.store
                    .finish_step(&step, next_occurrence(&step).as_ref())
                    .await?;
                tracing::info!(org = %step.org, step_id = %step.id, delivery_id = %delivery.id, "step sent");
                Ok(Some(StepStatus::Sent))
            }
            Err(SendError::Rejected(code)) => {
                self.store
                    .complete_delivery(&delivery, DeliveryStatus::Failed, None, &at.to_string())
                    .await?;
                step.status = StepStatus::Failed;
                step.note = Some(format!("rejected: {code}"));
                self.store.finish_step(&step, None).await?;
                Ok(Some(StepStatus::Failed))
            }
            Err(SendError::Throttled | SendError::Unavailable(_))
                if step.attempts + 1 < MAX_ATTEMPTS =>
            {
                step.attempts += 1;
                step.due_at = at
                    .checked_add(backoff(step.attempts))
                    .unwrap_or(at)
                    .to_string();
                step.note = Some("retrying".into());
                self.store.finish_step(&step, None).await?;
                Ok(None)
            }
            Err(e) => {
                step.attempts += 1;
                step.status = StepStatus::Failed;
                step.note = Some(format!("gave up after {} attempts: {e}", step.attempts));
                self.store
                    .complete_delivery(&delivery, DeliveryStatus::Failed, None, &at.to_string())
                    .await?;
                self.store.finish_step(&step, None).await?;
                Ok(Some(StepStatus::Failed))
            }
        }
    }
}

/// A patient's unsubscribe token: a keyed hash of (org, patient ID), so every
/// email to the patient carries the same link, and nobody without the secret
/// can make one. (SHA-256 over secret and message with a fixed layout; the
/// inputs cannot be extended past the secret.)
pub fn unsubscribe_token(secret: &str, org: &str, patient_id: &str) -> String {
    let input = format!("{}\0{secret}\0{org}\0{patient_id}", secret.len());
    crate::pipeline::sha256_hex(input.as_bytes())[..32].to_owned()
}

/// Whether `token` is the unsubscribe token of (org, patient ID); compared in
/// constant time.
pub fn unsubscribe_token_ok(secret: &str, org: &str, patient_id: &str, token: &str) -> bool {
    let want = unsubscribe_token(secret, org, patient_id);
    want.len() == token.len()
        && want
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}
