//! `tendon serve`: the local embedded mode. The HTTP endpoints and the queue
//! workers in one process on SQLite, calling the same core handlers as the Lambdas.
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tendon_core::pipeline::{DEFAULT_MAX_BODY, ingest};
use tendon_core::ports::{QueueName, SystemClock};
use tendon_local::SqliteStore;

use tendon_local::worker::{self, LocalQueue};

pub async fn serve(store: SqliteStore, addr: SocketAddr) -> Result<(), String> {
    let queue = LocalQueue::new(store);
    for name in [QueueName::Patients, QueueName::Episodes] {
        tokio::spawn(worker::run(queue.clone(), name));
    }
    let app = Router::new()
        .route("/hl7", post(hl7))
        .route("/health", get(|| async { "ok\n" }))
        .with_state(queue)
        // Our own limit answers 413 with a reason; this one only stops abuse.
        .layer(DefaultBodyLimit::max(DEFAULT_MAX_BODY * 8));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
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

async fn hl7(State(queue): State<LocalQueue>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let store = queue.store();
    match ingest(
        store,
        store,
        &queue,
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
