//! The port contract suite: the documented semantics of
//! [`ConfigStore`](crate::ports::ConfigStore), [`MessageLog`](crate::ports::MessageLog),
//! [`PatientStore`](crate::ports::PatientStore), [`StepStore`] and [`WorkQueue`],
//! as executable checks.
//!
//! Every adapter runs the same suite, so the backends cannot drift:
//!
//! ```text
//! #[tokio::test]
//! async fn sqlite_meets_the_port_contract() {
//!     tendon_core::contract::run_all(|| SqliteStore::open_in_memory().unwrap()).await;
//! }
//! ```
//!
//! The suite assumes nothing about the backend beyond the trait docs. Each
//! check works in orgs, keys and messages of its own, with a tag unique to the
//! run, so `make` may hand out fresh stores or clones of one shared store (a
//! DynamoDB table that outlives the test). Built with the `contract-tests`
//! feature only. A failed check panics with a message that says which rule broke.
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{
    Appointment, DomainEvent, Episode, EpisodeStatus, EventKind, MessageStatus, Patient,
    PatientRecord, Source, StoredMessage,
};
use crate::org::{Location, Org, Practitioner};
use crate::ports::{
    Commit, CommitOutcome, HandOff, Inserted, Intake, QueueName, RecordWrite, StepStore,
    StoreError, WorkItem, WorkQueue,
};
use crate::{AppointmentStatus, ErrorCode, FieldMap, FieldName, Gender, Issue};

/// Everything an adapter of the storage ports implements.
pub trait Stores: StepStore + WorkQueue + Intake {}

impl<S: StepStore + WorkQueue + Intake> Stores for S {}

/// Runs every check, each on a store from `make`.
pub async fn run_all<S: Stores>(make: impl Fn() -> S) {
    orgs(&make()).await;
    ingest_keys(&make()).await;
    locations_and_practitioners(&make()).await;
    messages(&make()).await;
    message_listing(&make()).await;
    message_reset(&make()).await;
    commit_applies_once(&make()).await;
    commit_conflicts(&make()).await;
    events(&make()).await;
    patients(&make()).await;
    parked_messages(&make()).await;
    read_step(&make()).await;
    queue_send(&make()).await;
    intake(&make()).await;
}

/// A tag unique to this process and call, so checks never share IDs.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = jiff::Timestamp::now().as_nanosecond();
    format!("{prefix}-{t:x}-{}-{n}", std::process::id())
}

// ---- fixtures: real model structs ----

pub fn org(id: &str) -> Org {
    Org {
        id: id.to_owned(),
        name: "Acme Physical Therapy".to_owned(),
        timezone: "America/Los_Angeles".to_owned(),
        ie_types: vec![
            "Initial Eval".to_owned(),
            "Medicare Initial Eval".to_owned(),
        ],
        field_map: FieldMap::default(),
    }
}

pub fn location(id: &str) -> Location {
    Location {
        id: id.to_owned(),
        name: format!("Clinic {id}"),
        timezone: None,
    }
}

pub fn practitioner(id: &str) -> Practitioner {
    Practitioner {
        id: id.to_owned(),
        first_name: "Chidi".to_owned(),
        last_name: "Okafor".to_owned(),
        npi: Some("1234567893".to_owned()),
        email: None,
    }
}

/// An accepted message whose raw body has CRs, a NUL and bytes that are not UTF-8.
pub fn message(org: &str, id: &str, received_at: &str) -> StoredMessage {
    let mut raw = b"MSH|^~\\&|EMRGATE|".to_vec();
    raw.extend_from_slice(org.as_bytes());
    raw.extend_from_slice(b"|TENDON|TENDON|20261120093000-0800||SIU^S12^SIU_S12|");
    raw.extend_from_slice(id.as_bytes());
    raw.extend_from_slice(b"|P|2.5.1\rPID|1||P555^^^ACME^MR||Rivera^Ana\xE9\x00\r");
    StoredMessage {
        org: org.to_owned(),
        id: id.to_owned(),
        control_id: Some(format!("CTL-{id}")),
        message_type: Some("SIU^S12".to_owned()),
        status: MessageStatus::Accepted,
        errors: Vec::new(),
        received_at: received_at.to_owned(),
        body_hash: format!("hash-of-{id}"),
        patient_id: Some("P555".to_owned()),
        steps_done: Vec::new(),
        replays: 0,
        queued: true,
        acknowledged: true,
        raw,
    }
}

pub fn patient_record(id: &str, version: u64) -> PatientRecord {
    PatientRecord {
        patient: Patient {
            id: id.to_owned(),
            source: Source::Emr,
            first_name: "Ana".to_owned(),
            last_name: "Rivera".to_owned(),
            birth_date: Some("1985-03-12".to_owned()),
            gender: Some(Gender::Female),
            email: Some("ana.rivera@example.com".to_owned()),
            mobile: Some("+15035550101".to_owned()),
            demographics_at: Some("2026-11-20T17:30:00Z".to_owned()),
            created_at: "2026-11-20T17:30:01Z".to_owned(),
            merged_into: None,
            unsubscribed: false,
            text_opt_out: false,
            inactive: None,
            sex_label: None,
        },
        episodes: vec![
            Episode {
                name: "Default".to_owned(),
                default: true,
                case_id: None,
                supervising_practitioner_id: None,
                status: EpisodeStatus::Active,
                created_at: "2026-11-20T17:30:01Z".to_owned(),
            },
            Episode {
                name: "Right Shoulder".to_owned(),
                default: false,
                case_id: Some("C-42".to_owned()),
                supervising_practitioner_id: Some("445566".to_owned()),
                status: EpisodeStatus::Active,
                created_at: "2026-11-20T17:30:01Z".to_owned(),
            },
        ],
        appointments: vec![Appointment {
            id: "A9001".to_owned(),
            appointment_type: Some("Initial Eval".to_owned()),
            start: Some("2026-12-01T10:00:00-08:00".to_owned()),
            status: AppointmentStatus::Scheduled,
            case_id: Some("C-42".to_owned()),
            practitioner_id: Some("445566".to_owned()),
            location_id: Some("12".to_owned()),
            initial_evaluation: true,
            updated_by: Some("2026-11-20T17:30:00Z".to_owned()),
        }],
        version,
    }
}

pub fn event(org: &str, message_id: &str, kind: EventKind, patient: &str) -> DomainEvent {
    DomainEvent {
        id: format!("{message_id}:{}:{patient}", kind.as_str()),
        org: org.to_owned(),
        kind,
        patient_id: patient.to_owned(),
        case_id: Some("C-42".to_owned()),
        appointment_id: None,
        at: "2026-11-20T17:30:01Z".to_owned(),
        message_id: message_id.to_owned(),
    }
}

fn commit(
    org: &str,
    message_id: &str,
    step: &str,
    records: Vec<RecordWrite>,
    events: Vec<DomainEvent>,
) -> Commit {
    Commit {
        org: org.to_owned(),
        message_id: message_id.to_owned(),
        step: step.to_owned(),
        status: MessageStatus::Accepted,
        errors: Vec::new(),
        patient_id: records.first().map(|w| w.record.patient.id.clone()),
        records,
        events,
        park: None,
        unpark: None,
        scheduled: Vec::new(),
        step_updates: Vec::new(),
    }
}

fn new_record(record: PatientRecord) -> RecordWrite {
    RecordWrite {
        record,
        expected_version: None,
    }
}

fn update_record(record: PatientRecord, read_at: u64) -> RecordWrite {
    RecordWrite {
        record,
        expected_version: Some(read_at),
    }
}

fn without_raw(mut m: StoredMessage) -> StoredMessage {
    m.raw = Vec::new();
    m
}

async fn new_org<S: Stores>(store: &S, prefix: &str) -> String {
    let id = unique(prefix);
    store
        .create_org(&org(&id), &unique("keyhash"))
        .await
        .expect("contract: create_org on a new ID succeeds");
    id
}

async fn must_get<S: Stores>(store: &S, org: &str, id: &str) -> StoredMessage {
    store
        .get_message(org, id)
        .await
        .expect("contract: get_message succeeds")
        .expect("contract: the stored message is found")
}

async fn event_ids<S: Stores>(store: &S, org: &str) -> Vec<String> {
    let events = store
        .list_events(org)
        .await
        .expect("contract: list_events succeeds");
    events.into_iter().map(|e| e.id).collect()
}

// ---- ConfigStore ----

/// create_org, its duplicate, update_org, and org_config of an unknown org.
pub async fn orgs<S: Stores>(store: &S) {
    let id = unique("ORG");
    let first_key = unique("keyhash");
    let mut acme = org(&id);
    store
        .create_org(&acme, &first_key)
        .await
        .expect("contract: create_org on a new ID succeeds");

    let config = store
        .org_config(&id)
        .await
        .expect("contract: org_config succeeds")
        .expect("contract: a created org has a config");
    assert_eq!(
        config.org, acme,
        "contract: org_config returns the org as created"
    );
    assert!(
        config.locations.is_empty(),
        "contract: a new org has no locations"
    );
    assert!(
        config.practitioners.is_empty(),
        "contract: a new org has no practitioners"
    );

    let second_key = unique("keyhash");
    let mut other = org(&id);
    other.name = "Someone else".to_owned();
    assert!(
        matches!(
            store.create_org(&other, &second_key).await,
            Err(StoreError::AlreadyExists(_))
        ),
        "contract: create_org on a taken ID is AlreadyExists"
    );
    assert_eq!(
        store
            .org_for_key(&second_key)
            .await
            .expect("contract: org_for_key succeeds"),
        None,
        "contract: a refused create_org registers no key"
    );
    let config = store
        .org_config(&id)
        .await
        .expect("contract: org_config succeeds")
        .expect("org");
    assert_eq!(
        config.org.name, acme.name,
        "contract: a refused create_org changes nothing"
    );

    acme.name = "Acme PT & Rehab".to_owned();
    acme.timezone = "America/Denver".to_owned();
    acme.add_ie_type("Telehealth Initial Eval");
    store
        .update_org(&acme)
        .await
        .expect("contract: update_org on an existing org succeeds");
    let config = store
        .org_config(&id)
        .await
        .expect("contract: org_config succeeds")
        .expect("org");
    assert_eq!(
        config.org, acme,
        "contract: update_org replaces the org's settings"
    );

    let missing = org(&unique("NOORG"));
    assert!(
        matches!(
            store.update_org(&missing).await,
            Err(StoreError::NotFound(_))
        ),
        "contract: update_org on an unknown org is NotFound"
    );
    assert_eq!(
        store
            .org_config(&missing.id)
            .await
            .expect("contract: org_config succeeds"),
        None,
        "contract: update_org on an unknown org does not create it"
    );
}

/// org_for_key and add_ingest_key.
pub async fn ingest_keys<S: Stores>(store: &S) {
    let id = unique("ORG");
    let first_key = unique("keyhash");
    store
        .create_org(&org(&id), &first_key)
        .await
        .expect("contract: create_org succeeds");
    assert_eq!(
        store
            .org_for_key(&first_key)
            .await
            .expect("contract: org_for_key succeeds"),
        Some(id.clone()),
        "contract: the first ingest key leads to its org"
    );
    assert_eq!(
        store
            .org_for_key(&unique("unknown"))
            .await
            .expect("contract: org_for_key succeeds"),
        None,
        "contract: an unknown key hash leads nowhere"
    );

    let second_key = unique("keyhash");
    store
        .add_ingest_key(&id, &second_key)
        .await
        .expect("contract: add_ingest_key on an existing org succeeds");
    assert_eq!(
        store
            .org_for_key(&second_key)
            .await
            .expect("contract: org_for_key succeeds"),
        Some(id.clone()),
        "contract: an added key leads to its org"
    );
    assert_eq!(
        store
            .org_for_key(&first_key)
            .await
            .expect("contract: org_for_key succeeds"),
        Some(id.clone()),
        "contract: adding a key keeps the first one"
    );

    let stray_key = unique("keyhash");
    assert!(
        matches!(
            store.add_ingest_key(&unique("NOORG"), &stray_key).await,
            Err(StoreError::NotFound(_))
        ),
        "contract: add_ingest_key for an unknown org is NotFound"
    );
    assert_eq!(
        store
            .org_for_key(&stray_key)
            .await
            .expect("contract: org_for_key succeeds"),
        None,
        "contract: a refused add_ingest_key registers nothing"
    );

    // Listing and revoking.
    let hashes = |keys: Vec<crate::ports::IngestKey>| -> Vec<String> {
        keys.into_iter().map(|k| k.hash).collect()
    };
    let listed = store
        .ingest_keys(&id)
        .await
        .expect("contract: ingest_keys succeeds");
    assert!(
        listed.iter().all(|k| k.created_at.is_some()),
        "contract: a key is listed with the time it was issued"
    );
    assert_eq!(
        hashes(listed),
        vec![first_key.clone(), second_key.clone()],
        "contract: an org's keys are listed oldest first"
    );
    let other = new_org(store, "ORG").await;
    assert_eq!(
        store.revoke_ingest_key(&other, &first_key).await,
        Err(StoreError::NotFound("ingest key".to_owned())),
        "contract: another org cannot revoke a key"
    );
    assert_eq!(
        store.org_for_key(&first_key).await.expect("org_for_key"),
        Some(id.clone()),
        "contract: a refused revocation leaves the key working"
    );
    store
        .revoke_ingest_key(&id, &first_key)
        .await
        .expect("contract: revoke_ingest_key of the org's key succeeds");
    assert_eq!(
        store.org_for_key(&first_key).await.expect("org_for_key"),
        None,
        "contract: a revoked key leads nowhere"
    );
    assert_eq!(
        hashes(store.ingest_keys(&id).await.expect("ingest_keys")),
        vec![second_key.clone()],
        "contract: a revoked key is no longer listed"
    );
    assert_eq!(
        store.revoke_ingest_key(&id, &first_key).await,
        Err(StoreError::NotFound("ingest key".to_owned())),
        "contract: revoking a revoked key is NotFound"
    );
    assert_eq!(
        store.org_for_key(&second_key).await.expect("org_for_key"),
        Some(id.clone()),
        "contract: revoking one key keeps the others"
    );
    assert!(
        store
            .ingest_keys(&unique("NOORG"))
            .await
            .expect("ingest_keys")
            .is_empty(),
        "contract: an unknown org has no keys"
    );
}

/// put_location and put_practitioner: NotFound, upsert, sorted and per-org reads.
pub async fn locations_and_practitioners<S: Stores>(store: &S) {
    let id = new_org(store, "ORG").await;
    let other = new_org(store, "ORG").await;

    let missing = unique("NOORG");
    assert!(
        matches!(
            store.put_location(&missing, &location("12")).await,
            Err(StoreError::NotFound(_))
        ),
        "contract: put_location for an unknown org is NotFound"
    );
    assert!(
        matches!(
            store
                .put_practitioner(&missing, &practitioner("445566"))
                .await,
            Err(StoreError::NotFound(_))
        ),
        "contract: put_practitioner for an unknown org is NotFound"
    );
    assert_eq!(
        store
            .org_config(&missing)
            .await
            .expect("contract: org_config succeeds"),
        None,
        "contract: a refused put creates no org"
    );

    for loc in ["b", "12", "9", "a"] {
        store
            .put_location(&id, &location(loc))
            .await
            .expect("contract: put_location succeeds");
    }
    let mut salem = location("12");
    salem.name = "Salem Clinic".to_owned();
    salem.timezone = Some("America/Los_Angeles".to_owned());
    store
        .put_location(&id, &salem)
        .await
        .expect("contract: put_location replaces");
    store
        .put_location(&other, &location("other-only"))
        .await
        .expect("contract: put_location succeeds");

    for p in ["778899", "445566"] {
        store
            .put_practitioner(&id, &practitioner(p))
            .await
            .expect("contract: put_practitioner succeeds");
    }
    let mut chidi = practitioner("445566");
    chidi.email = Some("chidi@example.com".to_owned());
    chidi.npi = None;
    store
        .put_practitioner(&id, &chidi)
        .await
        .expect("contract: put_practitioner replaces");

    let config = store
        .org_config(&id)
        .await
        .expect("contract: org_config succeeds")
        .expect("org");
    let loc_ids: Vec<&str> = config.locations.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        loc_ids,
        ["12", "9", "a", "b"],
        "contract: locations are the org's own, once each, sorted by ID"
    );
    assert_eq!(
        config.location("12"),
        Some(&salem),
        "contract: put_location replaces a location with the same ID"
    );
    assert_eq!(
        config.practitioners,
        vec![chidi, practitioner("778899")],
        "contract: practitioners are upserted and sorted by ID"
    );

    let config = store
        .org_config(&other)
        .await
        .expect("contract: org_config succeeds")
        .expect("org");
    assert_eq!(
        config.locations,
        vec![location("other-only")],
        "contract: orgs do not share locations"
    );
    assert!(
        config.practitioners.is_empty(),
        "contract: orgs do not share practitioners"
    );
}

// ---- MessageLog ----

/// insert_message (new, duplicate, same ID in another org) and get_message.
pub async fn messages<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let other = new_org(store, "ORG").await;
    let msg_id = unique("msg");

    let mut first = message(&org_id, &msg_id, "2026-11-20T17:30:00Z");
    first.errors = vec![Issue::new(
        ErrorCode::MissingField,
        Some(FieldName::PatientEmail),
        "PID-13 has no email",
    )];
    first.status = MessageStatus::Failed;
    assert_eq!(
        store
            .insert_message(&first)
            .await
            .expect("contract: insert_message succeeds"),
        Inserted::New,
        "contract: a message with a new (org, id) is inserted"
    );
    assert_eq!(
        must_get(store, &org_id, &msg_id).await,
        first,
        "contract: get_message returns the message as stored, raw bytes included"
    );

    let mut retry = message(&org_id, &msg_id, "2026-11-20T17:31:00Z");
    retry.raw.extend_from_slice(b"ZZZ|different body\r");
    retry.body_hash = "another-hash".to_owned();
    assert_eq!(
        store
            .insert_message(&retry)
            .await
            .expect("contract: insert_message succeeds"),
        Inserted::Existing(first.clone()),
        "contract: inserting an existing (org, id) returns the stored message, raw included"
    );
    assert_eq!(
        must_get(store, &org_id, &msg_id).await,
        first,
        "contract: a duplicate insert changes nothing"
    );

    let elsewhere = message(&other, &msg_id, "2026-11-20T17:30:00Z");
    assert_eq!(
        store
            .insert_message(&elsewhere)
            .await
            .expect("contract: insert_message succeeds"),
        Inserted::New,
        "contract: message identity is (org, id): the same ID in another org is new"
    );
    assert_eq!(
        must_get(store, &other, &msg_id).await,
        elsewhere,
        "contract: orgs do not share messages"
    );

    assert_eq!(
        store
            .get_message(&org_id, &unique("msg"))
            .await
            .expect("contract: get_message succeeds"),
        None,
        "contract: get_message of an unknown ID is None"
    );
}

/// list_messages: oldest first, the status filter, per org.
pub async fn message_listing<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let other = new_org(store, "ORG").await;
    let mut rejected = message(&org_id, &unique("m"), "2026-11-20T17:30:02Z");
    rejected.status = MessageStatus::Rejected;
    rejected.errors = vec![Issue::new(ErrorCode::InvalidHl7, None, "not HL7")];
    let newest = message(&org_id, &unique("m"), "2026-11-20T17:30:03Z");
    let oldest = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    let mut failed = message(&org_id, &unique("m"), "2026-11-20T17:30:01Z");
    failed.status = MessageStatus::Failed;
    for m in [&rejected, &newest, &oldest, &failed] {
        assert_eq!(
            store
                .insert_message(m)
                .await
                .expect("contract: insert_message succeeds"),
            Inserted::New
        );
    }
    store
        .insert_message(&message(&other, &unique("m"), "2026-11-20T17:29:00Z"))
        .await
        .expect("contract: insert_message succeeds");

    let all = store
        .list_messages(&org_id, None)
        .await
        .expect("contract: list_messages succeeds");
    let ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [&oldest.id, &failed.id, &rejected.id, &newest.id],
        "contract: list_messages returns the org's messages oldest first"
    );
    let all: Vec<StoredMessage> = all.into_iter().map(without_raw).collect();
    assert_eq!(
        all[2],
        without_raw(rejected.clone()),
        "contract: listed messages carry their fields (raw may be omitted)"
    );

    let only_failed = store
        .list_messages(&org_id, Some(MessageStatus::Failed))
        .await
        .expect("contract: list_messages succeeds");
    assert_eq!(
        only_failed.into_iter().map(without_raw).collect::<Vec<_>>(),
        vec![without_raw(failed)],
        "contract: list_messages filters by status"
    );
    let accepted = store
        .list_messages(&org_id, Some(MessageStatus::Accepted))
        .await
        .expect("contract: list_messages succeeds");
    let ids: Vec<&str> = accepted.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [&oldest.id, &newest.id],
        "contract: the status filter keeps the order"
    );
    assert!(
        store
            .list_messages(&org_id, Some(MessageStatus::Pending))
            .await
            .expect("contract: list_messages succeeds")
            .is_empty(),
        "contract: no message has a status none was given"
    );
    assert!(
        store
            .list_messages(&unique("NOORG"), None)
            .await
            .expect("contract: list_messages succeeds")
            .is_empty(),
        "contract: an unknown org has no messages"
    );
}

/// reset_message after a commit, and for an unknown message.
pub async fn message_reset<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let stored = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    store
        .insert_message(&stored)
        .await
        .expect("contract: insert_message succeeds");
    let mut done = commit(&org_id, &stored.id, "patient", Vec::new(), Vec::new());
    done.status = MessageStatus::Failed;
    done.errors = vec![Issue::new(
        ErrorCode::UnknownPractitioner,
        Some(FieldName::TreatingTherapistId),
        "not configured",
    )];
    assert_eq!(
        store.commit(&done).await,
        Ok(CommitOutcome::Applied),
        "contract: a first commit is applied"
    );
    let failed = must_get(store, &org_id, &stored.id).await;
    assert_eq!(
        failed.status,
        MessageStatus::Failed,
        "contract: commit sets the message status"
    );
    assert_eq!(
        failed.errors, done.errors,
        "contract: commit records the errors"
    );
    assert_eq!(
        failed.steps_done,
        ["patient"],
        "contract: commit records the step"
    );

    store
        .reset_message(&org_id, &stored.id)
        .await
        .expect("contract: reset_message of a stored message succeeds");
    assert_eq!(
        must_get(store, &org_id, &stored.id).await,
        StoredMessage {
            replays: stored.replays + 1,
            queued: false,
            ..stored.clone()
        },
        "contract: reset_message sets accepted, no errors, no steps, unqueued, counts the replay, and keeps everything else"
    );
    assert_eq!(
        store.commit(&done).await,
        Ok(CommitOutcome::Applied),
        "contract: after a reset the same step applies again"
    );

    assert!(
        matches!(
            store.reset_message(&org_id, &unique("m")).await,
            Err(StoreError::NotFound(_))
        ),
        "contract: reset_message of an unknown message is NotFound"
    );
    assert_eq!(
        store
            .list_messages(&org_id, None)
            .await
            .expect("contract: list_messages succeeds")
            .len(),
        1,
        "contract: reset_message of an unknown message creates nothing"
    );
}

// ---- PatientStore ----

/// commit: Applied writes records, events and message state; the same commit
/// twice is AlreadyApplied and writes once.
pub async fn commit_applies_once<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let m = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    store
        .insert_message(&m)
        .await
        .expect("contract: insert_message succeeds");

    let v1 = patient_record("P555", 1);
    let events = vec![
        event(&org_id, &m.id, EventKind::PatientCreated, "P555"),
        event(&org_id, &m.id, EventKind::EpisodeCreated, "P555"),
    ];
    let mut first = commit(
        &org_id,
        &m.id,
        "patient",
        vec![new_record(v1.clone())],
        events.clone(),
    );
    first.patient_id = Some("P555-resolved".to_owned());
    assert_eq!(
        store.commit(&first).await,
        Ok(CommitOutcome::Applied),
        "contract: a first commit is applied"
    );
    assert_eq!(
        store
            .load_patient(&org_id, "P555")
            .await
            .expect("contract: load_patient succeeds"),
        Some(v1.clone()),
        "contract: an applied commit writes its records"
    );
    assert_eq!(
        store
            .list_events(&org_id)
            .await
            .expect("contract: list_events succeeds"),
        events,
        "contract: an applied commit records its events, in order"
    );
    let after = must_get(store, &org_id, &m.id).await;
    assert_eq!(
        after.steps_done,
        ["patient"],
        "contract: an applied commit records its step"
    );
    assert_eq!(
        after.patient_id.as_deref(),
        Some("P555-resolved"),
        "contract: commit sets the message's patient ID"
    );
    assert_eq!(
        after.status,
        MessageStatus::Accepted,
        "contract: commit sets the message status"
    );
    assert_eq!(after.raw, m.raw, "contract: commit keeps the raw message");

    assert_eq!(
        store.commit(&first).await,
        Ok(CommitOutcome::AlreadyApplied),
        "contract: a commit whose step is done is AlreadyApplied"
    );
    let mut replayed = first.clone();
    replayed.status = MessageStatus::Failed;
    replayed.events.push(event(
        &org_id,
        &m.id,
        EventKind::AppointmentScheduled,
        "P555",
    ));
    replayed.records = vec![new_record(patient_record("P556", 1))];
    assert_eq!(
        store.commit(&replayed).await,
        Ok(CommitOutcome::AlreadyApplied),
        "contract: the step guard wins whatever else the commit holds"
    );
    assert_eq!(
        store.list_events(&org_id).await.expect("list_events"),
        events,
        "contract: the same commit twice writes events once"
    );
    assert_eq!(
        store
            .load_patient(&org_id, "P556")
            .await
            .expect("contract: load_patient succeeds"),
        None,
        "contract: an AlreadyApplied commit writes no records"
    );
    let again = must_get(store, &org_id, &m.id).await;
    assert_eq!(
        again, after,
        "contract: an AlreadyApplied commit leaves the message as it was"
    );

    // The next step updates the record at the version it read.
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.appointments[0].status = AppointmentStatus::Arrived;
    let mut second = commit(
        &org_id,
        &m.id,
        "episode",
        vec![update_record(v2.clone(), 1)],
        Vec::new(),
    );
    second.status = MessageStatus::Processed;
    second.patient_id = None;
    assert_eq!(
        store.commit(&second).await,
        Ok(CommitOutcome::Applied),
        "contract: an update at the read version is applied"
    );
    assert_eq!(
        store
            .load_patient(&org_id, "P555")
            .await
            .expect("contract: load_patient succeeds"),
        Some(v2),
        "contract: an applied update replaces the record"
    );
    let done = must_get(store, &org_id, &m.id).await;
    assert_eq!(
        done.steps_done,
        ["patient", "episode"],
        "contract: steps accumulate in order"
    );
    assert_eq!(
        done.status,
        MessageStatus::Processed,
        "contract: commit sets the message status"
    );
    assert_eq!(
        done.patient_id.as_deref(),
        Some("P555-resolved"),
        "contract: a commit without a patient ID keeps the message's one"
    );
}

/// commit conflicts: a stale version, an insert of an existing record, and
/// atomicity (a conflict writes nothing at all).
pub async fn commit_conflicts<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let a = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    let b = message(&org_id, &unique("m"), "2026-11-20T17:30:01Z");
    for m in [&a, &b] {
        store
            .insert_message(m)
            .await
            .expect("contract: insert_message succeeds");
    }
    let v1 = patient_record("P555", 1);
    let created = commit(
        &org_id,
        &a.id,
        "patient",
        vec![new_record(v1.clone())],
        vec![event(&org_id, &a.id, EventKind::PatientCreated, "P555")],
    );
    assert_eq!(store.commit(&created).await, Ok(CommitOutcome::Applied));
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.patient.email = Some("ana@example.org".to_owned());
    assert_eq!(
        store
            .commit(&commit(
                &org_id,
                &a.id,
                "episode",
                vec![update_record(v2.clone(), 1)],
                Vec::new()
            ))
            .await,
        Ok(CommitOutcome::Applied)
    );
    let b_before = must_get(store, &org_id, &b.id).await;
    let events_before = event_ids(store, &org_id).await;

    // b read the record at version 1, before a's update.
    let mut stale = v1.clone();
    stale.version = 2;
    stale.patient.first_name = "Anna".to_owned();
    let mut lost = commit(
        &org_id,
        &b.id,
        "patient",
        vec![update_record(stale, 1)],
        vec![event(
            &org_id,
            &b.id,
            EventKind::AppointmentScheduled,
            "P555",
        )],
    );
    lost.status = MessageStatus::Processed;
    assert_eq!(
        store.commit(&lost).await,
        Ok(CommitOutcome::Conflict),
        "contract: an update at a stale version is a Conflict"
    );

    let mut duplicate = patient_record("P555", 1);
    duplicate.patient.last_name = "Duplicate".to_owned();
    let racing = commit(
        &org_id,
        &b.id,
        "patient",
        vec![new_record(duplicate)],
        Vec::new(),
    );
    assert_eq!(
        store.commit(&racing).await,
        Ok(CommitOutcome::Conflict),
        "contract: inserting a record that exists is a Conflict"
    );

    let update_missing = commit(
        &org_id,
        &b.id,
        "patient",
        vec![update_record(patient_record("P404", 2), 1)],
        Vec::new(),
    );
    assert_eq!(
        store.commit(&update_missing).await,
        Ok(CommitOutcome::Conflict),
        "contract: updating a record that does not exist is a Conflict"
    );

    // Two records, the second stale: the first must not be written either.
    let half = commit(
        &org_id,
        &b.id,
        "patient",
        vec![
            new_record(patient_record("P777", 1)),
            update_record(patient_record("P555", 2), 1),
        ],
        vec![event(&org_id, &b.id, EventKind::PatientCreated, "P777")],
    );
    assert_eq!(
        store.commit(&half).await,
        Ok(CommitOutcome::Conflict),
        "contract: one stale record makes the commit a Conflict"
    );

    assert_eq!(
        store
            .load_patient(&org_id, "P555")
            .await
            .expect("contract: load_patient succeeds"),
        Some(v2.clone()),
        "contract: a Conflict leaves the record as it was"
    );
    assert_eq!(
        store
            .load_patient(&org_id, "P777")
            .await
            .expect("contract: load_patient succeeds"),
        None,
        "contract: a Conflict writes none of the commit's records"
    );
    assert_eq!(
        store
            .load_patient(&org_id, "P404")
            .await
            .expect("contract: load_patient succeeds"),
        None,
        "contract: a Conflict creates nothing"
    );
    assert_eq!(
        event_ids(store, &org_id).await,
        events_before,
        "contract: a Conflict records no events"
    );
    assert_eq!(
        must_get(store, &org_id, &b.id).await,
        b_before,
        "contract: a Conflict leaves the message as it was"
    );

    // Reloaded at the current version, b's step applies.
    let mut v3 = v2.clone();
    v3.version = 3;
    v3.patient.first_name = "Anna".to_owned();
    assert_eq!(
        store
            .commit(&commit(
                &org_id,
                &b.id,
                "patient",
                vec![update_record(v3.clone(), 2)],
                Vec::new()
            ))
            .await,
        Ok(CommitOutcome::Applied),
        "contract: after a Conflict, a commit at the current version applies"
    );
    assert_eq!(
        store
            .load_patient(&org_id, "P555")
            .await
            .expect("load_patient"),
        Some(v3)
    );
}

/// Events: idempotent by ID, in order, per org.
pub async fn events<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let other = new_org(store, "ORG").await;
    let a = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    let b = message(&org_id, &unique("m"), "2026-11-20T17:30:01Z");
    let c = message(&other, &unique("m"), "2026-11-20T17:30:02Z");
    for m in [&a, &b, &c] {
        store
            .insert_message(m)
            .await
            .expect("contract: insert_message succeeds");
    }
    let e1 = event(&org_id, &a.id, EventKind::PatientCreated, "P1");
    let e2 = event(&org_id, &a.id, EventKind::EpisodeCreated, "P1");
    let e3 = event(&org_id, &b.id, EventKind::AppointmentScheduled, "P1");
    let mut e1_again = e1.clone();
    e1_again.at = "2026-11-20T18:00:00Z".to_owned();
    e1_again.message_id = b.id.clone();

    assert_eq!(
        store
            .commit(&commit(
                &org_id,
                &a.id,
                "patient",
                Vec::new(),
                vec![e1.clone(), e2.clone()]
            ))
            .await,
        Ok(CommitOutcome::Applied)
    );
    assert_eq!(
        store
            .commit(&commit(
                &org_id,
                &b.id,
                "patient",
                Vec::new(),
                vec![e1_again, e3.clone()]
            ))
            .await,
        Ok(CommitOutcome::Applied),
        "contract: a commit with an event already recorded still applies"
    );
    assert_eq!(
        store
            .list_events(&org_id)
            .await
            .expect("contract: list_events succeeds"),
        vec![e1, e2, e3],
        "contract: an event ID is recorded once (the first write stays), in the order written"
    );
    let foreign = event(&other, &c.id, EventKind::PatientCreated, "P1");
    assert_eq!(
        store
            .commit(&commit(
                &other,
                &c.id,
                "patient",
                Vec::new(),
                vec![foreign.clone()]
            ))
            .await,
        Ok(CommitOutcome::Applied)
    );
    assert_eq!(
        store
            .list_events(&other)
            .await
            .expect("contract: list_events succeeds"),
        vec![foreign],
        "contract: orgs do not share events"
    );
    assert!(
        store
            .list_events(&unique("NOORG"))
            .await
            .expect("contract: list_events succeeds")
            .is_empty(),
        "contract: an unknown org has no events"
    );
}

/// load_patient and list_patients (sorted, merge aliases hidden).
pub async fn patients<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let other = new_org(store, "ORG").await;
    let m = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    let n = message(&other, &unique("m"), "2026-11-20T17:30:00Z");
    store
        .insert_message(&m)
        .await
        .expect("contract: insert_message succeeds");
    store
        .insert_message(&n)
        .await
        .expect("contract: insert_message succeeds");

    let survivor = patient_record("P2", 1);
    let mut alias = patient_record("P1", 4);
    alias.patient.merged_into = Some("P2".to_owned());
    alias.episodes.clear();
    alias.appointments.clear();
    let mut cliniko = patient_record("C-1000", 1);
    cliniko.patient.source = Source::Cliniko;
    cliniko.patient.first_name = "Bo".to_owned();
    let records = [&survivor, &alias, &cliniko]
        .map(|r| new_record(r.clone()))
        .to_vec();
    assert_eq!(
        store
            .commit(&commit(&org_id, &m.id, "patient", records, Vec::new()))
            .await,
        Ok(CommitOutcome::Applied)
    );
    assert_eq!(
        store
            .commit(&commit(
                &other,
                &n.id,
                "patient",
                vec![new_record(patient_record("P9", 1))],
                Vec::new()
            ))
            .await,
        Ok(CommitOutcome::Applied)
    );

    assert_eq!(
        store
            .load_patient(&org_id, "P1")
            .await
            .expect("contract: load_patient succeeds"),
        Some(alias),
        "contract: load_patient returns a merge alias as stored"
    );
    assert_eq!(
        store
            .load_patient(&org_id, "P9")
            .await
            .expect("contract: load_patient succeeds"),
        None,
        "contract: orgs do not share patients"
    );
    assert_eq!(
        store
            .list_patients(&org_id)
            .await
            .expect("contract: list_patients succeeds"),
        vec![cliniko.patient, survivor.patient],
        "contract: list_patients returns the org's patients sorted by ID, without merge aliases"
    );
    assert!(
        store
            .list_patients(&unique("NOORG"))
            .await
            .expect("contract: list_patients succeeds")
            .is_empty(),
        "contract: an unknown org has no patients"
    );
}

/// pending_messages: a commit with `park` parks the message (status
/// `pending`) for that patient ID, oldest first and per org; a later commit
/// with `unpark` takes it off the list.
pub async fn parked_messages<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let other_org = new_org(store, "ORG").await;
    let patient = unique("P");
    let mut parked = Vec::new();
    for (org, at) in [
        (&org_id, "2026-11-20T17:30:00Z"),
        (&org_id, "2026-11-20T17:31:00Z"),
        (&other_org, "2026-11-20T17:32:00Z"),
    ] {
        let m = message(org, &unique("m"), at);
        store
            .insert_message(&m)
            .await
            .expect("contract: insert_message succeeds");
        let mut c = commit(org, &m.id, "patient:parked", Vec::new(), Vec::new());
        c.status = MessageStatus::Pending;
        c.patient_id = Some(patient.clone());
        c.park = Some(patient.clone());
        assert_eq!(store.commit(&c).await, Ok(CommitOutcome::Applied));
        parked.push(m.id);
    }
    assert_eq!(
        store.pending_messages(&org_id, &patient).await,
        Ok(parked[..2].to_vec()),
        "contract: pending_messages lists the org's messages parked for the patient ID, oldest first"
    );
    assert_eq!(
        store.pending_messages(&org_id, &unique("P")).await,
        Ok(Vec::new()),
        "contract: another patient ID has nothing parked"
    );
    let mut applied = commit(&org_id, &parked[0], "patient", Vec::new(), Vec::new());
    applied.status = MessageStatus::Processed;
    applied.patient_id = Some(patient.clone());
    applied.unpark = Some(patient.clone());
    assert_eq!(store.commit(&applied).await, Ok(CommitOutcome::Applied));
    assert_eq!(
        store.pending_messages(&org_id, &patient).await,
        Ok(vec![parked[1].clone()]),
        "contract: an unparked message leaves the list"
    );
    assert_eq!(
        store.pending_messages(&other_org, &patient).await,
        Ok(vec![parked[2].clone()]),
        "contract: parked messages are per org"
    );
}

/// read_step returns what get_message, org_config, load_patient and
/// pending_messages return.
pub async fn read_step<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let m = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    store
        .insert_message(&m)
        .await
        .expect("contract: insert_message succeeds");
    let pid = unique("P");
    let rec = patient_record(&pid, 1);
    let mut c = commit(&org_id, &m.id, "patient", vec![new_record(rec)], Vec::new());
    c.status = MessageStatus::Pending;
    c.park = Some(pid.clone());
    assert_eq!(store.commit(&c).await, Ok(CommitOutcome::Applied));
    let input = store
        .read_step(&org_id, &m.id, Some(&pid))
        .await
        .expect("contract: read_step succeeds");
    assert_eq!(
        input.message,
        store.get_message(&org_id, &m.id).await.unwrap()
    );
    assert_eq!(input.config, store.org_config(&org_id).await.unwrap());
    assert!(input.config.is_some(), "contract: read_step reads the org");
    assert_eq!(
        input.patient,
        store.load_patient(&org_id, &pid).await.unwrap()
    );
    assert!(
        input.patient.is_some(),
        "contract: read_step reads the patient"
    );
    assert_eq!(
        input.pending,
        vec![m.id.clone()],
        "contract: read_step lists the parked messages"
    );
    let none = store
        .read_step(&org_id, &unique("m"), None)
        .await
        .expect("contract: read_step of unknown things succeeds");
    assert_eq!(
        (none.message, none.patient, none.pending.len()),
        (None, None, 0)
    );
}

// ---- WorkQueue ----

/// send accepts work on both queues, and a repeated dedupe ID is not an error.
/// (What a consumer receives is backend-specific and tested by each adapter.)
pub async fn queue_send<S: Stores>(store: &S) {
    let org_id = unique("ORG");
    for queue in [QueueName::Patients, QueueName::Episodes] {
        let item = WorkItem {
            org: org_id.clone(),
            message_id: unique("m"),
            patient_id: Some("P555".to_owned()),
        };
        let group = format!("{org_id}#P555");
        store
            .send(queue, &group, &item.message_id, &item)
            .await
            .expect("contract: send succeeds");
        store
            .send(queue, &group, &item.message_id, &item)
            .await
            .expect("contract: a repeated send with the same dedupe ID is not an error");
    }
}

/// Storing and queueing a message, and the sweeper's claims on the messages
/// that were stored but never queued.
pub async fn intake<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let now = jiff::Timestamp::now();
    let at = |secs: i64| now + jiff::SignedDuration::from_secs(secs);
    let hand_off = |id: &str| HandOff {
        queue: QueueName::Patients,
        group: format!("{org_id}#P555"),
        dedupe_id: id.to_owned(),
        item: WorkItem {
            org: org_id.clone(),
            message_id: id.to_owned(),
            patient_id: Some("P555".to_owned()),
        },
    };
    let ours = |claimed: Vec<crate::ports::Unqueued>| -> Vec<String> {
        claimed
            .into_iter()
            .filter(|u| u.org == org_id)
            .map(|u| u.id)
            .collect()
    };

    let queued = message(&org_id, &unique("m"), &now.to_string());
    assert_eq!(
        store
            .store_and_queue(&queued, Some(&hand_off(&queued.id)))
            .await,
        Ok(Inserted::New),
        "contract: store_and_queue stores a new message"
    );
    let got = must_get(store, &org_id, &queued.id).await;
    assert!(
        got.queued && got.acknowledged,
        "contract: a message stored and queued is recorded queued and acknowledged"
    );
    assert!(
        matches!(
            store
                .store_and_queue(&queued, Some(&hand_off(&queued.id)))
                .await,
            Ok(Inserted::Existing(_))
        ),
        "contract: store_and_queue of a stored message returns it"
    );

    // Stored, but the process died before queueing it.
    let stuck = StoredMessage {
        queued: false,
        acknowledged: false,
        ..message(&org_id, &unique("m"), &now.to_string())
    };
    assert_eq!(store.insert_message(&stuck).await, Ok(Inserted::New));
    let claim = |before: i64, now: i64, until: i64| {
        store.claim_unqueued(at(before), at(now), at(until), 1000)
    };
    assert_eq!(
        claim(-60, 0, 300).await.map(ours),
        Ok(Vec::new()),
        "contract: a message stored after stored_before is not claimed"
    );
    assert_eq!(
        claim(60, 0, 300).await.map(ours),
        Ok(vec![stuck.id.clone()]),
        "contract: an unqueued message is claimed (and no queued one)"
    );
    assert_eq!(
        claim(60, 10, 310).await.map(ours),
        Ok(Vec::new()),
        "contract: a message under an unexpired claim is not claimed again"
    );
    assert_eq!(
        claim(60, 301, 600).await.map(ours),
        Ok(vec![stuck.id.clone()]),
        "contract: an expired claim can be taken"
    );
    store
        .queue_stored(&org_id, &stuck.id, &hand_off(&stuck.id), false)
        .await
        .expect("contract: queue_stored succeeds");
    let got = must_get(store, &org_id, &stuck.id).await;
    assert!(
        got.queued && !got.acknowledged,
        "contract: queue_stored records queued, and acknowledged only if asked"
    );
    assert_eq!(
        claim(60, 900, 1200).await.map(ours),
        Ok(Vec::new()),
        "contract: a queued message is never claimed"
    );
    store
        .set_acknowledged(&org_id, &stuck.id, true)
        .await
        .expect("contract: set_acknowledged succeeds");
    assert!(must_get(store, &org_id, &stuck.id).await.acknowledged);
    assert_eq!(
        store
            .set_acknowledged(&org_id, "no-such-message", false)
            .await,
        Ok(()),
        "contract: set_acknowledged of a missing message does nothing"
    );

    // A replay's reset puts the message back on the sweeper's list until sent.
    store
        .reset_message(&org_id, &queued.id)
        .await
        .expect("reset");
    assert_eq!(
        claim(60, 0, 300).await.map(ours),
        Ok(vec![queued.id.clone()]),
        "contract: a reset message is unqueued until queue_stored"
    );
}

// ---- WorkflowStore ----

/// Runs the workflow checks, each on a store from `make`. (An adapter joins
/// here once it implements [`WorkflowStore`](crate::ports::WorkflowStore).)
pub async fn run_workflows<S: Stores + crate::ports::WorkflowStore>(make: impl Fn() -> S) {
    workflow_definitions(&make()).await;
    scheduled_steps(&make()).await;
    step_updates(&make()).await;
    deliveries(&make()).await;
    suppressed_addresses(&make()).await;
    failed_steps_are_made_due_again(&make()).await;
}

pub fn workflow_def(title: &str) -> crate::workflow::Workflow {
    crate::workflow::Workflow::parse(&format!(
        r#"{{"title": "{title}", "status": "active", "trigger": {{"event": "patient_created"}},
            "steps": [{{"schedule": {{"direction": "after", "amount": 0, "unit": "hours"}},
                        "task": {{"kind": "email", "subject": "Hi", "body": "Hello {{{{ patient.first_name }}}}"}}}}]}}"#
    ))
    .expect("contract: the fixture workflow is valid")
}

pub fn scheduled_step(
    org: &str,
    patient: &str,
    n: u32,
    due_at: &str,
) -> crate::workflow::steps::ScheduledStep {
    let wf = workflow_def("Fixture");
    crate::workflow::steps::ScheduledStep {
        id: unique("step"),
        org: org.to_owned(),
        workflow_id: wf.id.clone(),
        workflow_version: 1,
        step: 0,
        occurrence: n,
        patient_id: patient.to_owned(),
        case_id: None,
        appointment_id: None,
        event_id: unique("event"),
        fired_at: "2026-11-20T17:30:00Z".to_owned(),
        anchor: None,
        due_at: due_at.to_owned(),
        zone: "America/New_York".to_owned(),
        schedule: wf.steps[0].schedule.clone(),
        task: wf.steps[0].task.clone(),
        status: crate::workflow::steps::StepStatus::Scheduled,
        attempts: 0,
        note: None,
        claimed_until: None,
        resends: 0,
    }
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("contract: a fixture instant")
}

/// put_workflow versions per ID; set_workflow_status keeps the version;
/// org_config carries the org's workflows.
pub async fn workflow_definitions<S: Stores + crate::ports::WorkflowStore>(store: &S) {
    use crate::workflow::WorkflowStatus;
    let org_id = new_org(store, "ORG").await;
    let wf = workflow_def("Welcome");
    let first = store
        .put_workflow(&org_id, &wf)
        .await
        .expect("contract: put_workflow succeeds");
    assert_eq!(first.version, 1, "contract: a new workflow is version 1");
    let second = store
        .put_workflow(&org_id, &wf)
        .await
        .expect("contract: put_workflow succeeds");
    assert_eq!(
        second.version, 2,
        "contract: a re-import is the next version"
    );
    let off = store
        .set_workflow_status(&org_id, &wf.id, WorkflowStatus::Inactive)
        .await
        .expect("contract: set_workflow_status succeeds");
    assert_eq!((off.status, off.version), (WorkflowStatus::Inactive, 2));
    let other = workflow_def("Another");
    store
        .put_workflow(&org_id, &other)
        .await
        .expect("contract: put_workflow succeeds");
    let config = store
        .org_config(&org_id)
        .await
        .unwrap()
        .expect("contract: the org exists");
    let ids: Vec<_> = config
        .workflows
        .iter()
        .map(|w| (w.id.as_str(), w.status))
        .collect();
    assert_eq!(
        ids,
        [
            ("another", WorkflowStatus::Active),
            ("welcome", WorkflowStatus::Inactive)
        ],
        "contract: org_config lists the workflows by ID"
    );
    assert!(matches!(
        store.put_workflow(&unique("ORG"), &wf).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_workflow_status(&org_id, "nope", WorkflowStatus::Active)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Steps written by a commit exist once; claim_due hands each due step to one
/// caller until its claim expires; finish_step records the outcome and the next
/// occurrence.
pub async fn scheduled_steps<S: Stores + crate::ports::WorkflowStore>(store: &S) {
    use crate::workflow::steps::StepStatus;
    let org_id = new_org(store, "ORG").await;
    let patient = unique("P");
    let m = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    store.insert_message(&m).await.unwrap();
    let steps = vec![
        scheduled_step(&org_id, &patient, 0, "2026-11-20T15:00:00Z"),
        scheduled_step(&org_id, &patient, 0, "2026-11-20T16:00:00Z"),
        scheduled_step(&org_id, &patient, 0, "2026-11-20T19:00:00Z"),
    ];
    let mut c = commit(&org_id, &m.id, "patient", Vec::new(), Vec::new());
    c.scheduled = steps.clone();
    assert_eq!(store.commit(&c).await, Ok(CommitOutcome::Applied));
    assert_eq!(store.commit(&c).await, Ok(CommitOutcome::AlreadyApplied));
    let listed = store.list_steps(&org_id, Some(&patient)).await.unwrap();
    assert_eq!(
        listed, steps,
        "contract: a commit writes its steps once, listed by due time"
    );

    let at = ts("2026-11-20T17:30:00Z");
    let until = ts("2026-11-20T17:35:00Z");
    let (a, b) = futures_join(
        store.claim_due(at, at, until, 10),
        store.claim_due(at, at, until, 10),
    )
    .await;
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<_> = a
        .iter()
        .chain(&b)
        .filter(|s| s.org == org_id)
        .map(|s| s.id.clone())
        .collect();
    ids.sort();
    let mut due: Vec<_> = steps[..2].iter().map(|s| s.id.clone()).collect();
    due.sort();
    assert_eq!(
        ids, due,
        "contract: concurrent claims take each due step exactly once"
    );
    let claimed: Vec<_> = a.into_iter().chain(b).filter(|s| s.org == org_id).collect();
    assert!(
        claimed
            .iter()
            .all(|s| s.claimed_until.as_deref() == Some("2026-11-20T17:35:00Z"))
    );
    assert!(
        store
            .claim_due(at, at, until, 10)
            .await
            .unwrap()
            .iter()
            .all(|s| s.org != org_id),
        "contract: a claimed step is not claimed again before its claim expires"
    );
    assert!(
        store
            .claim_due(ts("2026-11-20T18:30:00Z"), at, until, 10)
            .await
            .unwrap()
            .iter()
            .all(|s| s.org != org_id),
        "contract: a pass for a later instant does not take a claim that has not expired by the real time"
    );
    let later = ts("2026-11-20T17:36:00Z");
    let again = store
        .claim_due(later, later, ts("2026-11-20T17:41:00Z"), 10)
        .await
        .unwrap();
    assert_eq!(
        again.iter().filter(|s| s.org == org_id).count(),
        2,
        "contract: an expired claim can be taken again"
    );

    let mut sent = claimed
        .iter()
        .find(|s| s.id == steps[0].id)
        .unwrap()
        .clone();
    sent.status = StepStatus::Sent;
    let next = scheduled_step(&org_id, &patient, 1, "2026-11-27T15:00:00Z");
    store
        .finish_step(&sent, Some(&next))
        .await
        .expect("contract: finish_step succeeds");
    let mut moved = claimed
        .iter()
        .find(|s| s.id == steps[1].id)
        .unwrap()
        .clone();
    moved.due_at = "2026-11-21T16:00:00Z".to_owned();
    store.finish_step(&moved, None).await.unwrap();
    let listed = store.list_steps(&org_id, Some(&patient)).await.unwrap();
    let status: Vec<_> = listed
        .iter()
        .map(|s| {
            (
                s.id.as_str(),
                s.status,
                s.due_at.as_str(),
                s.claimed_until.is_none(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            (
                steps[0].id.as_str(),
                StepStatus::Sent,
                "2026-11-20T15:00:00Z",
                true
            ),
            (
                steps[2].id.as_str(),
                StepStatus::Scheduled,
                "2026-11-20T19:00:00Z",
                true
            ),
            (
                moved.id.as_str(),
                StepStatus::Scheduled,
                "2026-11-21T16:00:00Z",
                true
            ),
            (
                next.id.as_str(),
                StepStatus::Scheduled,
                "2026-11-27T15:00:00Z",
                true
            ),
        ],
        "contract: finish_step writes the state, releases the claim and adds the next occurrence"
    );
    let at_moved = ts("2026-11-21T16:00:00Z");
    let due_now: Vec<_> = store
        .claim_due(at_moved, at_moved, ts("2026-11-21T16:05:00Z"), 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.org == org_id)
        .map(|s| s.id)
        .collect();
    assert_eq!(
        due_now.len(),
        2,
        "contract: a step moved by finish_step is due at its new time: {due_now:?}"
    );
    assert!(due_now.contains(&moved.id) && due_now.contains(&steps[2].id));
    assert!(
        store
            .list_steps(&unique("ORG"), None)
            .await
            .unwrap()
            .is_empty(),
        "contract: steps are per org"
    );
}

/// Suppressed addresses are per org, compared lower-cased, and suppressing
/// twice is harmless.
pub async fn suppressed_addresses<S: Stores + crate::ports::WorkflowStore>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    assert!(
        !store
            .is_suppressed(&org_id, "ana@example.com")
            .await
            .unwrap()
    );
    store
        .suppress_address(&org_id, "Ana@Example.com", "bounce")
        .await
        .unwrap();
    store
        .suppress_address(&org_id, "ana@example.com", "complaint")
        .await
        .unwrap();
    assert!(
        store
            .is_suppressed(&org_id, "ANA@example.COM")
            .await
            .unwrap(),
        "contract: addresses compare lower-cased"
    );
    assert!(
        !store
            .is_suppressed(&unique("ORG"), "ana@example.com")
            .await
            .unwrap(),
        "contract: suppression is per org"
    );
    store
        .suppress_address(&org_id, "bo@example.com", "complaint")
        .await
        .unwrap();
    let listed = |address: &str, reason: &str| crate::ports::Suppression {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    assert_eq!(
        store.suppressed_addresses(&org_id).await.unwrap(),
        vec![
            listed("ana@example.com", "bounce"),
            listed("bo@example.com", "complaint")
        ],
        "contract: listed by address, lower-cased, with the first reason"
    );
    assert!(
        store
            .unsuppress_address(&org_id, " ANA@example.com ")
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_suppressed(&org_id, "ana@example.com")
            .await
            .unwrap(),
        "contract: an unsuppressed address may be mailed again"
    );
    assert!(
        !store
            .unsuppress_address(&org_id, "ana@example.com")
            .await
            .unwrap(),
        "contract: lifting what is not suppressed says so"
    );
    assert_eq!(
        store.suppressed_addresses(&org_id).await.unwrap(),
        vec![listed("bo@example.com", "complaint")]
    );
    assert!(
        store
            .suppressed_addresses(&unique("ORG"))
            .await
            .unwrap()
            .is_empty(),
        "contract: suppression is per org"
    );
}

/// Only a failed step is made due again, once, back in reach of a claim,
/// as a new send.
pub async fn failed_steps_are_made_due_again<S: Stores + crate::ports::WorkflowStore>(store: &S) {
    use crate::workflow::retry::{RetryError, retry_failed_step};
    use crate::workflow::steps::StepStatus;
    let org_id = new_org(store, "ORG").await;
    let patient = unique("P");
    let m = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    store.insert_message(&m).await.unwrap();
    let failing = scheduled_step(&org_id, &patient, 0, "2026-11-20T15:00:00Z");
    let waiting = scheduled_step(&org_id, &patient, 0, "2026-11-20T20:00:00Z");
    let mut c = commit(&org_id, &m.id, "patient", Vec::new(), Vec::new());
    c.scheduled = vec![failing.clone(), waiting.clone()];
    assert_eq!(store.commit(&c).await, Ok(CommitOutcome::Applied));
    let mine = |steps: Vec<crate::workflow::steps::ScheduledStep>| -> Vec<_> {
        steps.into_iter().filter(|s| s.org == org_id).collect()
    };
    let at = ts("2026-11-20T15:00:00Z");
    let mut failed = mine(
        store
            .claim_due(at, at, ts("2026-11-20T15:05:00Z"), 10)
            .await
            .unwrap(),
    );
    assert_eq!(failed.len(), 1);
    let mut failed = failed.remove(0);
    failed.status = StepStatus::Failed;
    failed.attempts = 5;
    failed.note = Some("gave up after 5 attempts: unavailable".into());
    store.finish_step(&failed, None).await.unwrap();

    assert!(
        !store.reschedule_failed_step(&waiting).await.unwrap(),
        "contract: a step that is not failed is not rescheduled"
    );
    let mut unknown = failing.clone();
    unknown.id = unique("step");
    assert!(
        !store.reschedule_failed_step(&unknown).await.unwrap(),
        "contract: no step is created by a reschedule"
    );
    let now = ts("2026-11-20T16:00:00Z");
    let retried = retry_failed_step(store, &org_id, &patient, &failing.id, now)
        .await
        .expect("contract: a failed step is retried");
    assert_eq!(
        (
            retried.status,
            retried.attempts,
            retried.resends,
            retried.due_at.as_str()
        ),
        (StepStatus::Scheduled, 0, 1, "2026-11-20T16:00:00Z")
    );
    assert_ne!(
        retried.delivery_key(),
        failing.delivery_key(),
        "contract: a resend is a delivery of its own"
    );
    assert_eq!(
        retry_failed_step(store, &org_id, &patient, &failing.id, now).await,
        Err(RetryError::NotFailed(failing.id.clone(), "scheduled")),
        "contract: a step is retried once per failure"
    );
    let claimed = mine(
        store
            .claim_due(now, now, ts("2026-11-20T16:05:00Z"), 10)
            .await
            .unwrap(),
    );
    assert_eq!(
        claimed
            .iter()
            .map(|s| (s.id.as_str(), s.resends))
            .collect::<Vec<_>>(),
        [(failing.id.as_str(), 1)],
        "contract: the retried step is due again, and only it"
    );
    assert!(matches!(
        retry_failed_step(store, &org_id, &patient, "no-such-step", now).await,
        Err(RetryError::NotFound { .. })
    ));
}

/// A commit's step updates apply with it while each step is as read; a step
/// claimed or finished since makes the whole commit a conflict.
pub async fn step_updates<S: Stores + crate::ports::WorkflowStore>(store: &S) {
    use crate::workflow::steps::{StepStatus, StepUpdate};
    let org_id = new_org(store, "ORG").await;
    let patient = unique("P");
    let mut ids = Vec::new();
    for _ in 0..4 {
        let m = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
        store.insert_message(&m).await.unwrap();
        ids.push(m.id);
    }
    let steps = vec![
        scheduled_step(&org_id, &patient, 0, "2026-11-22T15:00:00Z"),
        scheduled_step(&org_id, &patient, 0, "2026-11-23T15:00:00Z"),
    ];
    let mut c = commit(&org_id, &ids[0], "patient", Vec::new(), Vec::new());
    c.scheduled = steps.clone();
    assert_eq!(store.commit(&c).await, Ok(CommitOutcome::Applied));

    let mut moved = steps[0].clone();
    moved.due_at = "2026-11-21T15:00:00Z".to_owned();
    moved.anchor = Some("2026-11-22T15:00:00Z".to_owned());
    let mut skipped = steps[1].clone();
    skipped.status = StepStatus::Skipped;
    skipped.note = Some("appointment_canceled".to_owned());
    let mut c = commit(&org_id, &ids[1], "episode", Vec::new(), Vec::new());
    c.step_updates = vec![
        StepUpdate {
            step: moved.clone(),
            read_claim: None,
        },
        StepUpdate {
            step: skipped.clone(),
            read_claim: None,
        },
    ];
    assert_eq!(store.commit(&c).await, Ok(CommitOutcome::Applied));
    assert_eq!(
        store.list_steps(&org_id, Some(&patient)).await.unwrap(),
        vec![moved.clone(), skipped.clone()],
        "contract: a commit writes its step updates"
    );
    let at = ts("2026-11-21T15:00:00Z");
    let claimed: Vec<_> = store
        .claim_due(at, at, ts("2026-11-21T15:05:00Z"), 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.org == org_id)
        .collect();
    assert_eq!(
        claimed.iter().map(|s| &s.id).collect::<Vec<_>>(),
        [&moved.id],
        "contract: a moved step is due at its new time, a skipped one is not due"
    );

    // Claimed since it was read: the commit conflicts and writes nothing.
    let mut again = moved.clone();
    again.due_at = "2026-11-21T16:00:00Z".to_owned();
    let mut c = commit(&org_id, &ids[2], "episode", Vec::new(), Vec::new());
    c.step_updates = vec![StepUpdate {
        step: again.clone(),
        read_claim: None,
    }];
    assert_eq!(
        store.commit(&c).await,
        Ok(CommitOutcome::Conflict),
        "contract: a step claimed since it was read makes the commit conflict"
    );
    assert!(
        store
            .get_message(&org_id, &ids[2])
            .await
            .unwrap()
            .unwrap()
            .steps_done
            .is_empty(),
        "contract: a conflicting commit writes nothing"
    );
    c.step_updates[0].read_claim = claimed[0].claimed_until.clone();
    assert_eq!(
        store.commit(&c).await,
        Ok(CommitOutcome::Applied),
        "contract: read with its (expired) claim, the update applies"
    );
    let listed = store.list_steps(&org_id, Some(&patient)).await.unwrap();
    let now = listed.iter().find(|s| s.id == again.id).unwrap();
    assert_eq!(
        (now.due_at.as_str(), now.claimed_until.as_deref()),
        ("2026-11-21T16:00:00Z", None)
    );

    // No longer scheduled: conflict.
    let mut c = commit(&org_id, &ids[3], "episode", Vec::new(), Vec::new());
    let mut revived = skipped.clone();
    revived.status = StepStatus::Scheduled;
    c.step_updates = vec![StepUpdate {
        step: revived,
        read_claim: None,
    }];
    assert_eq!(
        store.commit(&c).await,
        Ok(CommitOutcome::Conflict),
        "contract: a step that is no longer scheduled makes the commit conflict"
    );
}

/// begin_delivery records once; complete_delivery records the outcome; the
/// outbox lists them oldest first; open_assignments counts sent surveys and
/// exercises.
pub async fn deliveries<S: Stores + crate::ports::WorkflowStore>(store: &S) {
    use crate::workflow::TaskKind;
    use crate::workflow::steps::{Channel, Delivery, DeliveryStatus};
    let org_id = new_org(store, "ORG").await;
    let patient = unique("P");
    let d = |id: &str, kind: TaskKind| Delivery {
        id: id.to_owned(),
        org: org_id.clone(),
        channel: Channel::Email,
        to: "ana.rivera@example.com".to_owned(),
        subject: Some("Hi".to_owned()),
        body: "Hello".to_owned(),
        html: Some("<p>Hello</p>".to_owned()),
        content_id: None,
        kind,
        workflow_id: "welcome".to_owned(),
        step: 0,
        patient_id: patient.clone(),
        step_id: unique("step"),
        status: DeliveryStatus::Sending,
        provider_id: None,
        created_at: "2026-11-20T17:30:00Z".to_owned(),
        sent_at: None,
    };
    let (first, survey) = (
        d(&unique("d"), TaskKind::Email),
        d(&unique("d"), TaskKind::Survey),
    );
    assert_eq!(store.begin_delivery(&first).await, Ok(Inserted::New));
    assert_eq!(
        store.begin_delivery(&first).await,
        Ok(Inserted::Existing(first.clone())),
        "contract: a delivery is recorded once"
    );
    assert_eq!(store.begin_delivery(&survey).await, Ok(Inserted::New));
    assert_eq!(
        store.open_assignments(&org_id, &patient).await,
        Ok(0),
        "contract: not sent, not open"
    );
    store
        .complete_delivery(
            &first,
            DeliveryStatus::Sent,
            Some("ses-1"),
            "2026-11-20T17:30:01Z",
        )
        .await
        .unwrap();
    store
        .complete_delivery(
            &survey,
            DeliveryStatus::Sent,
            Some("ses-2"),
            "2026-11-20T17:30:02Z",
        )
        .await
        .unwrap();
    let outbox = store.list_deliveries(&org_id).await.unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(
        outbox[0].id, first.id,
        "contract: the outbox is oldest first"
    );
    assert_eq!(outbox[0].status, DeliveryStatus::Sent);
    assert_eq!(outbox[0].provider_id.as_deref(), Some("ses-1"));
    assert_eq!(outbox[0].sent_at.as_deref(), Some("2026-11-20T17:30:01Z"));
    assert_eq!(
        store.open_assignments(&org_id, &patient).await,
        Ok(1),
        "contract: a sent survey is an open assignment"
    );
    assert_eq!(
        store.complete_assignment(&org_id, &first.id).await,
        Ok(false),
        "contract: an email assigns nothing"
    );
    assert_eq!(
        store.complete_assignment(&org_id, &survey.id).await,
        Ok(true)
    );
    assert_eq!(
        store.complete_assignment(&org_id, &survey.id).await,
        Ok(false),
        "contract: completing twice changes nothing"
    );
    assert_eq!(
        store.open_assignments(&org_id, &patient).await,
        Ok(0),
        "contract: a completed survey is not open"
    );
    assert!(
        store
            .list_deliveries(&unique("ORG"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Both futures, polled together (no runtime dependency in the core).
async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none()
            && let std::task::Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let std::task::Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    (
        ra.expect("polled to completion"),
        rb.expect("polled to completion"),
    )
}

/// Runs the Cliniko checks, each on a store from `make`.
pub async fn run_cliniko<S: Stores + crate::ports::ClinikoStore>(make: impl Fn() -> S) {
    cliniko_connections(&make()).await;
    cliniko_failures(&make()).await;
    record_commits(&make()).await;
}

pub fn cliniko_connection(org: &str) -> crate::cliniko::ClinikoConnection {
    crate::cliniko::ClinikoConnection {
        org: org.to_owned(),
        api_key: "MS0xLTEyMzQ1Njc4OTAxMjM0NTY3ODk-au2".to_owned(),
        shard: "au2".to_owned(),
        base_url: None,
        token: unique("token"),
        watermark: None,
        connected_at: "2026-11-20T17:30:00Z".to_owned(),
        last_sync_at: None,
    }
}

/// A connection per org, found by org and by its token; replacing it
/// retires the old token; record_sync moves the watermark (or keeps it).
pub async fn cliniko_connections<S: Stores + crate::ports::ClinikoStore>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    assert!(store.connection(&org_id).await.unwrap().is_none());
    assert!(matches!(
        store
            .put_connection(&cliniko_connection(&unique("ORG")))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let first = cliniko_connection(&org_id);
    store.put_connection(&first).await.unwrap();
    assert_eq!(
        store.connection(&org_id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.connection_for_token(&first.token).await.unwrap(),
        Some(first.clone()),
        "contract: a connection is found by its token"
    );
    let mut second = cliniko_connection(&org_id);
    second.api_key.push('x');
    store.put_connection(&second).await.unwrap();
    assert_eq!(
        store.connection(&org_id).await.unwrap(),
        Some(second.clone())
    );
    assert!(
        store
            .connection_for_token(&first.token)
            .await
            .unwrap()
            .is_none(),
        "contract: a replaced connection's token no longer finds it"
    );
    assert!(
        store
            .connections()
            .await
            .unwrap()
            .iter()
            .any(|c| c == &second),
        "contract: connections lists every org's"
    );
    store
        .record_sync(
            &org_id,
            Some("2026-11-20T10:00:00Z"),
            "2026-11-20T17:31:00Z",
        )
        .await
        .unwrap();
    store
        .record_sync(&org_id, None, "2026-11-20T17:32:00Z")
        .await
        .unwrap();
    let now = store.connection(&org_id).await.unwrap().unwrap();
    assert_eq!(
        (now.watermark.as_deref(), now.last_sync_at.as_deref()),
        (Some("2026-11-20T10:00:00Z"), Some("2026-11-20T17:32:00Z")),
        "contract: record_sync keeps the watermark when given none"
    );
    assert!(matches!(
        store
            .record_sync(&unique("ORG"), None, "2026-11-20T17:32:00Z")
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Failures are saved per org and Cliniko ID (replaced, not duplicated),
/// listed by ID, and cleared.
pub async fn cliniko_failures<S: Stores + crate::ports::ClinikoStore>(store: &S) {
    use crate::cliniko::ClinikoFailure;
    let org_id = new_org(store, "ORG").await;
    let failure = |id: &str, missing: &[&str]| ClinikoFailure {
        cliniko_id: id.to_owned(),
        first_name: Some("Ana".to_owned()),
        last_name: None,
        missing: missing.iter().map(|m| (*m).to_owned()).collect(),
        updated_at: "2026-11-20T10:00:00Z".to_owned(),
    };
    store
        .put_failure(&org_id, &failure("1234567890123456789", &["email"]))
        .await
        .unwrap();
    store
        .put_failure(&org_id, &failure("9", &["sex"]))
        .await
        .unwrap();
    store
        .put_failure(&org_id, &failure("9", &["sex", "email"]))
        .await
        .unwrap();
    assert_eq!(
        store.failures(&org_id).await.unwrap(),
        vec![
            failure("9", &["sex", "email"]),
            failure("1234567890123456789", &["email"])
        ],
        "contract: one failure per profile, listed by numeric ID"
    );
    assert!(store.failures(&unique("ORG")).await.unwrap().is_empty());
    store.clear_failure(&org_id, "9").await.unwrap();
    store.clear_failure(&org_id, "9").await.unwrap();
    assert_eq!(
        store.failures(&org_id).await.unwrap(),
        vec![failure("1234567890123456789", &["email"])]
    );
}

/// A record commit writes records, events and steps with no message; a
/// record or step no longer as read makes it a conflict that writes nothing;
/// events and steps that exist are not written twice.
pub async fn record_commits<S: Stores + crate::ports::ClinikoStore>(store: &S) {
    use crate::ports::RecordCommit;
    use crate::workflow::steps::{StepStatus, StepUpdate};
    let org_id = new_org(store, "ORG").await;
    let id = unique("P");
    let record = patient_record(&id, 1);
    let event = DomainEvent {
        id: format!("cliniko:{id}:patient_created:{id}"),
        org: org_id.clone(),
        kind: crate::model::EventKind::PatientCreated,
        patient_id: id.clone(),
        case_id: None,
        appointment_id: None,
        at: "2026-11-20T17:30:00Z".to_owned(),
        message_id: format!("cliniko:{id}"),
    };
    let step = scheduled_step(&org_id, &id, 0, "2026-11-20T18:00:00Z");
    let create = RecordCommit {
        org: org_id.clone(),
        records: vec![RecordWrite {
            record: record.clone(),
            expected_version: None,
        }],
        events: vec![event.clone()],
        scheduled: vec![step.clone()],
        step_updates: Vec::new(),
    };
    assert_eq!(
        store.commit_records(&create).await,
        Ok(CommitOutcome::Applied)
    );
    assert_eq!(
        store.commit_records(&create).await,
        Ok(CommitOutcome::Conflict),
        "contract: creating an existing record conflicts"
    );
    assert_eq!(
        store.load_patient(&org_id, &id).await.unwrap(),
        Some(record.clone())
    );
    let events: Vec<_> = store.list_events(&org_id).await.unwrap();
    assert_eq!(events, vec![event.clone()]);

    // An update over the version read, with the same event again and a step
    // update: applied, the event and step once.
    let mut next = record.clone();
    next.version = 2;
    next.patient.last_name = "Rivera-Lopez".to_owned();
    let mut skipped = step.clone();
    skipped.status = StepStatus::Skipped;
    skipped.note = Some("patient_inactive".to_owned());
    let update = RecordCommit {
        org: org_id.clone(),
        records: vec![RecordWrite {
            record: next.clone(),
            expected_version: Some(1),
        }],
        events: vec![event.clone()],
        scheduled: vec![step.clone()],
        step_updates: vec![StepUpdate {
            step: skipped.clone(),
            read_claim: None,
        }],
    };
    assert_eq!(
        store.commit_records(&update).await,
        Ok(CommitOutcome::Applied)
    );
    assert_eq!(
        store.load_patient(&org_id, &id).await.unwrap(),
        Some(next.clone())
    );
    assert_eq!(store.list_events(&org_id).await.unwrap().len(), 1);
    assert_eq!(
        store.list_steps(&org_id, Some(&id)).await.unwrap(),
        vec![skipped],
        "contract: the step update applies and the existing step is not written again"
    );
    // Stale version: nothing is written.
    let mut stale = update.clone();
    stale.records[0].record.patient.first_name = "Nope".to_owned();
    stale.step_updates.clear();
    assert_eq!(
        store.commit_records(&stale).await,
        Ok(CommitOutcome::Conflict)
    );
    assert_eq!(store.load_patient(&org_id, &id).await.unwrap(), Some(next));
}
