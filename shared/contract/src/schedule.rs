//! [`StepSchedule`](tendon_core::ports::StepSchedule): scheduled steps
//! (written once by a commit, claimed by one caller, finished), a commit's
//! step updates (a conflict when a step moved since it was read), and a
//! failed step made due again once.
use tendon_core::join::join2;
use tendon_core::ports::CommitOutcome;

use crate::Stores;
use crate::fixtures::*;

/// Steps written by a commit exist once; claim_due hands each due step to one
/// caller until its claim expires; finish_step records the outcome and the next
/// occurrence.
pub async fn scheduled_steps<S: Stores>(store: &S) {
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
            .all(|s| s.claimed_until == Some(ts("2026-11-20T17:35:00Z")))
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
    moved.due_at = ts("2026-11-21T16:00:00Z");
    store.finish_step(&moved, None).await.unwrap();
    let listed = store.list_steps(&org_id, Some(&patient)).await.unwrap();
    let status: Vec<_> = listed
        .iter()
        .map(|s| (s.id.as_str(), s.status, s.due_at, s.claimed_until.is_none()))
        .collect();
    assert_eq!(
        status,
        [
            (
                steps[0].id.as_str(),
                StepStatus::Sent,
                ts("2026-11-20T15:00:00Z"),
                true
            ),
            (
                steps[2].id.as_str(),
                StepStatus::Scheduled,
                ts("2026-11-20T19:00:00Z"),
                true
            ),
            (
                moved.id.as_str(),
                StepStatus::Scheduled,
                ts("2026-11-21T16:00:00Z"),
                true
            ),
            (
                next.id.as_str(),
                StepStatus::Scheduled,
                ts("2026-11-27T15:00:00Z"),
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

/// Only a failed step is made due again, once, back in reach of a claim,
/// as a new send.
pub async fn failed_steps_are_made_due_again<S: Stores>(store: &S) {
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
    let failed_ids = |o: tendon_core::ports::Overview| -> Vec<String> {
        o.failed_steps.into_iter().map(|s| s.id).collect()
    };
    assert_eq!(
        failed_ids(store.overview(&org_id, None).await.unwrap()),
        vec![failing.id.clone()],
        "contract: the overview holds the failed step"
    );

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
            retried.due_at
        ),
        (StepStatus::Scheduled, 0, 1, ts("2026-11-20T16:00:00Z"))
    );
    assert_ne!(
        retried.delivery_key(),
        failing.delivery_key(),
        "contract: a resend is a delivery of its own"
    );
    assert_eq!(
        failed_ids(store.overview(&org_id, None).await.unwrap()),
        Vec::<String>::new(),
        "contract: a retried step is no longer failed in the overview"
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
pub async fn step_updates<S: Stores>(store: &S) {
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
    moved.due_at = ts("2026-11-21T15:00:00Z");
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
    again.due_at = ts("2026-11-21T16:00:00Z");
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
    c.step_updates[0].read_claim = claimed[0].claimed_until;
    assert_eq!(
        store.commit(&c).await,
        Ok(CommitOutcome::Applied),
        "contract: read with its (expired) claim, the update applies"
    );
    let listed = store.list_steps(&org_id, Some(&patient)).await.unwrap();
    let now = listed.iter().find(|s| s.id == again.id).unwrap();
    assert_eq!(
        (now.due_at, now.claimed_until),
        (ts("2026-11-21T16:00:00Z"), None)
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

/// [`DispatchLog`](tendon_core::ports::DispatchLog): the latest pass is
/// remembered, an earlier one recorded late does not move it back. (One
/// record for the whole store, which other checks may share: relative.)
pub async fn dispatch_passes<S: Stores>(store: &S) {
    let far = ts("2100-01-02T00:00:00Z");
    store.record_dispatch_pass(far).await.expect("record");
    let last = store
        .last_dispatch_pass()
        .await
        .expect("contract: last_dispatch_pass succeeds")
        .expect("contract: a recorded pass is remembered");
    assert!(last >= far);
    store
        .record_dispatch_pass(ts("2100-01-01T00:00:00Z"))
        .await
        .expect("record");
    assert_eq!(
        store.last_dispatch_pass().await,
        Ok(Some(last)),
        "contract: an earlier pass does not move it back"
    );
    let later = last + jiff::SignedDuration::from_millis(1);
    store.record_dispatch_pass(later).await.expect("record");
    assert_eq!(store.last_dispatch_pass().await, Ok(Some(later)));
}
