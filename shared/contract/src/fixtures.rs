//! The suite's fixtures: real model structs (an org, a location, a
//! practitioner, a message with bytes that are not UTF-8, a patient record,
//! events, a workflow and its scheduled step, a Cliniko connection), IDs
//! unique to the run, and the small helpers the checks share.
use std::sync::atomic::{AtomicU64, Ordering};

use tendon_core::model::{
    Appointment, DomainEvent, Episode, EpisodeStatus, EventKind, MessageFacts, MessageStatus,
    Patient, PatientRecord, PractitionerFacts, Source, StoredMessage,
};
use tendon_core::org::{Location, Org, Practitioner};
use tendon_core::ports::{Commit, Inserted, RecordWrite};
use tendon_core::{AppointmentStatus, FieldMap, Gender};

use crate::Stores;

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
        received_at: ts(received_at),
        body_hash: format!("hash-of-{id}"),
        patient_id: Some("P555".to_owned()),
        steps_done: Vec::new(),
        replays: 0,
        queued: true,
        acknowledged: true,
        // Round-trips through both stores like the rest of the record.
        facts: Some(MessageFacts {
            sent_at: Some(ts("2026-11-20T17:30:00Z")),
            clinic_id: Some("12".to_owned()),
            clinic_name: Some("Salem Clinic".to_owned()),
            appointment_type: Some("Initial Eval".to_owned()),
            case_id: Some("C-42".to_owned()),
            practitioner: Some(PractitionerFacts {
                id: "445566".to_owned(),
                family_name: Some("Okafor".to_owned()),
                given_name: Some("Chidi".to_owned()),
                npi: None,
            }),
        }),
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
            demographics_at: Some(ts("2026-11-20T17:30:00Z")),
            created_at: ts("2026-11-20T17:30:01Z"),
            merged_into: None,
            unsubscribed: false,
            text_opt_out: false,
            inactive: None,
            sex_label: None,
            enrolled_at: None,
        },
        episodes: vec![
            Episode {
                name: "Default".to_owned(),
                default: true,
                case_id: None,
                supervising_practitioner_id: None,
                status: EpisodeStatus::Active,
                created_at: ts("2026-11-20T17:30:01Z"),
            },
            Episode {
                name: "Right Shoulder".to_owned(),
                default: false,
                case_id: Some("C-42".to_owned()),
                supervising_practitioner_id: Some("445566".to_owned()),
                status: EpisodeStatus::Active,
                created_at: ts("2026-11-20T17:30:01Z"),
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
            updated_by: Some(ts("2026-11-20T17:30:00Z")),
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
        at: ts("2026-11-20T17:30:01Z"),
        message_id: message_id.to_owned(),
    }
}

pub(crate) fn commit(
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

pub(crate) fn new_record(record: PatientRecord) -> RecordWrite {
    RecordWrite {
        record,
        expected_version: None,
    }
}

pub(crate) fn update_record(record: PatientRecord, read_at: u64) -> RecordWrite {
    RecordWrite {
        record,
        expected_version: Some(read_at),
    }
}

pub(crate) fn without_raw(mut m: StoredMessage) -> StoredMessage {
    m.raw = Vec::new();
    m
}

pub(crate) async fn new_org<S: Stores>(store: &S, prefix: &str) -> String {
    let id = unique(prefix);
    store
        .create_org(&org(&id), &unique("keyhash"))
        .await
        .expect("contract: create_org on a new ID succeeds");
    id
}

/// insert_message, which must succeed: `New`, or the message stored before.
pub(crate) async fn insert<S: Stores>(store: &S, m: &StoredMessage) -> Inserted {
    store
        .insert_message(m)
        .await
        .expect("contract: insert_message succeeds")
}

/// A new org with one message (received 2026-11-20T17:30:00Z) stored in it.
pub(crate) async fn org_with_message<S: Stores>(store: &S) -> (String, StoredMessage) {
    let org_id = new_org(store, "ORG").await;
    let m = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    insert(store, &m).await;
    (org_id, m)
}

/// load_patient, which must succeed.
pub(crate) async fn load<S: Stores>(store: &S, org: &str, id: &str) -> Option<PatientRecord> {
    store
        .load_patient(org, id)
        .await
        .expect("contract: load_patient succeeds")
}

/// list_events, which must succeed.
pub(crate) async fn events_of<S: Stores>(store: &S, org: &str) -> Vec<DomainEvent> {
    store
        .list_events(org)
        .await
        .expect("contract: list_events succeeds")
}

pub(crate) async fn must_get<S: Stores>(store: &S, org: &str, id: &str) -> StoredMessage {
    store
        .get_message(org, id)
        .await
        .expect("contract: get_message succeeds")
        .expect("contract: the stored message is found")
}

pub(crate) async fn event_ids<S: Stores>(store: &S, org: &str) -> Vec<String> {
    let events = events_of(store, org).await;
    events.into_iter().map(|e| e.id).collect()
}

pub fn workflow_def(title: &str) -> tendon_core::workflow::Workflow {
    tendon_core::workflow::Workflow::parse(&format!(
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
) -> tendon_core::workflow::steps::ScheduledStep {
    let wf = workflow_def("Fixture");
    tendon_core::workflow::steps::ScheduledStep {
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
        fired_at: ts("2026-11-20T17:30:00Z"),
        anchor: None,
        due_at: ts(due_at),
        zone: "America/New_York".to_owned(),
        schedule: wf.steps[0].schedule.clone(),
        task: wf.steps[0].task.clone(),
        status: tendon_core::workflow::steps::StepStatus::Scheduled,
        attempts: 0,
        note: None,
        claimed_until: None,
        resends: 0,
    }
}

pub(crate) fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("contract: a fixture instant")
}

pub fn cliniko_connection(org: &str) -> tendon_core::cliniko::ClinikoConnection {
    tendon_core::cliniko::ClinikoConnection {
        org: org.to_owned(),
        api_key: "MS0xLTEyMzQ1Njc4OTAxMjM0NTY3ODk-au2".to_owned(),
        shard: "au2".to_owned(),
        base_url: None,
        token: unique("token"),
        watermark: None,
        connected_at: "2026-11-20T17:30:00Z".parse().unwrap(),
        last_sync_at: None,
    }
}
