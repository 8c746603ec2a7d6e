//! The "Open in" function: the route of Tendon's HTTP application for
//! Cliniko's button (`tendon_http::open_router`:
//! `GET /cliniko/open/{token}?patient_id=ID`) behind the HTTP API.
use lambda_http::Error;
use tendon_aws::AwsStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tendon_aws::init_lambda_logs();
    let store = AwsStore::from_env().await?;
    let template = tendon_http::profile_template_from_env();
    lambda_http::run(tendon_http::open_router(store, template)).await
}
