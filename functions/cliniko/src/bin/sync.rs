//! The scheduled Cliniko re-sync: EventBridge Scheduler runs it every 15
//! minutes, and it imports each connected org's new and changed patients
//! (`tendon cliniko sync` for every org), each key within its rate limit.
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tendon_aws::AwsStore;
use tendon_core::cliniko::sync::sync_all;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tendon_aws::init_lambda_logs();
    let store = AwsStore::from_env().await?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| {
        let store = &store;
        async move {
            // Refused, with the reason, until the deployment names itself and
            // its contact to Cliniko (the alarm on failed syncs says so).
            tendon_cliniko::user_agent_from_env()?;
            let results = sync_all(store, tendon_cliniko::client_for, jiff::Timestamp::now()).await?;
            let summary: Vec<serde_json::Value> = results
                .iter()
                .map(|r| match &r.result {
                    Ok(report) => serde_json::json!({"org": r.org, "synced": report.synced, "failed": report.failed}),
                    Err(e) => serde_json::json!({"org": r.org, "error": e.to_string()}),
                })
                .collect();
            Ok::<_, Error>(serde_json::json!({"orgs": summary}))
        }
    }))
    .await
}
