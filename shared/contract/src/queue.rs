//! [`WorkQueue`](tendon_core::ports::WorkQueue): `send` accepts work on both
//! queues and a repeated dedupe ID is not an error. (What a consumer receives
//! is backend-specific and tested by each adapter.)
use tendon_core::ports::{QueueName, WorkItem};

use crate::Stores;
use crate::fixtures::*;

/// send accepts work on both queues, and a repeated dedupe ID is not an error.
/// (What a consumer receives is backend-specific and tested by each adapter.)
pub async fn queue_send<S: Stores>(store: &S) {
    let org_id = unique("ORG");
    for queue in [QueueName::Patients, QueueName::Episodes] {
        let item = WorkItem {
            org: org_id.clone(),
            message_id: unique("m"),
            patient_id: Some("P555".to_owned()),
        };
        let group = format!("{org_id}#P555");
        store
            .send(queue, &group, &item.message_id, &item)
            .await
            .expect("contract: send succeeds");
        store
            .send(queue, &group, &item.message_id, &item)
            .await
            .expect("contract: a repeated send with the same dedupe ID is not an error");
    }
}
