//! `tendon serve`'s HTTP server: hyper's HTTP/1.1 connections, with the
//! timeouts `axum::serve` cannot set, and graceful shutdown.
//!
//! - The request line and headers must arrive within [`HEADER_TIMEOUT`](crate::HEADER_TIMEOUT)
//!   (hyper's `header_read_timeout`), or the connection is closed: a client
//!   that trickles a header (slowloris) holds a connection that long at most.
//!   The same clock runs while a kept-alive connection waits for its next
//!   request, so an idle connection is closed after it too.
//! - A body must arrive within [`BODY_TIMEOUT`](crate::BODY_TIMEOUT) of the headers (`read_body`),
//!   or the answer is `408`.
//! - Every request is answered within [`REQUEST_TIMEOUT`](crate::REQUEST_TIMEOUT) of its headers
//!   (`request_timeout`), or the answer is `503` `{"error":"timeout"}`: for
//!   `POST /hl7` that means "not acknowledged", and the gateway's retry is
//!   safe because ingest is idempotent.
//!
//! Each can be changed through the environment (`TENDON_HTTP_HEADER_TIMEOUT`,
//! `TENDON_HTTP_BODY_TIMEOUT`, `TENDON_HTTP_REQUEST_TIMEOUT`, in seconds),
//! which the tests use to make them short.
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tendon_core::reply::HttpReply;

use crate::{Timeouts, closing, respond};

/// Serves `app` on `listener` until `shutdown` completes; then stops
/// accepting, and waits for the requests under way (at most the request
/// timeout).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let app = app.layer(axum::middleware::from_fn_with_state(
        timeouts.request,
        request_timeout,
    ));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: the connections under
                    // way go on, and accepting resumes in a moment.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection =
            http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A header timeout, a client gone, a malformed request: the
            // connection's end, not the server's.
            if let Err(e) = connection.await {
                tracing::debug!(peer = %peer, error = %e, "connection closed");
            }
        });
    }
    tracing::info!("shutting down: waiting for the requests under way");
    if tokio::time::timeout(timeouts.request, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still under way at shutdown were dropped");
    }
    Ok(())
}

/// The middleware that answers `503` `{"error":"timeout"}` for a request not
/// answered within `limit` (its handler is dropped).
async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            // The path may hold an unsubscribe token: only its first segment.
            let route = path.split('/').nth(1).unwrap_or_default();
            tracing::error!(%method, route, limit_s = limit.as_secs_f64(), "request timed out");
            closing(respond(HttpReply::json_error(
                503,
                "timeout",
                &format!(
                    "the request was not answered within {} s; nothing was acknowledged: retry",
                    limit.as_secs_f64()
                ),
            )))
        }
    }
}
