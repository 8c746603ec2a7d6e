//! The port that deletes an org's test-mode data.
use std::future::Future;

use serde::Serialize;

use super::StoreResult;

/// Deleting an org's test-mode data ([`crate::mode`]).
pub trait TestData: Send + Sync {
    /// Deletes everything stored under `partition`, a test partition: its
    /// messages, its patients with their episodes, appointments and steps,
    /// its parked messages and its events. Deleting again deletes nothing.
    fn delete_partition(
        &self,
        partition: &str,
    ) -> impl Future<Output = StoreResult<PartitionDeleted>> + Send;
}

/// What [`TestData::delete_partition`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PartitionDeleted {
    pub messages: usize,
    pub patients: usize,
}
