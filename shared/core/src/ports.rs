//! The ports: what the core needs from the outside world. `shared/local`
//! (SQLite) and `shared/aws` (DynamoDB, SQS) implement them; a handler takes
//! only the ports it uses, or a bound that groups them (`StepStore` for the
//! processing steps, `DispatchStore` for a dispatch pass, `SyncStore` for the
//! Cliniko sync). A port holds no domain rule: a change to a record that the
//! rules make (an opt-out, say) is read, decided in the core and committed.
use std::future::Future;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Issue;
use crate::mode::Mode;
use crate::model::{DomainEvent, MessageStatus, Patient, PatientRecord, StoredMessage};
use crate::org::{Location, Org, OrgConfig, Practitioner};
use crate::workflow::Workflow;
use crate::workflow::steps::{Delivery, DeliveryStatus, ScheduledStep, StepStatus, StepUpdate};

mod clock;
mod dispatch_log;
mod error;
mod keys_and_addresses;
mod overview;
mod test_data;

pub use clock::{Clock, FixedClock, SystemClock};
pub use dispatch_log::DispatchLog;
pub use error::{BackendError, StoreError, StoreResult};
pub use keys_and_addresses::{IngestKey, Suppression};
pub use overview::Overview;
pub use test_data::{PartitionDeleted, TestData};

/// Orgs, their ingest keys (hashes only), locations and practitioners.
pub trait ConfigStore: Send + Sync {
    /// Creates the org with its first ingest key; `AlreadyExists` if the ID is taken.
    fn create_org(&self, org: &Org, key_hash: &str)
    -> impl Future<Output = StoreResult<()>> + Send;
    /// Replaces an existing org's settings; `NotFound` if there is none.
    fn update_org(&self, org: &Org) -> impl Future<Output = StoreResult<()>> + Send;
    /// Adds a key whose messages go to the org's data of `mode` (see
    /// [`crate::mode`]).
    fn add_ingest_key(
        &self,
        org: &str,
        key_hash: &str,
        mode: Mode,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The org's ingest keys (hashes), oldest first.
    fn ingest_keys(&self, org: &str) -> impl Future<Output = StoreResult<Vec<IngestKey>>> + Send;
    /// Removes one of the org's keys; `NotFound` if the org has no key with
    /// that hash (a key of another org included).
    fn revoke_ingest_key(
        &self,
        org: &str,
        key_hash: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Where an ingest key's (by hash) messages go: its org's ID, or for a
    /// test-mode key the org's test partition ([`crate::mode::partition`]).
    fn org_for_key(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    /// Adds or replaces a location; `NotFound` if the org does not exist.
    fn put_location(
        &self,
        org: &str,
        location: &Location,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Adds or replaces a practitioner; `NotFound` if the org does not exist.
    fn put_practitioner(
        &self,
        org: &str,
        practitioner: &Practitioner,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The org with its locations and practitioners, in one read. Asked for
    /// a test partition, the org's configuration as the partition reads it
    /// ([`OrgConfig::for_partition`]).
    fn org_config(&self, org: &str) -> impl Future<Output = StoreResult<Option<OrgConfig>>> + Send;
}

/// The result of storing a received message.
// Returned once per insert and consumed at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted<T = StoredMessage> {
    New,
    /// A record with the same identity was stored before; here it is.
    Existing(T),
}

/// Received messages, stored before they are acknowledged.
pub trait MessageLog: Send + Sync {
    /// Stores a message unless one with the same (org, id) exists.
    fn insert_message(
        &self,
        message: &StoredMessage,
    ) -> impl Future<Output = StoreResult<Inserted>> + Send;
    fn get_message(
        &self,
        org: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<StoredMessage>>> + Send;
    /// Messages of an org, oldest first, optionally with one status (raw bodies may be omitted).
    fn list_messages(
        &self,
        org: &str,
        status: Option<MessageStatus>,
    ) -> impl Future<Output = StoreResult<Vec<StoredMessage>>> + Send;
    /// Sets a message back to `accepted`, `queued: false`, with no steps done,
    /// and counts the replay (`replays` + 1), for replay.
    fn reset_message(&self, org: &str, id: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// The IDs of the messages parked for a patient ID that does not exist yet
    /// (ADTs with status `pending`, see [`Commit::park`]), oldest first. A
    /// backend may also list parked messages that a replay has put back in
    /// flight; re-applying one of those is harmless.
    fn pending_messages(
        &self,
        org: &str,
        patient_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
}

/// One patient record to write, if it still has the version it was read at
/// (`None`: it must not exist yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordWrite {
    pub record: PatientRecord,
    pub expected_version: Option<u64>,
}

/// Everything one processing step changes, applied atomically: the patient
/// records, the events, and the message's status. `step` is the guard: a commit
/// whose step the message has already done is not applied again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub org: String,
    pub message_id: String,
    pub step: String,
    pub status: MessageStatus,
    pub errors: Vec<Issue>,
    pub patient_id: Option<String>,
    pub records: Vec<RecordWrite>,
    pub events: Vec<DomainEvent>,
    /// Park the message for this patient ID (its status is `pending`): the
    /// commit that later creates the patient finds it in `pending_messages`.
    pub park: Option<String>,
    /// The message leaves this patient ID's parked messages.
    pub unpark: Option<String>,
    /// Workflow steps the events schedule (enrolment); a step whose ID exists
    /// is not written again.
    pub scheduled: Vec<ScheduledStep>,
    /// Pending steps the events change (an appointment moved or canceled);
    /// one no longer as read makes the commit a [`CommitOutcome::Conflict`].
    pub step_updates: Vec<StepUpdate>,
}

/// Patient records with their events, scheduled steps and step updates,
/// applied atomically without a message guard (the Cliniko sync): it is
/// idempotent through the records' versions and the events' IDs, which are
/// written once, as their steps are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordCommit {
    pub org: String,
    pub records: Vec<RecordWrite>,
    pub events: Vec<DomainEvent>,
    pub scheduled: Vec<ScheduledStep>,
    pub step_updates: Vec<StepUpdate>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    Applied,
    /// The message had already done this step: nothing was written.
    AlreadyApplied,
    /// A record changed since it was read: reload and decide again.
    Conflict,
}

/// Patients with their episodes and appointments, and the event log.
pub trait PatientStore: Send + Sync {
    /// The record stored under this ID (an alias left by a merge included).
    fn load_patient(
        &self,
        org: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<PatientRecord>>> + Send;
    fn list_patients(&self, org: &str) -> impl Future<Output = StoreResult<Vec<Patient>>> + Send;
    fn commit(&self, commit: &Commit) -> impl Future<Output = StoreResult<CommitOutcome>> + Send;
    /// Applies a [`RecordCommit`]: `Applied`, or `Conflict` if a record or a
    /// step changed since it was read (nothing is written then).
    fn commit_records(
        &self,
        commit: &RecordCommit,
    ) -> impl Future<Output = StoreResult<CommitOutcome>> + Send;
    /// The org's event log, in order.
    fn list_events(&self, org: &str) -> impl Future<Output = StoreResult<Vec<DomainEvent>>> + Send;
}

/// The doctor's bulk read of an org: its messages, patients and failed
/// workflow steps. By default the ordinary listings; a backend where those
/// cost a request per hundred records serves it from an index instead (the
/// AWS backend: one Query page per thousand-odd records).
pub trait OrgOverview: MessageLog + PatientStore + StepSchedule {
    /// The org's (or a test partition's) overview. A backend may serve it
    /// from an index that lags the writes by a moment: it is for analysis,
    /// not for deciding.
    fn overview(
        &self,
        org: &str,
        since: Option<jiff::Timestamp>,
    ) -> impl Future<Output = StoreResult<Overview>> + Send {
        async move {
            let mut messages = self.list_messages(org, None).await?;
            if let Some(since) = since {
                messages.retain(|m| m.received_at >= since);
            }
            let mut failed_steps = self.list_steps(org, None).await?;
            failed_steps.retain(|s| s.status == StepStatus::Failed);
            Ok(Overview {
                messages,
                patients: self.list_patients(org).await?,
                failed_steps,
            })
        }
    }
}

/// What a processing step reads before it decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepInput {
    pub message: Option<StoredMessage>,
    pub config: Option<OrgConfig>,
    /// The record stored under the patient ID asked for (a merge alias is not followed).
    pub patient: Option<PatientRecord>,
    /// `pending_messages` of that patient ID.
    pub pending: Vec<String>,
}

/// The store a processing step runs on. `read_step` is the step's first read;
/// a backend where each read is a network round trip fetches it all at once
/// (the AWS backend: one BatchGetItem).
pub trait StepStore: ConfigStore + MessageLog + PatientStore + StepSchedule {
    fn read_step(
        &self,
        org: &str,
        message_id: &str,
        patient_id: Option<&str>,
    ) -> impl Future<Output = StoreResult<StepInput>> + Send {
        async move {
            let message = self.get_message(org, message_id).await?;
            let config = self.org_config(org).await?;
            let (patient, pending) = match patient_id {
                Some(id) => (
                    self.load_patient(org, id).await?,
                    self.pending_messages(org, id).await?,
                ),
                None => (None, Vec::new()),
            };
            Ok(StepInput {
                message,
                config,
                patient,
                pending,
            })
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueName {
    /// ingest → patient step.
    Patients,
    /// patient step → episode step.
    Episodes,
}

impl QueueName {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Patients => "patients",
            QueueName::Episodes => "episodes",
        }
    }
}

/// A queue message: a pointer to the stored message, never its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    pub org: String,
    pub message_id: String,
    /// The message's patient ID as ingest read it: a hint that lets a step read
    /// the message and the patient together. The step checks it against the
    /// message as re-read with the current configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
}

/// FIFO queues with message groups (one patient's messages stay in order).
pub trait WorkQueue: Send + Sync {
    fn send(
        &self,
        queue: QueueName,
        group: &str,
        dedupe_id: &str,
        item: &WorkItem,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Where a stored message's pointer goes: a queue, a message group and a
/// dedupe ID (see [`WorkQueue::send`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandOff {
    pub queue: QueueName,
    pub group: String,
    pub dedupe_id: String,
    pub item: WorkItem,
}

/// A stored message whose pointer is not on the queue (`queued: false`),
/// claimed by one sweeper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unqueued {
    pub org: String,
    pub id: String,
    pub patient_id: Option<String>,
    pub replays: u32,
}

/// Storing a received message and handing it to the queue, so that nothing
/// acknowledged is lost and nothing stored is left unqueued
/// (docs/interface.md §4).
pub trait Intake: Send + Sync {
    /// Stores `message` unless one with the same (org, id) exists (as
    /// [`MessageLog::insert_message`]); when it is new and `hand_off` is given,
    /// also queues its pointer and records it `queued` and `acknowledged`. A
    /// backend whose store and queue share a transaction does all of it at
    /// once; another stores the message `queued: false, acknowledged: false`
    /// first, then sends, then records both, so a failure between the steps
    /// leaves the message for [`Intake::claim_unqueued`].
    fn store_and_queue(
        &self,
        message: &StoredMessage,
        hand_off: Option<&HandOff>,
    ) -> impl Future<Output = StoreResult<Inserted>> + Send;
    /// Sends a stored message's pointer and records it `queued` (and
    /// `acknowledged` if `acknowledge`). Sending a pointer twice is harmless:
    /// the queue's dedupe and the steps' guards absorb it.
    fn queue_stored(
        &self,
        org: &str,
        id: &str,
        hand_off: &HandOff,
        acknowledge: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records whether the sender was answered for a stored message (nothing
    /// happens if there is no such message).
    fn set_acknowledged(
        &self,
        org: &str,
        id: &str,
        acknowledged: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Up to `limit` messages, of every org, stored `queued: false` before
    /// `stored_before`, oldest first, each claimed until `claim_until`: a
    /// message another sweeper holds an unexpired claim on is left out, so
    /// concurrent sweepers take each message at most once per claim.
    fn claim_unqueued(
        &self,
        stored_before: jiff::Timestamp,
        now: jiff::Timestamp,
        claim_until: jiff::Timestamp,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Unqueued>>> + Send;
}

/// Workflow definitions: storing one (a new version of its ID) and switching
/// it on or off. They are read with the org's configuration
/// ([`ConfigStore::org_config`]).
pub trait WorkflowStore: Send + Sync {
    /// Stores a workflow of an existing org (`NotFound` otherwise) under its
    /// ID: version 1 if new, else the stored version + 1. Returns it as stored.
    fn put_workflow(
        &self,
        org: &str,
        workflow: &Workflow,
    ) -> impl Future<Output = StoreResult<Workflow>> + Send;
    /// Sets a stored workflow's status (`NotFound` if there is none); its
    /// version stays. Returns it as stored.
    fn set_workflow_status(
        &self,
        org: &str,
        id: &str,
        status: crate::workflow::WorkflowStatus,
    ) -> impl Future<Output = StoreResult<Workflow>> + Send;
}

/// The workflow steps enrolment scheduled (a commit writes them:
/// [`Commit::scheduled`], [`Commit::step_updates`]): claiming the due ones,
/// recording how each went, making a failed one due again, listing them. Not
/// a message's processing steps: those run on a [`StepStore`].
pub trait StepSchedule: Send + Sync {
    /// Takes up to `limit` steps, of any org, that are `scheduled`, due at
    /// `at` or before, and not claimed beyond `now` (the real time: a pass
    /// may run for an `at` long past); each is claimed until `until`. Two
    /// concurrent callers never get the same step.
    fn claim_due(
        &self,
        at: jiff::Timestamp,
        now: jiff::Timestamp,
        until: jiff::Timestamp,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<ScheduledStep>>> + Send;
    /// Writes a claimed step's new state (its claim released) and, if given,
    /// the next occurrence of a repeating step (unless it exists).
    fn finish_step(
        &self,
        step: &ScheduledStep,
        next: Option<&ScheduledStep>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Writes `step`, a failed step made due again (`scheduled`, no claim),
    /// if the stored step is still `failed`; `false` if there is no such step
    /// or it is not failed (a retry already took it, say).
    fn reschedule_failed_step(
        &self,
        step: &ScheduledStep,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// The org's scheduled steps (all statuses), optionally of one patient,
    /// by due time.
    fn list_steps(
        &self,
        org: &str,
        patient_id: Option<&str>,
    ) -> impl Future<Output = StoreResult<Vec<ScheduledStep>>> + Send;
}

/// What dispatch sent: the deliveries (the outbox), and the surveys and
/// exercises they assigned, open until the patient completes them.
pub trait DeliveryLog: Send + Sync {
    /// Records a delivery unless one with its ID exists (then returns that one).
    fn begin_delivery(
        &self,
        delivery: &Delivery,
    ) -> impl Future<Output = StoreResult<Inserted<Delivery>>> + Send;
    /// Records how a delivery's send went.
    fn complete_delivery(
        &self,
        delivery: &Delivery,
        status: DeliveryStatus,
        provider_id: Option<&str>,
        at: jiff::Timestamp,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The org's deliveries (the outbox), oldest first.
    fn list_deliveries(&self, org: &str)
    -> impl Future<Output = StoreResult<Vec<Delivery>>> + Send;
    /// How many surveys and exercises assigned to the patient are not complete.
    fn open_assignments(
        &self,
        org: &str,
        patient_id: &str,
    ) -> impl Future<Output = StoreResult<usize>> + Send;
    /// Marks the survey or exercise a delivery assigned complete (the patient
    /// finished it); it no longer counts in [`open_assignments`](Self::open_assignments).
    /// `false` if the delivery is not an open assignment.
    fn complete_assignment(
        &self,
        org: &str,
        delivery_id: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// The email addresses of an org that no workflow email goes to (a
/// permanent bounce, a complaint), until an operator lifts one.
pub trait Suppressions: Send + Sync {
    /// Suppresses an email address for the org (lower-cased): no workflow
    /// email goes to it again. `reason`: `bounce`, `complaint`, ...
    fn suppress_address(
        &self,
        org: &str,
        address: &str,
        reason: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Whether the address (compared lower-cased) is suppressed for the org.
    fn is_suppressed(
        &self,
        org: &str,
        address: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// The org's suppressed addresses, by address.
    fn suppressed_addresses(
        &self,
        org: &str,
    ) -> impl Future<Output = StoreResult<Vec<Suppression>>> + Send;
    /// Lifts the suppression of an address (compared lower-cased) for the
    /// org, so workflow email may go to it again; `false` if it was not
    /// suppressed.
    fn unsuppress_address(
        &self,
        org: &str,
        address: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// What a dispatch pass needs: the org's configuration, the patient, the due
/// steps, the deliveries, the suppressed addresses, and its own record.
pub trait DispatchStore:
    ConfigStore + PatientStore + StepSchedule + DeliveryLog + Suppressions + DispatchLog
{
}
impl<T> DispatchStore for T where
    T: ConfigStore + PatientStore + StepSchedule + DeliveryLog + Suppressions + DispatchLog
{
}

/// Why a send failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SendError {
    /// Over the provider's send rate: try again later.
    #[error("throttled")]
    Throttled,
    /// The provider refused this message for good (a bad address, a suppressed one).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The provider could not be reached or failed: try again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Sends a delivery: an email (SES) or a text (SNS); the outbox locally.
/// Returns the provider's message ID.
pub trait Mailer: Send + Sync {
    fn send(&self, delivery: &Delivery) -> impl Future<Output = Result<String, SendError>> + Send;
}

/// Cliniko connections and the profiles a sync could not import.
pub trait ClinikoStore: Send + Sync {
    /// Stores an org's connection, replacing its previous one; `NotFound` if
    /// the org does not exist. Its token finds it (a replaced token no longer does).
    fn put_connection(
        &self,
        connection: &crate::cliniko::ClinikoConnection,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn connection(
        &self,
        org: &str,
    ) -> impl Future<Output = StoreResult<Option<crate::cliniko::ClinikoConnection>>> + Send;
    /// The connection whose "Open in" token this is.
    fn connection_for_token(
        &self,
        token: &str,
    ) -> impl Future<Output = StoreResult<Option<crate::cliniko::ClinikoConnection>>> + Send;
    /// Every org's connection (for the scheduled re-sync), by org.
    fn connections(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<crate::cliniko::ClinikoConnection>>> + Send;
    /// Records a finished sync: its watermark (kept if `None`) and when it ran.
    /// `NotFound` if the org has no connection.
    fn record_sync(
        &self,
        org: &str,
        watermark: Option<&str>,
        synced_at: jiff::Timestamp,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Saves (or replaces) a profile that failed to import.
    fn put_failure(
        &self,
        org: &str,
        failure: &crate::cliniko::ClinikoFailure,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Removes a saved failure (the profile imported, or left Cliniko's active list).
    fn clear_failure(
        &self,
        org: &str,
        cliniko_id: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The org's saved failures, by Cliniko ID.
    fn failures(
        &self,
        org: &str,
    ) -> impl Future<Output = StoreResult<Vec<crate::cliniko::ClinikoFailure>>> + Send;
}

/// What the stores must offer the Cliniko sync.
pub trait SyncStore: ConfigStore + PatientStore + StepSchedule + ClinikoStore {}
impl<T: ConfigStore + PatientStore + StepSchedule + ClinikoStore> SyncStore for T {}
