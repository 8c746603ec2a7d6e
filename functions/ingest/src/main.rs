//! The ingest function: `POST /hl7` behind an API Gateway HTTP API. It calls
//! `pipeline::ingest`, which authenticates the key, stores the message before
//! answering, and queues a pointer for the patient function.
use lambda_http::{Body, Error, Request, Response, service_fn};
use tendon_aws::AwsStore;
use tendon_core::pipeline::{DEFAULT_MAX_BODY, ingest};
use tendon_core::ports::SystemClock;

async fn handle(store: &AwsStore, req: Request) -> Result<Response<Body>, Error> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let body: &[u8] = req.body().as_ref();
    let reply = match ingest(
        store,
        store,
        store,
        &SystemClock,
        auth,
        body,
        DEFAULT_MAX_BODY,
    )
    .await
    {
        Ok(reply) => reply,
        Err(e) => {
            // Nothing was acknowledged: the gateway retries, and ingest is idempotent.
            tracing::error!(error = %e, "ingest failed");
            return Ok(Response::builder()
                .status(503)
                .header("content-type", "application/json")
                .body(Body::from(
                    r#"{"error":"unavailable","message":"storage is unavailable; retry"}"#,
                ))?);
        }
    };
    Ok(Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type)
        .body(Body::from(reply.body))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tendon_aws::init_lambda_logs();
    let store = AwsStore::from_env().await?.with_ingest_cache();
    lambda_http::run(service_fn(|req: Request| handle(&store, req))).await
}
