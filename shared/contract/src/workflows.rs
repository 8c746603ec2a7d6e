//! [`WorkflowStore`](tendon_core::ports::WorkflowStore): workflow definitions
//! and their versions, scheduled steps (written once by a commit, claimed by
//! one caller, finished), a commit's step updates (a conflict when a step
//! moved since it was read), deliveries and the outbox, suppressed addresses,
//! and a failed step made due again once.
use tendon_core::join::join2;
use tendon_core::ports::{CommitOutcome, Inserted, StoreError};

use crate::Stores;
use crate::fixtures::*;

/// put_workflow versions per ID; set_workflow_status keeps the version;
/// org_config carries the org's workflows.
pub async fn workflow_definitions<S: Stores + tendon_core::ports::WorkflowStore>(store: &S) {
    use tendon_core::workflow::WorkflowStatus;
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
pub async fn scheduled_steps<S: Stores + tendon_core::ports::WorkflowStore>(store: &S) {
    use tendon_core::workflow::steps::StepStatus;
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
    let (a, b) = join2(
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
pub async fn suppressed_addresses<S: Stores + tendon_core::ports::WorkflowStore>(store: &S) {
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
    let listed = |address: &str, reason: &str| tendon_core::ports::Suppression {
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
pub async fn failed_steps_are_made_due_again<S: Stores + tendon_core::ports::WorkflowStore>(
    store: &S,
) {
    use tendon_core::workflow::retry::{RetryError, retry_failed_step};
    use tendon_core::workflow::steps::StepStatus;
    let org_id = new_org(store, "ORG").await;
    let patient = unique("P");
    let m = message(&org_id, &unique("m"), "2026-11-20T17:30:00Z");
    store.insert_message(&m).await.unwrap();
    let failing = scheduled_step(&org_id, &patient, 0, "2026-11-20T15:00:00Z");
    let waiting = scheduled_step(&org_id, &patient, 0, "2026-11-20T20:00:00Z");
    let mut c = commit(&org_id, &m.id, "patient", Vec::new(), Vec::new());
    c.scheduled = vec![failing.clone(), waiting.clone()];
    assert_eq!(store.commit(&c).await, Ok(CommitOutcome::Applied));
    let mine = |steps: Vec<tendon_core::workflow::steps::ScheduledStep>| -> Vec<_> {
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
pub async fn step_updates<S: Stores + tendon_core::ports::WorkflowStore>(store: &S) {
    use tendon_core::workflow::steps::{StepStatus, StepUpdate};
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
pub async fn deliveries<S: Stores + tendon_core::ports::WorkflowStore>(store: &S) {
    use tendon_core::workflow::TaskKind;
    use tendon_core::workflow::steps::{Channel, Delivery, DeliveryStatus};
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
