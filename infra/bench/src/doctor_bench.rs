//! `doctor-bench`: `tendon doctor` (`tendon_core::doctor::diagnose`) over an
//! org with N stored messages (default 100,000) on the embedded SQLite
//! store, against its peer in the same run: `list_messages` alone, the read
//! the doctor cannot do without. Prints the medians and their ratio.
//!
//! The messages are the worked example's facts in a clinic's mix: one in ten
//! failed at an unknown location, one in 25 without an email, one in 50 of a
//! type Tendon ignores, the rest processed; three messages a patient.
//!
//! Usage: `doctor-bench [--messages N] [--runs K]` (defaults 100000, 5).
//! Target (issue 18): the doctor answers within 10 s.
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tendon_bench::{median, options_or_exit, parse_options};
use tendon_core::doctor::diagnose;
use tendon_core::model::{MessageFacts, MessageStatus, PractitionerFacts, StoredMessage};
use tendon_core::org::{Location, Org};
use tendon_core::ports::{ConfigStore, MessageLog};
use tendon_core::{ErrorCode, FieldName, Issue};
use tendon_local::SqliteStore;

const USAGE: &str = "doctor-bench [--messages N] [--runs K]";

struct Options {
    messages: usize,
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

async fn fill(n: usize) -> Result<SqliteStore, String> {
    let db = std::env::temp_dir().join(format!("tendon-doctor-bench-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let store = SqliteStore::open(&db)?;
    let org = Org {
        id: "BENCH".into(),
        name: "Bench PT".into(),
        timezone: "America/Los_Angeles".into(),
        ie_types: vec!["Initial Eval".into()],
        field_map: Default::default(),
    };
    let e = |e: tendon_core::ports::StoreError| e.to_string();
    store.create_org(&org, "bench-key-hash").await.map_err(e)?;
    let salem = Location {
        id: "12".into(),
        name: "Salem".into(),
        timezone: None,
    };
    store.put_location("BENCH", &salem).await.map_err(e)?;
    let start = Timestamp::now() - jiff::SignedDuration::from_hours(48);
    // Many inserts in flight at once, as concurrent requests arrive: the
    // writer commits them in groups.
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
    Ok(store)
}

fn main() {
    let options = options_or_exit(
        "doctor-bench",
        parse_options(
            USAGE,
            Options {
                messages: 100_000,
                runs: 5,
            },
            |o, flag, args| {
                match flag {
                    "--messages" => o.messages = args.number(flag)?,
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
    rt.block_on(async {
        let filled = Instant::now();
        let store = match fill(options.messages).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("doctor-bench: {e}");
                std::process::exit(1);
            }
        };
        println!("stored {} messages in {:.1?}", options.messages, filled.elapsed());
        let (mut doctor, mut list) = (Vec::new(), Vec::new());
        let mut findings = 0;
        for _ in 0..options.runs.max(1) {
            // Interleaved, so a noisy machine slows both alike.
            let t = Instant::now();
            let all = store.list_messages("BENCH", None).await.expect("list");
            list.push(t.elapsed().as_secs_f64());
            assert_eq!(all.len(), options.messages);
            let t = Instant::now();
            let d = diagnose(&store, "BENCH", None, Timestamp::now())
                .await
                .expect("diagnose")
                .expect("the org");
            doctor.push(t.elapsed().as_secs_f64());
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
    });
}
