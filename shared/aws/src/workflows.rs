//! The workflow ports on DynamoDB: [`WorkflowStore`] (workflows in the org
//! partition), [`StepSchedule`] (scheduled steps in their patient's
//! partition, claimed through the sparse `due` GSI), [`DeliveryLog`]
//! (deliveries with their listing, and the assignment markers of sent
//! surveys and exercises) and [`Suppressions`] (the org's `SUPPRESS`
//! partition). See the item layout in the crate docs.
//!
//! **The due index.** A step item carries `due_pk` and `due_at` only while
//! its status is `scheduled`: `due_pk` is `DUE#<n>` (a hash of the step ID
//! modulo [`SHARDS`]) and `due_at` is the instant from which the step can be
//! claimed, as 13-digit zero-padded Unix milliseconds, `#`, and the step ID.
//! That instant is the step's due time, or the end of its claim while it is
//! claimed: a claim moves the step forward in the index, so a claim pass
//! Queries each shard for `due_at < <now + 1 ms>` and reads only steps it can
//! take. The index is read eventually consistently; the claim itself is a
//! conditional UpdateItem on the step item (the truth), whose failure means
//! the step was taken, moved or finished meanwhile.
//!
//! The step's own `due_at` (RFC 3339) is stored as `step_due_at` beside the
//! index attribute of the same name, and a claim's end also as `claim_ms`
//! (a Number, for the claim's condition).
use std::collections::{HashMap, HashSet, VecDeque};

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, Select, TransactWriteItem, Update,
};
use jiff::Timestamp;
use tendon_core::join::join_all;
use tendon_core::ports::{
    DeliveryLog, Inserted, StepSchedule, StoreError, StoreResult, Suppression, Suppressions,
    WorkflowStore,
};
use tendon_core::workflow::steps::{Delivery, DeliveryStatus, ScheduledStep, StepStatus};
use tendon_core::workflow::{TaskKind, Workflow, WorkflowStatus};

use crate::config::{org_changed, put};
use crate::items::{
    ASSIGNMENT_PREFIX, DELIVERY_SK, DUE_AT, DUE_INDEX, DUE_PK, Item, PK, SK, STEP_PREFIX,
    WORKFLOW_PREFIX, conditional, delivery_list_pk, delivery_pk, from_item, key, org_pk,
    patient_list_pk, patient_pk, s, string_attr, to_item, to_value, written,
};
use crate::{AwsStore, backend, build, codec, next_seq};

/// Shards of the due index: a claim pass is this many Queries.
pub(crate) const SHARDS: u32 = 4;
/// Rounds of a claim pass that lost steps to other claimers (each round reads
/// further into the index).
const MAX_CLAIM_ROUNDS: usize = 8;
/// Rounds of a write that raced another writer of the same item.
const MAX_WRITE_ROUNDS: usize = 8;
/// Patients whose steps are read at once by `list_steps` of a whole org.
const LIST_CONCURRENCY: usize = 16;

/// A step item's own due time (RFC 3339); `due_at` is the index's sort key.
const STEP_DUE: &str = "step_due_at";
/// A claimed step's claim end, Unix milliseconds.
pub(crate) const CLAIM_MS: &str = "claim_ms";
/// An assignment marker's completion time (set when the patient completes it).
const COMPLETED_AT: &str = "completed_at";

/// The due-index shard of a step: FNV-1a of its ID (stable across processes
/// and builds, unlike `std`'s hasher).
pub(crate) fn shard(id: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("DUE#{}", h % SHARDS)
}

/// Unix milliseconds as a fixed-width sort key (up to the year 2286).
pub(crate) fn ms_key(ms: i64) -> String {
    format!("{:013}", ms.clamp(0, 9_999_999_999_999))
}

/// A step's index sort key: when it can be claimed, then its ID.
pub(crate) fn due_key(ms: i64, id: &str) -> String {
    format!("{}#{id}", ms_key(ms))
}

fn step_sk(id: &str) -> String {
    format!("{STEP_PREFIX}{id}")
}

fn workflow_sk(id: &str) -> String {
    format!("{WORKFLOW_PREFIX}{id}")
}

fn assignment_sk(delivery_id: &str) -> String {
    format!("{ASSIGNMENT_PREFIX}{delivery_id}")
}

/// Whether a sent delivery of this kind is an assignment the patient completes.
fn is_assignment(kind: TaskKind) -> bool {
    matches!(kind, TaskKind::Survey | TaskKind::Exercise)
}

/// A workflow item read back (its key attributes dropped: the struct denies
/// unknown fields).
pub(crate) fn decode_workflow(what: &str, mut item: Item) -> StoreResult<Workflow> {
    item.remove(PK);
    item.remove(SK);
    from_item(what, item)
}

/// The item of a step, with the due index attributes while it is scheduled.
pub(crate) fn step_item(what: &str, step: &ScheduledStep) -> StoreResult<Item> {
    let mut item = to_item(
        what,
        step,
        patient_pk(&step.org, &step.patient_id),
        step_sk(&step.id),
    )?;
    if let Some(due) = item.remove(DUE_AT) {
        item.insert(STEP_DUE.to_owned(), due);
    }
    if step.status == StepStatus::Scheduled {
        let mut ready = step.due_at.as_millisecond();
        if let Some(claim) = step.claimed_until {
            let claim = claim.as_millisecond();
            item.insert(CLAIM_MS.to_owned(), AttributeValue::N(claim.to_string()));
            ready = ready.max(claim);
        }
        item.insert(DUE_PK.to_owned(), s(shard(&step.id)));
        item.insert(DUE_AT.to_owned(), s(due_key(ready, &step.id)));
    }
    Ok(item)
}

fn decode_step(what: &str, mut item: Item) -> StoreResult<ScheduledStep> {
    item.remove(DUE_AT);
    match item.remove(STEP_DUE) {
        Some(due) => item.insert(DUE_AT.to_owned(), due),
        None => return Err(codec(what)),
    };
    from_item(what, item)
}

fn put_item(
    what: &str,
    p: aws_sdk_dynamodb::types::builders::PutBuilder,
) -> StoreResult<TransactWriteItem> {
    Ok(TransactWriteItem::builder()
        .put(p.build().map_err(|_| build(what))?)
        .build())
}

/// One shard of the due index during a claim pass.
struct Shard {
    pk: String,
    /// Where the next page starts (`None` with `done` false: the beginning).
    start: Option<Item>,
    done: bool,
    /// Due steps read and not yet tried: (index sort key, table pk, table sk).
    buffer: VecDeque<(String, String, String)>,
}

type Page = (Vec<(String, String, String)>, Option<Item>);

impl AwsStore {
    /// A page of a due-index shard: the keys of up to `limit` steps claimable
    /// before `before` (a 13-digit millisecond key), oldest first.
    async fn due_page(
        &self,
        shard: &str,
        start: Option<Item>,
        before: &str,
        limit: usize,
    ) -> StoreResult<Page> {
        const WHAT: &str = "claim_due";
        self.count();
        let page = self
            .dynamo
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("#dpk = :shard AND #dat < :before")
            .projection_expression("#pk, #sk, #dat")
            .expression_attribute_names("#dpk", DUE_PK)
            .expression_attribute_names("#dat", DUE_AT)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":shard", s(shard))
            .expression_attribute_values(":before", s(before))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| backend(WHAT, &e))?;
        let keys = page
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| {
                Some((
                    string_attr(i, DUE_AT)?.to_owned(),
                    string_attr(i, PK)?.to_owned(),
                    string_attr(i, SK)?.to_owned(),
                ))
            })
            .collect();
        let next = page.last_evaluated_key.filter(|k| !k.is_empty());
        Ok((keys, next))
    }

    /// Claims one step read from the index, if it is still due before
    /// `before` and unclaimed at `now` (the item, not the index, decides).
    /// `None`: someone else has it.
    async fn claim_one(
        &self,
        pk: &str,
        sk: &str,
        now: Timestamp,
        until: Timestamp,
        before: &str,
    ) -> StoreResult<Option<ScheduledStep>> {
        const WHAT: &str = "claim_due";
        let id = sk.strip_prefix(STEP_PREFIX).ok_or_else(|| codec(WHAT))?;
        self.count();
        self.count_writes(1);
        let result = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), sk)))
            .update_expression("SET #cu = :until, #cms = :until_ms, #dat = :ready")
            .condition_expression(
                "#st = :scheduled AND #dat < :before AND (attribute_not_exists(#cms) OR #cms <= :now_ms)",
            )
            .expression_attribute_names("#cu", "claimed_until")
            .expression_attribute_names("#cms", CLAIM_MS)
            .expression_attribute_names("#dat", DUE_AT)
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":until", s(until.to_string()))
            .expression_attribute_values(
                ":until_ms",
                AttributeValue::N(until.as_millisecond().to_string()),
            )
            .expression_attribute_values(":ready", s(due_key(until.as_millisecond(), id)))
            .expression_attribute_values(":scheduled", to_value(WHAT, &StepStatus::Scheduled)?)
            .expression_attribute_values(":before", s(before))
            .expression_attribute_values(
                ":now_ms",
                AttributeValue::N(now.as_millisecond().to_string()),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        conditional(WHAT, result)?
            .map(|out| decode_step(WHAT, out.attributes.unwrap_or_default()))
            .transpose()
    }

    /// One write that must find an existing item: `Ok(false)` if the condition failed.
    async fn put_existing(&self, what: &str, item: Item) -> StoreResult<bool> {
        self.put_if(what, item, Some("attribute_exists(pk)")).await
    }

    /// The scheduled steps stored in one patient's partition.
    async fn patient_steps(
        &self,
        what: &str,
        org: &str,
        patient_id: &str,
    ) -> StoreResult<Vec<ScheduledStep>> {
        self.query_prefix(what, patient_pk(org, patient_id), STEP_PREFIX)
            .await?
            .into_iter()
            .map(|i| decode_step(what, i))
            .collect()
    }
}

impl WorkflowStore for AwsStore {
    /// A GetItem of the current version, then one transaction: the workflow
    /// (conditional on that version) and a fresh configuration token on the
    /// org item (which must exist). A racing import is retried.
    async fn put_workflow(&self, org: &str, workflow: &Workflow) -> StoreResult<Workflow> {
        const WHAT: &str = "put_workflow";
        let sk = workflow_sk(&workflow.id);
        for _ in 0..MAX_WRITE_ROUNDS {
            let prev = match self.get(WHAT, org_pk(org), &sk).await? {
                Some(item) => Some(decode_workflow(WHAT, item)?.version),
                None => None,
            };
            let mut wf = workflow.clone();
            wf.version = prev.map_or(1, |v| v + 1);
            let item = to_item(WHAT, &wf, org_pk(org), sk.clone())?;
            let p = match prev {
                None => Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)"),
                Some(v) => Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
            };
            let items = vec![org_changed(self, WHAT, org)?, put_item(WHAT, p)?];
            match self.transact_conditions(WHAT, items).await? {
                None => return Ok(wf),
                Some(failed) if failed.first() == Some(&true) => {
                    return Err(StoreError::NotFound(format!("org {org}")));
                }
                Some(_) => continue,
            }
        }
        Err(StoreError::backend(WHAT, "the workflow kept changing"))
    }

    /// A GetItem, then one transaction: the workflow with the new status
    /// (conditional on the version read) and a fresh configuration token.
    async fn set_workflow_status(
        &self,
        org: &str,
        id: &str,
        status: WorkflowStatus,
    ) -> StoreResult<Workflow> {
        const WHAT: &str = "set_workflow_status";
        let sk = workflow_sk(id);
        for _ in 0..MAX_WRITE_ROUNDS {
            let Some(item) = self.get(WHAT, org_pk(org), &sk).await? else {
                return Err(StoreError::NotFound(format!("workflow {id}")));
            };
            let mut wf = decode_workflow(WHAT, item)?;
            wf.status = status;
            let item = to_item(WHAT, &wf, org_pk(org), sk.clone())?;
            let p = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", AttributeValue::N(wf.version.to_string()));
            let items = vec![org_changed(self, WHAT, org)?, put_item(WHAT, p)?];
            match self.transact_conditions(WHAT, items).await? {
                None => return Ok(wf),
                Some(failed) if failed.first() == Some(&true) => {
                    return Err(StoreError::NotFound(format!("org {org}")));
                }
                // Re-imported or removed meanwhile: read it again.
                Some(_) => continue,
            }
        }
        Err(StoreError::backend(WHAT, "the workflow kept changing"))
    }
}

impl StepSchedule for AwsStore {
    /// A Query of each due-index shard (at once) for steps due at `at`, then
    /// a conditional UpdateItem per step (unclaimed at `now`), oldest first,
    /// until `limit` are claimed or the index has no more. Steps that are not
    /// due, or are claimed beyond `at`, are not in the part of the index read.
    async fn claim_due(
        &self,
        at: Timestamp,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<ScheduledStep>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let before = ms_key(at.as_millisecond().saturating_add(1));
        let mut shards: Vec<Shard> = (0..SHARDS)
            .map(|n| Shard {
                pk: format!("DUE#{n}"),
                start: None,
                done: false,
                buffer: VecDeque::new(),
            })
            .collect();
        for _ in 0..MAX_CLAIM_ROUNDS {
            let need = limit - out.len();
            let refill: Vec<usize> = (0..shards.len())
                .filter(|&i| shards[i].buffer.is_empty() && !shards[i].done)
                .collect();
            let pages = join_all(
                refill
                    .iter()
                    .map(|&i| self.due_page(&shards[i].pk, shards[i].start.clone(), &before, need))
                    .collect(),
            )
            .await;
            for (i, page) in refill.into_iter().zip(pages) {
                let (keys, next) = page?;
                let shard = &mut shards[i];
                shard.buffer.extend(keys);
                shard.done = next.is_none();
                shard.start = next;
            }
            // The `need` oldest candidates across the shards.
            let mut picked = Vec::with_capacity(need);
            while picked.len() < need {
                let oldest = shards
                    .iter_mut()
                    .filter(|s| !s.buffer.is_empty())
                    .min_by(|a, b| a.buffer[0].0.cmp(&b.buffer[0].0));
                match oldest.and_then(|s| s.buffer.pop_front()) {
                    Some(candidate) => picked.push(candidate),
                    None => break,
                }
            }
            if picked.is_empty() {
                break;
            }
            let claims = join_all(
                picked
                    .iter()
                    .map(|(_, pk, sk)| self.claim_one(pk, sk, now, until, &before))
                    .collect(),
            )
            .await;
            for claim in claims {
                if let Some(step) = claim? {
                    out.push(step);
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// A Put of the step (its claim released; the due index attributes only
    /// if it is still scheduled, at its possibly new due time), with the next
    /// occurrence (`attribute_not_exists`) in the same transaction.
    async fn finish_step(
        &self,
        step: &ScheduledStep,
        next: Option<&ScheduledStep>,
    ) -> StoreResult<()> {
        const WHAT: &str = "finish_step";
        let mut step = step.clone();
        step.claimed_until = None;
        let item = step_item(WHAT, &step)?;
        let not_found = || StoreError::NotFound(format!("step {}", step.id));
        let Some(next) = next.filter(|n| n.id != step.id) else {
            return if self.put_existing(WHAT, item).await? {
                Ok(())
            } else {
                Err(not_found())
            };
        };
        let items = vec![
            put_item(
                WHAT,
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()))
                    .condition_expression("attribute_exists(pk)"),
            )?,
            put_item(
                WHAT,
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(step_item(WHAT, next)?))
                    .condition_expression("attribute_not_exists(pk)"),
            )?,
        ];
        match self.transact_conditions(WHAT, items).await? {
            None => Ok(()),
            Some(failed) if failed.first() == Some(&true) => Err(not_found()),
            // The next occurrence exists already: it is not written again.
            Some(_) => {
                if self.put_existing(WHAT, item).await? {
                    Ok(())
                } else {
                    Err(not_found())
                }
            }
        }
    }

    /// One PutItem of the step (back on the due index), on condition that the
    /// stored one is `failed`.
    async fn reschedule_failed_step(&self, step: &ScheduledStep) -> StoreResult<bool> {
        const WHAT: &str = "reschedule_failed_step";
        let mut step = step.clone();
        step.claimed_until = None;
        let item = step_item(WHAT, &step)?;
        self.count();
        self.count_writes(1);
        let result = self
            .dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(pk) AND #st = :failed")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":failed", to_value(WHAT, &StepStatus::Failed)?)
            .send()
            .await;
        written(WHAT, result)
    }

    /// One patient: a Query of the patient's `STEP#` items. The whole org:
    /// the patient listing, then that Query per patient (a few at once).
    /// Sorted by due time, then ID.
    async fn list_steps(
        &self,
        org: &str,
        patient_id: Option<&str>,
    ) -> StoreResult<Vec<ScheduledStep>> {
        const WHAT: &str = "list_steps";
        let mut steps = match patient_id {
            Some(p) => self.patient_steps(WHAT, org, p).await?,
            None => {
                let ids: Vec<String> = self
                    .query_all(WHAT, patient_list_pk(org))
                    .await?
                    .iter()
                    .filter_map(|i| string_attr(i, "id").map(str::to_owned))
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                let mut out = Vec::new();
                for chunk in ids.chunks(LIST_CONCURRENCY) {
                    let pages = join_all(
                        chunk
                            .iter()
                            .map(|id| self.patient_steps(WHAT, org, id))
                            .collect(),
                    )
                    .await;
                    for page in pages {
                        out.extend(page?);
                    }
                }
                out
            }
        };
        steps.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
        Ok(steps)
    }
}

impl DeliveryLog for AwsStore {
    /// One transaction: the delivery (`attribute_not_exists`) and its listing
    /// item; on a duplicate, a GetItem returns the stored one.
    async fn begin_delivery(&self, delivery: &Delivery) -> StoreResult<Inserted<Delivery>> {
        const WHAT: &str = "begin_delivery";
        let (org, id) = (&delivery.org, &delivery.id);
        let item = to_item(WHAT, delivery, delivery_pk(org, id), DELIVERY_SK)?;
        let mut listing = key(
            delivery_list_pk(org),
            format!(
                "{}#{:020}#{id}",
                crate::messages::instant_key(delivery.created_at),
                next_seq()
            ),
        );
        listing.insert("id".to_owned(), s(id.clone()));
        let items = vec![
            TransactWriteItem::builder()
                .put(put(self, WHAT, item, Some("attribute_not_exists(pk)"))?)
                .build(),
            TransactWriteItem::builder()
                .put(put(self, WHAT, listing, None)?)
                .build(),
        ];
        if self.transact_conditions(WHAT, items).await?.is_none() {
            return Ok(Inserted::New);
        }
        match self.get(WHAT, delivery_pk(org, id), DELIVERY_SK).await? {
            Some(item) => Ok(Inserted::Existing(from_item(WHAT, item)?)),
            None => Err(StoreError::backend(WHAT, "the transaction was cancelled")),
        }
    }

    /// An Update of the delivery; for a sent survey or exercise, in one
    /// transaction with its assignment marker in the patient's partition.
    async fn complete_delivery(
        &self,
        delivery: &Delivery,
        status: DeliveryStatus,
        provider_id: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<()> {
        const WHAT: &str = "complete_delivery";
        let (org, id) = (&delivery.org, &delivery.id);
        let sent_at = if status == DeliveryStatus::Sent {
            Some(at)
        } else {
            delivery.sent_at
        };
        let mut set = vec!["#st = :st"];
        let mut remove = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(delivery_pk(org, id), DELIVERY_SK)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#pid", "provider_id")
            .expression_attribute_names("#sa", "sent_at")
            .expression_attribute_values(":st", to_value(WHAT, &status)?);
        match provider_id {
            Some(p) => {
                set.push("#pid = :pid");
                update = update.expression_attribute_values(":pid", s(p));
            }
            None => remove.push("#pid"),
        }
        match sent_at {
            Some(t) => {
                set.push("#sa = :sa");
                update = update.expression_attribute_values(":sa", s(t.to_string()));
            }
            None => remove.push("#sa"),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(|_| build(WHAT))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if status == DeliveryStatus::Sent && is_assignment(delivery.kind) {
            let mut marker = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(
                    patient_pk(org, &delivery.patient_id),
                    assignment_sk(id),
                )))
                .update_expression("SET #did = :did, #kind = :kind, #sa = if_not_exists(#sa, :sa)")
                .expression_attribute_names("#did", "delivery_id")
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_names("#sa", "sent_at")
                .expression_attribute_values(":did", s(id.clone()))
                .expression_attribute_values(":kind", to_value(WHAT, &delivery.kind)?)
                .expression_attribute_values(":sa", s(at.to_string()));
            if let Some(content) = &delivery.content_id {
                marker = marker
                    .update_expression(
                        "SET #did = :did, #kind = :kind, #sa = if_not_exists(#sa, :sa), #cid = :cid",
                    )
                    .expression_attribute_names("#cid", "content_id")
                    .expression_attribute_values(":cid", s(content.clone()));
            }
            items.push(
                TransactWriteItem::builder()
                    .update(marker.build().map_err(|_| build(WHAT))?)
                    .build(),
            );
        }
        match self.transact_conditions(WHAT, items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::NotFound(format!("delivery {id}"))),
        }
    }

    /// A Query of the listing and BatchGets of the deliveries, in listing order.
    async fn list_deliveries(&self, org: &str) -> StoreResult<Vec<Delivery>> {
        const WHAT: &str = "list_deliveries";
        let ids: Vec<String> = self
            .query_all(WHAT, delivery_list_pk(org))
            .await?
            .iter()
            .filter_map(|i| string_attr(i, "id").map(str::to_owned))
            .collect();
        let keys = ids
            .iter()
            .map(|id| key(delivery_pk(org, id), DELIVERY_SK))
            .collect();
        let mut by_id: HashMap<String, Delivery> = HashMap::new();
        for item in self.batch_get(WHAT, keys).await? {
            let d: Delivery = from_item(WHAT, item)?;
            by_id.insert(d.id.clone(), d);
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// One Query of the patient's `ASG#` markers, counting those without
    /// `completed_at` (Select COUNT).
    async fn open_assignments(&self, org: &str, patient_id: &str) -> StoreResult<usize> {
        const WHAT: &str = "open_assignments";
        let mut total = 0usize;
        let mut start = None;
        loop {
            self.count();
            let page = self
                .dynamo
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .filter_expression("attribute_not_exists(#c)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#c", COMPLETED_AT)
                .expression_attribute_values(":pk", s(patient_pk(org, patient_id)))
                .expression_attribute_values(":prefix", s(ASSIGNMENT_PREFIX))
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend(WHAT, &e))?;
            total += usize::try_from(page.count).unwrap_or(0);
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }

    /// Marks an assigned survey or exercise complete (by delivery ID): a
    /// GetItem of the delivery and an Update of its marker. `false` if there
    /// is no such open assignment.
    async fn complete_assignment(&self, org: &str, delivery_id: &str) -> StoreResult<bool> {
        const WHAT: &str = "complete_assignment";
        let Some(item) = self
            .get(WHAT, delivery_pk(org, delivery_id), DELIVERY_SK)
            .await?
        else {
            return Ok(false);
        };
        let delivery: Delivery = from_item(WHAT, item)?;
        if !is_assignment(delivery.kind) || delivery.status != DeliveryStatus::Sent {
            return Ok(false);
        }
        self.count();
        self.count_writes(1);
        let result = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                patient_pk(org, &delivery.patient_id),
                assignment_sk(delivery_id),
            )))
            .update_expression("SET #c = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#c)")
            .expression_attribute_names("#c", COMPLETED_AT)
            .expression_attribute_values(":now", s(Timestamp::now().to_string()))
            .send()
            .await;
        written(WHAT, result)
    }
}

impl Suppressions for AwsStore {
    /// A Put of `ORG#<org>#SUPPRESS` / `<address>` (the first reason stays).
    async fn suppress_address(&self, org: &str, address: &str, reason: &str) -> StoreResult<()> {
        const WHAT: &str = "suppress_address";
        let mut item = key(
            format!("ORG#{org}#SUPPRESS"),
            address.trim().to_ascii_lowercase(),
        );
        item.insert("reason".to_owned(), s(reason));
        // Suppressed already: the first reason stays.
        self.put_if(WHAT, item, Some("attribute_not_exists(pk)"))
            .await
            .map(|_| ())
    }

    /// One GetItem.
    async fn is_suppressed(&self, org: &str, address: &str) -> StoreResult<bool> {
        Ok(self
            .get(
                "is_suppressed",
                format!("ORG#{org}#SUPPRESS"),
                &address.trim().to_ascii_lowercase(),
            )
            .await?
            .is_some())
    }

    /// A Query of `ORG#<org>#SUPPRESS` (its `sk` is the address).
    async fn suppressed_addresses(&self, org: &str) -> StoreResult<Vec<Suppression>> {
        Ok(self
            .query_all("suppressed_addresses", format!("ORG#{org}#SUPPRESS"))
            .await?
            .iter()
            .filter_map(|item| {
                Some(Suppression {
                    address: string_attr(item, SK)?.to_owned(),
                    reason: string_attr(item, "reason").unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }

    /// A DeleteItem that returns the old item, so it tells whether there was one.
    async fn unsuppress_address(&self, org: &str, address: &str) -> StoreResult<bool> {
        const WHAT: &str = "unsuppress_address";
        self.count();
        self.count_writes(1);
        let out = self
            .dynamo
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("ORG#{org}#SUPPRESS"),
                address.trim().to_ascii_lowercase(),
            )))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| backend(WHAT, &e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

/// The settings item holding the unsubscribe secret (made on first use).
const SETTINGS_PK: &str = "SETTINGS";
const UNSUBSCRIBE_SECRET_SK: &str = "UNSUBSCRIBE_SECRET";

impl AwsStore {
    /// The secret that signs unsubscribe links: made on first use (a
    /// conditional Put, so concurrent first uses agree), then read.
    pub async fn unsubscribe_secret(&self) -> StoreResult<String> {
        const WHAT: &str = "unsubscribe_secret";
        let read = |item: Option<Item>| {
            item.and_then(|i| crate::items::string_attr(&i, "value").map(str::to_owned))
        };
        if let Some(secret) = read(
            self.get(WHAT, SETTINGS_PK.to_owned(), UNSUBSCRIBE_SECRET_SK)
                .await?,
        ) {
            return Ok(secret);
        }
        let fresh = tendon_core::keys::new_ingest_key().map_err(StoreError::backend_detail)?;
        let mut item = key(SETTINGS_PK.to_owned(), UNSUBSCRIBE_SECRET_SK);
        item.insert("value".to_owned(), s(fresh));
        self.count();
        self.count_writes(1);
        let put = self
            .dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if let Err(e) = put
            && !e
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception())
        {
            return Err(backend(WHAT, &e));
        }
        read(
            self.get(WHAT, SETTINGS_PK.to_owned(), UNSUBSCRIBE_SECRET_SK)
                .await?,
        )
        .ok_or_else(|| StoreError::backend(WHAT, "the secret was not stored"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_instant_then_id() {
        let a = due_key(1_700_000_000_000, "b");
        let b = due_key(1_700_000_000_001, "a");
        assert!(a < b);
        assert_eq!(a.len(), 13 + 1 + 1);
        assert!(due_key(-5, "x") < a, "before 1970 clamps to the start");
        // Every key of an instant sorts before the next millisecond's bound.
        assert!(due_key(1_700_000_000_000, "\u{10ffff}") < ms_key(1_700_000_000_001));
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard("step-1"), shard("step-1"));
        let used: HashSet<String> = (0..100).map(|i| shard(&format!("s{i}"))).collect();
        assert_eq!(used.len(), SHARDS as usize);
    }
}
