//! Reliability on the local backend, through the real handlers, store and
//! queues: redelivery, reordering, crashes mid-step and tenant isolation.
use tendon_core::batch::Received;
use tendon_core::model::MessageStatus;
use tendon_core::org::Location;
use tendon_core::ports::{
    ConfigStore, MessageLog, PatientStore, QueueName, SystemClock, WorkQueue,
};
use tendon_core::processing::run_step;
use tendon_local::{LocalQueue, VISIBILITY, drain, process_batch_at};
use tendon_local::{SqliteStore, now_ms};
use tendon_testkit::acme::{self, KEY, WORKED};
use tendon_testkit::{poison_message, post, try_post};

async fn setup() -> LocalQueue {
    setup_with(SqliteStore::open_in_memory().unwrap()).await
}

async fn setup_with(store: SqliteStore) -> LocalQueue {
    acme::setup(&store).await;
    LocalQueue::new(store)
}

/// `POST /hl7` of `body` with ACME01's key: the ACK.
async fn post_acme(q: &LocalQueue, body: &str) -> String {
    post(q.store(), q, KEY, body).await
}

/// What a worker receiving from the patients queue at `now_ms` gets: the
/// stored ACME01 message's one record.
async fn receive_one_patient_record(q: &LocalQueue, now_ms: i64) -> Received {
    let batch = q
        .store()
        .receive(QueueName::Patients, 10, VISIBILITY, now_ms)
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    batch.into_iter().next().unwrap()
}

/// ACME01's message `id` as stored.
async fn stored(q: &LocalQueue, id: &str) -> tendon_core::model::StoredMessage {
    q.store().get_message("ACME01", id).await.unwrap().unwrap()
}

/// Drops the fields that record wall-clock time, which differ between runs.
fn without_clock(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("created_at");
            map.values_mut().for_each(without_clock);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_clock),
        _ => {}
    }
}

/// The observable state: the patient record (without version) and the event log.
async fn state(q: &LocalQueue) -> (serde_json::Value, Vec<String>) {
    let rec = acme::patient(q.store(), "P555").await;
    let mut v = serde_json::to_value(&rec).unwrap();
    v.as_object_mut().unwrap().remove("version");
    without_clock(&mut v);
    let events = q
        .store()
        .list_events("ACME01")
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            format!(
                "{}:{}",
                e.kind.as_str(),
                e.appointment_id.or(e.case_id).unwrap_or_default()
            )
        })
        .collect();
    (v, events)
}

#[tokio::test]
async fn a_message_delivered_three_times_gives_the_state_of_one() {
    let once = setup().await;
    post(once.store(), &once, KEY, WORKED).await;
    drain(&once).await.unwrap();
    let expected = state(&once).await;
    assert_eq!(expected.1.len(), 4);

    // Three posts (gateway retries) and three queue deliveries of the same pointer.
    let thrice = setup().await;
    for _ in 0..3 {
        post(thrice.store(), &thrice, KEY, WORKED).await;
    }
    let msg = thrice
        .store()
        .list_messages("ACME01", None)
        .await
        .unwrap()
        .remove(0);
    let item = tendon_core::ports::WorkItem {
        org: "ACME01".into(),
        message_id: msg.id.clone(),
        patient_id: msg.patient_id.clone(),
    };
    for n in 0..3 {
        thrice
            .send(
                QueueName::Patients,
                "ACME01#P555",
                &format!("redelivery-{n}"),
                &item,
            )
            .await
            .unwrap();
        thrice
            .send(
                QueueName::Episodes,
                "ACME01#P555",
                &format!("redelivery-e{n}"),
                &item,
            )
            .await
            .unwrap();
    }
    drain(&thrice).await.unwrap();
    assert_eq!(state(&thrice).await, expected);
    assert_eq!(
        thrice
            .store()
            .list_messages("ACME01", None)
            .await
            .unwrap()
            .len(),
        1
    );
}

fn at(msg: &str, control: &str, msh7: &str) -> String {
    msg.replace("MSG00042", control)
        .replace("20261120093000-0800", msh7)
}

#[tokio::test]
async fn out_of_order_updates_do_not_overwrite_newer_state() {
    let q = setup().await;
    post_acme(&q, &at(WORKED, "C1", "20261120090000-0800")).await;
    let arrived = WORKED
        .replace("SIU^S12^SIU_S12", "SIU^S14")
        .replace("||Booked", "||Arrived");
    let moved = WORKED
        .replace("SIU^S12^SIU_S12", "SIU^S13")
        .replace("^^45^202612011000", "^^45^202612051000");
    // The newer arrival lands before the older reschedule.
    post_acme(&q, &at(&arrived, "C3", "20261201100000-0800")).await;
    post_acme(&q, &at(&moved, "C2", "20261125090000-0800")).await;
    let a08 = |control: &str, msh7: &str, family: &str| {
        format!(
            "MSH|^~\\&|EMR|ACME01|||{msh7}||ADT^A08|{control}|P|2.5.1\rPID|1||P555^^^^MR||{family}^Ana||19850312|F\r"
        )
    };
    post_acme(&q, &a08("A2", "20261210000000-0800", "Newer")).await;
    post_acme(&q, &a08("A1", "20261209000000-0800", "Older")).await;
    drain(&q).await.unwrap();
    let rec = acme::patient(q.store(), "P555").await;
    let appt = rec.appointment("A9001").unwrap();
    assert_eq!(appt.status, tendon_core::AppointmentStatus::Arrived);
    assert_eq!(
        appt.start.as_deref(),
        Some("2026-12-01T10:00:00-08:00"),
        "the stale reschedule is not applied"
    );
    assert_eq!(rec.patient.last_name, "Newer");
    let statuses: Vec<_> = acme::messages(q.store())
        .await
        .iter()
        .map(|m| m.status)
        .collect();
    assert!(
        statuses.iter().all(|s| *s == MessageStatus::Processed),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_worker_that_dies_after_its_writes_leaves_no_duplicate_and_no_loss() {
    let q = setup().await;
    post_acme(&q, WORKED).await;
    let t0 = now_ms();
    // The worker receives the record and commits the patient step, then dies
    // before deleting it from the queue (and, as far as we know, before queueing
    // the episode step).
    let record = receive_one_patient_record(&q, t0).await;
    run_step(
        q.store(),
        q.store(),
        &SystemClock,
        QueueName::Patients,
        &record.item,
    )
    .await
    .unwrap();
    // Nothing more happens until the visibility timeout expires...
    assert_eq!(
        process_batch_at(&q, QueueName::Patients, t0 + 1_000)
            .await
            .unwrap(),
        0
    );
    // ...then the record is redelivered and the pipeline finishes exactly once.
    let later = t0 + VISIBILITY.as_millis() as i64 + 1;
    assert_eq!(
        process_batch_at(&q, QueueName::Patients, later)
            .await
            .unwrap(),
        1
    );
    while process_batch_at(&q, QueueName::Episodes, later)
        .await
        .unwrap()
        > 0
    {}
    let (rec, events) = state(&q).await;
    assert_eq!(rec["episodes"].as_array().unwrap().len(), 2);
    assert_eq!(rec["appointments"].as_array().unwrap().len(), 1);
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(
        q.store().list_messages("ACME01", None).await.unwrap()[0].status,
        MessageStatus::Processed
    );
    assert_eq!(q.store().queue_len(QueueName::Patients).await.unwrap(), 0);
}

#[tokio::test]
async fn one_orgs_key_never_writes_into_another_org() {
    let q = setup().await;
    let other = acme::clinic("OTHER9", "Other", "America/New_York");
    acme::configure(q.store(), &other, "tdn_other_key").await;

    // ACME01's key with a message that claims to be from OTHER9.
    let ack = post_acme(&q, &WORKED.replace("|ACME01|", "|OTHER9|")).await;
    assert!(
        ack.contains("MSA|AR|") && ack.contains("account_mismatch"),
        "{ack:?}"
    );
    // Without MSH-4 the tenant is the key's org, never the message's.
    post_acme(
        &q,
        &WORKED.replace("|ACME01|", "||").replace("MSG00042", "M2"),
    )
    .await;
    drain(&q).await.unwrap();
    assert!(
        q.store()
            .list_messages("OTHER9", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(q.store().list_patients("OTHER9").await.unwrap().is_empty());
    assert_eq!(q.store().list_patients("ACME01").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_poison_message_lands_in_the_dlq_and_can_be_redriven() {
    let q = setup().await;
    // A stored message whose org configuration is gone: every attempt fails
    // with an infrastructure error, never with a recorded outcome.
    q.store().insert_message(&poison_message()).await.unwrap();
    let item = tendon_core::ports::WorkItem {
        org: "GHOST1".into(),
        message_id: "poison-1".into(),
        patient_id: None,
    };
    q.send(QueueName::Patients, "GHOST1#P555", "poison-1", &item)
        .await
        .unwrap();
    let mut t = now_ms();
    let max = q.store().max_receive_count();
    for _ in 0..max {
        assert_eq!(
            process_batch_at(&q, QueueName::Patients, t).await.unwrap(),
            1
        );
        t += VISIBILITY.as_millis() as i64 + 1;
    }
    // The next receive moves it to the dead-letter queue instead of delivering it.
    assert_eq!(
        process_batch_at(&q, QueueName::Patients, t).await.unwrap(),
        0
    );
    let dead = q.store().dead_letters(QueueName::Patients).await.unwrap();
    assert_eq!(dead, vec![(item.clone(), max)]);
    // ... and `messages list` shows it: failed, with the dead_letter code.
    let listed = q
        .store()
        .list_messages("GHOST1", Some(MessageStatus::Failed))
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the dead-lettered message is listed as failed"
    );
    assert_eq!(listed[0].errors.len(), 1);
    assert_eq!(listed[0].errors[0].code, tendon_core::ErrorCode::DeadLetter);
    assert!(listed[0].errors[0].message.contains("dead-letter queue"));

    // The operator fixes the cause and redrives: the message is processed once.
    let org = acme::clinic("GHOST1", "Ghost", "America/Los_Angeles");
    acme::configure(q.store(), &org, "tdn_ghost").await;
    assert_eq!(q.store().redrive(QueueName::Patients).await.unwrap(), 1);
    drain(&q).await.unwrap();
    assert_eq!(
        q.store()
            .get_message("GHOST1", "poison-1")
            .await
            .unwrap()
            .unwrap()
            .status,
        MessageStatus::Processed
    );
    assert_eq!(q.store().list_patients("GHOST1").await.unwrap().len(), 1);
    assert!(
        q.store()
            .dead_letters(QueueName::Patients)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A queue whose sends all fail: the process dies right after a step's commit.
struct DeadQueue;

impl WorkQueue for DeadQueue {
    async fn send(
        &self,
        _: QueueName,
        _: &str,
        _: &str,
        _: &tendon_core::ports::WorkItem,
    ) -> tendon_core::ports::StoreResult<()> {
        Err(tendon_core::ports::StoreError::backend_detail(
            "the process died",
        ))
    }
}

#[tokio::test]
async fn a_parked_adt_is_applied_once_its_patient_exists_even_across_a_crash() {
    let q = setup().await;
    // An A08 for P555 before any IE: parked as pending, not failed.
    let a08 = "MSH|^~\\&|EMRGATE|ACME01|TENDON|TENDON|20261120100000-0800||ADT^A08^ADT_A01|MSG-A08-1|P|2.5.1\r\
               EVN|A08|20261120100000\r\
               PID|1||P555^^^ACME^MR||Rivera^Ana^M||19850312|F|||||^NET^Internet^ana.new@example.com\r\
               PV1|1|O\r";
    assert!(post_acme(&q, a08).await.contains("MSA|AA|MSG-A08-1"));
    drain(&q).await.unwrap();
    let pending = q
        .store()
        .list_messages("ACME01", Some(MessageStatus::Pending))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        q.store().pending_messages("ACME01", "P555").await.unwrap(),
        [pending[0].id.clone()]
    );

    // The IE creates P555, and the worker dies after the commit, before it
    // queues anything (the episode step, the parked A08).
    post_acme(&q, WORKED).await;
    let t0 = now_ms();
    let record = receive_one_patient_record(&q, t0).await;
    assert!(
        run_step(
            q.store(),
            &DeadQueue,
            &SystemClock,
            QueueName::Patients,
            &record.item
        )
        .await
        .is_err()
    );
    assert!(
        q.store()
            .load_patient("ACME01", "P555")
            .await
            .unwrap()
            .is_some()
    );

    // Redelivered after the visibility timeout: the rest happens, once.
    let later = t0 + VISIBILITY.as_millis() as i64 + 1;
    while process_batch_at(&q, QueueName::Patients, later)
        .await
        .unwrap()
        + process_batch_at(&q, QueueName::Episodes, later)
            .await
            .unwrap()
        > 0
    {}
    drain(&q).await.unwrap();
    let statuses: Vec<_> = acme::messages(q.store())
        .await
        .iter()
        .map(|m| (m.control_id.clone().unwrap(), m.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("MSG-A08-1".to_owned(), MessageStatus::Processed),
            ("MSG00042".to_owned(), MessageStatus::Processed)
        ]
    );
    let rec = acme::patient(q.store(), "P555").await;
    assert_eq!(
        rec.patient.email.as_deref(),
        Some("ana.new@example.com"),
        "the A08 (newer by MSH-7 than the SIU) applies"
    );
    assert_eq!(rec.episodes.len(), 2);
    assert!(
        q.store()
            .pending_messages("ACME01", "P555")
            .await
            .unwrap()
            .is_empty()
    );
    let (_, events) = state(&q).await;
    assert_eq!(events.len(), 4, "{events:?}");
}

/// Storing a message and queueing its pointer are one transaction: when the
/// queue cannot take the pointer (a trigger fails the insert, as a full disk
/// fails a write), the message is not stored either, and the sender gets no
/// ACK. Its resend is stored, queued and processed once.
#[tokio::test]
async fn a_message_is_stored_and_queued_together_or_not_at_all() {
    let dir = std::env::temp_dir().join(format!("tendon-intake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("intake.db");
    let _ = std::fs::remove_file(&db);
    let q = setup_with(SqliteStore::open(&db).unwrap()).await;
    let other = rusqlite::Connection::open(&db).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER queue_full BEFORE INSERT ON queue BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
        )
        .unwrap();
    let failed = try_post(q.store(), &q, KEY, WORKED).await;
    assert!(failed.is_err(), "no ACK without the queue: {failed:?}");
    assert_eq!(
        q.store().list_messages("ACME01", None).await.unwrap(),
        [],
        "the message was not stored without its pointer"
    );

    other.execute_batch("DROP TRIGGER queue_full;").unwrap();
    assert!(post_acme(&q, WORKED).await.contains("MSA|AA|MSG00042"));
    drain(&q).await.unwrap();
    let messages = q.store().list_messages("ACME01", None).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].status, MessageStatus::Processed);
    assert!(messages[0].queued && messages[0].acknowledged);
    assert_eq!(q.store().list_patients("ACME01").await.unwrap().len(), 1);
    drop(q);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A replay cut short between resetting the message and queueing it leaves the
/// message `accepted` and unqueued: the sweeper queues it once it is older
/// than `SWEEP_AFTER`, and it is processed once.
#[tokio::test]
async fn a_replay_cut_short_before_queueing_is_swept() {
    use tendon_core::intake::{SWEEP_AFTER, sweep_unqueued};
    let q = setup().await;
    let unknown_clinic = WORKED.replace("|12^^^Salem Clinic|", "|99^^^Elsewhere|");
    assert!(post_acme(&q, &unknown_clinic).await.contains("MSA|AA"));
    drain(&q).await.unwrap();
    let failed = q.store().list_messages("ACME01", None).await.unwrap();
    assert_eq!(failed[0].status, MessageStatus::Failed);
    q.store()
        .put_location(
            "ACME01",
            &Location {
                id: "99".into(),
                name: "Elsewhere".into(),
                timezone: None,
            },
        )
        .await
        .unwrap();
    // The replay's first step, and then the process dies.
    q.store()
        .reset_message("ACME01", &failed[0].id)
        .await
        .unwrap();
    drain(&q).await.unwrap();
    let stuck = stored(&q, &failed[0].id).await;
    assert_eq!(
        (stuck.status, stuck.queued),
        (MessageStatus::Accepted, false)
    );

    let now = jiff::Timestamp::now();
    assert_eq!(sweep_unqueued(&q, now).await, Ok(0), "too recent to sweep");
    let later = now + SWEEP_AFTER + jiff::SignedDuration::from_secs(1);
    assert_eq!(sweep_unqueued(&q, later).await, Ok(1));
    assert_eq!(sweep_unqueued(&q, later).await, Ok(0), "queued once");
    drain(&q).await.unwrap();
    let done = stored(&q, &failed[0].id).await;
    assert_eq!((done.status, done.queued), (MessageStatus::Processed, true));
    let patients = q.store().list_patients("ACME01").await.unwrap();
    assert_eq!(patients.len(), 1);
    let created = q
        .store()
        .list_events("ACME01")
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == tendon_core::model::EventKind::PatientCreated)
        .count();
    assert_eq!(created, 1);
}

/// A request that got no answer (the server timed out or failed after the
/// store) marks its message as never acknowledged; the sender's resend is a
/// duplicate that acknowledges it, with no further effect.
#[tokio::test]
async fn an_unanswered_message_is_marked_until_its_resend() {
    use tendon_core::intake::unanswered;
    let q = setup().await;
    let auth = format!("Bearer {KEY}");
    assert!(post_acme(&q, WORKED).await.contains("MSA|AA"));
    unanswered(q.store(), &q, Some(&auth), WORKED.as_bytes())
        .await
        .unwrap();
    drain(&q).await.unwrap();
    let m = &q.store().list_messages("ACME01", None).await.unwrap()[0];
    assert_eq!(
        (m.status, m.acknowledged),
        (MessageStatus::Processed, false)
    );
    let events = q.store().list_events("ACME01").await.unwrap();
    assert!(post_acme(&q, WORKED).await.contains("MSA|AA|MSG00042"));
    drain(&q).await.unwrap();
    let m = &q.store().list_messages("ACME01", None).await.unwrap()[0];
    assert_eq!((m.status, m.acknowledged), (MessageStatus::Processed, true));
    assert_eq!(q.store().list_events("ACME01").await.unwrap(), events);
    // A body that was never stored, or a bad key: nothing to mark.
    unanswered(
        q.store(),
        &q,
        Some(&auth),
        b"MSH|^~\\&|X|ACME01|||||ADT^A08|NEVER|P|2.5.1\r",
    )
    .await
    .unwrap();
    unanswered(q.store(), &q, Some("Bearer nope"), WORKED.as_bytes())
        .await
        .unwrap();
}
