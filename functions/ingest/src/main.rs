//! The ingest function: `POST /hl7` behind an API Gateway HTTP API. It calls
//! `intake::ingest`, which authenticates the key, stores the message before
//! answering, and queues a pointer for the patient function. It also answers
//! the public unsubscribe links of workflow emails
//! (`GET|POST /unsubscribe/{org}/{patient}/{token}`), and `GET /health`
//! (`tendon_core::health`: DynamoDB and SQS answer).
use lambda_http::{Body, Error, Request, Response, service_fn};
use tendon_aws::AwsStore;
use tendon_core::intake::{DEFAULT_MAX_BODY, HttpReply, ingest};
use tendon_core::ports::SystemClock;

/// An unsubscribe link (`tendon_aws::lambda::handle_unsubscribe`): a GET
/// shows the page with one button, a POST unsubscribes.
async fn unsubscribe(store: &AwsStore, req: &Request) -> Result<Response<Body>, Error> {
    let (status, page) =
        tendon_aws::lambda::handle_unsubscribe(store, req.method().as_str(), req.uri().path())
            .await;
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .body(Body::from(page))?)
}

/// A core handler's answer as the function's response.
fn reply(reply: HttpReply) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type)
        .body(Body::from(reply.body))?)
}

async fn handle(store: &AwsStore, req: Request) -> Result<Response<Body>, Error> {
    if req.uri().path().starts_with("/unsubscribe/") {
        return unsubscribe(store, &req).await;
    }
    if req.uri().path() == "/health" {
        return reply(tendon_core::health::check(store).await);
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let body: &[u8] = req.body().as_ref();
    let reply = match ingest(store, store, &SystemClock, auth, body, DEFAULT_MAX_BODY).await {
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
    self::reply(reply)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tendon_aws::init_lambda_logs();
    let store = AwsStore::from_env().await?.with_ingest_cache();
    lambda_http::run(service_fn(|req: Request| handle(&store, req))).await
}

#[cfg(test)]
#[path = "../../../shared/aws/tests/common/mod.rs"]
mod moto;

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_health(store: &AwsStore) -> (u16, serde_json::Value) {
        let req = lambda_http::http::Request::builder()
            .method("GET")
            .uri("/health")
            .body(Body::Empty)
            .expect("a request");
        let response = handle(store, req).await.expect("an answer");
        let json = serde_json::from_slice(response.body().as_ref()).expect("JSON");
        (response.status().as_u16(), json)
    }

    /// `GET /health` through the function's routing, on moto: `200` on the
    /// bootstrapped resources, `503` naming the part that does not answer.
    #[tokio::test]
    async fn health_is_ok_and_names_what_fails() {
        let (store, env) = moto::fresh_store("health").await;
        assert_eq!(
            get_health(&store).await,
            (200, serde_json::json!({"status": "ok"}))
        );
        let sdk = moto::sdk_config().await;
        let other = |table: &str, queue: &str| {
            AwsStore::new(&sdk, table, queue, env.episodes_queue_url.clone())
        };
        let no_table = other("no-such-table", &env.patients_queue_url);
        let (status, json) = get_health(&no_table).await;
        assert_eq!(
            (status, &json["failing"]),
            (503, &serde_json::json!(["store"])),
            "{json}"
        );
        assert_eq!(json["status"], "unavailable");
        let no_queue = other(&env.table, &format!("{}-gone", env.patients_queue_url));
        let (status, json) = get_health(&no_queue).await;
        assert_eq!(
            (status, &json["failing"]),
            (503, &serde_json::json!(["queue"])),
            "{json}"
        );
    }
}
