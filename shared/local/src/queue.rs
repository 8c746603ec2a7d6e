//! The local queues: FIFO queues with message groups in SQLite, and
//! [`LocalQueue`], which is the core's queue ports over them (it sends,
//! [`WorkQueue`]; stores and queues in one transaction, [`Intake`]; and is
//! consumed by the core's one loop, [`Consumer`], waking a worker when
//! something is sent). They keep the semantics of SQS FIFO queues that
//! `tendon serve` and the Lambdas rely on:
//!
//! - **Dedupe**: a send whose dedupe ID the queue saw in the last
//!   [`DEDUPE_WINDOW`] (5 minutes, as SQS) is accepted and dropped. After the
//!   window the same ID is queued again, as on SQS, so a replay that reuses
//!   an ID behaves the same on both backends.
//! - **Order and groups**: messages are delivered in send order within a group,
//!   and a group is blocked while its oldest message is in flight (received,
//!   neither deleted nor released, visibility timeout not over). One receive
//!   hands out at most one message per group.
//! - **Visibility**: a received message is invisible until `now + visibility`;
//!   then it is delivered again with a fresh receipt. An old receipt no longer
//!   deletes or releases it.
//! - **Dead letters**: a message received `max_receive_count` times (see
//!   [`SqliteStore::with_max_receive_count`]) moves to the dead letters on the
//!   next receive that would deliver it, and its group moves on.
//!   [`SqliteStore::redrive`] sends dead letters back to the end of their queue.
//!
//! Time is always an explicit `now_ms` (Unix milliseconds; [`crate::now_ms`]
//! in production), so tests move the clock instead of sleeping. A new or
//! released message is visible at once, whatever clock the consumer uses.
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, params};
use tendon_core::batch::{self, Consumer};
use tendon_core::doctor::{QueueDepth, QueueDepths};
use tendon_core::model::StoredMessage;
use tendon_core::ports::{
    HandOff, Inserted, Intake, QueueName, StoreResult, SystemClock, Unqueued, WorkItem, WorkQueue,
};
use tokio::sync::Notify;

use crate::{Fail, SqliteStore, now_ms, write_tx};

/// How long a dedupe ID suppresses repeated sends (SQS: 5 minutes).
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(5 * 60);

pub use tendon_core::batch::Received;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl WorkQueue for SqliteStore {
    /// [`SqliteStore::send_at`] on the wall clock.
    async fn send(
        &self,
        queue: QueueName,
        group: &str,
        dedupe_id: &str,
        item: &WorkItem,
    ) -> StoreResult<()> {
        self.send_at(queue, group, dedupe_id, item, now_ms())
            .await
            .map(|_| ())
    }
}

/// Queues the JSON `body` in `group` on the open transaction, unless
/// `dedupe_id` was sent to `queue` in the [`DEDUPE_WINDOW`] before `now_ms`.
/// True if it was queued. Ingest calls it inside the transaction that stores
/// the message, so storing and queueing are one step.
pub(crate) fn enqueue(
    tx: &Connection,
    queue: QueueName,
    group: &str,
    dedupe_id: &str,
    body: &str,
    now_ms: i64,
) -> Result<bool, Fail> {
    tx.prepare_cached("DELETE FROM queue_dedupe WHERE expires_at <= ?1")?
        .execute([now_ms])?;
    let fresh = tx
        .prepare_cached("INSERT INTO queue_dedupe (queue, dedupe_id, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")?
        .execute(params![queue.as_str(), dedupe_id, now_ms.saturating_add(millis(DEDUPE_WINDOW))])?;
    if fresh == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO queue (queue, group_id, dedupe_id, body, visible_at, receive_count, receipt, enqueued_at)
         VALUES (?1, ?2, ?3, ?4, 0, 0, NULL, ?5)",
    )?
    .execute(params![queue.as_str(), group, dedupe_id, body, now_ms])?;
    Ok(true)
}

impl SqliteStore {
    /// Queues `item` in `group` unless `dedupe_id` was sent to this queue in the
    /// [`DEDUPE_WINDOW`] before `now_ms`. True if it was queued, false if it
    /// was a duplicate.
    pub async fn send_at(
        &self,
        queue: QueueName,
        group: &str,
        dedupe_id: &str,
        item: &WorkItem,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let body = serde_json::to_string(item)
            .map_err(|e| Fail::Json(e).into_store_error("queue send"))?;
        let (group, dedupe_id) = (group.to_owned(), dedupe_id.to_owned());
        self.run("queue send", move |conn| {
            let tx = write_tx(conn)?;
            let queued = enqueue(&tx, queue, &group, &dedupe_id, &body, now_ms)?;
            tx.commit()?;
            Ok(queued)
        })
        .await
    }

    /// Up to `max` visible messages, oldest first, at most one per group and
    /// none from a group with a message in flight. Each becomes invisible until
    /// `now_ms + visibility` and gets a fresh receipt. Messages already received
    /// `max_receive_count` times move to the dead letters instead.
    pub async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
        now_ms: i64,
    ) -> StoreResult<Vec<Received>> {
        let max_receive_count = i64::from(self.max_receive_count);
        let invisible_until = now_ms.saturating_add(millis(visibility));
        self.run("queue receive", move |conn| {
            let tx = write_tx(conn)?;
            let mut out: Vec<(i64, Received)> = Vec::new();
            let mut taken: HashSet<String> = HashSet::new();
            loop {
                let wanted = max.saturating_sub(out.len());
                if wanted == 0 {
                    break;
                }
                // The head (oldest message) of each group, if visible. With a
                // zero visibility a group just taken is visible again: skip it.
                let limit = i64::try_from(wanted.saturating_add(taken.len())).unwrap_or(i64::MAX);
                let heads: Vec<(i64, String, String, i64)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT id, group_id, body, receive_count FROM queue AS q
                         WHERE q.queue = ?1 AND q.visible_at <= ?2
                           AND NOT EXISTS (SELECT 1 FROM queue AS p WHERE p.queue = ?1 AND p.group_id = q.group_id AND p.id < q.id)
                         ORDER BY q.id LIMIT ?3",
                    )?;
                    let rows = stmt.query_map(params![queue.as_str(), now_ms, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let mut progressed = false;
                for (id, group, body, count) in heads {
                    if out.len() == max {
                        break;
                    }
                    if taken.contains(&group) {
                        continue;
                    }
                    progressed = true;
                    if count >= max_receive_count {
                        tx.prepare_cached(
                            "INSERT INTO dead_letters (queue, group_id, dedupe_id, body, receive_count, enqueued_at, dead_at)
                             SELECT queue, group_id, dedupe_id, body, receive_count, enqueued_at, ?2 FROM queue WHERE id = ?1",
                        )?
                        .execute(params![id, now_ms])?;
                        tx.prepare_cached("DELETE FROM queue WHERE id = ?1")?.execute([id])?;
                        continue;
                    }
                    let item: WorkItem = serde_json::from_str(&body)?;
                    let (receipt, count): (String, i64) = tx
                        .prepare_cached(
                            "UPDATE queue SET receive_count = receive_count + 1, visible_at = ?2,
                                 receipt = id || '-' || lower(hex(randomblob(12)))
                             WHERE id = ?1 RETURNING receipt, receive_count",
                        )?
                        .query_row(params![id, invisible_until], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    taken.insert(group.clone());
                    out.push((
                        id,
                        Received {
                            receipt,
                            item,
                            group,
                            receive_count: u32::try_from(count).unwrap_or(u32::MAX),
                        },
                    ));
                }
                // A dead-lettered head uncovers the next message of its group,
                // so look again; otherwise there is nothing more to hand out.
                if !progressed {
                    break;
                }
            }
            tx.commit()?;
            // A second pass (after a dead letter) finds later heads: keep send order.
            out.sort_unstable_by_key(|(id, _)| *id);
            Ok(out.into_iter().map(|(_, r)| r).collect())
        })
        .await
    }

    /// Deletes a delivered message (it was handled). False if the receipt is
    /// not the message's current one (already deleted, released, or delivered
    /// again after its visibility timeout).
    pub async fn delete(&self, receipt: &str) -> StoreResult<bool> {
        let receipt = receipt.to_owned();
        self.run("queue delete", move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM queue WHERE receipt = ?1")?
                .execute([receipt])?;
            Ok(n > 0)
        })
        .await
    }

    /// [`SqliteStore::delete`] for several receipts in one write. Returns how
    /// many messages were deleted.
    pub async fn delete_many(&self, receipts: Vec<String>) -> StoreResult<usize> {
        if receipts.is_empty() {
            return Ok(0);
        }
        self.run("queue delete", move |conn| {
            let mut stmt = conn.prepare_cached("DELETE FROM queue WHERE receipt = ?1")?;
            let mut n = 0;
            for receipt in &receipts {
                n += stmt.execute([receipt])?;
            }
            Ok(n)
        })
        .await
    }

    /// Makes a delivered message visible again at once (its handling failed),
    /// which unblocks its group. The delivery still counts towards the dead
    /// letters. False if the receipt is not the message's current one.
    pub async fn release(&self, receipt: &str) -> StoreResult<bool> {
        let receipt = receipt.to_owned();
        self.run("queue release", move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE queue SET visible_at = 0, receipt = NULL WHERE receipt = ?1",
                )?
                .execute([receipt])?;
            Ok(n > 0)
        })
        .await
    }

    /// The messages waiting or in flight in a queue (not the dead letters).
    pub async fn queue_len(&self, queue: QueueName) -> StoreResult<usize> {
        self.read("queue length", move |conn| {
            let n: i64 = conn
                .prepare_cached("SELECT count(*) FROM queue WHERE queue = ?1")?
                .query_row([queue.as_str()], |r| r.get(0))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// The queue's dead letters, oldest first, with how often each was received.
    pub async fn dead_letters(&self, queue: QueueName) -> StoreResult<Vec<(WorkItem, u32)>> {
        self.read("queue dead letters", move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT body, receive_count FROM dead_letters WHERE queue = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([queue.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (body, count) = row?;
                out.push((
                    serde_json::from_str(&body)?,
                    u32::try_from(count).unwrap_or(u32::MAX),
                ));
            }
            Ok(out)
        })
        .await
    }

    /// Moves the queue's dead letters back to the end of the queue, in their
    /// order, with no receives counted and no dedupe check (as an SQS redrive
    /// does). Returns how many moved.
    pub async fn redrive(&self, queue: QueueName) -> StoreResult<usize> {
        self.run("queue redrive", move |conn| {
            let tx = write_tx(conn)?;
            let moved = tx
                .prepare_cached(
                    "INSERT INTO queue (queue, group_id, dedupe_id, body, visible_at, receive_count, receipt, enqueued_at)
                     SELECT queue, group_id, dedupe_id, body, 0, 0, NULL, enqueued_at FROM dead_letters WHERE queue = ?1 ORDER BY id",
                )?
                .execute([queue.as_str()])?;
            tx.prepare_cached("DELETE FROM dead_letters WHERE queue = ?1")?.execute([queue.as_str()])?;
            tx.commit()?;
            Ok(moved)
        })
        .await
    }
}

/// How long a received record stays invisible; a worker that dies mid-batch
/// leaves its records to be redelivered after this.
pub const VISIBILITY: Duration = Duration::from_secs(30);

/// The longest a local receive waits for a send (see the `Consumer` impl).
const LOCAL_WAIT: Duration = Duration::from_secs(1);

/// The SQLite queues, waking the local workers when something is sent.
#[derive(Clone)]
pub struct LocalQueue {
    store: SqliteStore,
    patients: Arc<Notify>,
    episodes: Arc<Notify>,
}

impl LocalQueue {
    pub fn new(store: SqliteStore) -> LocalQueue {
        LocalQueue {
            store,
            patients: Arc::new(Notify::new()),
            episodes: Arc::new(Notify::new()),
        }
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn notify(&self, queue: QueueName) -> &Notify {
        match queue {
            QueueName::Patients => &self.patients,
            QueueName::Episodes => &self.episodes,
        }
    }

    /// Waits for `queued` (a write that queued a record on `queue`), then
    /// wakes that queue's worker.
    async fn woken(
        &self,
        queue: QueueName,
        queued: impl Future<Output = StoreResult<()>>,
    ) -> StoreResult<()> {
        queued.await?;
        // notify_one keeps a permit when no worker is waiting, so no wake-up is lost.
        self.notify(queue).notify_one();
        Ok(())
    }
}

impl WorkQueue for LocalQueue {
    async fn send(
        &self,
        queue: QueueName,
        group: &str,
        dedupe_id: &str,
        item: &WorkItem,
    ) -> StoreResult<()> {
        let queued = self.store.send(queue, group, dedupe_id, item);
        self.woken(queue, queued).await
    }
}

/// The store's [`Intake`], waking the patients worker when a pointer was queued.
impl Intake for LocalQueue {
    async fn store_and_queue(
        &self,
        message: &StoredMessage,
        hand_off: Option<&HandOff>,
    ) -> StoreResult<Inserted> {
        let inserted = self.store.store_and_queue(message, hand_off).await?;
        if let (Inserted::New, Some(h)) = (&inserted, hand_off) {
            self.notify(h.queue).notify_one();
        }
        Ok(inserted)
    }

    async fn queue_stored(
        &self,
        org: &str,
        id: &str,
        hand_off: &HandOff,
        acknowledge: bool,
    ) -> StoreResult<()> {
        let queued = self.store.queue_stored(org, id, hand_off, acknowledge);
        self.woken(hand_off.queue, queued).await
    }

    fn set_acknowledged(
        &self,
        org: &str,
        id: &str,
        acknowledged: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.set_acknowledged(org, id, acknowledged)
    }

    fn claim_unqueued(
        &self,
        stored_before: jiff::Timestamp,
        now: jiff::Timestamp,
        claim_until: jiff::Timestamp,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Unqueued>>> + Send {
        self.store
            .claim_unqueued(stored_before, now, claim_until, limit)
    }
}

/// The SQLite queues consumed as SQS is, with one difference: a receive
/// waits at most [`LOCAL_WAIT`] for a send, because a send by another
/// process (`tendon messages replay`) or a redelivery wakes nobody.
impl Consumer for LocalQueue {
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Received>> {
        let got = self
            .store
            .receive(queue, max, VISIBILITY, crate::now_ms())
            .await?;
        if !got.is_empty() || wait.is_zero() {
            return Ok(got);
        }
        let _ = tokio::time::timeout(wait.min(LOCAL_WAIT), self.notify(queue).notified()).await;
        self.store
            .receive(queue, max, VISIBILITY, crate::now_ms())
            .await
    }

    async fn delete(&self, _queue: QueueName, receipts: Vec<String>) -> StoreResult<()> {
        self.store.delete_many(receipts).await.map(drop)
    }

    fn max_receive_count(&self) -> u32 {
        self.store.max_receive_count()
    }
}

/// The local queues as if at `now_ms` (tests expire visibility timeouts
/// without waiting).
struct At<'a>(&'a LocalQueue, i64);

impl Consumer for At<'_> {
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        _wait: Duration,
    ) -> StoreResult<Vec<Received>> {
        self.0.store.receive(queue, max, VISIBILITY, self.1).await
    }

    fn delete(
        &self,
        queue: QueueName,
        receipts: Vec<String>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.0.delete(queue, receipts)
    }

    fn max_receive_count(&self) -> u32 {
        self.0.max_receive_count()
    }
}

/// One batch of `name` as if at `now_ms` (`batch::consume_batch`), so tests
/// can expire visibility timeouts without waiting.
pub async fn process_batch_at(
    queue: &LocalQueue,
    name: QueueName,
    now_ms: i64,
) -> StoreResult<usize> {
    let at = At(queue, now_ms);
    batch::consume_batch(&queue.store, queue, &at, &SystemClock, name, Duration::ZERO).await
}

/// Processes until both queues are empty (records in flight elsewhere are not waited for).
pub async fn drain(queue: &LocalQueue) -> StoreResult<()> {
    batch::drain(&queue.store, queue, queue, &SystemClock).await
}

/// One read: each queue's waiting and in-flight rows, its oldest, and its
/// dead letters.
impl QueueDepths for LocalQueue {
    async fn depths(&self) -> StoreResult<Vec<QueueDepth>> {
        self.store
            .read("queue depths", |conn| {
                let mut out = Vec::new();
                for queue in [QueueName::Patients, QueueName::Episodes] {
                    let (waiting, in_flight, oldest): (i64, i64, Option<i64>) = conn
                        .prepare_cached(
                            "SELECT count(*) FILTER (WHERE receipt IS NULL), count(receipt), min(enqueued_at) FROM queue WHERE queue = ?1",
                        )?
                        .query_row([queue.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    let dead: i64 = conn
                        .prepare_cached("SELECT count(*) FROM dead_letters WHERE queue = ?1")?
                        .query_row([queue.as_str()], |r| r.get(0))?;
                    let count = |n: i64| u64::try_from(n).unwrap_or(0);
                    out.push(QueueDepth {
                        queue,
                        waiting: count(waiting),
                        in_flight: count(in_flight),
                        dead_lettered: count(dead),
                        oldest: oldest.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
                    });
                }
                Ok(out)
            })
            .await
    }
}
