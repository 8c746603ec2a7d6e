//! `tendon serve`'s HTTP server: hyper's HTTP/1.1 connections, with the
//! timeouts `axum::serve` cannot set, and graceful shutdown.
//!
//! - The request line and headers must arrive within [`HEADER_TIMEOUT`]
//!   (hyper's `header_read_timeout`), or the connection is closed: a client
//!   that trickles a header (slowloris) holds a connection that long at most.
//!   The same clock runs while a kept-alive connection waits for its next
//!   request, so an idle connection is closed after it too.
//! - A body must arrive within [`BODY_TIMEOUT`] of the headers ([`read_body`]),
//!   or the answer is `408`.
//! - Every request is answered within [`REQUEST_TIMEOUT`] of its headers
//!   ([`request_timeout`]), or the answer is `503` `{"error":"timeout"}`: for
//!   `POST /hl7` that means "not acknowledged", and the gateway's retry is
//!   safe because ingest is idempotent.
//!
//! Each can be changed through the environment (`TENDON_HTTP_HEADER_TIMEOUT`,
//! `TENDON_HTTP_BODY_TIMEOUT`, `TENDON_HTTP_REQUEST_TIMEOUT`, in seconds),
//! which the tests use to make them short.
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::time::Instant;

/// The request line and headers: a real client sends them in one packet, a
/// slow network in well under a second; 10 s leaves room for a congested
/// link and frees a trickled connection soon.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The body, from the end of the headers: a message of the 1 MiB limit at
/// 50 KB/s (a poor mobile link) takes 20 s.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(20);

/// The whole request, from the end of its headers to the answer: the body's
/// 20 s and 10 s for the work. A post takes milliseconds; a store that has
/// not answered in seconds is stuck (a frozen filesystem), and the gateway is
/// better off with a `503` and its retry, before its own timeout (commonly
/// 30 to 60 s) drops the connection. The ingest function's is 10 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this much of a body over the limit is read, and dropped, before
/// the `413`, so that a client still sending reads the answer rather than a
/// reset connection. A larger one is answered at once and the connection
/// closed.
const DRAIN_LIMIT: u64 = 64 << 20;

/// The three timeouts of [`serve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            header: HEADER_TIMEOUT,
            body: BODY_TIMEOUT,
            request: REQUEST_TIMEOUT,
        }
    }
}

impl Timeouts {
    /// The defaults, each overridden by its environment variable (seconds,
    /// decimals allowed: `0.5`).
    pub fn from_env() -> Result<Timeouts, String> {
        let read = |name: &str, default: Duration| -> Result<Duration, String> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        format!("{name} must be a positive number of seconds, not {v:?}")
                    }),
            }
        };
        Ok(Timeouts {
            header: read("TENDON_HTTP_HEADER_TIMEOUT", HEADER_TIMEOUT)?,
            body: read("TENDON_HTTP_BODY_TIMEOUT", BODY_TIMEOUT)?,
            request: read("TENDON_HTTP_REQUEST_TIMEOUT", REQUEST_TIMEOUT)?,
        })
    }
}

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

/// A JSON error answer `{"error","message"}`.
pub fn json_error(status: StatusCode, error: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": error, "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Marks an answer as the connection's last: hyper closes it once sent.
pub fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
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
            closing(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                &format!(
                    "the request was not answered within {} s; nothing was acknowledged: retry",
                    limit.as_secs_f64()
                ),
            ))
        }
    }
}

/// Why [`read_body`] has no body to give.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit: its size when known (`Content-Length`, or read to the end).
    TooLarge(Option<u64>),
    /// It did not arrive in time.
    Timeout,
    /// The connection failed or the framing was broken.
    Broken,
}

/// Reads a request body of at most `max` bytes within `within`, never holding
/// more than `max` bytes and a chunk: a `Content-Length` over `max` is refused
/// without reading, and a body that grows past it is refused there. The rest
/// of a refused body is read and dropped (up to [`DRAIN_LIMIT`], within the
/// same time), so that the client reads the answer.
pub async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    max: usize,
    within: Duration,
) -> Result<Bytes, BodyError> {
    let deadline = Instant::now() + within;
    let max = max as u64;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(size) = declared.filter(|&size| size > max) {
        // A client that asked `Expect: 100-continue` has sent nothing yet, and
        // sends nothing once it has the answer: there is nothing to drain.
        let waits = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if size <= DRAIN_LIMIT && !waits {
            drain(&mut body, 0, deadline).await;
        }
        return Err(BodyError::TooLarge(Some(size)));
    }
    let capacity = usize::try_from(declared.unwrap_or(0)).unwrap_or(0);
    let mut buf = Vec::with_capacity(capacity);
    loop {
        match tokio::time::timeout_at(deadline, next_frame(&mut body)).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => return Ok(Bytes::from(buf)),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                let seen = (buf.len() + data.len()) as u64;
                if seen > max {
                    let total = drain(&mut body, seen, deadline).await;
                    return Err(BodyError::TooLarge(total));
                }
                buf.extend_from_slice(&data);
            }
        }
    }
}

/// Reads and drops the rest of `body` (`seen` bytes already read); its whole
/// size if it ended within the deadline and [`DRAIN_LIMIT`].
async fn drain(body: &mut Body, mut seen: u64, deadline: Instant) -> Option<u64> {
    while seen <= DRAIN_LIMIT {
        match tokio::time::timeout_at(deadline, next_frame(body)).await {
            Ok(None) => return Some(seen),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    seen += data.len() as u64;
                }
            }
            Err(_) | Ok(Some(Err(_))) => return None,
        }
    }
    None
}

/// The body's next frame (data or trailers); `None` at its end.
async fn next_frame(body: &mut Body) -> Option<Result<Frame<Bytes>, axum::Error>> {
    std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}
