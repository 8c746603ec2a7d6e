//! The port that remembers when the dispatcher last ran (one record for
//! every org: the dispatcher is one), for the doctor.
use std::future::Future;

use jiff::Timestamp;

use super::StoreResult;

pub trait DispatchLog: Send + Sync {
    /// Records that a dispatch pass started at `at`; an earlier time than
    /// the one recorded leaves it as it is.
    fn record_dispatch_pass(&self, at: Timestamp) -> impl Future<Output = StoreResult<()>> + Send;
    /// When the latest dispatch pass started, if one ever did.
    fn last_dispatch_pass(&self) -> impl Future<Output = StoreResult<Option<Timestamp>>> + Send;
}
