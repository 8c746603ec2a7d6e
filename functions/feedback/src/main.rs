//! The feedback function: SES publishes the configuration set's bounce and
//! complaint events to SNS, SNS to an SQS queue, and this function suppresses
//! each bounced or complaining address for its org and unsubscribes the
//! patient (`tendon_core::workflow::feedback`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tendon_aws::lambda::run_feedback_function().await
}
