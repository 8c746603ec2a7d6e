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
use super::model::{Direction, Exit, WorkflowStatus};
use super::render;
use super::schedule;
use super::steps::{Channel, Delivery, DeliveryStatus, ScheduledStep, StepStatus, StepUpdate};
use super::task::TaskKind;
use crate::AppointmentStatus;
use crate::model::{DomainEvent, EpisodeStatus, EventKind, PatientRecord};
use crate::org::OrgConfig;
use crate::ports::{
    Clock, Inserted, Mailer, PatientStore, SendError, StoreError, StoreResult, WorkflowStore,
};

/// How long a claim holds a step: a dispatcher that dies lets it go after this.
pub const CLAIM_LEASE: SignedDuration = SignedDuration::from_secs(300);
/// Steps claimed per round.
pub const CLAIM_BATCH: usize = 100;
/// Failed sends of one step before it is marked failed.
pub const MAX_ATTEMPTS: u32 = 5;

/// What one pass did (docs/interface.md §5 `tendon dispatch`).
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

/// Brings a step about an appointment up to date with that appointment:
/// `Err(reason)` if the appointment no longer holds it (deleted, or canceled
/// unless the workflow is about cancellations). A `before` step of a booking
/// trigger follows the appointment's start: its anchor and due time move
/// with it. Dispatch runs it before sending, and the commit that moves or
/// cancels the appointment runs it on the appointment's pending steps.
pub fn follow_appointment(
    step: &mut ScheduledStep,
    trigger: EventKind,
    record: &PatientRecord,
) -> Result<(), &'static str> {
    let Some(appt_id) = &step.appointment_id else {
        return Ok(());
    };
    let appointment = record.appointment(appt_id);
    match appointment.map(|a| a.status) {
        None | Some(AppointmentStatus::Deleted) => return Err("appointment_deleted"),
        Some(AppointmentStatus::Canceled) if trigger != EventKind::AppointmentCanceled => {
            return Err("appointment_canceled");
        }
        _ => {}
    }
    let booking = matches!(
        trigger,
        EventKind::AppointmentScheduled | EventKind::InitialEvaluationScheduled
    );
    if step.schedule.direction != Direction::Before || !booking {
        return Ok(());
    }
    let Some(start_text) = appointment.and_then(|a| a.start.clone()) else {
        return Err("appointment_without_start");
    };
    let start: Timestamp = start_text
        .parse()
        .map_err(|_| "appointment_without_start")?;
    let anchor = step
        .anchor
        .as_deref()
        .and_then(|s| s.parse::<Timestamp>().ok());
    if anchor != Some(start) {
        let zone = TimeZone::get(&step.zone).unwrap_or(TimeZone::UTC);
        let fired = step.fired_at.parse().map_err(|_| "schedule_out_of_range")?;
        let due = schedule::due(&step.schedule, fired, Some(start), &zone, step.occurrence)
            .ok_or("schedule_out_of_range")?;
        step.anchor = Some(start_text);
        step.due_at = due.to_string();
    }
    Ok(())
}

/// The send-time checks: the workflow is still active, the patient can be
/// reached, the appointment still stands (a moved one moves the step, see
/// [`follow_appointment`]), the episode is open, a repeat has not met its
/// exit, a text is in its window.
pub fn verdict(
    step: &mut ScheduledStep,
    config: &OrgConfig,
    record: Option<&PatientRecord>,
    assignments_open: bool,
    address_suppressed: bool,
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
    if p.inactive.is_some() {
        return Verdict::Skip("patient_inactive");
    }
    let channel = channel_of(step.task.kind);
    match channel {
        Channel::Email if p.email.is_none() => return Verdict::Skip("no_email"),
        Channel::Email if p.unsubscribed => return Verdict::Skip("unsubscribed"),
        Channel::Email if address_suppressed => return Verdict::Skip("address_suppressed"),
        Channel::Text if p.mobile.is_none() => return Verdict::Skip("no_mobile"),
        Channel::Text if p.text_opt_out => return Verdict::Skip("text_opt_out"),
        _ => {}
    }
    let episode = step.case_id.as_deref().and_then(|c| record.case_episode(c));
    let discharge_trigger = wf.trigger.event == EventKind::EpisodeDischarged;
    if !discharge_trigger && episode.is_some_and(|e| e.status == EpisodeStatus::Discharged) {
        return Verdict::Skip("episode_discharged");
    }
    if let Err(reason) = follow_appointment(step, wf.trigger.event, record) {
        return Verdict::Skip(reason);
    }
    if step.schedule.direction == Direction::Before {
        let start = step
            .anchor
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok());
        if start.is_some_and(|s| s <= now) {
            return Verdict::Skip("appointment_passed");
        }
    }
    // Moved later with its appointment.
    if let Ok(due) = step.due_at.parse::<Timestamp>()
        && due > now
    {
        return Verdict::Later(due);
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
        let zone = TimeZone::get(&step.zone).unwrap_or(TimeZone::UTC);
        let window = schedule::in_text_window(now, &zone);
        if window > now {
            return Verdict::Later(window);
        }
    }
    Verdict::Send
}

/// What a commit whose events move, cancel or delete appointments does to
/// the patient's pending steps about them (`pending`: the patient's
/// `scheduled` steps as read): each is moved or skipped as dispatch would
/// (see [`follow_appointment`]), now rather than at its old due time. A move
/// to a time already past skips the step, as enrolment does. Steps a
/// dispatcher holds are left to it.
pub fn appointment_updates(
    config: &OrgConfig,
    record: &PatientRecord,
    events: &[DomainEvent],
    pending: &[ScheduledStep],
    now: Timestamp,
) -> Vec<StepUpdate> {
    let changed: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.moves_or_ends_appointment())
        .filter_map(|e| e.appointment_id.as_deref())
        .collect();
    let mut out = Vec::new();
    for step in pending {
        let about_changed = step
            .appointment_id
            .as_deref()
            .is_some_and(|a| changed.contains(&a));
        let held = step
            .claimed_until
            .as_deref()
            .and_then(|c| c.parse::<Timestamp>().ok())
            .is_some_and(|c| c > now);
        if step.status != StepStatus::Scheduled || !about_changed || held {
            continue;
        }
        let Some(wf) = config.workflows.iter().find(|w| w.id == step.workflow_id) else {
            continue;
        };
        let mut new = step.clone();
        new.claimed_until = None;
        match follow_appointment(&mut new, wf.trigger.event, record) {
            Err(reason) => {
                new.status = StepStatus::Skipped;
                new.note = Some(reason.to_owned());
            }
            Ok(()) if new.anchor == step.anchor => continue,
            Ok(()) => {
                if new.due_at.parse::<Timestamp>().is_ok_and(|d| d < now) {
                    new.status = StepStatus::Skipped;
                    new.note = Some("past_due_at_reschedule".to_owned());
                }
            }
        }
        out.push(StepUpdate {
            step: new,
            read_claim: step.claimed_until.clone(),
        });
    }
    out
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

/// Percent-encodes a URL path segment (everything but unreserved characters).
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Where a patient unsubscribes: `{base}/unsubscribe/{org}/{patient}/{token}`.
pub fn unsubscribe_url(base: &str, org: &str, patient_id: &str, token: &str) -> String {
    format!(
        "{}/unsubscribe/{}/{}/{token}",
        base.trim_end_matches('/'),
        path_segment(org),
        path_segment(patient_id)
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
    /// The real time, which claims are leased by (a pass's `at` may be long
    /// past: a retried invocation, a backlog).
    pub clock: &'a dyn Clock,
    /// How long a pass may go on claiming (a Lambda's timeout minus room to
    /// finish the last claim); `None`: until nothing is due. What is left is
    /// due still, for the next pass.
    pub budget: Option<SignedDuration>,
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
        // Each org's configuration (its workflows' status) is read once per
        // pass: a pass takes seconds, and a step of a workflow switched off
        // meanwhile is skipped by the next pass's reading at the latest.
        let mut configs: HashMap<String, Option<OrgConfig>> = HashMap::new();
        let started = self.clock.now();
        loop {
            let now = self.clock.now();
            if self
                .budget
                .is_some_and(|b| now.duration_since(started) >= b)
            {
                tracing::info!(at = %at, "dispatch pass out of time; the next pass continues");
                return Ok(report);
            }
            let until = now
                .checked_add(CLAIM_LEASE)
                .map_err(|_| StoreError::Backend("dispatch: time out of range".into()))?;
            let claimed = self.store.claim_due(at, now, until, CLAIM_BATCH).await?;
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
        // An address that bounced or complained, for whichever patient.
        let suppressed = match record.as_ref().and_then(|r| r.patient.email.as_deref()) {
            Some(email) if channel_of(step.task.kind) == Channel::Email => {
                self.store.is_suppressed(&step.org, email).await?
            }
            _ => false,
        };
        match verdict(&mut step, config, record.as_ref(), open > 0, suppressed, at) {
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
            // The same send reached through another step record (a booking
            // canceled and re-made at the same time, say): that step owns it.
            Inserted::Existing(prev) if prev.step_id != step.id => {
                step.status = StepStatus::Skipped;
                step.note = Some("same_send_as_another_step".into());
                self.store.finish_step(&step, None).await?;
                return Ok(Some(StepStatus::Skipped));
            }
            // This step sent it before a crash kept the step from being
            // recorded: it is done, and not counted as sent again.
            Inserted::Existing(prev) if prev.status == DeliveryStatus::Sent => {
                step.status = StepStatus::Sent;
                step.note = Some("sent_before".into());
                self.store
                    .finish_step(&step, next_occurrence(&step).as_ref())
                    .await?;
                return Ok(None);
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
    crate::hash::sha256_hex(input.as_bytes())[..32].to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Appointment, Patient, Source};
    use crate::org::Org;
    use crate::workflow::Workflow;
    use crate::workflow::enrol::enrol;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn config(trigger: &str) -> OrgConfig {
        let wf = Workflow::parse(&format!(
            r#"{{"title": "Reminder", "status": "active", "trigger": {{"event": "{trigger}"}},
                "steps": [{{"schedule": {{"direction": "before", "amount": 1, "unit": "days"}},
                            "task": {{"kind": "email", "subject": "Soon", "body": "Soon."}}}}]}}"#
        ))
        .unwrap();
        OrgConfig {
            org: Org {
                id: "ORG".into(),
                name: "Org".into(),
                timezone: "America/Los_Angeles".into(),
                ie_types: Vec::new(),
                field_map: Default::default(),
            },
            locations: Vec::new(),
            practitioners: Vec::new(),
            workflows: vec![wf],
        }
    }

    fn record(start: &str, status: AppointmentStatus) -> PatientRecord {
        PatientRecord {
            patient: Patient {
                id: "P1".into(),
                source: Source::Emr,
                first_name: "A".into(),
                last_name: "B".into(),
                birth_date: None,
                gender: None,
                email: Some("a@example.com".into()),
                mobile: None,
                demographics_at: None,
                created_at: "2026-11-01T00:00:00Z".into(),
                merged_into: None,
                unsubscribed: false,
                text_opt_out: false,
                inactive: None,
                sex_label: None,
            },
            episodes: Vec::new(),
            appointments: vec![Appointment {
                id: "A1".into(),
                appointment_type: None,
                start: Some(start.into()),
                status,
                case_id: None,
                practitioner_id: None,
                location_id: None,
                initial_evaluation: false,
                updated_by: None,
            }],
            version: 1,
        }
    }

    fn event(kind: EventKind, id: &str) -> DomainEvent {
        DomainEvent {
            id: id.into(),
            org: "ORG".into(),
            kind,
            patient_id: "P1".into(),
            case_id: None,
            appointment_id: Some("A1".into()),
            at: "2026-11-01T00:00:00Z".into(),
            message_id: "m".into(),
        }
    }

    const BOOKED: &str = "2026-12-20T10:00:00-08:00";
    const NOW: &str = "2026-12-01T12:00:00Z";

    /// The reminder a booking of A1 at BOOKED schedules (due 2026-12-19 10:00 local).
    fn reminder(cfg: &OrgConfig) -> ScheduledStep {
        let booked = record(BOOKED, AppointmentStatus::Scheduled);
        let e = event(EventKind::AppointmentScheduled, "e1");
        let steps = enrol(cfg, &cfg.workflows, &booked, &e, ts(NOW));
        assert_eq!(steps.len(), 1);
        steps.into_iter().next().unwrap()
    }

    fn updates(
        cfg: &OrgConfig,
        after: &PatientRecord,
        kind: EventKind,
        pending: &[ScheduledStep],
    ) -> Vec<StepUpdate> {
        appointment_updates(cfg, after, &[event(kind, "e2")], pending, ts(NOW))
    }

    #[test]
    fn a_move_earlier_or_later_re_times_the_reminder_from_the_new_start() {
        let cfg = config("appointment_scheduled");
        let step = reminder(&cfg);
        for (start, due) in [
            ("2026-12-10T09:30:00-08:00", "2026-12-09T17:30:00Z"),
            ("2026-12-24T10:00:00-08:00", "2026-12-23T18:00:00Z"),
        ] {
            let moved = record(start, AppointmentStatus::Scheduled);
            let out = updates(
                &cfg,
                &moved,
                EventKind::AppointmentRescheduled,
                std::slice::from_ref(&step),
            );
            assert_eq!(out.len(), 1, "{start}");
            let new = &out[0].step;
            assert_eq!(
                (new.status, new.anchor.as_deref()),
                (StepStatus::Scheduled, Some(start))
            );
            assert_eq!(ts(&new.due_at), ts(due), "{start}");
            assert_eq!(out[0].read_claim, None);
        }
    }

    #[test]
    fn a_move_whose_reminder_time_has_passed_skips_it() {
        let cfg = config("appointment_scheduled");
        let step = reminder(&cfg);
        let moved = record("2026-12-01T20:00:00-08:00", AppointmentStatus::Scheduled);
        let out = updates(&cfg, &moved, EventKind::AppointmentRescheduled, &[step]);
        assert_eq!(
            (out[0].step.status, out[0].step.note.as_deref()),
            (StepStatus::Skipped, Some("past_due_at_reschedule"))
        );
    }

    #[test]
    fn a_cancel_or_delete_skips_the_reminder_at_once() {
        let cfg = config("appointment_scheduled");
        let step = reminder(&cfg);
        for (status, kind, note) in [
            (
                AppointmentStatus::Canceled,
                EventKind::AppointmentCanceled,
                "appointment_canceled",
            ),
            (
                AppointmentStatus::Deleted,
                EventKind::AppointmentDeleted,
                "appointment_deleted",
            ),
        ] {
            let after = record(BOOKED, status);
            let out = updates(&cfg, &after, kind, std::slice::from_ref(&step));
            assert_eq!(
                (out[0].step.status, out[0].step.note.as_deref()),
                (StepStatus::Skipped, Some(note))
            );
        }
    }

    #[test]
    fn steps_that_stand_or_are_held_by_a_dispatcher_are_left_alone() {
        let cfg = config("appointment_scheduled");
        let step = reminder(&cfg);
        // Another appointment changed; or this one "rescheduled" to the same start.
        let same = record(BOOKED, AppointmentStatus::Scheduled);
        let mut other = event(EventKind::AppointmentCanceled, "e3");
        other.appointment_id = Some("A2".into());
        assert!(
            appointment_updates(&cfg, &same, &[other], std::slice::from_ref(&step), ts(NOW))
                .is_empty()
        );
        assert!(
            updates(
                &cfg,
                &same,
                EventKind::AppointmentRescheduled,
                std::slice::from_ref(&step)
            )
            .is_empty()
        );
        // Claimed beyond now: the dispatcher decides.
        let mut held = step.clone();
        held.claimed_until = Some("2026-12-01T12:04:00Z".into());
        let canceled = record(BOOKED, AppointmentStatus::Canceled);
        assert!(
            updates(
                &cfg,
                &canceled,
                EventKind::AppointmentCanceled,
                &[held.clone()]
            )
            .is_empty()
        );
        // An expired claim is read as it is, so the write checks it.
        held.claimed_until = Some("2026-12-01T11:00:00Z".into());
        let out = updates(&cfg, &canceled, EventKind::AppointmentCanceled, &[held]);
        assert_eq!(out[0].read_claim.as_deref(), Some("2026-12-01T11:00:00Z"));
        assert_eq!(out[0].step.claimed_until, None);
    }

    #[test]
    fn a_cancellation_workflow_keeps_its_steps_when_the_appointment_is_canceled() {
        let cfg = config("appointment_canceled");
        let canceled = record(BOOKED, AppointmentStatus::Canceled);
        let e = event(EventKind::AppointmentCanceled, "e1");
        let steps = enrol(&cfg, &cfg.workflows, &canceled, &e, ts(NOW));
        assert!(updates(&cfg, &canceled, EventKind::AppointmentCanceled, &steps).is_empty());
    }

    #[test]
    fn dispatch_follows_a_move_it_was_not_told_about() {
        // A step a commit could not update (held by a dispatcher then) moves
        // when claimed: later, it waits; the delivery is keyed by the new start.
        let cfg = config("appointment_scheduled");
        let mut step = reminder(&cfg);
        let before_key = step.delivery_key();
        let moved = record("2026-12-24T10:00:00-08:00", AppointmentStatus::Scheduled);
        let at = ts(&step.due_at);
        assert_eq!(
            verdict(&mut step, &cfg, Some(&moved), false, false, at),
            Verdict::Later(ts("2026-12-23T18:00:00Z"))
        );
        assert_ne!(step.delivery_key(), before_key);
        assert_eq!(
            verdict(
                &mut step,
                &cfg,
                Some(&moved),
                false,
                false,
                ts("2026-12-23T18:00:00Z")
            ),
            Verdict::Send
        );
    }
}
