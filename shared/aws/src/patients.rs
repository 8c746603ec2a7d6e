//! [`PatientStore`]: patient records with optimistic versions, the event log,
//! and [`Commit`]s (with the workflow steps they schedule) applied in one
//! `TransactWriteItems`.
//!
//! [`StepStore`]: a processing step's first read in ONE BatchGetItem (the
//! message, the org item, the patient record and the patient ID's parked
//! messages), with the configuration from the token cache (`config` module).
use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use tendon_core::model::{DomainEvent, Patient, PatientRecord};
use tendon_core::ports::{
    Commit, CommitOutcome, PatientStore, RecordCommit, RecordWrite, StepInput, StepStore,
    StoreError, StoreResult,
};
use tendon_core::workflow::steps::{ScheduledStep, StepStatus, StepUpdate};

use crate::config::{Reason, transact_put};
use crate::items::{
    BY_ORG_PATIENT, BY_ORG_PK, BY_ORG_SK, CONFIG_TOKEN, Item, MESSAGE_SK, ORG_SK, PARKED_IDS,
    PARKED_SK, PATIENT_SK, event_pk, from_item, key, message_pk, org_pk, patient_list_pk,
    patient_pk, s, string_attr, to_item, to_value,
};
use crate::{AwsStore, build, next_seq};

/// How many times a commit is sent again after events or scheduled steps that
/// exist already were dropped from it (each round drops at least one).
const MAX_EVENT_ROUNDS: usize = 8;

fn put(
    table: &str,
    item: HashMap<String, AttributeValue>,
) -> aws_sdk_dynamodb::types::builders::PutBuilder {
    Put::builder().table_name(table).set_item(Some(item))
}

/// What a commit writes besides the message guard.
struct Parts<'a> {
    org: &'a str,
    records: &'a [RecordWrite],
    step_updates: &'a [StepUpdate],
    events: &'a [DomainEvent],
    scheduled: &'a [ScheduledStep],
    /// A message commit: its guard leads the transaction, with its parking
    /// changes.
    message: Option<&'a Commit>,
}

/// The [`Parts`] of a [`Commit`] or a [`RecordCommit`] (the fields both
/// have), with the message commit, if any.
macro_rules! parts {
    ($commit:expr, $message:expr) => {
        Parts {
            org: &$commit.org,
            records: &$commit.records,
            step_updates: &$commit.step_updates,
            events: &$commit.events,
            scheduled: &$commit.scheduled,
            message: $message,
        }
    };
}

/// Where each part of a commit's transaction starts.
struct Layout {
    records: std::ops::Range<usize>,
    events_start: usize,
}

impl AwsStore {
    /// The message guard of a commit: an Update of the message item that
    /// fails if the message is missing or has done the step.
    fn guard_item(&self, commit: &Commit) -> StoreResult<TransactWriteItem> {
        const WHAT: &str = "commit";
        let org = &commit.org;
        let mut set = "SET #st = :status, #er = :errors, #sd = list_append(#sd, :steps)".to_owned();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(message_pk(org, &commit.message_id), MESSAGE_SK)))
            .condition_expression("attribute_exists(pk) AND NOT contains(#sd, :step)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#er", "errors")
            .expression_attribute_names("#sd", "steps_done")
            .expression_attribute_values(":status", to_value(WHAT, &commit.status)?)
            .expression_attribute_values(":errors", to_value(WHAT, &commit.errors)?)
            .expression_attribute_values(":steps", AttributeValue::L(vec![s(commit.step.clone())]))
            .expression_attribute_values(":step", s(commit.step.clone()));
        if let Some(pid) = &commit.patient_id {
            set.push_str(", #pid = :pid");
            update = update
                .expression_attribute_names("#pid", "patient_id")
                .expression_attribute_values(":pid", s(pid.clone()));
        }
        let update = update
            .update_expression(set)
            .build()
            .map_err(|_| build(WHAT))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The transaction of a commit: the guard (of a message commit), the
    /// records and the step updates (whose conditions make a conflict), the
    /// listing items of new patients, the parking changes, then `events`,
    /// then `steps`.
    fn commit_items(
        &self,
        guard: Option<TransactWriteItem>,
        parts: &Parts<'_>,
        events: &[&DomainEvent],
        steps: &[&ScheduledStep],
    ) -> StoreResult<(Vec<TransactWriteItem>, Layout)> {
        const WHAT: &str = "commit";
        let org = parts.org;
        let mut items: Vec<TransactWriteItem> = guard.into_iter().collect();
        let records_start = items.len();
        for w in parts.records {
            let id = &w.record.patient.id;
            let mut item = to_item(WHAT, &w.record, patient_pk(org, id), PATIENT_SK)?;
            item.insert(BY_ORG_PK.to_owned(), s(org));
            item.insert(BY_ORG_SK.to_owned(), s(format!("{BY_ORG_PATIENT}{id}")));
            let p = match w.expected_version {
                None => put(&self.table, item).condition_expression("attribute_not_exists(pk)"),
                Some(v) => put(&self.table, item)
                    .condition_expression("#v = :expected")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
            };
            items.push(
                TransactWriteItem::builder()
                    .put(p.build().map_err(|_| build(WHAT))?)
                    .build(),
            );
        }
        // Step updates count with the records: one no longer as read is a conflict.
        for update in parts.step_updates {
            let p = put(&self.table, crate::schedule::step_item(WHAT, &update.step)?)
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#cms", crate::schedule::CLAIM_MS)
                .expression_attribute_values(":scheduled", to_value(WHAT, &StepStatus::Scheduled)?);
            let p = match &update.read_claim {
                None => p.condition_expression("#st = :scheduled AND attribute_not_exists(#cms)"),
                Some(claim) => p
                    .condition_expression("#st = :scheduled AND #cms = :claim")
                    .expression_attribute_values(
                        ":claim",
                        AttributeValue::N(claim.as_millisecond().to_string()),
                    ),
            };
            items.push(
                TransactWriteItem::builder()
                    .put(p.build().map_err(|_| build(WHAT))?)
                    .build(),
            );
        }
        let records = records_start..items.len();
        for w in parts
            .records
            .iter()
            .filter(|w| w.expected_version.is_none())
        {
            let id = &w.record.patient.id;
            let mut listing = key(patient_list_pk(org), id.clone());
            listing.insert("id".to_owned(), s(id.clone()));
            items.push(transact_put(self, WHAT, listing, None)?);
        }
        if let Some(commit) = parts.message {
            for (pid, action) in [(&commit.park, "ADD"), (&commit.unpark, "DELETE")] {
                let Some(pid) = pid else { continue };
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(patient_pk(org, pid), PARKED_SK)))
                    .update_expression(format!("{action} #ids :id"))
                    .expression_attribute_names("#ids", PARKED_IDS)
                    .expression_attribute_values(
                        ":id",
                        AttributeValue::Ss(vec![commit.message_id.clone()]),
                    )
                    .build()
                    .map_err(|_| build(WHAT))?;
                items.push(TransactWriteItem::builder().update(update).build());
            }
        }
        // Events and steps are written once: one that exists is refused.
        let once = |item| transact_put(self, WHAT, item, Some("attribute_not_exists(pk)"));
        let events_start = items.len();
        let seq = next_seq();
        for (i, e) in events.iter().enumerate() {
            let mut item = to_item(WHAT, *e, event_pk(org), e.id.clone())?;
            item.insert("seq".to_owned(), s(format!("{seq:020}#{i:05}")));
            items.push(once(item)?);
        }
        for step in steps {
            items.push(once(crate::schedule::step_item(WHAT, step)?)?);
        }
        Ok((
            items,
            Layout {
                records,
                events_start,
            },
        ))
    }

    /// Sends a commit's transaction, resending it without the events and
    /// steps that exist already.
    async fn write_commit(&self, parts: Parts<'_>) -> StoreResult<CommitOutcome> {
        const WHAT: &str = "commit";
        let guard = parts.message;
        // An event ID twice in one commit: the first stays (a transaction may
        // not touch an item twice).
        let mut seen = HashSet::new();
        let mut events: Vec<&DomainEvent> = parts
            .events
            .iter()
            .filter(|e| seen.insert(e.id.as_str()))
            .collect();
        // The same for scheduled steps (their IDs derive from event IDs), and
        // a step also updated is written once, as the update.
        let mut seen: HashSet<&str> = parts
            .step_updates
            .iter()
            .map(|u| u.step.id.as_str())
            .collect();
        let mut steps: Vec<&ScheduledStep> = parts
            .scheduled
            .iter()
            .filter(|s| seen.insert(s.id.as_str()))
            .collect();
        for _ in 0..MAX_EVENT_ROUNDS {
            let guard_item = guard.map(|c| self.guard_item(c)).transpose()?;
            let (items, layout) = self.commit_items(guard_item, &parts, &events, &steps)?;
            let Some(reasons) = self.transact(WHAT, items).await? else {
                return Ok(CommitOutcome::Applied);
            };
            if let Some(commit) = guard {
                match reasons.first() {
                    Some(Reason::Condition) => {
                        // Done already, or no such message.
                        let exists = self
                            .get(
                                WHAT,
                                message_pk(&commit.org, &commit.message_id),
                                MESSAGE_SK,
                            )
                            .await?
                            .is_some();
                        return if exists {
                            Ok(CommitOutcome::AlreadyApplied)
                        } else {
                            Err(StoreError::NotFound(format!(
                                "message {}",
                                commit.message_id
                            )))
                        };
                    }
                    // Another writer on the message: reload and decide again.
                    Some(Reason::Conflict) => return Ok(CommitOutcome::Conflict),
                    _ => {}
                }
            }
            let records_end = layout.records.end.min(reasons.len());
            if reasons[layout.records.start.min(records_end)..records_end]
                .iter()
                .any(|r| *r != Reason::Fine)
            {
                return Ok(CommitOutcome::Conflict);
            }
            let first_event = layout.events_start;
            let failed: HashSet<usize> = reasons
                .iter()
                .enumerate()
                .skip(first_event)
                .filter(|(_, r)| **r != Reason::Fine)
                .map(|(i, _)| i - first_event)
                .collect();
            if failed.is_empty() {
                // Only listing items failed, which carry no condition: a race.
                return Ok(CommitOutcome::Conflict);
            }
            // Events and steps recorded before (the first write stays), or
            // racing writes of them.
            let event_count = events.len();
            events = events
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !failed.contains(i))
                .map(|(_, e)| e)
                .collect();
            steps = steps
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !failed.contains(&(event_count + i)))
                .map(|(_, s)| s)
                .collect();
        }
        Err(StoreError::backend(WHAT, "the events kept conflicting"))
    }
}

impl PatientStore for AwsStore {
    async fn load_patient(&self, org: &str, id: &str) -> StoreResult<Option<PatientRecord>> {
        const WHAT: &str = "load_patient";
        match self.get(WHAT, patient_pk(org, id), PATIENT_SK).await? {
            Some(item) => from_item(WHAT, item).map(Some),
            None => Ok(None),
        }
    }

    /// The org's patients sorted by ID, without merge aliases: a Query of the
    /// listing and BatchGets of the records.
    async fn list_patients(&self, org: &str) -> StoreResult<Vec<Patient>> {
        const WHAT: &str = "list_patients";
        let keys = self
            .listed_ids(WHAT, patient_list_pk(org))
            .await?
            .iter()
            .map(|id| key(patient_pk(org, id), PATIENT_SK))
            .collect();
        let mut out = Vec::new();
        for item in self.batch_get(WHAT, keys).await? {
            let record: PatientRecord = from_item(WHAT, item)?;
            if record.patient.merged_into.is_none() {
                out.push(record.patient);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn commit(&self, commit: &Commit) -> StoreResult<CommitOutcome> {
        self.write_commit(parts!(commit, Some(commit))).await
    }

    async fn commit_records(&self, commit: &RecordCommit) -> StoreResult<CommitOutcome> {
        self.write_commit(parts!(commit, None)).await
    }

    /// The org's event partition, sorted by the order written (`seq`).
    async fn list_events(&self, org: &str) -> StoreResult<Vec<DomainEvent>> {
        const WHAT: &str = "list_events";
        let mut out = Vec::new();
        for item in self.query_all(WHAT, event_pk(org)).await? {
            let seq = string_attr(&item, "seq").unwrap_or_default().to_owned();
            out.push((seq, from_item::<DomainEvent>(WHAT, item)?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }
}

/// The IDs in a parked-messages item.
fn parked_ids(item: &Item) -> Vec<String> {
    match item.get(PARKED_IDS) {
        Some(AttributeValue::Ss(ids)) => ids.clone(),
        _ => Vec::new(),
    }
}

impl AwsStore {
    /// Parked message IDs, oldest first: a string set has no order, so more
    /// than one costs a BatchGet of the messages' receipt times (rare: several
    /// ADTs before a patient's first Initial Evaluation).
    pub(crate) async fn order_parked(
        &self,
        org: &str,
        ids: Vec<String>,
    ) -> StoreResult<Vec<String>> {
        if ids.len() < 2 {
            return Ok(ids);
        }
        let keys = ids
            .iter()
            .map(|id| key(message_pk(org, id), MESSAGE_SK))
            .collect();
        let mut dated: Vec<(String, String)> = self
            .batch_get("pending_messages", keys)
            .await?
            .iter()
            .filter_map(|i| {
                let id = string_attr(i, "id")?.to_owned();
                let at = crate::messages::received_key(
                    string_attr(i, "received_at").unwrap_or_default(),
                );
                Some((at, id))
            })
            .collect();
        dated.sort();
        Ok(dated.into_iter().map(|(_, id)| id).collect())
    }

    /// The parked messages of a patient ID: one GetItem.
    pub(crate) async fn parked(&self, org: &str, patient_id: &str) -> StoreResult<Vec<String>> {
        let item = self
            .get("pending_messages", patient_pk(org, patient_id), PARKED_SK)
            .await?;
        let ids = item.as_ref().map(parked_ids).unwrap_or_default();
        self.order_parked(org, ids).await
    }
}

impl StepStore for AwsStore {
    async fn read_step(
        &self,
        org: &str,
        message_id: &str,
        patient_id: Option<&str>,
    ) -> StoreResult<StepInput> {
        const WHAT: &str = "read_step";
        let live = tendon_core::mode::org_of(org);
        let message_key = message_pk(org, message_id);
        let mut keys = vec![
            key(message_key.clone(), MESSAGE_SK),
            // A test partition reads its org's configuration.
            key(org_pk(live), ORG_SK),
        ];
        if let Some(pid) = patient_id {
            keys.push(key(patient_pk(org, pid), PATIENT_SK));
            keys.push(key(patient_pk(org, pid), PARKED_SK));
        }
        let mut input = StepInput::default();
        let mut token = None;
        let mut parked = Vec::new();
        for item in self.batch_get(WHAT, keys).await? {
            let pk = string_attr(&item, "pk").unwrap_or_default().to_owned();
            let sk = string_attr(&item, "sk").unwrap_or_default().to_owned();
            match sk.as_str() {
                MESSAGE_SK if pk == message_key => {
                    input.message = Some(self.decode_message(WHAT, item).await?);
                }
                ORG_SK => {
                    token = Some(
                        string_attr(&item, CONFIG_TOKEN)
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                PATIENT_SK => input.patient = Some(from_item(WHAT, item)?),
                PARKED_SK => parked = parked_ids(&item),
                _ => {}
            }
        }
        input.config = match token {
            None => None,
            Some(token) => match self.caches.config(live, &token) {
                Some(config) => Some(config),
                None => self.fetch_org_config(live).await?.map(|(_, c)| c),
            }
            .map(|c| c.for_partition(org)),
        };
        input.pending = self.order_parked(org, parked).await?;
        Ok(input)
    }
}
