//! `cargo bench -p tendon-bench --bench dispatch`: one workflow dispatch pass
//! (`Dispatcher::pass`) over 1,000 due email steps on a file-backed
//! `SqliteStore`, among 10,000 and among 1,000,000 scheduled steps (issue 4:
//! the 1M pass may take at most 1.2x the 10k pass). See docs/benchmarks.md,
//! "Workflow dispatch".
//!
//! Each database is built once and kept under `target/bench/dispatch/`
//! (`steps-<N>.db`, with a `.ready` marker); delete the directory to rebuild.
//! Before every measured pass the 1,000 due steps are put back to
//! `scheduled` (status, `due_at`, `claimed_until` NULL and their JSON) and the
//! deliveries are deleted, outside the timing, so every pass does the same
//! work: claim 10 batches of 100, re-check, record, send (the local outbox),
//! finish. After criterion's groups, the two sizes run interleaved and the
//! last line printed is the ratio of the medians.
use std::cell::RefCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, params};
use tendon_contract as contract;
use tendon_core::keys::key_hash;
use tendon_core::model::MessageStatus;
use tendon_core::ports::{
    Commit, CommitOutcome, ConfigStore, MessageLog, PatientStore, RecordWrite, WorkflowStore,
};
use tendon_core::workflow::dispatch::Dispatcher;
use tendon_core::workflow::enrol::step_id;
use tendon_core::workflow::steps::ScheduledStep;
use tendon_local::{LocalOutbox, SqliteStore};

const ORG: &str = "BENCH01";
/// Steps due at the pass, and the patients they belong to.
const DUE: usize = 1_000;
const DUE_PATIENTS: usize = 100;
/// Total scheduled steps (the due ones included) of the two databases.
const SIZES: [(usize, &str); 2] = [(10_000, "10k"), (1_000_000, "1M")];
/// The instant every pass runs as of (a fixed one: the pass does not read the clock).
const AT: &str = "2026-11-20T17:30:00Z";
/// Bump when the way a database is built changes: cached files are rebuilt.
const FORMAT: &str = "dispatch-bench-1";
/// Interleaved rounds per size after the criterion groups.
const ROUNDS: usize = 21;

/// The claim query of `SqliteStore::claim_due` (shared/local/src/workflows.rs),
/// copied for `EXPLAIN QUERY PLAN`.
const CLAIM_SQL: &str = "SELECT id, json FROM scheduled_steps
     WHERE status = 'scheduled' AND due_at <= ?1 AND (claimed_until IS NULL OR claimed_until <= ?2)
     ORDER BY due_at LIMIT ?3";

fn at() -> Timestamp {
    AT.parse().expect("AT is an instant")
}

fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench").join("dispatch")
}

/// The step every bench step is made from: the contract fixture (an active
/// email workflow's step, no appointment), re-keyed as enrolment keys it.
fn template() -> ScheduledStep {
    contract::scheduled_step(ORG, "P000", 0, AT)
}

fn step(
    template: &ScheduledStep,
    kind: &str,
    i: usize,
    patient: String,
    due: Timestamp,
) -> ScheduledStep {
    let event_id = format!("{kind}-event-{i}");
    ScheduledStep {
        id: step_id(ORG, &template.workflow_id, 1, 0, &event_id, 0),
        event_id,
        patient_id: patient,
        due_at: due,
        fired_at: due,
        ..template.clone()
    }
}

/// The 1,000 due steps: 10 for each of 100 patients, due over the 1,000 s
/// before [`AT`].
fn due_steps() -> Vec<ScheduledStep> {
    let t = template();
    (0..DUE)
        .map(|i| {
            let due = at() - SignedDuration::from_secs(i64::try_from(DUE - i).unwrap());
            step(&t, "due", i, format!("P{:03}", i % DUE_PATIENTS), due)
        })
        .collect()
}

fn file_paths(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [db.to_owned(), with("-wal"), with("-shm")]
}

/// Builds (or finds) the database with `total` scheduled steps.
fn database(rt: &tokio::runtime::Runtime, total: usize) -> PathBuf {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).expect("create target/bench/dispatch");
    let db = dir.join(format!("steps-{total}.db"));
    let ready = dir.join(format!("steps-{total}.ready"));
    if db.exists() && std::fs::read_to_string(&ready).is_ok_and(|s| s.trim() == FORMAT) {
        return db;
    }
    let _ = std::fs::remove_file(&ready);
    for f in file_paths(&db) {
        let _ = std::fs::remove_file(f);
    }
    let started = Instant::now();
    eprintln!(
        "dispatch: building {} ({total} scheduled steps)",
        db.display()
    );

    // The org, its workflow, the patients and the due steps through the store.
    {
        let store = SqliteStore::open(&db).expect("open the bench database");
        rt.block_on(async {
            store
                .create_org(&contract::org(ORG), &key_hash("tdn_bench_key"))
                .await
                .expect("create_org");
            store
                .put_location(ORG, &contract::location("12"))
                .await
                .expect("put_location");
            store
                .put_practitioner(ORG, &contract::practitioner("445566"))
                .await
                .expect("put_practitioner");
            let wf = store
                .put_workflow(ORG, &contract::workflow_def("Fixture"))
                .await
                .expect("put_workflow");
            assert_eq!(wf.id, template().workflow_id, "the steps' workflow");
            let message = contract::message(ORG, "M-BENCH", "2026-11-20T17:00:00Z");
            store
                .insert_message(&message)
                .await
                .expect("insert_message");
            let records = (0..DUE_PATIENTS)
                .map(|p| {
                    let mut record = contract::patient_record(&format!("P{p:03}"), 1);
                    record.patient.id = format!("P{p:03}");
                    RecordWrite {
                        record,
                        expected_version: None,
                    }
                })
                .collect();
            let commit = Commit {
                org: ORG.to_owned(),
                message_id: message.id.clone(),
                step: "patient".to_owned(),
                status: MessageStatus::Accepted,
                errors: Vec::new(),
                patient_id: None,
                records,
                events: Vec::new(),
                park: None,
                unpark: None,
                scheduled: due_steps(),
                step_updates: Vec::new(),
            };
            assert_eq!(store.commit(&commit).await, Ok(CommitOutcome::Applied));
        });
    }

    // The rest, due over the year after AT, in one transaction on a second
    // connection, with the JSON and columns `insert_step` writes.
    let background = total - DUE;
    let mut conn = Connection::open(&db).expect("open the bench database");
    conn.pragma_update(None, "cache_size", -262_144)
        .expect("cache_size");
    let tx = conn.transaction().expect("begin");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO scheduled_steps (id, org, patient_id, status, due_at, claimed_until, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
            )
            .expect("prepare");
        let t = template();
        let year_ms = 365 * 86_400_000_i64;
        let patients = (background / 5).max(1);
        let start = at() + SignedDuration::from_secs(60);
        for i in 0..background {
            let offset = year_ms * i64::try_from(i).unwrap() / i64::try_from(background).unwrap();
            let due = start + SignedDuration::from_millis(offset);
            let s = step(&t, "future", i, format!("F{:07}", i % patients), due);
            insert
                .execute(params![
                    s.id,
                    s.org,
                    s.patient_id,
                    s.status.as_str(),
                    due.as_millisecond(),
                    serde_json::to_string(&s).expect("step JSON"),
                ])
                .expect("insert a scheduled step");
        }
    }
    tx.commit().expect("commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    drop(conn);
    std::fs::write(&ready, FORMAT).expect("write the ready marker");
    eprintln!(
        "dispatch: built {} in {:.1} s",
        db.display(),
        started.elapsed().as_secs_f64()
    );
    db
}

/// Puts the due steps back as they were before any pass, and empties the outbox.
fn reset(conn: &mut Connection, due: &[(String, i64, String)]) {
    let tx = conn.transaction().expect("begin reset");
    {
        let mut update = tx
            .prepare_cached(
                "UPDATE scheduled_steps SET status = 'scheduled', due_at = ?2, claimed_until = NULL, json = ?3
                 WHERE id = ?1",
            )
            .expect("prepare reset");
        for (id, due_ms, json) in due {
            assert_eq!(
                update
                    .execute(params![id, due_ms, json])
                    .expect("reset a step"),
                1
            );
        }
    }
    tx.execute("DELETE FROM deliveries WHERE org = ?1", [ORG])
        .expect("empty the outbox");
    tx.commit().expect("commit reset");
}

/// One size: the store, a second connection for the resets, the due steps' rows.
struct Bed {
    label: &'static str,
    total: usize,
    store: SqliteStore,
    side: Connection,
    due: Vec<(String, i64, String)>,
    secret: String,
}

impl Bed {
    fn new(rt: &tokio::runtime::Runtime, total: usize, label: &'static str) -> Bed {
        let db = database(rt, total);
        let store = SqliteStore::open(&db).expect("open the bench database");
        let secret = rt
            .block_on(store.unsubscribe_secret())
            .expect("unsubscribe secret");
        let side = Connection::open(&db).expect("open a second connection");
        side.busy_timeout(Duration::from_secs(5))
            .expect("busy_timeout");
        let due = due_steps()
            .iter()
            .map(|s| {
                let due = s.due_at;
                (
                    s.id.clone(),
                    due.as_millisecond(),
                    serde_json::to_string(s).expect("step JSON"),
                )
            })
            .collect();
        let mut bed = Bed {
            label,
            total,
            store,
            side,
            due,
            secret,
        };
        // A previous run left the due steps sent.
        bed.reset();
        bed.check(total);
        bed
    }

    /// The database holds what it should, and the claim reads the partial index.
    fn check(&self, total: usize) {
        let count = |sql: &str| -> i64 { self.side.query_row(sql, [], |r| r.get(0)).expect(sql) };
        let all = count("SELECT count(*) FROM scheduled_steps");
        let indexed = count(
            "SELECT count(*) FROM scheduled_steps INDEXED BY scheduled_steps_due WHERE status = 'scheduled' AND due_at > 0",
        );
        assert_eq!(
            usize::try_from(all).unwrap(),
            total,
            "scheduled steps in the database"
        );
        assert_eq!(indexed, all, "every step is in the due index");
        let mut stmt = self
            .side
            .prepare(&format!("EXPLAIN QUERY PLAN {CLAIM_SQL}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map(
                params![at().as_millisecond(), at().as_millisecond(), 100],
                |r| r.get::<_, String>(3),
            )
            .expect("explain")
            .collect::<rusqlite::Result<_>>()
            .expect("explain");
        eprintln!(
            "dispatch: {}: claim query plan: {}",
            self.label,
            plan.join(" / ")
        );
        assert!(
            plan.iter()
                .any(|p| p.contains("USING INDEX scheduled_steps_due (due_at<?)")),
            "the claim does not range-scan the partial due index: {plan:?}"
        );
    }

    fn reset(&mut self) {
        reset(&mut self.side, &self.due);
    }

    /// One measured pass (after an unmeasured reset).
    fn pass(&mut self, rt: &tokio::runtime::Runtime) -> Duration {
        self.reset();
        let d = Dispatcher {
            store: &self.store,
            mailer: &LocalOutbox,
            public_url: "https://tendon.example",
            unsubscribe_secret: &self.secret,
            clock: &tendon_core::ports::SystemClock,
            budget: None,
        };
        let started = Instant::now();
        let report = rt.block_on(d.pass(black_box(at()))).expect("dispatch pass");
        let took = started.elapsed();
        assert_eq!(
            (report.sent, report.skipped, report.failed),
            (DUE, 0, 0),
            "{}: every due step is sent",
            self.label
        );
        took
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn dispatch(c: &mut Criterion) {
    let rt = runtime();
    let beds: Vec<RefCell<Bed>> = SIZES
        .iter()
        .map(|&(total, label)| RefCell::new(Bed::new(&rt, total, label)))
        .collect();

    let mut group = c.benchmark_group("dispatch-pass-1000-due");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    for bed in &beds {
        let label = bed.borrow().label;
        group.bench_function(format!("among-{label}"), |b| {
            b.iter_custom(|iters| {
                let mut bed = bed.borrow_mut();
                (0..iters).map(|_| bed.pass(&rt)).sum()
            })
        });
    }
    group.finish();

    // The ratio: the sizes take turns, so the machine's noise hits both.
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); beds.len()];
    for round in 0..ROUNDS {
        for k in 0..beds.len() {
            let k = (k + round) % beds.len();
            times[k].push(beds[k].borrow_mut().pass(&rt));
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    for (bed, (m, t)) in beds.iter().zip(medians.iter().zip(&times)) {
        let bed = bed.borrow();
        println!(
            "dispatch: {} due among {:>9} scheduled: median {:.1} ms per pass ({:.0} µs per step), range {:.1}..{:.1} ms over {ROUNDS} interleaved rounds",
            DUE,
            bed.total,
            ms(*m),
            ms(*m) * 1e3 / DUE as f64,
            ms(t[0]),
            ms(t[t.len() - 1]),
        );
    }
    let ratio = medians[1].as_secs_f64() / medians[0].as_secs_f64();
    println!("dispatch: 1M/10k = {ratio:.2}x (target <= 1.2x)");
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
