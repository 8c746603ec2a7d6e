//! The AWS backend on moto (one moto_server for this binary, see common/mod.rs):
//! bootstrap, the port contract, SQS FIFO behaviour, and the worked example
//! end to end through the real handlers.
mod common;

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use tendon_aws::lambda::handle_sqs_batch;
use tendon_aws::{AwsStore, queue_safe_id};
use tendon_core::model::{Location, MessageStatus, Org, Practitioner};
use tendon_core::pipeline::{DEFAULT_MAX_BODY, ingest, key_hash};
use tendon_core::ports::{
    ConfigStore, MessageLog, PatientStore, QueueName, SystemClock, WorkItem, WorkQueue,
};

const WORKED: &str = include_str!("../../../examples/worked-example.hl7");
const KEY: &str = "tdn_test_key_acme";

#[tokio::test]
async fn bootstrap_creates_the_template_resources() {
    let sdk = common::sdk_config().await;
    let prefix = common::unique_prefix("boot");
    let env = tendon_aws::bootstrap_with(&sdk, &prefix)
        .await
        .expect("bootstrap");
    assert_eq!(env.table, format!("{prefix}-table"));
    for (url, name) in [
        (&env.patients_queue_url, "patients.fifo"),
        (&env.episodes_queue_url, "episodes.fifo"),
        (&env.patients_dlq_url, "patients-dlq.fifo"),
        (&env.episodes_dlq_url, "episodes-dlq.fifo"),
    ] {
        assert!(url.ends_with(&format!("/{prefix}-{name}")), "{url}");
    }
    let vars = env.vars();
    assert_eq!(vars["TENDON_TABLE"], env.table);
    assert_eq!(vars["TENDON_PATIENTS_QUEUE_URL"], env.patients_queue_url);
    assert_eq!(vars["TENDON_EPISODES_QUEUE_URL"], env.episodes_queue_url);

    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = dynamo
        .describe_table()
        .table_name(&env.table)
        .send()
        .await
        .expect("describe_table");
    let table = table.table().expect("table");
    let keys: Vec<&str> = table
        .key_schema()
        .iter()
        .map(|k| k.attribute_name())
        .collect();
    assert_eq!(keys, ["pk", "sk"]);
    let gsi = &table.global_secondary_indexes()[0];
    assert_eq!(gsi.index_name(), Some("due"));
    let gsi_keys: Vec<&str> = gsi
        .key_schema()
        .iter()
        .map(|k| k.attribute_name())
        .collect();
    assert_eq!(gsi_keys, ["due_pk", "due_at"]);

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&env.patients_queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .expect("get_queue_attributes");
    let attrs = attrs.attributes().expect("attributes");
    let get = |n: &str| {
        attrs
            .get(&aws_sdk_sqs::types::QueueAttributeName::from(n))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(get("FifoQueue"), "true");
    assert_eq!(get("VisibilityTimeout"), "180");
    let redrive: serde_json::Value = serde_json::from_str(&get("RedrivePolicy")).expect("redrive");
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .is_some_and(|a| a.ends_with(&format!(":{prefix}-patients-dlq.fifo"))),
        "{redrive}"
    );

    // Idempotent: a second run keeps the resources and returns the same env.
    let again = tendon_aws::bootstrap_with(&sdk, &prefix)
        .await
        .expect("second bootstrap");
    assert_eq!(again, env);
    assert!(
        tendon_aws::bootstrap_with(&sdk, "Bad_Prefix")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn aws_store_meets_the_port_contract() {
    let (store, _) = common::fresh_store("contract").await;
    tendon_core::contract::run_all(|| store.clone()).await;
}

#[tokio::test]
async fn sqs_fifo_keeps_group_order_and_dedupes() {
    let (store, _) = common::fresh_store("fifo").await;
    let item = |id: &str| WorkItem {
        org: "ACME01".to_owned(),
        message_id: id.to_owned(),
        patient_id: None,
    };
    // Two groups, interleaved; one duplicate send; one over-long dedupe ID.
    let long = "x".repeat(300);
    let sends = [
        ("ACME01#P1", "a1"),
        ("ACME01#P2", "b1"),
        ("ACME01#P1", "a2"),
        ("ACME01#P1", "a2"), // duplicate: dropped
        ("ACME01#P2", "b2"),
        ("ACME01#P1", long.as_str()),
    ];
    for (group, id) in sends {
        store
            .send(QueueName::Patients, group, id, &item(id))
            .await
            .expect("send");
    }
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    loop {
        let batch = store
            .receive_batch(QueueName::Patients, 10, 0)
            .await
            .expect("receive");
        if batch.is_empty() {
            break;
        }
        for got in batch {
            seen.entry(got.group.clone())
                .or_default()
                .push(got.item.message_id.clone());
            store
                .delete(QueueName::Patients, &got.receipt)
                .await
                .expect("delete");
        }
    }
    assert_eq!(seen["ACME01#P1"], ["a1", "a2", long.as_str()]);
    assert_eq!(seen["ACME01#P2"], ["b1", "b2"]);
    assert!(
        store
            .receive_batch(QueueName::Episodes, 10, 0)
            .await
            .expect("receive")
            .is_empty(),
        "queues are separate"
    );
    assert_eq!(queue_safe_id(&long).len(), 71);
}

#[tokio::test]
async fn a_group_is_blocked_while_its_head_is_in_flight() {
    let (store, _) = common::fresh_store("block").await;
    let item = |id: &str| WorkItem {
        org: "ACME01".to_owned(),
        message_id: id.to_owned(),
        patient_id: None,
    };
    for id in ["m1", "m2"] {
        store
            .send(QueueName::Episodes, "ACME01#P9", id, &item(id))
            .await
            .expect("send");
    }
    let first = store
        .receive_batch(QueueName::Episodes, 1, 0)
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].item.message_id, "m1");
    assert!(
        store
            .receive_batch(QueueName::Episodes, 10, 0)
            .await
            .expect("receive")
            .is_empty(),
        "m2 waits while m1 is in flight"
    );
    store
        .delete(QueueName::Episodes, &first[0].receipt)
        .await
        .expect("delete");
    let next = store
        .receive_batch(QueueName::Episodes, 10, 0)
        .await
        .expect("receive");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].item.message_id, "m2");
}

async fn setup_org(store: &AwsStore) {
    let org = Org {
        id: "ACME01".into(),
        name: "Acme PT".into(),
        timezone: "America/Los_Angeles".into(),
        ie_types: vec!["Initial Eval".into()],
        field_map: Default::default(),
    };
    store.create_org(&org, &key_hash(KEY)).await.expect("org");
    let location = Location {
        id: "12".into(),
        name: "Salem".into(),
        timezone: None,
    };
    store
        .put_location("ACME01", &location)
        .await
        .expect("location");
    let p = Practitioner {
        id: "445566".into(),
        first_name: "Chidi".into(),
        last_name: "Okafor".into(),
        npi: None,
        email: None,
    };
    store
        .put_practitioner("ACME01", &p)
        .await
        .expect("practitioner");
}

/// The deployed pieces on one set of resources, each with its own store (so
/// its own caches and request counts), as separate Lambda functions have; `esm`
/// plays the event source mappings and the operator.
struct Deployed {
    ingest: AwsStore,
    patient: AwsStore,
    episode: AwsStore,
    esm: AwsStore,
}

async fn deployed(name: &str) -> Deployed {
    let (esm, env) = common::fresh_store(name).await;
    let sdk = common::sdk_config().await;
    Deployed {
        ingest: AwsStore::from_config(&sdk, &env).with_ingest_cache(),
        patient: AwsStore::from_config(&sdk, &env),
        episode: AwsStore::from_config(&sdk, &env),
        esm,
    }
}

/// Requests and item writes of one function while it handles something.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cost {
    requests: u64,
    item_writes: u64,
}

async fn cost_of<F: std::future::Future>(store: &AwsStore, work: F) -> (F::Output, Cost) {
    let (r, w) = (store.request_count(), store.item_write_count());
    let out = work.await;
    let cost = Cost {
        requests: store.request_count() - r,
        item_writes: store.item_write_count() - w,
    };
    (out, cost)
}

async fn post(f: &Deployed, body: &str) -> (String, Cost) {
    let auth = format!("Bearer {KEY}");
    let store = &f.ingest;
    let (reply, cost) = cost_of(
        store,
        ingest(
            store,
            store,
            store,
            &SystemClock,
            Some(&auth),
            body.as_bytes(),
            DEFAULT_MAX_BODY,
        ),
    )
    .await;
    let reply = reply.expect("ingest");
    assert_eq!(reply.status, 200);
    (String::from_utf8(reply.body).expect("ack text"), cost)
}

/// What an event source mapping does, for both queues, until both are empty:
/// a batch of one record becomes an `SqsEvent` for the function's handler
/// (`tendon_aws::lambda::handle_sqs_batch`), and the records it does not report
/// as failed are deleted. Returns what each function invocation cost.
async fn drain(f: &Deployed) -> Vec<(QueueName, Cost)> {
    let mut per_step = Vec::new();
    loop {
        let mut any = false;
        for (queue, function) in [
            (QueueName::Patients, &f.patient),
            (QueueName::Episodes, &f.episode),
        ] {
            let batch = f.esm.receive_batch(queue, 1, 0).await.expect("receive");
            if batch.is_empty() {
                continue;
            }
            any = true;
            let mut event = SqsEvent::default();
            event.records = batch
                .iter()
                .map(|got| {
                    let mut m = SqsMessage::default();
                    m.message_id = Some(got.receipt.clone());
                    m.body = Some(serde_json::to_string(&got.item).unwrap());
                    m.attributes
                        .insert("MessageGroupId".into(), got.group.clone());
                    m.attributes.insert(
                        "ApproximateReceiveCount".into(),
                        got.receive_count.to_string(),
                    );
                    m
                })
                .collect();
            let (response, cost) =
                cost_of(function, handle_sqs_batch(function, queue, event)).await;
            assert!(
                response.batch_item_failures.is_empty(),
                "{queue:?}: {response:?}"
            );
            per_step.push((queue, cost));
            let receipts: Vec<String> = batch.iter().map(|g| g.receipt.clone()).collect();
            f.esm.delete_many(queue, &receipts).await.expect("delete");
        }
        if !any {
            return per_step;
        }
    }
}

#[tokio::test]
async fn the_worked_example_end_to_end_and_once_only() {
    let f = deployed("e2e").await;
    let store = &f.esm;
    setup_org(store).await;

    let (ack, _) = post(&f, WORKED).await;
    assert!(ack.contains("MSA|AA"), "{ack}");
    let steps = drain(&f).await;
    assert_eq!(
        steps.len(),
        2,
        "one patient step and one episode step: {steps:?}"
    );

    let record = store
        .load_patient("ACME01", "P555")
        .await
        .expect("load")
        .expect("P555 exists");
    assert_eq!(record.episodes.len(), 2, "{:?}", record.episodes);
    assert_eq!(record.appointments.len(), 1, "{:?}", record.appointments);
    let messages = store.list_messages("ACME01", None).await.expect("list");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].status, MessageStatus::Processed);
    assert_eq!(messages[0].steps_done, ["patient", "episode"]);
    let events = store.list_events("ACME01").await.expect("events");
    assert!(!events.is_empty());
    let patients = store.list_patients("ACME01").await.expect("patients");
    assert_eq!(patients.len(), 1);

    // The same message again: the same ACK, and nothing changes.
    let (again, _) = post(&f, WORKED).await;
    let msa = |a: &str| {
        a.split(['\r', '\n'])
            .find(|l| l.starts_with("MSA"))
            .map(str::to_owned)
    };
    assert_eq!(msa(&again), msa(&ack));
    drain(&f).await;
    assert_eq!(
        store.load_patient("ACME01", "P555").await.expect("load"),
        Some(record)
    );
    assert_eq!(store.list_events("ACME01").await.expect("events"), events);
    assert_eq!(
        store.list_messages("ACME01", None).await.expect("list"),
        messages
    );
}

/// The worked example for another patient, control ID and appointment.
fn another_patient(n: u32) -> String {
    WORKED
        .replace("MSG00042", &format!("MSG1{n:04}"))
        .replace("P555", &format!("P{}", 1000 + n))
        .replace("A9001", &format!("A{}", 10000 + n))
}

/// CONTRACT target: at most 8 AWS requests per SIU Initial Evaluation message
/// on warm functions (the event source mappings' receives and deletes are the
/// service's, not the functions'). Printed per function for docs/benchmarks.md.
#[tokio::test]
async fn a_new_patient_ie_message_costs_at_most_8_requests() {
    let f = deployed("cost").await;
    setup_org(&f.esm).await;
    // Warm-up: the first message fills the functions' caches.
    post(&f, &another_patient(0)).await;
    drain(&f).await;

    let (ack, ingest) = post(&f, &another_patient(1)).await;
    assert!(ack.contains("MSA|AA"), "{ack}");
    let steps = drain(&f).await;
    let [
        (QueueName::Patients, patient),
        (QueueName::Episodes, episode),
    ] = steps[..]
    else {
        panic!("one patient step, then one episode step: {steps:?}");
    };
    let total = ingest.requests + patient.requests + episode.requests;
    eprintln!(
        "AWS requests per new-patient SIU IE message (warm): ingest {} + patient {} + episode {} = {total}; \
         DynamoDB item writes: ingest {} + patient {} + episode {} = {}",
        ingest.requests,
        patient.requests,
        episode.requests,
        ingest.item_writes,
        patient.item_writes,
        episode.item_writes,
        ingest.item_writes + patient.item_writes + episode.item_writes,
    );
    assert!(
        total <= 8,
        "{total} requests: {ingest:?} {patient:?} {episode:?}"
    );
    let p = f
        .esm
        .load_patient("ACME01", "P1001")
        .await
        .expect("load")
        .expect("created");
    assert_eq!(p.episodes.len(), 2);

    // A configuration change is seen by the very next step (token check), at
    // the cost of one Query.
    f.esm
        .put_location(
            "ACME01",
            &Location {
                id: "13".into(),
                name: "Keizer".into(),
                timezone: None,
            },
        )
        .await
        .expect("location");
    post(
        &f,
        &another_patient(2).replace("12^^^Salem Clinic", "13^^^Keizer"),
    )
    .await;
    drain(&f).await;
    let moved = f
        .esm
        .load_patient("ACME01", "P1002")
        .await
        .expect("load")
        .expect("created at the new location at once");
    assert_eq!(moved.appointments[0].location_id.as_deref(), Some("13"));
}

/// DynamoDB items are at most 400 KB and ingest takes up to 1 MiB: a large
/// message is stored in chunks and read back byte for byte.
#[tokio::test]
async fn a_one_mebibyte_message_is_stored_and_processed() {
    let f = deployed("big").await;
    setup_org(&f.esm).await;
    let mut big = another_patient(3);
    let room = DEFAULT_MAX_BODY - big.len() - 8;
    big.push_str(&format!("\rNTE|1||{}", "x".repeat(room)));
    assert!(big.len() > 1_000_000 && big.len() <= DEFAULT_MAX_BODY);
    let (ack, _) = post(&f, &big).await;
    assert!(ack.contains("MSA|AA"), "{ack}");
    let listed = f.esm.list_messages("ACME01", None).await.expect("list");
    let stored = f
        .esm
        .get_message("ACME01", &listed[0].id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.raw, big.as_bytes(), "read back byte for byte");
    drain(&f).await;
    assert!(
        f.esm
            .load_patient("ACME01", "P1003")
            .await
            .expect("load")
            .is_some()
    );
}

/// A record failing on its last receive (`maxReceiveCount`, 5 by default) is
/// marked `failed` with `dead_letter` before SQS moves it to the DLQ; after the
/// cause is fixed, a redriven delivery processes it.
#[tokio::test]
async fn a_record_failing_on_its_last_receive_is_marked_dead_letter() {
    let f = deployed("dlq").await;
    // A stored message of an org whose configuration is missing: every attempt
    // fails with an infrastructure error (NotFound org), never an outcome.
    let body = WORKED.replace("|ACME01|", "|GHOST1|");
    let stored = tendon_core::model::StoredMessage {
        org: "GHOST1".into(),
        id: "poison-1".into(),
        control_id: Some("MSG00042".into()),
        message_type: Some("SIU^S12".into()),
        status: MessageStatus::Accepted,
        errors: Vec::new(),
        received_at: "2026-11-20T17:30:00Z".into(),
        body_hash: "x".into(),
        patient_id: Some("P555".into()),
        steps_done: Vec::new(),
        replays: 0,
        raw: body.into_bytes(),
    };
    f.esm.insert_message(&stored).await.expect("insert");
    let event = |receive_count: u32| {
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("sqs-{receive_count}"));
        m.body = Some(r#"{"org":"GHOST1","message_id":"poison-1","patient_id":"P555"}"#.into());
        m.attributes
            .insert("MessageGroupId".into(), "GHOST1#P555".into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        let mut e = SqsEvent::default();
        e.records = vec![m];
        e
    };
    let status = || async {
        f.esm
            .get_message("GHOST1", "poison-1")
            .await
            .expect("get")
            .expect("stored")
    };
    for n in 1..5 {
        let r = handle_sqs_batch(&f.patient, QueueName::Patients, event(n)).await;
        assert_eq!(r.batch_item_failures.len(), 1, "receive {n} is retried");
        assert_eq!(status().await.status, MessageStatus::Accepted);
    }
    let r = handle_sqs_batch(&f.patient, QueueName::Patients, event(5)).await;
    assert_eq!(
        r.batch_item_failures.len(),
        1,
        "left for SQS to dead-letter"
    );
    let failed = f
        .esm
        .list_messages("GHOST1", Some(MessageStatus::Failed))
        .await
        .expect("list");
    assert_eq!(failed.len(), 1, "messages list --status failed shows it");
    assert_eq!(failed[0].errors[0].code, tendon_core::ErrorCode::DeadLetter);

    // Fixed (the org is configured), then redriven from the DLQ: processed once.
    let org = Org {
        id: "GHOST1".into(),
        name: "Ghost".into(),
        timezone: "America/Los_Angeles".into(),
        ie_types: vec!["Initial Eval".into()],
        field_map: Default::default(),
    };
    f.esm
        .create_org(&org, &key_hash("tdn_ghost"))
        .await
        .expect("org");
    f.esm
        .put_location(
            "GHOST1",
            &Location {
                id: "12".into(),
                name: "Salem".into(),
                timezone: None,
            },
        )
        .await
        .expect("location");
    let p = Practitioner {
        id: "445566".into(),
        first_name: "C".into(),
        last_name: "O".into(),
        npi: None,
        email: None,
    };
    f.esm
        .put_practitioner("GHOST1", &p)
        .await
        .expect("practitioner");
    let r = handle_sqs_batch(&f.patient, QueueName::Patients, event(1)).await;
    assert!(r.batch_item_failures.is_empty(), "{r:?}");
    drain(&f).await;
    assert_eq!(status().await.status, MessageStatus::Processed);
    assert!(
        f.esm
            .load_patient("GHOST1", "P555")
            .await
            .expect("load")
            .is_some()
    );
}
