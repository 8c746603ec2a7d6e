//! [`MessageLog`](tendon_core::ports::MessageLog): inserting a message (new, a
//! duplicate, the same ID in another org) and reading it back byte for byte,
//! listing (oldest first, the status filter, per org) and `reset_message`.
use tendon_core::model::{MessageStatus, StoredMessage};
use tendon_core::ports::{CommitOutcome, Inserted, StoreError};
use tendon_core::{ErrorCode, FieldName, Issue};

use crate::Stores;
use crate::fixtures::*;

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
        insert(store, &first).await,
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
        insert(store, &retry).await,
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
        insert(store, &elsewhere).await,
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
        assert_eq!(insert(store, m).await, Inserted::New);
    }
    let foreign = message(&other, &unique("m"), "2026-11-20T17:29:00Z");
    insert(store, &foreign).await;

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
    insert(store, &stored).await;
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
