//! [`WorkflowStore`]: workflow definitions and their versions, as
//! `org_config` reads them.
use tendon_core::ports::{StoreError, WorkflowStore};

use crate::Stores;
use crate::fixtures::*;

/// put_workflow versions per ID; set_workflow_status keeps the version;
/// org_config carries the org's workflows.
pub async fn workflow_definitions<S: Stores + WorkflowStore>(store: &S) {
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
