//! [`StepSchedule`] on DynamoDB: the workflow steps enrolment scheduled,
//! each in its patient's partition (`STEP#<id>`), and their claims through
//! the sparse `due` GSI. Kept apart from the workflow definitions and the
//! deliveries because the claim protocol below is the one subtle part of the
//! workflow ports. See the item layout in the crate docs.
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
use std::collections::{HashSet, VecDeque};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use jiff::Timestamp;
use tendon_core::join::join_all;
use tendon_core::ports::{DispatchLog, StepSchedule, StoreError, StoreResult};
use tendon_core::workflow::steps::{ScheduledStep, StepStatus};

use crate::config::transact_put;
use crate::items::{
    BY_ORG_SK, BY_ORG_STEP, DUE_AT, DUE_PK, Item, PK, SK, STEP_PREFIX, conditional, due_key,
    from_item, ms_key, patient_list_pk, patient_pk, s, string_attr, to_item, to_value, written,
};
use crate::{AwsStore, backend, codec};

/// Shards of the due index: a claim pass is this many Queries.
pub(crate) const SHARDS: u32 = 4;
/// Rounds of a claim pass that lost steps to other claimers (each round reads
/// further into the index).
const MAX_CLAIM_ROUNDS: usize = 8;
/// Patients whose steps are read at once by `list_steps` of a whole org.
const LIST_CONCURRENCY: usize = 16;

/// A step item's own due time (RFC 3339); `due_at` is the index's sort key.
const STEP_DUE: &str = "step_due_at";
/// A claimed step's claim end, Unix milliseconds.
pub(crate) const CLAIM_MS: &str = "claim_ms";

/// The `due_pk` of shard `n`.
fn shard_pk(n: u32) -> String {
    format!("DUE#{n}")
}

/// The due-index shard of a step: FNV-1a of its ID (stable across processes
/// and builds, unlike `std`'s hasher).
pub(crate) fn shard(id: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    shard_pk(h % SHARDS)
}

fn step_sk(id: &str) -> String {
    format!("{STEP_PREFIX}{id}")
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
    if step.status == StepStatus::Failed {
        item.insert(BY_ORG_SK.to_owned(), s(format!("{BY_ORG_STEP}{}", step.id)));
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

pub(crate) fn decode_step(what: &str, mut item: Item) -> StoreResult<ScheduledStep> {
    item.remove(DUE_AT);
    match item.remove(STEP_DUE) {
        Some(due) => item.insert(DUE_AT.to_owned(), due),
        None => return Err(codec(what)),
    };
    from_item(what, item)
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
        let page = self
            .due_query(shard, before, limit, "#pk, #sk, #dat")
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
        let result = self
            .update_one(pk.to_owned(), sk)
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
                pk: shard_pk(n),
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
        if let Some(next) = next.filter(|n| n.id != step.id) {
            let items = vec![
                transact_put(self, WHAT, item.clone(), Some("attribute_exists(pk)"))?,
                transact_put(
                    self,
                    WHAT,
                    step_item(WHAT, next)?,
                    Some("attribute_not_exists(pk)"),
                )?,
            ];
            match self.transact_conditions(WHAT, items).await? {
                None => return Ok(()),
                Some(failed) if failed.first() == Some(&true) => return Err(not_found()),
                // The next occurrence exists already: it is not written again.
                Some(_) => {}
            }
        }
        if self.put_existing(WHAT, item).await? {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    /// One PutItem of the step (back on the due index), on condition that the
    /// stored one is `failed`.
    async fn reschedule_failed_step(&self, step: &ScheduledStep) -> StoreResult<bool> {
        const WHAT: &str = "reschedule_failed_step";
        let mut step = step.clone();
        step.claimed_until = None;
        let item = step_item(WHAT, &step)?;
        let result = self
            .put_one(item)
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
                    .listed_ids(WHAT, patient_list_pk(org))
                    .await?
                    .into_iter()
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

/// The item `DISPATCH`/`LAST`: Unix milliseconds, only ever raised (a
/// conditional Update; a later pass already recorded is not an error).
impl DispatchLog for AwsStore {
    async fn record_dispatch_pass(&self, at: Timestamp) -> StoreResult<()> {
        const WHAT: &str = "record_dispatch_pass";
        let ms = AttributeValue::N(at.as_millisecond().to_string());
        let result = self
            .update_one(DISPATCH_PK.to_owned(), DISPATCH_SK)
            .update_expression("SET #at = :at")
            .condition_expression("attribute_not_exists(#at) OR #at < :at")
            .expression_attribute_names("#at", "at_ms")
            .expression_attribute_values(":at", ms)
            .send()
            .await;
        written(WHAT, result).map(|_| ())
    }

    async fn last_dispatch_pass(&self) -> StoreResult<Option<Timestamp>> {
        const WHAT: &str = "last_dispatch_pass";
        let item = self.get(WHAT, DISPATCH_PK.to_owned(), DISPATCH_SK).await?;
        Ok(item
            .and_then(|i| i.get("at_ms").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|ms| ms.parse().ok())
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()))
    }
}

const DISPATCH_PK: &str = "DISPATCH";
const DISPATCH_SK: &str = "LAST";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard("step-1"), shard("step-1"));
        let used: HashSet<String> = (0..100).map(|i| shard(&format!("s{i}"))).collect();
        assert_eq!(used.len(), SHARDS as usize);
    }
}
