//! [`WorkflowStore`] on DynamoDB: the workflow definitions, one item per
//! workflow (`WF#<id>`) in the org partition, so `org_config` reads them in
//! its one Query (`config.rs`). Every write here is one transaction with a
//! fresh configuration token on the org item, so the steps' token-checked
//! configuration cache never serves stale workflows. The steps a workflow
//! schedules are in `schedule.rs`, what it sends in `deliveries.rs`.
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use tendon_core::ports::{StoreError, StoreResult, WorkflowStore};
use tendon_core::workflow::{Workflow, WorkflowStatus};

use crate::config::org_changed;
use crate::items::{Item, PK, SK, WORKFLOW_PREFIX, from_item, org_pk, to_item};
use crate::{AwsStore, build};

/// Rounds of a write that raced another writer of the same item.
const MAX_WRITE_ROUNDS: usize = 8;

fn workflow_sk(id: &str) -> String {
    format!("{WORKFLOW_PREFIX}{id}")
}

/// A workflow item read back (its key attributes dropped: the struct denies
/// unknown fields).
pub(crate) fn decode_workflow(what: &str, mut item: Item) -> StoreResult<Workflow> {
    item.remove(PK);
    item.remove(SK);
    from_item(what, item)
}

impl AwsStore {
    /// Changes the workflow item `sk` of `org`: a GetItem of the stored one,
    /// then `change` makes the workflow to store from it, with the version
    /// the write is conditional on (`None`: none may be stored), and one
    /// transaction writes it with a fresh configuration token on the org item
    /// (which must exist). A racing write makes it read again.
    async fn change_workflow(
        &self,
        what: &str,
        org: &str,
        sk: &str,
        change: impl Fn(Option<Workflow>) -> StoreResult<(Workflow, Option<u32>)>,
    ) -> StoreResult<Workflow> {
        for _ in 0..MAX_WRITE_ROUNDS {
            let stored = match self.get(what, org_pk(org), sk).await? {
                Some(item) => Some(decode_workflow(what, item)?),
                None => None,
            };
            let (wf, expected) = change(stored)?;
            let item = to_item(what, &wf, org_pk(org), sk)?;
            let put = Put::builder().table_name(&self.table).set_item(Some(item));
            let put = match expected {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(v) => put
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
            };
            let put = put.build().map_err(|_| build(what))?;
            let items = vec![
                org_changed(self, what, org)?,
                TransactWriteItem::builder().put(put).build(),
            ];
            match self.transact_conditions(what, items).await? {
                None => return Ok(wf),
                Some(failed) if failed.first() == Some(&true) => {
                    return Err(StoreError::NotFound(format!("org {org}")));
                }
                // Re-imported or removed meanwhile: read it again.
                Some(_) => continue,
            }
        }
        Err(StoreError::backend(what, "the workflow kept changing"))
    }
}

impl WorkflowStore for AwsStore {
    /// A GetItem of the current version, then one transaction: the workflow
    /// (conditional on that version) and a fresh configuration token on the
    /// org item (which must exist). A racing import is retried.
    async fn put_workflow(&self, org: &str, workflow: &Workflow) -> StoreResult<Workflow> {
        let sk = workflow_sk(&workflow.id);
        self.change_workflow("put_workflow", org, &sk, |stored| {
            let prev = stored.map(|wf| wf.version);
            let mut wf = workflow.clone();
            wf.version = prev.map_or(1, |v| v + 1);
            Ok((wf, prev))
        })
        .await
    }

    /// A GetItem, then one transaction: the workflow with the new status
    /// (conditional on the version read) and a fresh configuration token.
    async fn set_workflow_status(
        &self,
        org: &str,
        id: &str,
        status: WorkflowStatus,
    ) -> StoreResult<Workflow> {
        self.change_workflow("set_workflow_status", org, &workflow_sk(id), |stored| {
            let Some(mut wf) = stored else {
                return Err(StoreError::NotFound(format!("workflow {id}")));
            };
            wf.status = status;
            let version = wf.version;
            Ok((wf, Some(version)))
        })
        .await
    }
}
