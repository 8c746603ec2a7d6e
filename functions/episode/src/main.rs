//! The episode function: the episode step (`processing::run_step`) for each record
//! of a batch from the episodes SQS FIFO queue, in order, reporting the records
//! to retry (`ReportBatchItemFailures`).
use tendon_core::ports::QueueName;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tendon_aws::lambda::run_queue_function(QueueName::Episodes).await
}
