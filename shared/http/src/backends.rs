//! [`App`](crate::App) over each backend: DynamoDB and SQS (`aws`), and the
//! SQLite store with its queues (`local`).

#[cfg(feature = "aws")]
impl crate::App for tendon_aws::AwsStore {
    type Store = tendon_aws::AwsStore;
    type Queue = tendon_aws::AwsStore;

    fn store(&self) -> &Self::Store {
        self
    }

    fn queue(&self) -> &Self::Queue {
        self
    }

    fn unsubscribe_secret(
        &self,
    ) -> impl std::future::Future<Output = tendon_core::ports::StoreResult<String>> + Send {
        tendon_aws::AwsStore::unsubscribe_secret(self)
    }
}

#[cfg(feature = "local")]
impl crate::App for tendon_local::LocalQueue {
    type Store = tendon_local::SqliteStore;
    type Queue = tendon_local::LocalQueue;

    fn store(&self) -> &Self::Store {
        tendon_local::LocalQueue::store(self)
    }

    fn queue(&self) -> &Self::Queue {
        self
    }

    fn unsubscribe_secret(
        &self,
    ) -> impl std::future::Future<Output = tendon_core::ports::StoreResult<String>> + Send {
        tendon_local::LocalQueue::store(self).unsubscribe_secret()
    }
}
