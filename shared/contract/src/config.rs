//! [`ConfigStore`](tendon_core::ports::ConfigStore): orgs (create, a duplicate
//! ID, update, an unknown org), ingest keys (lookup, adding, listing and
//! revoking), and locations and practitioners (NotFound, upsert, sorted and
//! per-org reads).
use tendon_core::mode::Mode;
use tendon_core::org::OrgConfig;
use tendon_core::ports::StoreError;

use crate::Stores;
use crate::fixtures::*;

/// org_config, which must succeed.
async fn config_of<S: Stores>(store: &S, org: &str) -> Option<OrgConfig> {
    store
        .org_config(org)
        .await
        .expect("contract: org_config succeeds")
}

/// org_for_key, which must succeed: the org the key hash leads to.
async fn key_org<S: Stores>(store: &S, key_hash: &str) -> Option<String> {
    store
        .org_for_key(key_hash)
        .await
        .expect("contract: org_for_key succeeds")
}

/// create_org, its duplicate, update_org, and org_config of an unknown org.
pub async fn orgs<S: Stores>(store: &S) {
    let id = unique("ORG");
    let first_key = unique("keyhash");
    let mut acme = org(&id);
    store
        .create_org(&acme, &first_key)
        .await
        .expect("contract: create_org on a new ID succeeds");

    let config = config_of(store, &id)
        .await
        .expect("contract: a created org has a config");
    assert_eq!(
        config.org, acme,
        "contract: org_config returns the org as created"
    );
    assert!(
        config.locations.is_empty(),
        "contract: a new org has no locations"
    );
    assert!(
        config.practitioners.is_empty(),
        "contract: a new org has no practitioners"
    );

    let second_key = unique("keyhash");
    let mut other = org(&id);
    other.name = "Someone else".to_owned();
    assert!(
        matches!(
            store.create_org(&other, &second_key).await,
            Err(StoreError::AlreadyExists(_))
        ),
        "contract: create_org on a taken ID is AlreadyExists"
    );
    assert_eq!(
        key_org(store, &second_key).await,
        None,
        "contract: a refused create_org registers no key"
    );
    let config = config_of(store, &id).await.expect("org");
    assert_eq!(
        config.org.name, acme.name,
        "contract: a refused create_org changes nothing"
    );

    acme.name = "Acme PT & Rehab".to_owned();
    acme.timezone = "America/Denver".to_owned();
    acme.add_ie_type("Telehealth Initial Eval");
    store
        .update_org(&acme)
        .await
        .expect("contract: update_org on an existing org succeeds");
    let config = config_of(store, &id).await.expect("org");
    assert_eq!(
        config.org, acme,
        "contract: update_org replaces the org's settings"
    );

    let missing = org(&unique("NOORG"));
    assert!(
        matches!(
            store.update_org(&missing).await,
            Err(StoreError::NotFound(_))
        ),
        "contract: update_org on an unknown org is NotFound"
    );
    assert_eq!(
        config_of(store, &missing.id).await,
        None,
        "contract: update_org on an unknown org does not create it"
    );
}

/// org_for_key and add_ingest_key.
pub async fn ingest_keys<S: Stores>(store: &S) {
    let id = unique("ORG");
    let first_key = unique("keyhash");
    store
        .create_org(&org(&id), &first_key)
        .await
        .expect("contract: create_org succeeds");
    assert_eq!(
        key_org(store, &first_key).await,
        Some(id.clone()),
        "contract: the first ingest key leads to its org"
    );
    assert_eq!(
        key_org(store, &unique("unknown")).await,
        None,
        "contract: an unknown key hash leads nowhere"
    );

    let second_key = unique("keyhash");
    store
        .add_ingest_key(&id, &second_key, Mode::Live)
        .await
        .expect("contract: add_ingest_key on an existing org succeeds");
    assert_eq!(
        key_org(store, &second_key).await,
        Some(id.clone()),
        "contract: an added key leads to its org"
    );
    assert_eq!(
        key_org(store, &first_key).await,
        Some(id.clone()),
        "contract: adding a key keeps the first one"
    );

    let stray_key = unique("keyhash");
    assert!(
        matches!(
            store
                .add_ingest_key(&unique("NOORG"), &stray_key, Mode::Live)
                .await,
            Err(StoreError::NotFound(_))
        ),
        "contract: add_ingest_key for an unknown org is NotFound"
    );
    assert_eq!(
        key_org(store, &stray_key).await,
        None,
        "contract: a refused add_ingest_key registers nothing"
    );

    // Listing and revoking.
    let hashes = |keys: Vec<tendon_core::ports::IngestKey>| -> Vec<String> {
        keys.into_iter().map(|k| k.hash).collect()
    };
    let listed = store
        .ingest_keys(&id)
        .await
        .expect("contract: ingest_keys succeeds");
    assert!(
        listed.iter().all(|k| k.created_at.is_some()),
        "contract: a key is listed with the time it was issued"
    );
    assert_eq!(
        hashes(listed),
        vec![first_key.clone(), second_key.clone()],
        "contract: an org's keys are listed oldest first"
    );
    let other = new_org(store, "ORG").await;
    assert_eq!(
        store.revoke_ingest_key(&other, &first_key).await,
        Err(StoreError::NotFound("ingest key".to_owned())),
        "contract: another org cannot revoke a key"
    );
    assert_eq!(
        key_org(store, &first_key).await,
        Some(id.clone()),
        "contract: a refused revocation leaves the key working"
    );
    store
        .revoke_ingest_key(&id, &first_key)
        .await
        .expect("contract: revoke_ingest_key of the org's key succeeds");
    assert_eq!(
        key_org(store, &first_key).await,
        None,
        "contract: a revoked key leads nowhere"
    );
    assert_eq!(
        hashes(store.ingest_keys(&id).await.expect("ingest_keys")),
        vec![second_key.clone()],
        "contract: a revoked key is no longer listed"
    );
    assert_eq!(
        store.revoke_ingest_key(&id, &first_key).await,
        Err(StoreError::NotFound("ingest key".to_owned())),
        "contract: revoking a revoked key is NotFound"
    );
    assert_eq!(
        key_org(store, &second_key).await,
        Some(id.clone()),
        "contract: revoking one key keeps the others"
    );
    assert!(
        store
            .ingest_keys(&unique("NOORG"))
            .await
            .expect("ingest_keys")
            .is_empty(),
        "contract: an unknown org has no keys"
    );
}

/// put_location and put_practitioner: NotFound, upsert, sorted and per-org reads.
pub async fn locations_and_practitioners<S: Stores>(store: &S) {
    let id = new_org(store, "ORG").await;
    let other = new_org(store, "ORG").await;

    let missing = unique("NOORG");
    assert!(
        matches!(
            store.put_location(&missing, &location("12")).await,
            Err(StoreError::NotFound(_))
        ),
        "contract: put_location for an unknown org is NotFound"
    );
    assert!(
        matches!(
            store
                .put_practitioner(&missing, &practitioner("445566"))
                .await,
            Err(StoreError::NotFound(_))
        ),
        "contract: put_practitioner for an unknown org is NotFound"
    );
    assert_eq!(
        config_of(store, &missing).await,
        None,
        "contract: a refused put creates no org"
    );

    for loc in ["b", "12", "9", "a"] {
        store
            .put_location(&id, &location(loc))
            .await
            .expect("contract: put_location succeeds");
    }
    let mut salem = location("12");
    salem.name = "Salem Clinic".to_owned();
    salem.timezone = Some("America/Los_Angeles".to_owned());
    store
        .put_location(&id, &salem)
        .await
        .expect("contract: put_location replaces");
    store
        .put_location(&other, &location("other-only"))
        .await
        .expect("contract: put_location succeeds");

    for p in ["778899", "445566"] {
        store
            .put_practitioner(&id, &practitioner(p))
            .await
            .expect("contract: put_practitioner succeeds");
    }
    let mut chidi = practitioner("445566");
    chidi.email = Some("chidi@example.com".to_owned());
    chidi.npi = None;
    store
        .put_practitioner(&id, &chidi)
        .await
        .expect("contract: put_practitioner replaces");

    let config = config_of(store, &id).await.expect("org");
    let loc_ids: Vec<&str> = config.locations.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        loc_ids,
        ["12", "9", "a", "b"],
        "contract: locations are the org's own, once each, sorted by ID"
    );
    assert_eq!(
        config.location("12"),
        Some(&salem),
        "contract: put_location replaces a location with the same ID"
    );
    assert_eq!(
        config.practitioners,
        vec![chidi, practitioner("778899")],
        "contract: practitioners are upserted and sorted by ID"
    );

    let config = config_of(store, &other).await.expect("org");
    assert_eq!(
        config.locations,
        vec![location("other-only")],
        "contract: orgs do not share locations"
    );
    assert!(
        config.practitioners.is_empty(),
        "contract: orgs do not share practitioners"
    );
}
