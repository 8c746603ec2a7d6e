//! The "Open in" function: `GET /cliniko/open/{token}?patient_id=ID` behind
//! the HTTP API. It syncs that one Cliniko patient, then redirects (303) to
//! the patient's profile (`TENDON_PROFILE_URL`, a template with `{org}` and
//! `{patient_id}`), as `tendon serve` does. Every 404 goes out
//! `NOT_FOUND_FLOOR` after the request came in, whichever path found nothing
//! (`tendon_core::cliniko::open::hold`), so its timing does not tell whether
//! the token exists.
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use tendon_aws::AwsStore;
use tendon_core::cliniko::open::{DEFAULT_PROFILE_URL, hold, open};

async fn handle(store: &AwsStore, template: &str, req: Request) -> Result<Response<Body>, Error> {
    let started = tokio::time::Instant::now();
    let token = req
        .uri()
        .path()
        .strip_prefix("/cliniko/open/")
        .unwrap_or_default()
        .to_owned();
    let params = req.query_string_parameters();
    let patient_id = params.first("patient_id");
    let answer = open(
        store,
        |c| tendon_cliniko::client_for(c).map_err(|e| e.to_string()),
        &token,
        patient_id,
        template,
        jiff::Timestamp::now(),
    )
    .await;
    if let Ok(answer) = &answer {
        hold(answer, started, tokio::time::sleep_until).await;
    }
    let (status, location, body) = match &answer {
        Ok(answer) => answer.http(),
        Err(e) => {
            tracing::error!(error = %e, "Open in failed");
            (
                503,
                None,
                "<!doctype html><p>Please try again later.</p>\n".to_owned(),
            )
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8");
    if let Some(url) = location {
        response = response.header("location", url);
    }
    Ok(response.body(Body::from(body))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tendon_aws::init_lambda_logs();
    let store = AwsStore::from_env().await?;
    let template = std::env::var(tendon_aws::lambda::ENV_PROFILE_URL)
        .unwrap_or_else(|_| DEFAULT_PROFILE_URL.to_owned());
    lambda_http::run(service_fn(|req: Request| handle(&store, &template, req))).await
}
