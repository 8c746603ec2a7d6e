//! [`PatientStore`]: patient records with optimistic versions, the event log,
//! and [`Commit`]s applied in one transaction.
use rusqlite::{OptionalExtension, params};
use tendon_core::model::{DomainEvent, Patient, PatientRecord};
use tendon_core::ports::{
    Commit, CommitOutcome, OrgOverview, PatientStore, RecordCommit, RecordWrite, StepStore,
    StoreError, StoreResult,
};
use tendon_core::workflow::steps::{ScheduledStep, StepUpdate};

use crate::sql::{encode, sql_int};
use crate::{Fail, SqliteStore, messages, write_tx};

/// Reads are local and cheap: the default `read_step`, one read after another.
impl StepStore for SqliteStore {}

/// The ordinary listings: SQLite reads them in one pass each.
impl OrgOverview for SqliteStore {}

impl PatientStore for SqliteStore {
    async fn load_patient(&self, org: &str, id: &str) -> StoreResult<Option<PatientRecord>> {
        let (org, id) = (org.to_owned(), id.to_owned());
        self.read_now("load_patient", move |conn| {
            let row: Option<(i64, String)> = conn
                .prepare_cached("SELECT version, json FROM patients WHERE org = ?1 AND id = ?2")?
                .query_row([&org, &id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((version, json)) = row else {
                return Ok(None);
            };
            let mut record: PatientRecord = serde_json::from_str(&json)?;
            // The column is what commits check; the record reports the same.
            record.version = u64::try_from(version)
                .map_err(|_| StoreError::backend("load_patient", "a negative version is stored"))?;
            Ok(Some(record))
        })
        .await
    }

    /// The org's patients sorted by ID, without merge aliases.
    async fn list_patients(&self, org: &str) -> StoreResult<Vec<Patient>> {
        const SQL: &str = "SELECT json FROM patients WHERE org = ?1 ORDER BY id";
        let records: Vec<PatientRecord> = self.read_json("list_patients", SQL, org).await?;
        Ok(records
            .into_iter()
            .map(|record| record.patient)
            .filter(|patient| patient.merged_into.is_none())
            .collect())
    }

    async fn commit(&self, commit: &Commit) -> StoreResult<CommitOutcome> {
        let writes = Writes::of(
            "commit",
            &commit.records,
            &commit.events,
            &commit.scheduled,
            &commit.step_updates,
        )?;
        let c = commit.clone();
        self.run("commit", move |conn| {
            // Any early return drops the transaction, which rolls it back.
            let tx = write_tx(conn)?;
            let Some(mut message) = messages::load(&tx, &c.org, &c.message_id)? else {
                return Err(Fail::Store(StoreError::NotFound(format!(
                    "message {}",
                    c.message_id
                ))));
            };
            if message.steps_done.contains(&c.step) {
                return Ok(CommitOutcome::AlreadyApplied);
            }
            // `park`/`unpark` need no writes here: the parked messages are the
            // `pending` ones, and the status is written below.
            if !writes.apply(&tx, &c.org)? {
                return Ok(CommitOutcome::Conflict);
            }
            message.status = c.status;
            message.errors = c.errors;
            if let Some(patient_id) = c.patient_id {
                message.patient_id = Some(patient_id);
            }
            message.steps_done.push(c.step);
            messages::save_state(&tx, &message)?;
            tx.commit()?;
            Ok(CommitOutcome::Applied)
        })
        .await
    }

    async fn commit_records(&self, commit: &RecordCommit) -> StoreResult<CommitOutcome> {
        let writes = Writes::of(
            "commit_records",
            &commit.records,
            &commit.events,
            &commit.scheduled,
            &commit.step_updates,
        )?;
        let org = commit.org.clone();
        self.run("commit_records", move |conn| {
            let tx = write_tx(conn)?;
            if !writes.apply(&tx, &org)? {
                return Ok(CommitOutcome::Conflict);
            }
            tx.commit()?;
            Ok(CommitOutcome::Applied)
        })
        .await
    }

    async fn list_events(&self, org: &str) -> StoreResult<Vec<DomainEvent>> {
        const SQL: &str = "SELECT json FROM events WHERE org = ?1 ORDER BY seq";
        self.read_json("list_events", SQL, org).await
    }
}

/// The patient-side writes of a commit, serialised before the transaction.
struct Writes {
    /// (id, version, expected version, JSON)
    records: Vec<(String, u64, Option<u64>, String)>,
    /// (id, JSON)
    events: Vec<(String, String)>,
    scheduled: Vec<ScheduledStep>,
    step_updates: Vec<StepUpdate>,
}

impl Writes {
    fn of(
        what: &'static str,
        records: &[RecordWrite],
        events: &[DomainEvent],
        scheduled: &[ScheduledStep],
        step_updates: &[StepUpdate],
    ) -> StoreResult<Writes> {
        let mut out = Writes {
            records: Vec::with_capacity(records.len()),
            events: Vec::with_capacity(events.len()),
            scheduled: scheduled.to_vec(),
            step_updates: step_updates.to_vec(),
        };
        for w in records {
            out.records.push((
                w.record.patient.id.clone(),
                w.record.version,
                w.expected_version,
                encode(what, &w.record)?,
            ));
        }
        for e in events {
            out.events.push((e.id.clone(), encode(what, e)?));
        }
        Ok(out)
    }

    /// Writes it all in `tx`; `false` (a conflict: roll back) if a record or
    /// a step is no longer as read. Events and steps that exist are kept.
    fn apply(&self, tx: &rusqlite::Connection, org: &str) -> Result<bool, Fail> {
        for (id, version, expected, json) in &self.records {
            let version = sql_int(*version)?;
            let written = match expected {
                None => tx
                    .prepare_cached("INSERT INTO patients (org, id, version, json) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (org, id) DO NOTHING")?
                    .execute(params![org, id, version, json])?,
                Some(expected) => tx
                    .prepare_cached("UPDATE patients SET version = ?3, json = ?4 WHERE org = ?1 AND id = ?2 AND version = ?5")?
                    .execute(params![org, id, version, json, sql_int(*expected)?])?,
            };
            if written == 0 {
                return Ok(false);
            }
        }
        {
            let mut insert = tx.prepare_cached("INSERT INTO events (org, id, json) VALUES (?1, ?2, ?3) ON CONFLICT (org, id) DO NOTHING")?;
            for (id, json) in &self.events {
                insert.execute(params![org, id, json])?;
            }
        }
        for update in &self.step_updates {
            if !crate::workflows::update_step(tx, update)? {
                return Ok(false);
            }
        }
        for step in &self.scheduled {
            crate::workflows::insert_step(tx, step)?;
        }
        Ok(true)
    }
}
