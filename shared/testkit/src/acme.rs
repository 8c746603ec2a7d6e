//! The worked example's org (docs/interface.md §8), as the adapters' tests
//! configure it on a store: ACME01 (`Acme PT`, America/Los_Angeles, the IE
//! type `Initial Eval`), location 12 (`Salem Clinic`) and practitioner 445566
//! (Chidi Okafor), with the ingest key [`KEY`].
use tendon_core::keys::key_hash;
use tendon_core::model::{PatientRecord, StoredMessage};
use tendon_core::org::{Location, Org, Practitioner};
use tendon_core::ports::{ConfigStore, MessageLog, PatientStore};

/// The org's ID, as MSH-4 of the worked example names it.
pub const ORG: &str = "ACME01";

/// The org's ingest key (the store keeps its hash).
pub const KEY: &str = "tdn_test_key_acme";

/// docs/interface.md §8's worked example, segments ending in CR.
pub const WORKED: &str = include_str!("../../../examples/worked-example.hl7");

/// An org with the IE type `Initial Eval` and the default field map.
pub fn clinic(id: &str, name: &str, timezone: &str) -> Org {
    Org {
        id: id.into(),
        name: name.into(),
        timezone: timezone.into(),
        ie_types: vec!["Initial Eval".into()],
        field_map: Default::default(),
    }
}

/// ACME01: `Acme PT` in America/Los_Angeles.
pub fn org() -> Org {
    clinic(ORG, "Acme PT", "America/Los_Angeles")
}

/// Location 12, `Salem Clinic` (the worked example's PV1-3).
pub fn location() -> Location {
    Location {
        id: "12".into(),
        name: "Salem Clinic".into(),
        timezone: None,
    }
}

/// Practitioner 445566, Chidi Okafor (the worked example's therapist).
pub fn practitioner() -> Practitioner {
    Practitioner {
        id: "445566".into(),
        first_name: "Chidi".into(),
        last_name: "Okafor".into(),
        npi: None,
        email: None,
    }
}

/// Creates `org` with the hash of `key`, and gives it [`location`] 12 and
/// [`practitioner`] 445566: what the worked example needs.
pub async fn configure<S: ConfigStore>(store: &S, org: &Org, key: &str) {
    store
        .create_org(org, &key_hash(key))
        .await
        .expect("create_org");
    store
        .put_location(&org.id, &location())
        .await
        .expect("put_location");
    store
        .put_practitioner(&org.id, &practitioner())
        .await
        .expect("put_practitioner");
}

/// ACME01 configured on `store`, with the ingest key [`KEY`].
pub async fn setup<S: ConfigStore>(store: &S) {
    configure(store, &org(), KEY).await;
}

/// ACME01's patient `id` as stored; panics unless it is there.
pub async fn patient<S: PatientStore>(store: &S, id: &str) -> PatientRecord {
    store
        .load_patient(ORG, id)
        .await
        .expect("load_patient")
        .unwrap_or_else(|| panic!("patient {id} is stored"))
}

/// ACME01's stored messages, oldest first.
pub async fn messages<S: MessageLog>(store: &S) -> Vec<StoredMessage> {
    store.list_messages(ORG, None).await.expect("list_messages")
}
