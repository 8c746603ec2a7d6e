//! The ingest function: the ingest routes of Tendon's HTTP application
//! (`tendon_http::ingest_router`: `POST /hl7`, `GET /health` and the
//! unsubscribe links of workflow emails) behind an API Gateway HTTP API.
use lambda_http::Error;
use tendon_aws::AwsStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tendon_aws::init_lambda_logs();
    let store = AwsStore::from_env().await?.with_ingest_cache();
    let timeouts = tendon_http::Timeouts::from_env()?;
    lambda_http::run(tendon_http::ingest_router(store, timeouts)).await
}
