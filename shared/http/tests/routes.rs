//! The one Router over both backends, called as each server calls it: with
//! requests built from API Gateway HTTP API events by `lambda_http` (what the
//! ingest and "Open in" functions receive), and with plain requests (what
//! `tendon serve`'s connections give it).
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use http_body_util::BodyExt;
use serde_json::{Value as Json, json};
use tendon_aws::AwsStore;
use tendon_core::batch;
use tendon_core::ports::{PatientStore, SystemClock};
use tendon_core::workflow::dispatch::{path_segment, unsubscribe_token};
use tendon_http::{App, Settings, router};
use tendon_local::SqliteStore;
use tendon_local::{LocalQueue, drain};
use tendon_testkit::{acme, moto};
use tower::ServiceExt;

/// The answer's status, headers and body text.
async fn call<B>(app: &Router, request: Request<B>) -> (u16, HeaderMap, String)
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a body").to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8(bytes.to_vec()).expect("text"),
    )
}

/// An API Gateway HTTP API (payload 2.0) event for `method` `raw_path`, as
/// the function receives it: `raw_path` still percent-encoded.
fn apigw_event(method: &str, raw_path: &str, query: &str, headers: Json, body: &str) -> String {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "gateway"
            },
            "requestId": "req",
            "routeKey": "$default",
            "stage": "$default",
            "time": "04/Dec/2026:10:00:00 +0000",
            "timeEpoch": 1_796_378_400_000_u64
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

/// The request `lambda_http` makes of that event.
fn from_apigw(event: &str) -> Request<lambda_http::Body> {
    lambda_http::request::from_str(event).expect("an API Gateway event")
}

fn plain(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("a request")
}

/// ACME01 on a fresh SQLite database, and its Router.
async fn local() -> (LocalQueue, Router) {
    let queue = LocalQueue::new(SqliteStore::open_in_memory().expect("sqlite"));
    acme::setup(queue.store()).await;
    let app = router(queue.clone(), Settings::from_env().expect("settings"));
    (queue, app)
}

/// `POST /hl7` as the ingest function gets it: the worked example is stored,
/// acknowledged `AA` and processed into patient P555; without the key it is
/// the JSON `401` and nothing is stored.
#[tokio::test]
async fn an_api_gateway_post_of_the_worked_example_is_acknowledged_and_processed() {
    let (queue, app) = local().await;
    let auth = json!({"authorization": format!("Bearer {}", acme::KEY), "content-type": "application/hl7-v2"});
    let (status, headers, ack) = call(
        &app,
        from_apigw(&apigw_event("POST", "/hl7", "", auth, acme::WORKED)),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(headers["content-type"], "application/hl7-v2");
    assert!(ack.contains("MSA|AA|MSG00042"), "{ack}");
    drain(&queue).await.expect("drain");
    let patient = queue
        .store()
        .load_patient(acme::ORG, "P555")
        .await
        .expect("load")
        .expect("P555 was created");
    assert_eq!(patient.episodes.len(), 2, "a Default and a Case EOC");

    let (status, headers, body) = call(
        &app,
        from_apigw(&apigw_event("POST", "/hl7", "", json!({}), acme::WORKED)),
    )
    .await;
    assert_eq!(
        (status, &headers["content-type"]),
        (401, &"application/json".parse().unwrap())
    );
    assert!(body.contains("\"error\""), "{body}");
}

/// `GET /health` answers `{"status":"ok"}` on a working local store.
#[tokio::test]
async fn health_is_ok_on_a_working_store() {
    let (_queue, app) = local().await;
    let (status, _, body) = call(&app, plain("GET", "/health")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
}

/// An unsubscribe link, on either backend: a GET (a person, or a mail
/// scanner following the link) shows the page with one button and changes
/// nothing, for a patient who exists or not alike; a POST (that button, or a
/// mail client's RFC 8058 one-click) unsubscribes; a wrong token is a 404
/// either way. The link's segments arrive percent-encoded in the function's
/// event, and are decoded by the Router.
async fn unsubscribe_link_shows_on_get_and_acts_on_post<A: App>(app: A, org: &str, patient: &str) {
    let router = router(app.clone(), Settings::from_env().expect("settings"));
    let secret = app.unsubscribe_secret().await.expect("secret");
    let link = |p: &str, token: &str| {
        format!(
            "/unsubscribe/{}/{}/{token}",
            path_segment(org),
            path_segment(p)
        )
    };
    let valid = link(patient, &unsubscribe_token(&secret, org, patient));
    let unsubscribed = || async {
        let rec = app
            .store()
            .load_patient(org, patient)
            .await
            .unwrap()
            .unwrap();
        rec.patient.unsubscribed
    };
    let event =
        |method: &str, path: &str| from_apigw(&apigw_event(method, path, "", json!({}), ""));

    for method in ["GET", "HEAD"] {
        let (status, headers, page) = call(&router, event(method, &valid)).await;
        assert_eq!(status, 200, "{method}: {page}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        if method == "GET" {
            assert!(page.contains("<form method=\"post\">"), "{page}");
            assert!(!page.contains("You are unsubscribed"), "{page}");
        }
    }
    assert!(!unsubscribed().await, "a GET changes nothing");
    let ghost = "P-never-seen";
    let ghost_link = link(ghost, &unsubscribe_token(&secret, org, ghost));
    assert_eq!(
        call(&router, event("GET", &ghost_link)).await.2,
        call(&router, event("GET", &valid)).await.2,
        "a GET does not tell whether the patient exists"
    );
    let wrong = link(patient, &"0".repeat(32));
    for method in ["GET", "POST"] {
        let (status, _, page) = call(&router, event(method, &wrong)).await;
        assert_eq!(status, 404, "{method}: {page}");
        assert!(page.contains("not valid"), "{page}");
    }
    assert_eq!(
        call(&router, plain("GET", "/unsubscribe/only-one")).await.0,
        404
    );
    assert!(!unsubscribed().await);

    let (status, _, page) = call(&router, event("POST", &valid)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You are unsubscribed"), "{page}");
    assert!(unsubscribed().await);
}

/// The worked example for a patient whose ID needs escaping in a link.
fn worked_for(patient: &str) -> String {
    acme::WORKED.replace("P555", patient)
}

/// A patient ID with a space and a slash.
const ESCAPED_PATIENT: &str = "P 5/5";

#[tokio::test]
async fn the_unsubscribe_link_on_the_local_backend() {
    let (queue, app) = local().await;
    let request = Request::builder()
        .method("POST")
        .uri("/hl7")
        .header("authorization", format!("Bearer {}", acme::KEY))
        .body(Body::from(worked_for(ESCAPED_PATIENT)))
        .expect("a request");
    let (_, _, ack) = call(&app, request).await;
    assert!(ack.contains("MSA|AA|"), "{ack}");
    drain(&queue).await.expect("drain");
    unsubscribe_link_shows_on_get_and_acts_on_post(queue, acme::ORG, ESCAPED_PATIENT).await;
}

/// "Open in" with a token no connection has: `404`, the same page as any
/// other miss, however the request came.
#[tokio::test]
async fn an_unknown_open_in_token_is_not_found() {
    let (_queue, app) = local().await;
    let (status, headers, page) = call(
        &app,
        from_apigw(&apigw_event(
            "GET",
            "/cliniko/open/no-such-token",
            "patient_id=1",
            json!({}),
            "",
        )),
    )
    .await;
    assert_eq!(status, 404, "{page}");
    assert!(headers.get("location").is_none());
    assert!(page.contains("cannot be opened here"), "{page}");
}

/// `GET /health` on moto through the Router: `200` on the bootstrapped
/// resources, `503` naming the part that does not answer.
#[tokio::test]
async fn health_on_aws_is_ok_and_names_what_fails() {
    let (store, env) = moto::fresh_store("health").await;
    let get = |store: AwsStore| async move {
        let app = router(store, Settings::from_env().expect("settings"));
        let (status, _, body) = call(
            &app,
            from_apigw(&apigw_event("GET", "/health", "", json!({}), "")),
        )
        .await;
        (status, serde_json::from_str::<Json>(&body).expect("JSON"))
    };
    assert_eq!(get(store).await, (200, json!({"status": "ok"})));
    let sdk = moto::sdk_config().await;
    let other = |table: &str, queue: &str| {
        AwsStore::new(&sdk, table, queue, env.episodes_queue_url.clone())
    };
    let (status, json) = get(other("no-such-table", &env.patients_queue_url)).await;
    assert_eq!(
        (status, &json["failing"]),
        (503, &json!(["store"])),
        "{json}"
    );
    assert_eq!(json["status"], "unavailable");
    let (status, json) = get(other(
        &env.table,
        &format!("{}-gone", env.patients_queue_url),
    ))
    .await;
    assert_eq!(
        (status, &json["failing"]),
        (503, &json!(["queue"])),
        "{json}"
    );
}

/// The unsubscribe link on DynamoDB.
#[tokio::test]
async fn the_unsubscribe_link_on_aws() {
    let (store, _) = moto::fresh_store("unsub").await;
    acme::setup(&store).await;
    let ack = tendon_testkit::post(&store, &store, acme::KEY, &worked_for(ESCAPED_PATIENT)).await;
    assert!(ack.contains("MSA|AA|"), "{ack}");
    batch::drain(&store, &store, &store, &SystemClock)
        .await
        .expect("drain");
    unsubscribe_link_shows_on_get_and_acts_on_post(store, acme::ORG, ESCAPED_PATIENT).await;
}
