//! The port contract suite (`tendon-contract`) on SQLite: one test per check
//! in memory (every suite) and on a database file of its own (the `port`
//! suite), and the `port` suite in turn on one shared store; then what only
//! SQLite does (reopening a file, ordering by instant).
use std::path::PathBuf;

use tendon_core::mode::Mode;
use tendon_core::ports::{ConfigStore, MessageLog};
use tendon_local::SqliteStore;

/// A database path of its own in the temp dir, removed (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        TempDb(std::env::temp_dir().join(format!(
            "tendon-local-{name}-{}-{nanos}.db",
            std::process::id()
        )))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

tendon_contract::contract_tests! {
    #[tokio::test]
    mod in_memory: port, workflows, cliniko =
        || SqliteStore::open_in_memory().expect("in-memory store");
}

// Each check on a database file of its own, opened by the check.
tendon_contract::contract_tests! {
    #[tokio::test]
    mod file_store: port = {
        let db = TempDb::new(&tendon_contract::unique("contract"));
        move || SqliteStore::open(&db.0).expect("file store")
    };
}

/// Every check in turn on one store, its clones shared: the data of the
/// checks before is there for the next, on a multi-thread runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_store_meets_the_port_contract_on_a_multi_thread_runtime() {
    let store = SqliteStore::open_in_memory().expect("in-memory store");
    tendon_contract::run_all(|| store.clone()).await;
}

#[tokio::test]
async fn a_file_store_keeps_its_data_across_opens() {
    let db = TempDb::new("reopen");
    let org = tendon_contract::org("ACME01");
    let message = tendon_contract::message("ACME01", "m1", "2026-11-20T17:30:00Z");
    {
        let store = SqliteStore::open(&db.0).expect("file store");
        store.create_org(&org, "hash-1").await.expect("create_org");
        store
            .insert_message(&message)
            .await
            .expect("insert_message");
    }
    let store = SqliteStore::open(&db.0).expect("reopened file store");
    assert_eq!(
        store.org_for_key("hash-1").await.expect("org_for_key"),
        Some("ACME01".to_owned())
    );
    assert_eq!(
        store
            .get_message("ACME01", "m1")
            .await
            .expect("get_message"),
        Some(message)
    );
}

#[test]
fn open_reports_an_unusable_path() {
    let missing_dir = std::env::temp_dir()
        .join("tendon-local-no-such-dir")
        .join("x")
        .join("tendon.db");
    let err = SqliteStore::open(&missing_dir)
        .expect_err("a path in a missing directory cannot be opened");
    assert!(err.contains("tendon.db"), "the error names the file: {err}");
}

#[tokio::test]
async fn received_at_orders_by_instant_not_by_text() {
    // "…:00.5Z" sorts before "…:00Z" as text, but is half a second later.
    let store = SqliteStore::open_in_memory().expect("store");
    let later = tendon_contract::message("ACME01", "later", "2026-11-20T17:30:00.5Z");
    let earlier = tendon_contract::message("ACME01", "earlier", "2026-11-20T17:30:00Z");
    let offset = tendon_contract::message("ACME01", "offset", "2026-11-20T09:30:00.25-08:00");
    for m in [&later, &earlier, &offset] {
        store.insert_message(m).await.expect("insert_message");
    }
    let ids: Vec<String> = store
        .list_messages("ACME01", None)
        .await
        .expect("list_messages")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["earlier", "offset", "later"]);
}

#[tokio::test]
async fn create_org_with_a_key_of_another_org_creates_nothing() {
    let store = SqliteStore::open_in_memory().expect("store");
    store
        .create_org(&tendon_contract::org("A"), "shared-hash")
        .await
        .expect("create A");
    let got = store
        .create_org(&tendon_contract::org("B"), "shared-hash")
        .await;
    assert!(
        matches!(got, Err(tendon_core::ports::StoreError::AlreadyExists(_))),
        "{got:?}"
    );
    assert_eq!(
        store.org_config("B").await.expect("org_config"),
        None,
        "the org is rolled back with its key"
    );
    assert_eq!(
        store.org_for_key("shared-hash").await.expect("org_for_key"),
        Some("A".to_owned())
    );
    assert_eq!(
        store.add_ingest_key("A", "shared-hash", Mode::Live).await,
        Ok(()),
        "re-adding an org's own key is a no-op"
    );
    assert!(matches!(
        store.add_ingest_key("B", "shared-hash", Mode::Live).await,
        Err(tendon_core::ports::StoreError::NotFound(_))
    ));
}
