//! The ingest function: Tendon's HTTP application (`tendon-http`) behind an
//! API Gateway HTTP API, for `POST /hl7`, `GET /health` and the unsubscribe
//! links of workflow emails.
use lambda_http::Error;
use tendon_aws::AwsStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tendon_aws::init_lambda_logs();
    let store = AwsStore::from_env().await?.with_ingest_cache();
    lambda_http::run(tendon_http::router(
        store,
        tendon_http::Settings::from_env()?,
    ))
    .await
}
