//! The ingest function: `POST /hl7` behind an API Gateway HTTP API. It calls
//! `pipeline::ingest`, which authenticates the key, stores the message before
//! answering, and queues a pointer for the patient function. It also answers
//! the public unsubscribe links of workflow emails
//! (`GET|POST /unsubscribe/{org}/{patient}/{token}`).
use lambda_http::{Body, Error, Request, Response, service_fn};
use tendon_aws::AwsStore;
use tendon_core::pipeline::{DEFAULT_MAX_BODY, ingest};
use tendon_core::ports::{SystemClock, WorkflowStore};
use tendon_core::workflow::steps::Channel;

fn html(status: u16, text: &str) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .body(Body::from(format!("<!doctype html><p>{text}</p>\n")))?)
}

/// An unsubscribe link: the token is checked against the secret; the answer
/// never says whether the patient exists.
async fn unsubscribe(store: &AwsStore, path: &str) -> Result<Response<Body>, Error> {
    let parts: Vec<&str> = path
        .trim_start_matches("/unsubscribe/")
        .split('/')
        .collect();
    let [org, patient, token] = parts[..] else {
        return html(404, "This unsubscribe link is not valid.");
    };
    let decode = |s: &str| percent_decode(s);
    let (org, patient) = (decode(org), decode(patient));
    let outcome = async {
        let secret = store.unsubscribe_secret().await?;
        if !tendon_core::workflow::dispatch::unsubscribe_token_ok(&secret, &org, &patient, token) {
            return Ok(false);
        }
        store
            .set_opt_out(&org, &patient, Channel::Email, true)
            .await
    };
    match outcome.await {
        Ok(true) => {
            tracing::info!(org = %org, patient_id = %patient, "unsubscribed");
            html(200, "You are unsubscribed from these emails.")
        }
        Ok(false) => html(404, "This unsubscribe link is not valid."),
        Err(e) => {
            tracing::error!(error = %e, "unsubscribe failed");
            html(503, "Please try again later.")
        }
    }
}

/// `%XX` escapes decoded (the link's org and patient segments are escaped).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(store: &AwsStore, req: Request) -> Result<Response<Body>, Error> {
    if req.uri().path().starts_with("/unsubscribe/") {
        return unsubscribe(store, req.uri().path()).await;
    }
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
