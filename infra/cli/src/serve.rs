//! `tendon serve`: the HTTP endpoints and the queue consumers in one process,
//! calling the same core handlers as the Lambdas. On the local backend this is
//! the embedded mode; with `--backend aws` it polls the real queues.
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tendon_core::pipeline::{DEFAULT_MAX_BODY, ingest};
use tendon_core::ports::SystemClock;

use crate::backend::Backend;

pub async fn serve<B: Backend>(
    backend: B,
    addr: SocketAddr,
    public_url: Option<String>,
    resync_minutes: u64,
) -> Result<(), String> {
    backend.spawn_workers();
    let app = Router::new()
        .route("/hl7", post(hl7::<B>))
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/unsubscribe/{org}/{patient}/{token}",
            get(unsubscribe::<B>).post(unsubscribe::<B>),
        )
        .route("/cliniko/open/{token}", get(cliniko_open::<B>))
        .with_state(backend.clone())
        // Our own limit answers 413 with a reason; this one only stops abuse.
        .layer(DefaultBodyLimit::max(DEFAULT_MAX_BODY * 8));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    backend.spawn_dispatcher(public_url.unwrap_or_else(|| format!("http://{local}")));
    backend.spawn_cliniko_resync(resync_minutes);
    // The first line on stdout says where to post; scripts and tests read it.
    println!("tendon serve listening on http://{local}");
    tracing::info!(addr = %local, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

async fn hl7<B: Backend>(State(backend): State<B>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let store = backend.store();
    match ingest(
        store,
        store,
        backend.queue(),
        &SystemClock,
        auth,
        &body,
        DEFAULT_MAX_BODY,
    )
    .await
    {
        Ok(reply) => {
            let status =
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [(header::CONTENT_TYPE, reply.content_type)],
                reply.body,
            )
                .into_response()
        }
        Err(e) => {
            // Nothing was acknowledged: the gateway retries, and ingest is idempotent.
            tracing::error!(error = %e, "ingest failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"error":"unavailable","message":"storage is unavailable; retry"}"#,
            )
                .into_response()
        }
    }
}

/// An email's unsubscribe link (GET from a browser, POST from a mail client's
/// one-click unsubscribe). The answer never says whether the patient exists.
async fn unsubscribe<B: Backend>(
    State(backend): State<B>,
    Path((org, patient, token)): Path<(String, String, String)>,
) -> Response {
    match backend.unsubscribe(&org, &patient, &token).await {
        Ok(true) => {
            tracing::info!(org = %org, patient_id = %patient, "unsubscribed");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!doctype html><p>You are unsubscribed from these emails.</p>\n",
            )
                .into_response()
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><p>This unsubscribe link is not valid.</p>\n",
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "unsubscribe failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!doctype html><p>Please try again later.</p>\n",
            )
                .into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct OpenQuery {
    patient_id: Option<String>,
}

/// Cliniko's "Open in" button: sync the patient, then redirect to their
/// profile (the template in `TENDON_PROFILE_URL`).
async fn cliniko_open<B: Backend>(
    State(backend): State<B>,
    Path(token): Path<String>,
    axum::extract::Query(query): axum::extract::Query<OpenQuery>,
) -> Response {
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
