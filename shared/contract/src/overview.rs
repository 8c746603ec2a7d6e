//! [`OrgOverview`](tendon_core::ports::OrgOverview): the doctor's bulk read
//! of an org, which may come from an index (eventually consistent there, so
//! this reads after its writes have settled; moto applies them at once).
use tendon_core::model::Source;

use crate::Stores;
use crate::fixtures::*;

pub async fn org_overview<S: Stores>(store: &S) {
    let (org_id, first) = org_with_message(store).await;
    let mut later = message(&org_id, &unique("m"), "2026-11-21T09:00:00Z");
    later.raw = vec![b'x'; 400 * 1024];
    insert(store, &later).await;
    let other = new_org(store, "ORG").await;
    insert(
        store,
        &message(&other, &unique("m"), "2026-11-21T09:00:00Z"),
    )
    .await;

    let survivor = patient_record("P2", 1);
    let mut alias = patient_record("P1", 1);
    alias.patient.merged_into = Some("P2".to_owned());
    let mut cliniko = patient_record("C-7", 1);
    cliniko.patient.source = Source::Cliniko;
    let records = [&survivor, &alias, &cliniko]
        .map(|r| new_record(r.clone()))
        .to_vec();
    store
        .commit(&commit(&org_id, &first.id, "patient", records, Vec::new()))
        .await
        .expect("contract: commit succeeds");

    let all = store
        .overview(&org_id, None)
        .await
        .expect("contract: overview succeeds");
    let mut ids: Vec<&str> = all.messages.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    let mut want = vec![first.id.as_str(), later.id.as_str()];
    want.sort();
    assert_eq!(ids, want, "contract: the org's messages, no other org's");
    let read = all.messages.iter().find(|m| m.id == first.id).unwrap();
    assert_eq!(
        (read.status, &read.facts, read.raw.is_empty()),
        (first.status, &first.facts, true),
        "contract: a message as listed (its status, facts), without its raw body"
    );
    assert_eq!(
        all.patients,
        vec![cliniko.patient.clone(), survivor.patient.clone()],
        "contract: the patients as list_patients lists them (no merged-away ID)"
    );
    assert!(all.failed_steps.is_empty());

    let since = store
        .overview(&org_id, Some(ts("2026-11-21T00:00:00Z")))
        .await
        .expect("overview");
    assert_eq!(
        since
            .messages
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [later.id.as_str()],
        "contract: only the messages received since"
    );
}
