//! The AWS backend on moto (one moto_server for this binary, see
//! `tendon_testkit::moto`): bootstrap, the port contract (one test per check,
//! each on fresh resources), SQS FIFO behaviour, and the worked example end to
//! end through the real handlers.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use tendon_aws::lambda::handle_sqs_batch;
use tendon_aws::{AwsStore, Received, queue_safe_id};
use tendon_core::intake::DEFAULT_MAX_BODY;
use tendon_core::model::{MessageStatus, StoredMessage};
use tendon_core::org::{Location, Org};
use tendon_core::ports::{ConfigStore, MessageLog, PatientStore, QueueName, WorkItem, WorkQueue};
use tendon_testkit::acme::{self, KEY, WORKED};
use tendon_testkit::{moto, poison_message, try_post};

/// The names of a table's or an index's key attributes, in order.
fn key_names(schema: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> Vec<&str> {
    schema.iter().map(|k| k.attribute_name()).collect()
}

/// The work item of ACME01's message `id`, with no patient.
fn work_item(id: &str) -> WorkItem {
    WorkItem {
        org: "ACME01".to_owned(),
        message_id: id.to_owned(),
        patient_id: None,
    }
}

/// Up to `max` records of `queue`, without waiting.
async fn receive(store: &AwsStore, queue: QueueName, max: i32) -> Vec<Received> {
    store.receive_batch(queue, max, 0).await.expect("receive")
}

/// The message `id` of `org` as stored; panics unless it is there.
async fn stored_message(store: &AwsStore, org: &str, id: &str) -> StoredMessage {
    store
        .get_message(org, id)
        .await
        .expect("get")
        .expect("stored")
}

/// Whether `org` has a patient `id`.
async fn has_patient(store: &AwsStore, org: &str, id: &str) -> bool {
    store.load_patient(org, id).await.expect("load").is_some()
}

#[tokio::test]
async fn bootstrap_creates_the_template_resources() {
    let sdk = moto::sdk_config().await;
    let prefix = moto::unique_prefix("boot");
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
    assert_eq!(
        vars["TENDON_SES_SENDER"],
        format!("no-reply@{prefix}.example.com")
    );
    assert_eq!(
        vars["TENDON_SES_CONFIGURATION_SET"],
        format!("{prefix}-mail")
    );
    let ses = aws_sdk_ses::Client::new(&sdk);
    let identities = ses.list_identities().send().await.expect("list_identities");
    assert!(
        identities
            .identities()
            .contains(&format!("{prefix}.example.com")),
        "the sender's domain is an SES identity"
    );
    ses.describe_configuration_set()
        .configuration_set_name(&env.ses_configuration_set)
        .send()
        .await
        .expect("the configuration set exists");

    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = dynamo
        .describe_table()
        .table_name(&env.table)
        .send()
        .await
        .expect("describe_table");
    let table = table.table().expect("table");
    assert_eq!(key_names(table.key_schema()), ["pk", "sk"]);
    let gsi = &table.global_secondary_indexes()[0];
    assert_eq!(gsi.index_name(), Some("due"));
    assert_eq!(key_names(gsi.key_schema()), ["due_pk", "due_at"]);
    let by_org = table
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some("by_org"))
        .expect("the by_org index");
    assert_eq!(key_names(by_org.key_schema()), ["org", "org_sk"]);

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

/// DynamoDB's own error code reaches the caller as data, not only as text.
#[tokio::test]
async fn a_missing_table_is_a_backend_error_with_dynamodb_s_code() {
    let sdk = moto::sdk_config().await;
    let table = format!("{}-missing", moto::unique_prefix("notable"));
    let store = AwsStore::new(&sdk, table, "q1", "q2");
    let e = store
        .load_patient("ACME01", "P1")
        .await
        .expect_err("there is no table");
    assert_eq!(e.code(), Some("ResourceNotFoundException"), "{e}");
    assert_eq!(
        e.to_string(),
        "storage backend failed: load_patient: ResourceNotFoundException"
    );
}

tendon_contract::contract_tests! {
    #[tokio::test]
    mod contract: port, workflows, cliniko = {
        let (store, _) = moto::fresh_store("contract").await;
        move || store.clone()
    };
}

#[tokio::test]
async fn sqs_fifo_keeps_group_order_and_dedupes() {
    let (store, _) = moto::fresh_store("fifo").await;
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
            .send(QueueName::Patients, group, id, &work_item(id))
            .await
            .expect("send");
    }
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    loop {
        let batch = receive(&store, QueueName::Patients, 10).await;
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
        receive(&store, QueueName::Episodes, 10).await.is_empty(),
        "queues are separate"
    );
    assert_eq!(queue_safe_id(&long).len(), 71);
}

#[tokio::test]
async fn a_group_is_blocked_while_its_head_is_in_flight() {
    let (store, _) = moto::fresh_store("block").await;
    for id in ["m1", "m2"] {
        store
            .send(QueueName::Episodes, "ACME01#P9", id, &work_item(id))
            .await
            .expect("send");
    }
    let first = receive(&store, QueueName::Episodes, 1).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].item.message_id, "m1");
    assert!(
        receive(&store, QueueName::Episodes, 10).await.is_empty(),
        "m2 waits while m1 is in flight"
    );
    store
        .delete(QueueName::Episodes, &first[0].receipt)
        .await
        .expect("delete");
    let next = receive(&store, QueueName::Episodes, 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].item.message_id, "m2");
}

/// The deployed pieces on one set of resources, each with its own store (so
/// its own caches and request counts), as separate Lambda functions have; `esm`
/// plays the event source mappings and the operator.
struct Deployed {
    ingest: AwsStore,
    patient: AwsStore,
    episode: AwsStore,
    esm: AwsStore,
    env: tendon_aws::BootstrapEnv,
}

async fn deployed(name: &str) -> Deployed {
    let (esm, env) = moto::fresh_store(name).await;
    let sdk = moto::sdk_config().await;
    Deployed {
        ingest: AwsStore::from_config(&sdk, &env).with_ingest_cache(),
        patient: AwsStore::from_config(&sdk, &env),
        episode: AwsStore::from_config(&sdk, &env),
        esm,
        env,
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

/// `POST /hl7` to the ingest function with ACME01's key: the ACK and its cost.
async fn post(f: &Deployed, body: &str) -> (String, Cost) {
    cost_of(
        &f.ingest,
        tendon_testkit::post(&f.ingest, &f.ingest, KEY, body),
    )
    .await
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
            let batch = receive(&f.esm, queue, 1).await;
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
    acme::setup(store).await;

    let (ack, _) = post(&f, WORKED).await;
    assert!(ack.contains("MSA|AA"), "{ack}");
    let steps = drain(&f).await;
    assert_eq!(
        steps.len(),
        2,
        "one patient step and one episode step: {steps:?}"
    );

    let record = acme::patient(store, "P555").await;
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

/// DynamoDB and SQS share no transaction. When the queue fails after the
/// message is stored (here SendMessage to a queue that does not exist), the
/// sender gets no ACK and the message stays stored, unqueued and marked never
/// acknowledged. The sweeper queues it (two sweepers at once queue it once);
/// it is processed once, and the sender's resend acknowledges it without effect.
#[tokio::test]
async fn a_message_stored_but_never_queued_is_swept_and_processed_once() {
    use tendon_core::intake::{SWEEP_AFTER, sweep_unqueued};
    let f = deployed("sweep").await;
    acme::setup(&f.esm).await;
    let sdk = moto::sdk_config().await;
    let broken = AwsStore::from_config(
        &sdk,
        &tendon_aws::BootstrapEnv {
            patients_queue_url: format!("{}-gone", f.env.patients_queue_url),
            ..f.env.clone()
        },
    );
    let failed = try_post(&broken, &broken, KEY, WORKED).await;
    assert!(failed.is_err(), "no ACK without the queue: {failed:?}");
    let stored = f.esm.list_messages("ACME01", None).await.expect("list");
    assert_eq!(stored.len(), 1, "stored before the queue failed");
    let m = &stored[0];
    assert_eq!(
        (m.status, m.queued, m.acknowledged),
        (MessageStatus::Accepted, false, false)
    );
    assert!(drain(&f).await.is_empty(), "nothing reached the queue");

    let now = jiff::Timestamp::now();
    assert_eq!(
        sweep_unqueued(&f.esm, now).await,
        Ok(0),
        "too recent to sweep"
    );
    let later = now + SWEEP_AFTER + jiff::SignedDuration::from_secs(1);
    let (a, b) = tokio::join!(
        sweep_unqueued(&f.esm, later),
        sweep_unqueued(&f.patient, later)
    );
    assert_eq!(
        a.expect("sweep") + b.expect("sweep"),
        1,
        "two sweepers at once queue it once"
    );
    let steps = drain(&f).await;
    assert_eq!(
        steps.len(),
        2,
        "one patient and one episode step: {steps:?}"
    );
    let m = stored_message(&f.esm, "ACME01", &m.id).await;
    assert_eq!(
        (m.status, m.queued, m.acknowledged),
        (MessageStatus::Processed, true, false)
    );
    assert_eq!(sweep_unqueued(&f.esm, later).await, Ok(0));

    let events = f.esm.list_events("ACME01").await.expect("events");
    let (ack, _) = post(&f, WORKED).await;
    assert!(ack.contains("MSA|AA|MSG00042"), "{ack}");
    drain(&f).await;
    let m = stored_message(&f.esm, "ACME01", &m.id).await;
    assert!(m.acknowledged, "the resend was answered AA");
    assert_eq!(f.esm.list_events("ACME01").await.expect("events"), events);
    assert_eq!(
        f.esm.list_patients("ACME01").await.expect("patients").len(),
        1
    );
}

/// The worked example for another patient, control ID and appointment.
fn another_patient(n: u32) -> String {
    WORKED
        .replace("MSG00042", &format!("MSG1{n:04}"))
        .replace("P555", &format!("P{}", 1000 + n))
        .replace("A9001", &format!("A{}", 10000 + n))
}

/// Interface target (docs/interface.md): at most 8 AWS requests per SIU Initial Evaluation message
/// on warm functions (the event source mappings' receives and deletes are the
/// service's, not the functions'). Printed per function for docs/benchmarks.md.
#[tokio::test]
async fn a_new_patient_ie_message_costs_at_most_8_requests() {
    let f = deployed("cost").await;
    acme::setup(&f.esm).await;
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
    let p = acme::patient(&f.esm, "P1001").await;
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
    acme::setup(&f.esm).await;
    let mut big = another_patient(3);
    let room = DEFAULT_MAX_BODY - big.len() - 8;
    big.push_str(&format!("\rNTE|1||{}", "x".repeat(room)));
    assert!(big.len() > 1_000_000 && big.len() <= DEFAULT_MAX_BODY);
    let (ack, _) = post(&f, &big).await;
    assert!(ack.contains("MSA|AA"), "{ack}");
    let listed = f.esm.list_messages("ACME01", None).await.expect("list");
    let stored = stored_message(&f.esm, "ACME01", &listed[0].id).await;
    assert_eq!(stored.raw, big.as_bytes(), "read back byte for byte");
    drain(&f).await;
    assert!(has_patient(&f.esm, "ACME01", "P1003").await);
}

/// The doctor's queue depths come from SQS itself: the queue's approximate
/// counts, and the dead-letter queue its redrive policy names.
#[tokio::test]
async fn queue_depths_are_read_from_the_queues_and_their_dead_letter_queues() {
    use tendon_core::doctor::QueueDepths;
    let (store, env) = moto::fresh_store("depths").await;
    let item = WorkItem {
        org: "ACME01".into(),
        message_id: "m1".into(),
        patient_id: Some("P1".into()),
    };
    store
        .send(QueueName::Patients, "ACME01#P1", "m1", &item)
        .await
        .expect("send");
    for n in 0..2 {
        store
            .sqs()
            .send_message()
            .queue_url(&env.episodes_dlq_url)
            .message_body("{}")
            .message_group_id("ACME01#P2")
            .message_deduplication_id(format!("dead-{n}"))
            .send()
            .await
            .expect("send to the DLQ");
    }
    let depths = store.depths().await.expect("depths");
    let seen: Vec<(QueueName, u64, u64, u64)> = depths
        .iter()
        .map(|d| (d.queue, d.waiting, d.in_flight, d.dead_lettered))
        .collect();
    assert_eq!(
        seen,
        [
            (QueueName::Patients, 1, 0, 0),
            (QueueName::Episodes, 0, 0, 2)
        ]
    );
    assert!(
        depths.iter().all(|d| d.oldest.is_none()),
        "SQS does not say"
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
    f.esm
        .insert_message(&poison_message())
        .await
        .expect("insert");
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
    let status = || stored_message(&f.esm, "GHOST1", "poison-1");
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
    let org = acme::clinic("GHOST1", "Ghost", "America/Los_Angeles");
    acme::configure(&f.esm, &org, "tdn_ghost").await;
    let r = handle_sqs_batch(&f.patient, QueueName::Patients, event(1)).await;
    assert!(r.batch_item_failures.is_empty(), "{r:?}");
    drain(&f).await;
    assert_eq!(status().await.status, MessageStatus::Processed);
    assert!(has_patient(&f.esm, "GHOST1", "P555").await);
}

// ---- Workflows: the store, the due index, the mailer ----

use tendon_aws::AwsMailer;
use tendon_contract::{scheduled_step, unique, workflow_def};
use tendon_core::ports::{
    Commit, CommitOutcome, DeliveryLog, Mailer, RecordWrite, SendError, StepSchedule, StepStore,
    Suppressions, WorkflowStore,
};
use tendon_core::workflow::TaskKind;
use tendon_core::workflow::steps::{Channel, Delivery, DeliveryStatus, ScheduledStep, StepStatus};

/// An org with a stored message to commit against; returns the message ID.
async fn org_with_message(store: &AwsStore, org: &str) -> String {
    store
        .create_org(&tendon_contract::org(org), &unique("hash"))
        .await
        .expect("create_org");
    let m = tendon_contract::message(org, &unique("m"), "2026-11-20T17:30:00Z");
    store.insert_message(&m).await.expect("insert_message");
    m.id
}

fn commit_of(org: &str, message_id: &str, scheduled: Vec<ScheduledStep>) -> Commit {
    Commit {
        org: org.to_owned(),
        message_id: message_id.to_owned(),
        step: "patient".to_owned(),
        status: MessageStatus::Accepted,
        errors: Vec::new(),
        patient_id: None,
        records: Vec::new(),
        events: Vec::new(),
        park: None,
        unpark: None,
        scheduled,
        step_updates: Vec::new(),
    }
}

/// Every item of the due index (all shards), as (due_pk, due_at).
async fn due_index(store: &AwsStore) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .dynamo
            .scan()
            .table_name(&store.table)
            .index_name("due")
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the due index");
        for item in page.items() {
            let get = |n: &str| item[n].as_s().expect("a string key").clone();
            out.push((get("due_pk"), get("due_at")));
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

/// The claim Queries the due index only for what it can take: 50 steps due
/// tomorrow and 5 due now cost 4 shard Queries (returning the 5) and 5
/// conditional updates; a claimed step leaves the claimable part of the index,
/// and a finished one leaves the index.
#[tokio::test]
async fn a_claim_reads_only_the_due_part_of_the_index() {
    let (store, _) = moto::fresh_store("due").await;
    let org = unique("ORG");
    let message_id = org_with_message(&store, &org).await;
    let patient = unique("P");
    let mut steps: Vec<ScheduledStep> = (0..50)
        .map(|_| scheduled_step(&org, &patient, 0, "2026-11-21T17:30:00Z"))
        .collect();
    let due: Vec<ScheduledStep> = (0..5)
        .map(|i| scheduled_step(&org, &patient, 0, &format!("2026-11-20T17:2{i}:00Z")))
        .collect();
    steps.extend(due.clone());
    assert_eq!(
        store
            .commit(&commit_of(&org, &message_id, steps.clone()))
            .await,
        Ok(CommitOutcome::Applied)
    );
    assert_eq!(
        due_index(&store).await.len(),
        55,
        "every scheduled step is in the index"
    );

    let at: jiff::Timestamp = "2026-11-20T17:30:00Z".parse().unwrap();
    let until: jiff::Timestamp = "2026-11-20T17:35:00Z".parse().unwrap();
    // What the claim's Queries see: the index below `at`, nothing else.
    let before = format!("{:013}", at.as_millisecond() + 1);
    let mut seen = 0;
    for shard in 0..4 {
        let page = store
            .dynamo
            .query()
            .table_name(&store.table)
            .index_name("due")
            .key_condition_expression("due_pk = :s AND due_at < :b")
            .expression_attribute_values(
                ":s",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("DUE#{shard}")),
            )
            .expression_attribute_values(
                ":b",
                aws_sdk_dynamodb::types::AttributeValue::S(before.clone()),
            )
            .send()
            .await
            .expect("query the due index");
        seen += page.count;
    }
    assert_eq!(seen, 5, "the due part of the index holds the 5 due steps");

    let requests = store.request_count();
    let writes = store.item_write_count();
    let started = std::time::Instant::now();
    let claimed = store
        .claim_due(at, at, until, 100)
        .await
        .expect("claim_due");
    let (claim_requests, claim_writes) = (
        store.request_count() - requests,
        store.item_write_count() - writes,
    );
    eprintln!(
        "claim of 5 due among 55 scheduled: {claim_requests} requests (4 shard Queries + 5 UpdateItems), \
         {claim_writes} item writes, {} ms",
        started.elapsed().as_millis()
    );
    let mut got: Vec<&str> = claimed.iter().map(|s| s.id.as_str()).collect();
    got.sort();
    let mut want: Vec<&str> = due.iter().map(|s| s.id.as_str()).collect();
    want.sort();
    assert_eq!(got, want, "exactly the due steps");
    assert_eq!(
        claimed.iter().map(|s| s.due_at).collect::<Vec<_>>(),
        due.iter().map(|s| s.due_at).collect::<Vec<_>>(),
        "oldest first, with their own due times"
    );
    assert_eq!(claim_requests, 4 + 5);
    assert_eq!(claim_writes, 5);

    // Claimed: the index moves them to the claim's end, so a second pass
    // reads nothing (4 empty Queries).
    let requests = store.request_count();
    assert!(
        store
            .claim_due(at, at, until, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.request_count() - requests, 4);

    // Finished: sent leaves the index; moved stays, at its new time.
    let mut sent = claimed[0].clone();
    sent.status = StepStatus::Sent;
    store.finish_step(&sent, None).await.expect("finish_step");
    let mut later = claimed[1].clone();
    later.due_at = "2026-11-22T09:00:00Z".parse().unwrap();
    store.finish_step(&later, None).await.expect("finish_step");
    let index = due_index(&store).await;
    assert_eq!(index.len(), 54);
    assert!(
        !index
            .iter()
            .any(|(_, k)| k.ends_with(&format!("#{}", sent.id)))
    );
    let moved_key = format!(
        "{:013}#{}",
        "2026-11-22T09:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond(),
        later.id
    );
    assert!(index.iter().any(|(_, k)| *k == moved_key), "{moved_key}");
    let listed = store.list_steps(&org, Some(&patient)).await.unwrap();
    assert_eq!(listed.len(), 55);
    assert!(
        listed
            .iter()
            .all(|s| s.claimed_until.is_none() || s.status == StepStatus::Scheduled)
    );
    assert_eq!(
        store.list_steps(&org, None).await.unwrap(),
        Vec::<ScheduledStep>::new(),
        "the org listing goes through the patient listing (this patient has no record)"
    );
}

/// Workflow writes change the org's configuration token, so a warm step's
/// cached configuration (read_step) carries them at once.
#[tokio::test]
async fn workflow_changes_reach_the_steps_configuration_at_once() {
    let (store, _) = moto::fresh_store("wfcache").await;
    let org = unique("ORG");
    let message_id = org_with_message(&store, &org).await;
    let read = || async {
        store
            .read_step(&org, &message_id, None)
            .await
            .expect("read_step")
            .config
            .expect("the org exists")
            .workflows
            .iter()
            .map(|w| (w.id.clone(), w.version, w.status))
            .collect::<Vec<_>>()
    };
    assert!(read().await.is_empty());
    store
        .put_workflow(&org, &workflow_def("Welcome"))
        .await
        .expect("put_workflow");
    use tendon_core::workflow::WorkflowStatus::{Active, Inactive};
    assert_eq!(read().await, [("welcome".to_owned(), 1, Active)]);
    store
        .set_workflow_status(&org, "welcome", Inactive)
        .await
        .expect("set_workflow_status");
    assert_eq!(read().await, [("welcome".to_owned(), 1, Inactive)]);
    store
        .put_workflow(&org, &workflow_def("Welcome"))
        .await
        .expect("put_workflow");
    assert_eq!(read().await, [("welcome".to_owned(), 2, Active)]);
}

/// `GET {moto}/moto-api/data.json`: moto's state (sent SES messages, SMS).
fn moto_state() -> serde_json::Value {
    use std::io::{Read, Write};
    let endpoint = &moto::moto().endpoint;
    let host = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("moto accepts connections");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /moto-api/data.json HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("moto answers");
    let text = String::from_utf8(response).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    serde_json::from_str(body).expect("data.json is JSON")
}

/// What moto recorded of one sent thing: the item of its list
/// `[service][kind]` whose `key` is `id`.
fn moto_record(service: &str, kind: &str, key: &str, id: &str) -> serde_json::Value {
    let state = moto_state();
    let list = state[service][kind]
        .as_array()
        .unwrap_or_else(|| panic!("moto lists {service} {kind}"));
    list.iter()
        .find(|m| m[key] == id)
        .unwrap_or_else(|| panic!("{service} {kind} {key} {id} is in moto"))
        .clone()
}

fn email_delivery(to: &str, subject: &str) -> Delivery {
    let id = unique("dlv").replace('-', "");
    Delivery {
        id: id.clone(),
        org: "ACME01".to_owned(),
        channel: Channel::Email,
        to: to.to_owned(),
        subject: Some(subject.to_owned()),
        body: format!(
            "Hello Ana = friend, ref {id}\n\nUnsubscribe: https://tendon.example/unsubscribe/ACME01/P1/tok{id}\n"
        ),
        html: Some(format!("<p>Hello Ana, ref {id}</p>")),
        content_id: None,
        kind: TaskKind::Email,
        workflow_id: "welcome".to_owned(),
        step: 0,
        patient_id: "P1".to_owned(),
        step_id: unique("step"),
        status: DeliveryStatus::Sending,
        provider_id: None,
        created_at: "2026-11-20T17:30:00Z".parse().unwrap(),
        sent_at: None,
    }
}

#[tokio::test]
async fn the_aws_mailer_sends_safe_multipart_email_and_texts_on_moto() {
    let (_, env) = moto::fresh_store("mail").await;
    let sdk = moto::sdk_config().await;
    let mailer = AwsMailer::from_config(&sdk, &env);
    // The pace comes from SES's GetSendQuota (moto's MaxSendRate is 1/s).
    assert_eq!(mailer.send_rate().await, 1.0);
    assert_eq!(
        mailer.clone().with_max_send_rate(14.0).send_rate().await,
        14.0
    );

    let email = email_delivery("ana.rivera@example.com", "Hi\r\nBcc: evil@example.com");
    let provider_id = mailer.send(&email).await.expect("SES accepts the email");
    let sent = moto_record("ses", "RawMessage", "id", &provider_id);
    assert_eq!(sent["source"], env.ses_sender.as_str());
    // (moto adds the To header's addresses to the Destinations given.)
    let destinations = sent["destinations"].as_array().expect("destinations");
    assert!(
        !destinations.is_empty() && destinations.iter().all(|d| d == "ana.rivera@example.com"),
        "{destinations:?}"
    );
    let raw = sent["raw_data"].as_str().expect("raw data");
    let (head, _) = raw.split_once("\r\n\r\n").expect("headers, then the body");
    let headers: Vec<&str> = head.split("\r\n").collect();
    let subjects: Vec<&&str> = headers
        .iter()
        .filter(|h| h.starts_with("Subject:"))
        .collect();
    assert_eq!(
        subjects,
        [&"Subject: Hi  Bcc: evil@example.com"],
        "{headers:?}"
    );
    assert!(
        !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("bcc")),
        "no injected header: {headers:?}"
    );
    assert!(
        headers.contains(
            &format!(
                "List-Unsubscribe: <https://tendon.example/unsubscribe/ACME01/P1/tok{}>",
                email.id
            )
            .as_str()
        ),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("Content-Type: multipart/alternative; boundary=")),
        "{headers:?}"
    );
    assert!(raw.contains("Content-Type: text/plain; charset=UTF-8"));
    assert!(raw.contains("Content-Type: text/html; charset=UTF-8"));
    assert!(raw.contains(&format!("Hello Ana =3D friend, ref {}", email.id)));
    assert!(raw.contains(&format!("<p>Hello Ana, ref {}</p>", email.id)));

    // A non-ASCII subject is an encoded word; moto parses the message.
    let accented = email_delivery("ana.rivera@example.com", "Bienvenida, Ana — ¡ánimo!");
    let id = mailer.send(&accented).await.expect("sent");
    let sent = moto_record("ses", "RawMessage", "id", &id);
    let raw = sent["raw_data"].as_str().expect("raw data");
    assert!(raw.contains("\r\nSubject: =?UTF-8?B?"), "{raw}");

    // Refused before sending: an address that would add a header.
    let hostile = email_delivery("ana@example.com\r\nBcc: evil@example.com", "Hi");
    assert_eq!(
        mailer.send(&hostile).await,
        Err(SendError::Rejected("invalid_address".into()))
    );
    // SES refuses an unverified sender: Rejected with SES's code only.
    let stranger = AwsMailer::from_config(
        &sdk,
        &tendon_aws::BootstrapEnv {
            ses_sender: "someone@unverified.example.org".into(),
            ..env.clone()
        },
    );
    assert_eq!(
        stranger.send(&email).await,
        Err(SendError::Rejected("MessageRejected".into()))
    );

    // A text: SNS Publish to the E.164 number.
    let mut text = email_delivery("+15035550101", "");
    text.channel = Channel::Text;
    text.kind = TaskKind::Text;
    text.subject = None;
    text.html = None;
    text.body = format!("Your visit is tomorrow at 10:00 ({})", text.id);
    let sms_id = mailer.send(&text).await.expect("SNS accepts the text");
    let sms = moto_record("sns", "SMS", "message_id", &sms_id);
    assert_eq!(sms["phone_number"], "+15035550101");
    assert_eq!(sms["message"], text.body.as_str());
    text.to = "503-555-0101".into();
    assert_eq!(
        mailer.send(&text).await,
        Err(SendError::Rejected("invalid_number".into()))
    );
}

/// A dispatch pass on the AWS store and mailer: due steps claimed, sent
/// through SES, recorded in the outbox, finished; a second pass finds nothing.
#[tokio::test]
async fn a_dispatch_pass_sends_due_steps_through_ses() {
    let (store, env) = moto::fresh_store("dispatch").await;
    let sdk = moto::sdk_config().await;
    let mailer = AwsMailer::from_config(&sdk, &env);
    let org = unique("ORG");
    let message_id = org_with_message(&store, &org).await;
    store
        .put_workflow(&org, &workflow_def("Fixture"))
        .await
        .expect("put_workflow");
    let patient = unique("P");
    let mut record = tendon_contract::patient_record(&patient, 1);
    record.patient.id = patient.clone();
    let steps: Vec<ScheduledStep> = (0..3)
        .map(|i| scheduled_step(&org, &patient, 0, &format!("2026-11-20T17:0{i}:00Z")))
        .collect();
    let mut commit = commit_of(&org, &message_id, steps.clone());
    commit.patient_id = Some(patient.clone());
    commit.records = vec![RecordWrite {
        record,
        expected_version: None,
    }];
    assert_eq!(store.commit(&commit).await, Ok(CommitOutcome::Applied));

    let at: jiff::Timestamp = "2026-11-20T17:30:00Z".parse().unwrap();
    let dispatcher = tendon_core::workflow::dispatch::Dispatcher {
        store: &store,
        mailer: &mailer,
        public_url: "https://tendon.example",
        unsubscribe_secret: "secret",
        clock: &tendon_core::ports::FixedClock(at),
        budget: None,
    };
    let (requests, writes) = (store.request_count(), store.item_write_count());
    let started = std::time::Instant::now();
    let report = dispatcher.pass(at).await.expect("pass");
    eprintln!(
        "dispatch pass sending 3 emails: {} DynamoDB requests, {} item writes, {} ms",
        store.request_count() - requests,
        store.item_write_count() - writes,
        started.elapsed().as_millis()
    );
    assert_eq!((report.sent, report.skipped, report.failed), (3, 0, 0));
    let outbox = store.list_deliveries(&org).await.unwrap();
    assert_eq!(outbox.len(), 3);
    assert!(
        outbox
            .iter()
            .all(|d| d.status == DeliveryStatus::Sent && d.provider_id.is_some())
    );
    let listed = store.list_steps(&org, None).await.unwrap();
    assert_eq!(listed.len(), 3, "the org listing finds the patient's steps");
    assert!(listed.iter().all(|s| s.status == StepStatus::Sent));
    let again = dispatcher.pass(at).await.expect("pass");
    assert_eq!((again.sent, again.skipped, again.failed), (0, 0, 0));
    assert_eq!(store.open_assignments(&org, &patient).await, Ok(0));
}

/// A new org with one stored patient, `patient` (a contract record).
async fn org_with_patient(store: &AwsStore, org: &str, patient: &str) {
    let message_id = org_with_message(store, org).await;
    let mut record = tendon_contract::patient_record(patient, 1);
    record.patient.id = patient.to_owned();
    let mut commit = commit_of(org, &message_id, Vec::new());
    commit.patient_id = Some(patient.to_owned());
    commit.records = vec![RecordWrite {
        record,
        expected_version: None,
    }];
    assert_eq!(store.commit(&commit).await, Ok(CommitOutcome::Applied));
}

/// Opting out (the unsubscribe link, a text STOP) rewrites the patient record
/// under its version; an unknown patient is `false`; opting in undoes it.
#[tokio::test]
async fn opt_outs_are_recorded_on_the_patient() {
    use tendon_core::workflow::opt_out::set_opt_out;
    use tendon_core::workflow::steps::Channel;
    let (store, _) = moto::fresh_store("optout").await;
    let org = unique("ORG");
    let patient = unique("P");
    org_with_patient(&store, &org, &patient).await;

    assert_eq!(
        set_opt_out(&store, &org, &patient, Channel::Email, true).await,
        Ok(true)
    );
    assert_eq!(
        set_opt_out(&store, &org, &patient, Channel::Text, true).await,
        Ok(true)
    );
    assert_eq!(
        set_opt_out(&store, &org, &unique("P"), Channel::Email, true).await,
        Ok(false)
    );
    let stored = store.load_patient(&org, &patient).await.unwrap().unwrap();
    assert!(stored.patient.unsubscribed && stored.patient.text_opt_out);
    assert_eq!(stored.version, 3, "two changes, two versions");
    assert_eq!(
        set_opt_out(&store, &org, &patient, Channel::Email, true).await,
        Ok(true)
    );
    assert_eq!(
        store
            .load_patient(&org, &patient)
            .await
            .unwrap()
            .unwrap()
            .version,
        3,
        "no change, no write"
    );
    set_opt_out(&store, &org, &patient, Channel::Email, false)
        .await
        .unwrap();
    let stored = store.load_patient(&org, &patient).await.unwrap().unwrap();
    assert!(!stored.patient.unsubscribed && stored.patient.text_opt_out);
}

/// SES feedback on moto: an SNS-wrapped permanent bounce and a complaint, as
/// the feedback function receives them from SQS, suppress the addresses for
/// the org and unsubscribe the patient; a transient bounce and foreign mail
/// change nothing; a redelivery is harmless.
#[tokio::test]
async fn bounces_and_complaints_suppress_the_address_and_the_patient() {
    use tendon_core::ports::RecordCommit;
    use tendon_core::workflow::feedback::tag_value;
    let (store, _) = moto::fresh_store("feedback").await;
    let org = unique("ORG");
    store
        .create_org(
            &Org {
                id: org.clone(),
                name: "Feedback PT".into(),
                timezone: "America/New_York".into(),
                ie_types: Vec::new(),
                field_map: Default::default(),
            },
            &unique("keyhash"),
        )
        .await
        .unwrap();
    let patient = "P_1 2";
    let record = tendon_contract::patient_record(patient, 1);
    let commit = RecordCommit {
        org: org.clone(),
        records: vec![RecordWrite {
            record,
            expected_version: None,
        }],
        ..Default::default()
    };
    assert_eq!(
        store.commit_records(&commit).await,
        Ok(CommitOutcome::Applied)
    );

    let ses = |kind: &str, body: &str, tags: serde_json::Value| {
        let inner = format!(
            r#"{{"eventType":"{kind}",{body},"mail":{{"messageId":"m","destination":["x@example.com"],"tags":{tags}}}}}"#
        );
        serde_json::json!({"Type": "Notification", "MessageId": "n", "Message": inner}).to_string()
    };
    let tags = serde_json::json!({"tendon_org": [tag_value(&org)], "tendon_patient": [tag_value(patient)]});
    let bodies = [
        ses(
            "Bounce",
            r#""bounce":{"bounceType":"Transient","bouncedRecipients":[{"emailAddress":"full@example.com"}]}"#,
            tags.clone(),
        ),
        ses(
            "Complaint",
            r#""complaint":{"complainedRecipients":[{"emailAddress":"other@example.com"}]}"#,
            serde_json::json!({}),
        ),
        ses(
            "Bounce",
            r#""bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"Ana.Rivera@Example.com"}]}"#,
            tags.clone(),
        ),
        ses(
            "Complaint",
            r#""complaint":{"complainedRecipients":[{"emailAddress":"ana.rivera@example.com"}]}"#,
            tags,
        ),
        "not json".to_owned(),
    ];
    let event = |bodies: &[String]| {
        let mut e = SqsEvent::default();
        e.records = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("msg-{i}"));
                m.body = Some(b.clone());
                m
            })
            .collect();
        e
    };
    for round in 0..2 {
        let response = tendon_aws::lambda::handle_feedback_batch(&store, event(&bodies)).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "round {round}: nothing to retry"
        );
    }
    assert!(
        store
            .is_suppressed(&org, "ana.rivera@example.com")
            .await
            .unwrap()
    );
    assert!(
        !store.is_suppressed(&org, "full@example.com").await.unwrap(),
        "transient"
    );
    assert!(
        !store
            .is_suppressed(&org, "other@example.com")
            .await
            .unwrap(),
        "not our mail"
    );
    let after = store.load_patient(&org, patient).await.unwrap().unwrap();
    assert!(after.patient.unsubscribed, "the patient is unsubscribed");
}

/// The Lambda functions' HTTP client (Amazon Trust Services roots only) builds
/// its TLS settings and carries requests: a store on it passes a round trip.
#[tokio::test]
async fn the_amazon_only_http_client_carries_requests() {
    let moto = moto::moto();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .http_client(tendon_aws::sdk::amazon_only_http_client())
        .load()
        .await;
    let env = tendon_aws::bootstrap_with(&sdk, &moto::unique_prefix("ats"))
        .await
        .expect("bootstrap through the Amazon-only client");
    let store = tendon_aws::AwsStore::from_config(&sdk, &env);
    let org = tendon_contract::org(&tendon_contract::unique("ATS"));
    store
        .create_org(&org, &tendon_contract::unique("hash"))
        .await
        .expect("a write through the Amazon-only client");
    assert!(store.org_config(&org.id).await.expect("a read").is_some());
}

/// In a Lambda function (`AWS_LAMBDA_FUNCTION_NAME` set) `sdk::config` takes
/// the region and the credentials from the environment and works through the
/// Amazon-only client. The environment is the process's, so the check runs in
/// a child process: this test re-runs itself with the variables set.
#[test]
fn in_lambda_the_sdk_config_comes_from_the_environment() {
    const TEST: &str = "in_lambda_the_sdk_config_comes_from_the_environment";
    if std::env::var_os("TENDON_TEST_LAMBDA_CHILD").is_some() {
        let rt = tokio::runtime::Runtime::new().expect("a runtime");
        rt.block_on(async {
            use aws_sdk_dynamodb::config::ProvideCredentials;
            let sdk = tendon_aws::sdk::config().await;
            assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-2"));
            let creds = sdk
                .credentials_provider()
                .expect("a credentials provider")
                .provide_credentials()
                .await
                .expect("credentials from the environment");
            assert_eq!(creds.access_key_id(), "AKIDLAMBDACHILD");
            let env = tendon_aws::bootstrap_with(&sdk, &moto::unique_prefix("lambda"))
                .await
                .expect("a round trip through the function's client");
            assert!(env.table.contains("lambda"));
        });
        return;
    }
    let moto = moto::moto();
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", TEST, "--test-threads", "1"])
        .env("TENDON_TEST_LAMBDA_CHILD", "1")
        .env("AWS_LAMBDA_FUNCTION_NAME", "tendon-test")
        .env("AWS_REGION", "eu-west-2")
        .env("AWS_ACCESS_KEY_ID", "AKIDLAMBDACHILD")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .output()
        .expect("the child test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
