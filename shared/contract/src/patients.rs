//! [`PatientStore`](tendon_core::ports::PatientStore) and the step read of
//! [`StepStore`](tendon_core::ports::StepStore): a commit applies once, a stale
//! or conflicting commit writes nothing at all, events are idempotent and per
//! org, patients list sorted without merge aliases, parked messages, and
//! `read_step` returning what the single reads return.
use tendon_core::AppointmentStatus;
use tendon_core::model::{EventKind, MessageStatus, Source};
use tendon_core::ports::CommitOutcome;

use crate::Stores;
use crate::fixtures::*;

/// commit: Applied writes records, events and message state; the same commit
/// twice is AlreadyApplied and writes once.
pub async fn commit_applies_once<S: Stores>(store: &S) {
    let (org_id, m) = org_with_message(store).await;

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
        load(store, &org_id, "P555").await,
        Some(v1.clone()),
        "contract: an applied commit writes its records"
    );
    assert_eq!(
        events_of(store, &org_id).await,
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
        events_of(store, &org_id).await,
        events,
        "contract: the same commit twice writes events once"
    );
    assert_eq!(
        load(store, &org_id, "P556").await,
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
        load(store, &org_id, "P555").await,
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
        insert(store, m).await;
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
        load(store, &org_id, "P555").await,
        Some(v2.clone()),
        "contract: a Conflict leaves the record as it was"
    );
    assert_eq!(
        load(store, &org_id, "P777").await,
        None,
        "contract: a Conflict writes none of the commit's records"
    );
    assert_eq!(
        load(store, &org_id, "P404").await,
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
    assert_eq!(load(store, &org_id, "P555").await, Some(v3));
}

/// Events: idempotent by ID, in order, per org.
pub async fn events<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let other = new_org(store, "ORG").await;
    let a = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    let b = message(&org_id, &unique("m"), "2026-11-20T17:30:01Z");
    let c = message(&other, &unique("m"), "2026-11-20T17:30:02Z");
    for m in [&a, &b, &c] {
        insert(store, m).await;
    }
    let e1 = event(&org_id, &a.id, EventKind::PatientCreated, "P1");
    let e2 = event(&org_id, &a.id, EventKind::EpisodeCreated, "P1");
    let e3 = event(&org_id, &b.id, EventKind::AppointmentScheduled, "P1");
    let mut e1_again = e1.clone();
    e1_again.at = ts("2026-11-20T18:00:00Z");
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
        events_of(store, &org_id).await,
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
        events_of(store, &other).await,
        vec![foreign],
        "contract: orgs do not share events"
    );
    assert!(
        events_of(store, &unique("NOORG")).await.is_empty(),
        "contract: an unknown org has no events"
    );
}

/// load_patient and list_patients (sorted, merge aliases hidden).
pub async fn patients<S: Stores>(store: &S) {
    let org_id = new_org(store, "ORG").await;
    let other = new_org(store, "ORG").await;
    let m = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    let n = message(&other, &unique("m"), "2026-11-20T17:30:00Z");
    insert(store, &m).await;
    insert(store, &n).await;

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
        load(store, &org_id, "P1").await,
        Some(alias),
        "contract: load_patient returns a merge alias as stored"
    );
    assert_eq!(
        load(store, &org_id, "P9").await,
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
        insert(store, &m).await;
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
    let (org_id, m) = org_with_message(store).await;
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
