//! The "Open in" function: Tendon's HTTP application (`tendon-http`) behind
//! the HTTP API, for `GET /cliniko/open/{token}?patient_id=ID`.
use lambda_http::Error;
use tendon_aws::AwsStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tendon_aws::init_lambda_logs();
    let store = AwsStore::from_env().await?;
    lambda_http::run(tendon_http::router(
        store,
        tendon_http::Settings::from_env()?,
    ))
    .await
}
