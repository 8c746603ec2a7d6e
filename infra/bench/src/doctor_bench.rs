//! `doctor-bench`: `tendon doctor` (`tendon_core::doctor::diagnose`) over an
//! org with N stored messages, against its peer in the same run:
//! `list_messages` alone, the read the doctor cannot do without. Prints the
//! medians and their ratio, and on DynamoDB the requests each made per 1,000
//! messages.
//!
//! The messages are the worked example's facts in a clinic's mix: one in ten
//! failed at an unknown location, one in 25 without an email, one in 50 of a
//! type Tendon ignores, the rest processed; three messages a patient.
//!
//! Usage: `doctor-bench [--backend local|aws] [--messages N] [--runs K]`
//! (defaults local, 100000 messages locally and 20000 on aws, 5 runs). The
//! aws backend is moto, started from target/venv as the tests start it.
//! Targets (issue 18): within 10 s locally; at most one read request per
//! 1,000 messages on DynamoDB.
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tendon_bench::{median, options_or_exit, parse_options};
use tendon_core::doctor::diagnose;
use tendon_core::model::{MessageFacts, MessageStatus, PractitionerFacts, StoredMessage};
use tendon_core::org::{Location, Org};
use tendon_core::ports::{
    ClinikoStore, ConfigStore, DispatchLog, MessageLog, OrgOverview, Suppressions,
};
use tendon_core::{ErrorCode, FieldName, Issue};
use tendon_local::SqliteStore;

const USAGE: &str = "doctor-bench [--backend local|aws] [--messages N] [--runs K]";

struct Options {
    aws: bool,
    messages: Option<usize>,
    runs: usize,
}

fn message(i: usize, start: Timestamp) -> StoredMessage {
    let (status, errors, clinic, kind) = match i {
        _ if i.is_multiple_of(10) => (
            MessageStatus::Failed,
            vec![Issue::new(
                ErrorCode::UnknownLocation,
                Some(FieldName::ClinicId),
                "location 34",
            )],
            "34",
            "SIU^S12",
        ),
        _ if i % 25 == 1 => (
            MessageStatus::Failed,
            vec![Issue::new(
                ErrorCode::MissingField,
                Some(FieldName::PatientEmail),
                "no email",
            )],
            "12",
            "SIU^S12",
        ),
        _ if i % 50 == 2 => (MessageStatus::Ignored, Vec::new(), "12", "ORU^R01"),
        _ => (MessageStatus::Processed, Vec::new(), "12", "SIU^S12"),
    };
    let received_at = start + jiff::SignedDuration::from_millis(i as i64 * 50);
    StoredMessage {
        org: "BENCH".into(),
        id: format!("m{i:08}"),
        control_id: Some(format!("MSG{i:08}")),
        message_type: Some(kind.into()),
        status,
        errors,
        received_at,
        body_hash: format!("h{i}"),
        patient_id: Some(format!("P{}", i / 3)),
        steps_done: Vec::new(),
        replays: 0,
        queued: true,
        acknowledged: true,
        facts: Some(MessageFacts {
            sent_at: Some(received_at),
            clinic_id: Some(clinic.into()),
            clinic_name: Some("Eastside Clinic".into()),
            appointment_type: Some("Initial Eval".into()),
            case_id: Some(format!("C{}", i / 3)),
            practitioner: Some(PractitionerFacts {
                id: "445566".into(),
                family_name: Some("Okafor".into()),
                given_name: Some("Chidi".into()),
                npi: None,
            }),
        }),
        raw: b"MSH|^~\\&|EMRGATE|BENCH|TENDON|TENDON|||SIU^S12|x|P|2.5.1\r".to_vec(),
    }
}

fn bench_org() -> Org {
    Org {
        id: "BENCH".into(),
        name: "Bench PT".into(),
        timezone: "America/Los_Angeles".into(),
        ie_types: vec!["Initial Eval".into()],
        field_map: Default::default(),
    }
}

/// The org, its location and `n` messages in `store`.
async fn fill<S>(store: &S, n: usize) -> Result<(), String>
where
    S: ConfigStore + MessageLog + Clone + 'static,
{
    let e = |e: tendon_core::ports::StoreError| e.to_string();
    store
        .create_org(&bench_org(), "bench-key-hash")
        .await
        .map_err(e)?;
    let salem = Location {
        id: "12".into(),
        name: "Salem".into(),
        timezone: None,
    };
    store.put_location("BENCH", &salem).await.map_err(e)?;
    let start = Timestamp::now() - jiff::SignedDuration::from_hours(48);
    // Many inserts in flight at once, as concurrent requests arrive (the
    // SQLite writer commits them in groups).
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let pending: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let store = store.clone();
                tokio::spawn(async move { store.insert_message(&message(i, start)).await })
            })
            .collect();
        for p in pending {
            p.await.map_err(|e| e.to_string())?.map_err(e)?;
        }
    }
    Ok(())
}

fn local_store() -> Result<SqliteStore, String> {
    let db = std::env::temp_dir().join(format!("tendon-doctor-bench-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    SqliteStore::open(&db)
}

/// Times `diagnose` and `list_messages`, interleaved so a noisy machine
/// slows both alike; `requests` reads a store's request counter (DynamoDB).
async fn measure<S>(store: &S, n: usize, runs: usize, requests: impl Fn(&S) -> Option<u64>)
where
    S: ConfigStore + MessageLog + OrgOverview + ClinikoStore + Suppressions + DispatchLog,
{
    let (mut doctor, mut list) = (Vec::new(), Vec::new());
    let (mut doctor_requests, mut list_requests) = (None, None);
    let mut findings = 0;
    for _ in 0..runs.max(1) {
        let before = requests(store);
        let t = Instant::now();
        let all = store.list_messages("BENCH", None).await.expect("list");
        list.push(t.elapsed().as_secs_f64());
        let after = requests(store);
        list_requests = before.zip(after).map(|(b, a)| a - b);
        assert_eq!(all.len(), n);
        let t = Instant::now();
        let d = diagnose(store, "BENCH", None, Timestamp::now())
            .await
            .expect("diagnose")
            .expect("the org");
        doctor.push(t.elapsed().as_secs_f64());
        doctor_requests = after.zip(requests(store)).map(|(b, a)| a - b);
        assert_eq!(d.messages, n, "the doctor read every message");
        findings = d.findings.len();
    }
    let (doctor, list) = (median(doctor), median(list));
    println!(
        "doctor {:.2} s median ({findings} findings), list_messages {:.2} s median, ratio {:.2}; target: within {:?}",
        doctor,
        list,
        doctor / list,
        Duration::from_secs(10)
    );
    if let (Some(d), Some(l)) = (doctor_requests, list_requests) {
        let per_1000 = |r: u64| r as f64 * 1000.0 / n as f64;
        println!(
            "requests: doctor {d} ({:.2} per 1,000 messages), list_messages {l} ({:.2} per 1,000); target: at most 1 per 1,000",
            per_1000(d),
            per_1000(l)
        );
    }
}

fn main() {
    let options = options_or_exit(
        "doctor-bench",
        parse_options(
            USAGE,
            Options {
                aws: false,
                messages: None,
                runs: 5,
            },
            |o, flag, args| {
                match flag {
                    "--backend" => {
                        o.aws = match args.value(flag)?.as_str() {
                            "local" => false,
                            "aws" => true,
                            other => return Err(format!("--backend {other}: local or aws")),
                        }
                    }
                    "--messages" => o.messages = Some(args.number(flag)?),
                    "--runs" => o.runs = args.number(flag)?,
                    other => return Err(format!("unknown option {other}")),
                }
                Ok(())
            },
        ),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let exit = |e: String| -> ! {
        eprintln!("doctor-bench: {e}");
        std::process::exit(1);
    };
    rt.block_on(async {
        let filled = Instant::now();
        if options.aws {
            let n = options.messages.unwrap_or(20_000);
            let (store, _) = tendon_testkit::moto::fresh_store("doctor-bench").await;
            fill(&store, n).await.unwrap_or_else(|e| exit(e));
            println!("stored {n} messages on moto in {:.1?}", filled.elapsed());
            measure(&store, n, options.runs, |s| Some(s.request_count())).await;
            // moto sizes its 1 MB pages by whole items, DynamoDB by what the
            // index projects: a message's record without its raw body, and
            // its keys (table pk and sk, org and org_sk, about 200 bytes).
            // Its JSON is an upper bound of DynamoDB's size of those attributes.
            let head = serde_json::to_string(&message(n / 2, Timestamp::now()))
                .map(|j| j.len() + 200)
                .unwrap_or_default();
            println!(
                "a message in the by_org index: at most {head} bytes, so a 1 MB Query page holds at least {} messages",
                1_000_000 / head.max(1)
            );
        } else {
            let n = options.messages.unwrap_or(100_000);
            let store = local_store().unwrap_or_else(|e| exit(e));
            fill(&store, n).await.unwrap_or_else(|e| exit(e));
            println!("stored {n} messages in {:.1?}", filled.elapsed());
            measure(&store, n, options.runs, |_| None).await;
        }
    });
}
