//! [`ClinikoStore`](tendon_core::ports::ClinikoStore): one Cliniko connection
//! per org (found by org and by token, a replaced token retired, the sync
//! watermark), the saved sync failures, and record commits (records, events
//! and steps with no message; a conflict writes nothing; nothing written
//! twice).
use tendon_core::model::DomainEvent;
use tendon_core::ports::{CommitOutcome, RecordWrite, StoreError};

use crate::Stores;
use crate::fixtures::*;

/// A connection per org, found by org and by its token; replacing it
/// retires the old token; record_sync moves the watermark (or keeps it).
pub async fn cliniko_connections<S: Stores + tendon_core::ports::ClinikoStore>(store: &S) {
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
            ts("2026-11-20T17:31:00Z"),
        )
        .await
        .unwrap();
    store
        .record_sync(&org_id, None, ts("2026-11-20T17:32:00Z"))
        .await
        .unwrap();
    let now = store.connection(&org_id).await.unwrap().unwrap();
    assert_eq!(
        (now.watermark.as_deref(), now.last_sync_at),
        (
            Some("2026-11-20T10:00:00Z"),
            Some(ts("2026-11-20T17:32:00Z"))
        ),
        "contract: record_sync keeps the watermark when given none"
    );
    assert!(matches!(
        store
            .record_sync(&unique("ORG"), None, ts("2026-11-20T17:32:00Z"))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Failures are saved per org and Cliniko ID (replaced, not duplicated),
/// listed by ID, and cleared.
pub async fn cliniko_failures<S: Stores + tendon_core::ports::ClinikoStore>(store: &S) {
    use tendon_core::cliniko::ClinikoFailure;
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
pub async fn record_commits<S: Stores + tendon_core::ports::ClinikoStore>(store: &S) {
    use tendon_core::ports::RecordCommit;
    use tendon_core::workflow::steps::{StepStatus, StepUpdate};
    let org_id = new_org(store, "ORG").await;
    let id = unique("P");
    let record = patient_record(&id, 1);
    let event = DomainEvent {
        id: format!("cliniko:{id}:patient_created:{id}"),
        org: org_id.clone(),
        kind: tendon_core::model::EventKind::PatientCreated,
        patient_id: id.clone(),
        case_id: None,
        appointment_id: None,
        at: ts("2026-11-20T17:30:00Z"),
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
