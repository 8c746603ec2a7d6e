//! The patient function: `pipeline::patient_step` for each record of an SQS
//! FIFO batch, in order, reporting the records to retry (`ReportBatchItemFailures`).
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tendon_aws::AwsStore;
use tendon_aws::lambda::handle_sqs_batch;
use tendon_core::pipeline::patient_step;
use tendon_core::ports::SystemClock;

async fn handle(store: &AwsStore, event: SqsEvent) -> SqsBatchResponse {
    handle_sqs_batch(event, |item| async move {
        patient_step(store, store, store, store, &SystemClock, &item).await
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let store = AwsStore::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let store = &store;
        async move { Ok::<_, Error>(handle(store, event.payload).await) }
    }))
    .await
}
