//! Test mode ([`tendon_core::mode`]): a test-mode key leads to the org's test
//! partition, which reads the org's configuration under its own ID and keeps
//! its data apart from the live data; [`TestData`](tendon_core::ports::TestData)
//! deletes it all and nothing else.
use tendon_core::mode::{Mode, partition};
use tendon_core::model::EventKind;

use crate::Stores;
use crate::fixtures::*;

pub async fn test_partitions<S: Stores>(store: &S) {
    let id = new_org(store, "ORG").await;
    store
        .put_location(&id, &location("12"))
        .await
        .expect("contract: put_location succeeds");
    let test = partition(&id, Mode::Test);
    let test_key = unique("keyhash");
    store
        .add_ingest_key(&id, &test_key, Mode::Test)
        .await
        .expect("contract: add_ingest_key of a test-mode key succeeds");
    assert_eq!(
        store.org_for_key(&test_key).await,
        Ok(Some(test.clone())),
        "contract: a test-mode key leads to the org's test partition"
    );
    let modes: Vec<Mode> = store
        .ingest_keys(&id)
        .await
        .expect("contract: ingest_keys succeeds")
        .iter()
        .map(|k| k.mode)
        .collect();
    assert_eq!(
        modes,
        [Mode::Live, Mode::Test],
        "contract: keys are listed with their mode, under the org"
    );

    let live_config = store.org_config(&id).await.expect("org_config").unwrap();
    let test_config = store
        .org_config(&test)
        .await
        .expect("contract: org_config of a test partition succeeds")
        .expect("contract: a test partition reads its org's configuration");
    assert_eq!(
        test_config,
        live_config.clone().for_partition(&test),
        "contract: the same configuration, under the partition's ID"
    );

    // The same message and patient in both: each stays where it was written.
    let live_m = message(&id, &unique("m"), "2026-11-20T17:30:00Z");
    let test_m = message(&test, &live_m.id, "2026-11-20T17:30:00Z");
    insert(store, &live_m).await;
    insert(store, &test_m).await;
    for (org, m) in [(&id, &live_m), (&test, &test_m)] {
        let event = event(org, &m.id, EventKind::PatientCreated, "P555");
        let records = vec![new_record(patient_record("P555", 1))];
        store
            .commit(&commit(org, &m.id, "patient", records, vec![event]))
            .await
            .expect("contract: commit succeeds");
    }
    let deleted = store
        .delete_partition(&test)
        .await
        .expect("contract: delete_partition succeeds");
    assert_eq!(
        (deleted.messages, deleted.patients),
        (1, 1),
        "contract: delete_partition counts what it deleted"
    );
    assert_eq!(must_get(store, &id, &live_m.id).await.id, live_m.id);
    assert!(
        load(store, &id, "P555").await.is_some() && events_of(store, &id).await.len() == 1,
        "contract: deleting the test partition leaves the live data"
    );
    let messages = store.list_messages(&test, None).await.expect("list");
    let patients = store.list_patients(&test).await.expect("list");
    assert!(
        messages.is_empty()
            && patients.is_empty()
            && load(store, &test, "P555").await.is_none()
            && events_of(store, &test).await.is_empty()
            && store.get_message(&test, &test_m.id).await == Ok(None),
        "contract: nothing of the test partition is left"
    );
    assert_eq!(
        store.delete_partition(&test).await,
        Ok(Default::default()),
        "contract: deleting again deletes nothing"
    );
    assert_eq!(
        store.org_config(&id).await.expect("org_config"),
        Some(live_config),
        "contract: the configuration stays"
    );
}
