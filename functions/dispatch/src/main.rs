//! The dispatch function: one dispatcher pass per EventBridge Scheduler event
//! (`rate(1 minute)`), as of the event's `time` (`tendon dispatch --at` runs
//! the same pass).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tendon_aws::lambda::run_dispatch_function().await
}
