//! [`Suppressions`]: suppressed addresses, per org and compared lower-cased.
use tendon_core::ports::Suppressions;

use crate::Stores;
use crate::fixtures::*;

/// Suppressed addresses are per org, compared lower-cased, and suppressing
/// twice is harmless.
pub async fn suppressed_addresses<S: Stores + Suppressions>(store: &S) {
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
