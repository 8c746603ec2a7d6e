//! `tendon serve`: the HTTP endpoints and the queue consumers in one process,
//! calling the same core handlers as the Lambdas. On the local backend this is
//! the embedded mode; with `--backend aws` it polls the real queues.
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tendon_core::intake::{DEFAULT_MAX_BODY, HttpReply, ingest, ingest_too_large};
use tendon_core::ports::SystemClock;
use tendon_core::workflow::unsubscribe;

use crate::backend::Backend;

mod http;

pub async fn serve<B: Backend>(
    backend: B,
    addr: SocketAddr,
    public_url: Option<String>,
    resync_minutes: u64,
) -> Result<(), String> {
    let timeouts = http::Timeouts::from_env()?;
    backend.spawn_workers();
    let app = Router::new()
        .route("/hl7", post(hl7::<B>))
        .route("/health", get(health::<B>))
        .route(
            "/unsubscribe/{org}/{patient}/{token}",
            get(unsubscribe::<B>).post(unsubscribe::<B>),
        )
        .route("/cliniko/open/{token}", get(cliniko_open::<B>))
        .with_state(backend.clone())
        .layer(Extension(timeouts));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    backend.spawn_dispatcher(public_url.unwrap_or_else(|| format!("http://{local}")));
    backend.spawn_cliniko_resync(resync_minutes);
    // The first line on stdout says where to post; scripts and tests read it.
    // Nobody reading it (a closed stdout) is no reason to stop serving: the
    // log says it too.
    let _ = crate::output::line(&format!("tendon serve listening on http://{local}"));
    tracing::info!(addr = %local, "listening");
    http::serve(listener, app, timeouts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// A core handler's answer as an HTTP response.
fn reply(reply: HttpReply) -> Response {
    (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

/// `GET /health`: the backend's probe (`tendon_core::health`), `200` or `503`.
async fn health<B: Backend>(State(backend): State<B>) -> Response {
    reply(tendon_core::health::check(backend.store()).await)
}

/// `POST /hl7`. The body is read here, at most the limit and within the
/// body timeout: every body over the limit gets the core's JSON `413` (after
/// the key's `401`), however large.
async fn hl7<B: Backend>(
    State(backend): State<B>,
    Extension(timeouts): Extension<http::Timeouts>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let store = backend.store();
    let body = match http::read_body(&headers, body, DEFAULT_MAX_BODY, timeouts.body).await {
        Ok(body) => body,
        Err(http::BodyError::TooLarge(size)) => {
            return match ingest_too_large(store, auth, size, DEFAULT_MAX_BODY).await {
                Ok(answer) => http::closing(reply(answer)),
                Err(e) => {
                    tracing::error!(error = %e, "ingest failed");
                    unavailable()
                }
            };
        }
        Err(http::BodyError::Timeout) => {
            return http::closing(http::json_error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                &format!(
                    "the body did not arrive within {} s; nothing was stored",
                    timeouts.body.as_secs_f64()
                ),
            ));
        }
        Err(http::BodyError::Broken) => {
            return http::closing(http::json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body could not be read; nothing was stored",
            ));
        }
    };
    // Until ingest answers, this request counts as unanswered: if it fails,
    // or the request timeout drops it mid-way, a message it stored is marked
    // never acknowledged.
    let mut guard = UnansweredGuard {
        backend: Some(backend.clone()),
        auth: auth.map(str::to_owned),
        body: body.clone(),
    };
    match ingest(
        store,
        backend.queue(),
        &SystemClock,
        auth,
        &body,
        DEFAULT_MAX_BODY,
    )
    .await
    {
        Ok(answer) => {
            guard.backend = None;
            reply(answer)
        }
        Err(e) => {
            // Nothing was acknowledged: the gateway retries, and ingest is idempotent.
            tracing::error!(error = %e, "ingest failed");
            unavailable()
        }
    }
}

/// Marks the request's message, if stored, as never acknowledged when it is
/// dropped armed (`intake::unanswered`). The marking runs on its own task,
/// after the store's writes already queued (the SQLite writer keeps order).
struct UnansweredGuard<B: Backend> {
    backend: Option<B>,
    auth: Option<String>,
    body: Bytes,
}

impl<B: Backend> Drop for UnansweredGuard<B> {
    fn drop(&mut self) {
        let Some(backend) = self.backend.take() else {
            return;
        };
        let (auth, body) = (self.auth.take(), std::mem::take(&mut self.body));
        tokio::spawn(async move {
            let marked = tendon_core::intake::unanswered(
                backend.store(),
                backend.queue(),
                auth.as_deref(),
                &body,
            )
            .await;
            if let Err(e) = marked {
                tracing::warn!(error = %e, "an unanswered message could not be marked");
            }
        });
    }
}

/// `503`: storage failed, nothing was acknowledged.
fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":"unavailable","message":"storage is unavailable; retry"}"#,
    )
        .into_response()
}

/// An email's unsubscribe link: GET shows the page with one button, POST
/// (that button, or a mail client's RFC 8058 one-click) unsubscribes
/// (`tendon_core::workflow::unsubscribe`). No answer says whether the patient
/// exists.
async fn unsubscribe<B: Backend>(
    State(backend): State<B>,
    method: Method,
    Path((org, patient, token)): Path<(String, String, String)>,
) -> Response {
    let request = unsubscribe::Request::from_method(method.as_str());
    let (status, page) = backend
        .unsubscribe(request, &org, &patient, &token)
        .await
        .http();
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct OpenQuery {
    patient_id: Option<String>,
}

/// Cliniko's "Open in" button: sync the patient, then redirect to their
/// profile (the template in `TENDON_PROFILE_URL`). Every 404 goes out
/// `NOT_FOUND_FLOOR` after the request came in, whichever path found nothing
/// (`tendon_core::cliniko::open::hold`).
async fn cliniko_open<B: Backend>(
    State(backend): State<B>,
    Path(token): Path<String>,
    axum::extract::Query(query): axum::extract::Query<OpenQuery>,
) -> Response {
    let started = tokio::time::Instant::now();
    let template = std::env::var(tendon_aws::lambda::ENV_PROFILE_URL)
        .unwrap_or_else(|_| tendon_core::cliniko::open::DEFAULT_PROFILE_URL.to_owned());
    let answer = tendon_core::cliniko::open::open(
        backend.store(),
        crate::cliniko::client_for,
        &token,
        query.patient_id.as_deref(),
        &template,
        jiff::Timestamp::now(),
    )
    .await;
    if let Ok(answer) = &answer {
        tendon_core::cliniko::open::hold(answer, started, tokio::time::sleep_until).await;
    }
    match answer {
        Ok(answer) => {
            let (status, location, body) = answer.http();
            let mut response = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response();
            if let Some(url) = location.and_then(|l| header::HeaderValue::from_str(l).ok()) {
                response.headers_mut().insert(header::LOCATION, url);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "Open in failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!doctype html><p>Please try again later.</p>\n",
            )
                .into_response()
        }
    }
}
