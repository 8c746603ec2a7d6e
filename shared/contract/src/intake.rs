//! [`Intake`](tendon_core::ports::Intake): storing and queueing a message, and
//! the sweeper's claims on messages that were stored but never queued (by
//! age, at most a limit, claimed by one caller until the claim expires, and
//! back on the list after a replay's reset).
use tendon_core::model::StoredMessage;
use tendon_core::ports::{HandOff, Inserted, QueueName, WorkItem};

use crate::Stores;
use crate::fixtures::*;

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
    let ours = |claimed: Vec<tendon_core::ports::Unqueued>| -> Vec<String> {
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
