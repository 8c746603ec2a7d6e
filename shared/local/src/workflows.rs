//! The workflow ports on SQLite: [`WorkflowStore`] (the workflows table),
//! [`StepSchedule`] (scheduled steps, claimed through a partial index of the
//! due ones), [`DeliveryLog`] (the deliveries table, assignments included)
//! and [`Suppressions`]; and [`LocalOutbox`], the embedded mode's
//! [`Mailer`], whose outbox is the deliveries table.
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use tendon_core::ports::{
    DeliveryLog, DispatchLog, Inserted, Mailer, SendError, StepSchedule, StoreError, StoreResult,
    Suppression, Suppressions, WorkflowStore,
};
use tendon_core::workflow::steps::{Delivery, DeliveryStatus, ScheduledStep, StepUpdate};
use tendon_core::workflow::{Workflow, WorkflowStatus};

use crate::sql::{encode, json_row, json_rows, org_exists, org_not_found, rows};
use crate::{Fail, SqliteStore, write_tx};

/// Writes a commit's step update if the step is still `scheduled` with the
/// claim it was read with; `false` if not.
pub(crate) fn update_step(conn: &Connection, update: &StepUpdate) -> Result<bool, Fail> {
    let step = &update.step;
    let read_claim = update.read_claim.map(|t| t.as_millisecond());
    let written = conn
        .prepare_cached(
            "UPDATE scheduled_steps SET status = ?2, due_at = ?3, claimed_until = NULL, json = ?4
             WHERE id = ?1 AND status = 'scheduled' AND claimed_until IS ?5",
        )?
        .execute(params![
            step.id,
            step.status.as_str(),
            step.due_at.as_millisecond(),
            serde_json::to_string(step)?,
            read_claim
        ])?;
    Ok(written == 1)
}

/// Inserts a scheduled step unless its ID exists.
pub(crate) fn insert_step(conn: &Connection, step: &ScheduledStep) -> Result<(), Fail> {
    conn.prepare_cached(
        "INSERT INTO scheduled_steps (id, org, patient_id, status, due_at, claimed_until, json)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6) ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
        step.id,
        step.org,
        step.patient_id,
        step.status.as_str(),
        step.due_at.as_millisecond(),
        serde_json::to_string(step)?
    ])?;
    Ok(())
}

pub(crate) fn load_workflows(conn: &Connection, org: &str) -> Result<Vec<Workflow>, Fail> {
    json_rows(
        conn,
        "SELECT json FROM workflows WHERE org = ?1 ORDER BY id",
        [org],
    )
}

/// The stored workflow `id` of the org, if any.
fn load_workflow(conn: &Connection, org: &str, id: &str) -> Result<Option<Workflow>, Fail> {
    json_row(
        conn,
        "SELECT json FROM workflows WHERE org = ?1 AND id = ?2",
        [org, id],
    )
}

impl SqliteStore {
    /// The secret that signs unsubscribe links: made on first use, kept in the database.
    pub async fn unsubscribe_secret(&self) -> StoreResult<String> {
        self.run("unsubscribe_secret", |conn| {
            let tx = write_tx(conn)?;
            let found: Option<String> = tx
                .prepare_cached("SELECT value FROM settings WHERE name = 'unsubscribe_secret'")?
                .query_row([], |r| r.get(0))
                .optional()?;
            let secret = match found {
                Some(s) => s,
                None => {
                    let s = tendon_core::keys::new_ingest_key()
                        .map_err(|e| Fail::Store(StoreError::backend_detail(e)))?;
                    tx.prepare_cached(
                        "INSERT INTO settings (name, value) VALUES ('unsubscribe_secret', ?1)",
                    )?
                    .execute([&s])?;
                    s
                }
            };
            tx.commit()?;
            Ok(secret)
        })
        .await
    }
}

impl WorkflowStore for SqliteStore {
    async fn put_workflow(&self, org: &str, workflow: &Workflow) -> StoreResult<Workflow> {
        let (org, mut wf) = (org.to_owned(), workflow.clone());
        self.run("put_workflow", move |conn| {
            let tx = write_tx(conn)?;
            if !org_exists(&tx, &org)? {
                return Err(org_not_found(&org));
            }
            wf.version = match load_workflow(&tx, &org, &wf.id)? {
                Some(prev) => prev.version + 1,
                None => 1,
            };
            tx.prepare_cached("INSERT INTO workflows (org, id, json) VALUES (?1, ?2, ?3) ON CONFLICT (org, id) DO UPDATE SET json = excluded.json")?
                .execute(params![org, wf.id, serde_json::to_string(&wf)?])?;
            tx.commit()?;
            Ok(wf)
        })
        .await
    }

    async fn set_workflow_status(
        &self,
        org: &str,
        id: &str,
        status: WorkflowStatus,
    ) -> StoreResult<Workflow> {
        let (org, id) = (org.to_owned(), id.to_owned());
        self.run("set_workflow_status", move |conn| {
            let tx = write_tx(conn)?;
            let Some(mut wf) = load_workflow(&tx, &org, &id)? else {
                return Err(Fail::Store(StoreError::NotFound(format!("workflow {id}"))));
            };
            wf.status = status;
            tx.prepare_cached("UPDATE workflows SET json = ?3 WHERE org = ?1 AND id = ?2")?
                .execute(params![org, id, serde_json::to_string(&wf)?])?;
            tx.commit()?;
            Ok(wf)
        })
        .await
    }
}

impl StepSchedule for SqliteStore {
    /// The oldest due steps from the partial index, claimed in one write
    /// transaction (the single writer makes it atomic).
    async fn claim_due(
        &self,
        at: Timestamp,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<ScheduledStep>> {
        let (at_ms, now_ms, until_ms) = (
            at.as_millisecond(),
            now.as_millisecond(),
            until.as_millisecond(),
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("claim_due", move |conn| {
            let tx = write_tx(conn)?;
            let rows: Vec<(String, String)> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, json FROM scheduled_steps
                     WHERE status = 'scheduled' AND due_at <= ?1 AND (claimed_until IS NULL OR claimed_until <= ?2)
                     ORDER BY due_at LIMIT ?3",
                )?;
                stmt.query_map(params![at_ms, now_ms, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::with_capacity(rows.len());
            for (id, json) in rows {
                let mut step: ScheduledStep = serde_json::from_str(&json)?;
                step.claimed_until = Some(until);
                tx.prepare_cached("UPDATE scheduled_steps SET claimed_until = ?2, json = ?3 WHERE id = ?1")?
                    .execute(params![id, until_ms, serde_json::to_string(&step)?])?;
                out.push(step);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn finish_step(
        &self,
        step: &ScheduledStep,
        next: Option<&ScheduledStep>,
    ) -> StoreResult<()> {
        let mut step = step.clone();
        step.claimed_until = None;
        let next = next.cloned();
        let json_step = encode("finish_step", &step)?;
        self.run("finish_step", move |conn| {
            let tx = write_tx(conn)?;
            tx.prepare_cached(
                "UPDATE scheduled_steps SET status = ?2, due_at = ?3, claimed_until = NULL, json = ?4 WHERE id = ?1",
            )?
            .execute(params![step.id, step.status.as_str(), step.due_at.as_millisecond(), json_step])?;
            if let Some(next) = &next {
                insert_step(&tx, next)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn reschedule_failed_step(&self, step: &ScheduledStep) -> StoreResult<bool> {
        let mut step = step.clone();
        step.claimed_until = None;
        let json_step = encode("reschedule_failed_step", &step)?;
        self.run("reschedule_failed_step", move |conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE scheduled_steps SET status = ?3, due_at = ?4, claimed_until = NULL, json = ?5
                     WHERE id = ?1 AND org = ?2 AND status = 'failed'",
                )?
                .execute(params![
                    step.id,
                    step.org,
                    step.status.as_str(),
                    step.due_at.as_millisecond(),
                    json_step
                ])?
                > 0)
        })
        .await
    }

    async fn list_steps(
        &self,
        org: &str,
        patient_id: Option<&str>,
    ) -> StoreResult<Vec<ScheduledStep>> {
        let (org, patient) = (org.to_owned(), patient_id.map(str::to_owned));
        self.read("list_steps", move |conn| match &patient {
            Some(p) => json_rows(
                conn,
                "SELECT json FROM scheduled_steps WHERE org = ?1 AND patient_id = ?2 ORDER BY due_at, id",
                params![org, p],
            ),
            None => json_rows(
                conn,
                "SELECT json FROM scheduled_steps WHERE org = ?1 ORDER BY due_at, id",
                [&org],
            ),
        })
        .await
    }
}

impl DeliveryLog for SqliteStore {
    async fn begin_delivery(&self, delivery: &Delivery) -> StoreResult<Inserted<Delivery>> {
        let d = delivery.clone();
        let body = encode("begin_delivery", &d)?;
        self.run("begin_delivery", move |conn| {
            let tx = write_tx(conn)?;
            let added = tx
                .prepare_cached(
                    "INSERT INTO deliveries (org, id, patient_id, kind, status, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (org, id) DO NOTHING",
                )?
                .execute(params![d.org, d.id, d.patient_id, d.kind.as_str(), "sending", body])?;
            let out = if added == 1 {
                Inserted::New
            } else {
                let json: String = tx
                    .prepare_cached("SELECT json FROM deliveries WHERE org = ?1 AND id = ?2")?
                    .query_row([&d.org, &d.id], |r| r.get(0))?;
                Inserted::Existing(serde_json::from_str(&json)?)
            };
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn complete_delivery(
        &self,
        delivery: &Delivery,
        status: DeliveryStatus,
        provider_id: Option<&str>,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut d = delivery.clone();
        d.status = status;
        d.provider_id = provider_id.map(str::to_owned);
        if status == DeliveryStatus::Sent {
            d.sent_at = Some(at);
        }
        let body = encode("complete_delivery", &d)?;
        let status = match status {
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        };
        self.run("complete_delivery", move |conn| {
            conn.prepare_cached(
                "UPDATE deliveries SET status = ?3, json = ?4 WHERE org = ?1 AND id = ?2",
            )?
            .execute(params![d.org, d.id, status, body])?;
            Ok(())
        })
        .await
    }

    async fn list_deliveries(&self, org: &str) -> StoreResult<Vec<Delivery>> {
        const SQL: &str = "SELECT json FROM deliveries WHERE org = ?1 ORDER BY rowid";
        self.read_json("list_deliveries", SQL, org).await
    }

    async fn open_assignments(&self, org: &str, patient_id: &str) -> StoreResult<usize> {
        let (org, patient) = (org.to_owned(), patient_id.to_owned());
        self.read_now("open_assignments", move |conn| {
            let n: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM deliveries WHERE org = ?1 AND patient_id = ?2
                     AND kind IN ('survey', 'exercise') AND status = 'sent' AND completed_at IS NULL",
                )?
                .query_row(params![org, patient], |r| r.get(0))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// Marks an assigned survey or exercise complete (by delivery ID).
    async fn complete_assignment(&self, org: &str, delivery_id: &str) -> StoreResult<bool> {
        let (org, id) = (org.to_owned(), delivery_id.to_owned());
        self.run("complete_assignment", move |conn| {
            let n = conn
                .prepare_cached("UPDATE deliveries SET completed_at = ?3 WHERE org = ?1 AND id = ?2 AND kind IN ('survey', 'exercise') AND status = 'sent' AND completed_at IS NULL")?
                .execute(params![org, id, crate::now_ms()])?;
            Ok(n == 1)
        })
        .await
    }
}

impl Suppressions for SqliteStore {
    async fn suppress_address(&self, org: &str, address: &str, reason: &str) -> StoreResult<()> {
        let (org, address, reason) = (
            org.to_owned(),
            address.trim().to_ascii_lowercase(),
            reason.to_owned(),
        );
        self.run("suppress_address", move |conn| {
            conn.prepare_cached(
                "INSERT INTO suppressed_addresses (org, address, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org, address) DO NOTHING",
            )?
            .execute(params![org, address, reason])?;
            Ok(())
        })
        .await
    }

    async fn is_suppressed(&self, org: &str, address: &str) -> StoreResult<bool> {
        let (org, address) = (org.to_owned(), address.trim().to_ascii_lowercase());
        self.read("is_suppressed", move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT 1 FROM suppressed_addresses WHERE org = ?1 AND address = ?2",
                )?
                .exists([&org, &address])?)
        })
        .await
    }

    async fn suppressed_addresses(&self, org: &str) -> StoreResult<Vec<Suppression>> {
        let org = org.to_owned();
        self.read("suppressed_addresses", move |conn| {
            rows(
                conn,
                "SELECT address, reason FROM suppressed_addresses WHERE org = ?1 ORDER BY address",
                [&org],
                |row| {
                    Ok(Suppression {
                        address: row.get(0)?,
                        reason: row.get(1)?,
                    })
                },
            )
        })
        .await
    }

    async fn unsuppress_address(&self, org: &str, address: &str) -> StoreResult<bool> {
        let (org, address) = (org.to_owned(), address.trim().to_ascii_lowercase());
        self.run("unsuppress_address", move |conn| {
            Ok(conn
                .prepare_cached("DELETE FROM suppressed_addresses WHERE org = ?1 AND address = ?2")?
                .execute([&org, &address])?
                > 0)
        })
        .await
    }
}

/// The embedded mode's sender: nothing leaves the machine; the deliveries
/// table is the outbox (`tendon outbox list`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalOutbox;

impl Mailer for LocalOutbox {
    async fn send(&self, delivery: &Delivery) -> Result<String, SendError> {
        Ok(format!(
            "local-{}",
            &delivery.id[..16.min(delivery.id.len())]
        ))
    }
}

/// The `settings` row `last_dispatch_pass`: Unix milliseconds, only ever raised.
impl DispatchLog for SqliteStore {
    async fn record_dispatch_pass(&self, at: Timestamp) -> StoreResult<()> {
        let ms = at.as_millisecond().to_string();
        self.run("record_dispatch_pass", move |conn| {
            conn.prepare_cached(
                "INSERT INTO settings (name, value) VALUES ('last_dispatch_pass', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value
                 WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER)",
            )?
            .execute([ms])?;
            Ok(())
        })
        .await
    }

    async fn last_dispatch_pass(&self) -> StoreResult<Option<Timestamp>> {
        self.read_now("last_dispatch_pass", |conn| {
            let ms: Option<String> = conn
                .prepare_cached("SELECT value FROM settings WHERE name = 'last_dispatch_pass'")?
                .query_row([], |r| r.get(0))
                .optional()?;
            Ok(ms
                .and_then(|ms| ms.parse().ok())
                .and_then(|ms| Timestamp::from_millisecond(ms).ok()))
        })
        .await
    }
}
