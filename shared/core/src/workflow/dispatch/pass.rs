//! A dispatch pass: claim the due steps in batches, decide each, record the
//! delivery before sending it, and record the outcome (retrying a throttled
//! or unavailable provider with backoff).
use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::delivery::build_delivery;
use super::unsubscribe_link::{unsubscribe_token, unsubscribe_url};
use super::verdict::{Verdict, channel_of, verdict};
use crate::model::PatientRecord;
use crate::org::OrgConfig;
use crate::ports::{Clock, DispatchStore, Inserted, Mailer, SendError, StoreError, StoreResult};
use crate::workflow::enrol::next_occurrence;
use crate::workflow::steps::{Channel, DeliveryStatus, ScheduledStep, StepStatus};

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
    S: DispatchStore,
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
        self.store.record_dispatch_pass(started).await?;
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
                .map_err(|_| StoreError::backend("dispatch", "time out of range"))?;
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
                step.due_at = due;
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
                    .complete_delivery(&delivery, DeliveryStatus::Sent, Some(&provider_id), at)
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
                    .complete_delivery(&delivery, DeliveryStatus::Failed, None, at)
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
                step.due_at = at.checked_add(backoff(step.attempts)).unwrap_or(at);
                step.note = Some("retrying".into());
                self.store.finish_step(&step, None).await?;
                Ok(None)
            }
            Err(e) => {
                step.attempts += 1;
                step.status = StepStatus::Failed;
                step.note = Some(format!("gave up after {} attempts: {e}", step.attempts));
                self.store
                    .complete_delivery(&delivery, DeliveryStatus::Failed, None, at)
                    .await?;
                self.store.finish_step(&step, None).await?;
                Ok(Some(StepStatus::Failed))
            }
        }
    }
}
