//! Tendon's one HTTP application: the axum [`Router`] of every route, over
//! either backend ([`App`]). `tendon serve` runs all of it ([`router`]) on its
//! own HTTP/1.1 server (the `server` feature, with timeouts); under
//! `lambda_http::run`, the ingest function runs its part ([`ingest_router`])
//! and the "Open in" function its own ([`open_router`]), so each carries only
//! the code, configuration and permissions of its routes. A route only adapts
//! HTTP to a core handler and its [`HttpReply`]:
//!
//! | route | core handler |
//! |---|---|
//! | `POST /hl7` | `tendon_core::intake::ingest` |
//! | `GET /health` | `tendon_core::health::check` |
//! | `GET\|POST /unsubscribe/{org}/{patient}/{token}` | `tendon_core::workflow::unsubscribe::follow` |
//! | `GET /cliniko/open/{token}?patient_id=ID` | `tendon_core::cliniko::open::open` |
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body::Frame;
use tendon_core::cliniko::open::{DEFAULT_PROFILE_URL, ENV_PROFILE_URL, OpenAnswer};
use tendon_core::health::HealthCheck;
use tendon_core::intake::{DEFAULT_MAX_BODY, ingest, ingest_too_large};
use tendon_core::ports::{ConfigStore, Intake, StoreResult, SyncStore, SystemClock};
use tendon_core::reply::HttpReply;
use tendon_core::workflow::unsubscribe;
use tokio::time::Instant;

mod backends;
#[cfg(feature = "server")]
pub mod server;

/// What the routes need of a backend: its store, its intake (store and
/// queue) and the secret unsubscribe links are signed with.
pub trait App: Clone + Send + Sync + 'static {
    /// Also the `/health` probe: SQLite's writer locally; DynamoDB and SQS on AWS.
    type Store: ConfigStore + SyncStore + HealthCheck;
    type Queue: Intake;

    fn store(&self) -> &Self::Store;
    fn queue(&self) -> &Self::Queue;

    /// The secret unsubscribe links are signed with (kept in the store).
    fn unsubscribe_secret(&self) -> impl Future<Output = StoreResult<String>> + Send;
}

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

/// The three timeouts of `tendon serve`; the body's also bounds the read of
/// `POST /hl7` in the Router (in a function the body is already whole).
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
    /// The defaults, each overridden by its environment variable
    /// (`TENDON_HTTP_HEADER_TIMEOUT`, `TENDON_HTTP_BODY_TIMEOUT`,
    /// `TENDON_HTTP_REQUEST_TIMEOUT`; seconds, decimals allowed: `0.5`).
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

/// What the routes are configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub timeouts: Timeouts,
    /// The "Open in" redirect's target, with `{org}` and `{patient_id}`.
    pub profile_template: String,
}

impl Settings {
    /// The timeouts ([`Timeouts::from_env`]) and the profile URL template
    /// ([`profile_template_from_env`]).
    pub fn from_env() -> Result<Settings, String> {
        Ok(Settings {
            timeouts: Timeouts::from_env()?,
            profile_template: profile_template_from_env(),
        })
    }
}

/// The profile URL template of the "Open in" redirect: `TENDON_PROFILE_URL`,
/// else the default.
pub fn profile_template_from_env() -> String {
    std::env::var(ENV_PROFILE_URL).unwrap_or_else(|_| DEFAULT_PROFILE_URL.to_owned())
}

/// Every route of Tendon, over `app`: what `tendon serve` answers.
pub fn router<A: App>(app: A, settings: Settings) -> Router {
    ingest_router(app.clone(), settings.timeouts).merge(open_router(app, settings.profile_template))
}

/// The routes of the ingest function: `POST /hl7`, `GET /health` and the
/// unsubscribe links.
pub fn ingest_router<A: App>(app: A, timeouts: Timeouts) -> Router {
    Router::new()
        .route("/hl7", post(hl7::<A>))
        .route("/health", get(health::<A>))
        .route(
            "/unsubscribe/{org}/{patient}/{token}",
            get(unsubscribe::<A>).post(unsubscribe::<A>),
        )
        .with_state(Ingest { app, timeouts })
}

/// The route of the "Open in" function: `GET /cliniko/open/{token}`. Apart
/// from the ingest routes, so the ingest function carries no Cliniko client.
pub fn open_router<A: App>(app: A, profile_template: String) -> Router {
    Router::new()
        .route("/cliniko/open/{token}", get(cliniko_open::<A>))
        .with_state(Open {
            app,
            profile_template: Arc::from(profile_template),
        })
}

/// The ingest routes' state.
#[derive(Clone)]
struct Ingest<A> {
    app: A,
    timeouts: Timeouts,
}

/// The "Open in" route's state.
#[derive(Clone)]
struct Open<A> {
    app: A,
    profile_template: Arc<str>,
}

/// A core handler's answer as an HTTP response.
pub fn respond(reply: HttpReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response();
    if let Some(url) = reply.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, url);
    }
    response
}

/// `GET /health`: the backend's probe (`tendon_core::health`), `200` or `503`.
async fn health<A: App>(State(state): State<Ingest<A>>) -> Response {
    respond(tendon_core::health::check(state.app.store()).await)
}

/// `POST /hl7`. The body is read here, at most the limit and within the
/// body timeout: every body over the limit gets the core's JSON `413` (after
/// the key's `401`), however large.
async fn hl7<A: App>(State(state): State<Ingest<A>>, headers: HeaderMap, body: Body) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (app, within) = (&state.app, state.timeouts.body);
    let body = match read_body(&headers, body, DEFAULT_MAX_BODY, within).await {
        Ok(body) => body,
        Err(BodyError::TooLarge(size)) => {
            let answer = ingest_too_large(app.store(), auth, size, DEFAULT_MAX_BODY).await;
            return closing(respond(answer.unwrap_or_else(|e| {
                tracing::error!(error = %e, "ingest failed");
                HttpReply::unavailable()
            })));
        }
        Err(BodyError::Timeout) => {
            return closing(respond(HttpReply::json_error(
                408,
                "timeout",
                &format!(
                    "the body did not arrive within {} s; nothing was stored",
                    within.as_secs_f64()
                ),
            )));
        }
        Err(BodyError::Broken) => {
            return closing(respond(HttpReply::json_error(
                400,
                "bad_request",
                "the body could not be read; nothing was stored",
            )));
        }
    };
    // Until ingest answers, this request counts as unanswered: if it fails,
    // or the request timeout drops it mid-way, a message it stored is marked
    // never acknowledged.
    let mut guard = UnansweredGuard {
        app: Some(app.clone()),
        auth: auth.map(str::to_owned),
        body: body.clone(),
    };
    let store = app.store();
    match ingest(
        store,
        app.queue(),
        &SystemClock,
        auth,
        &body,
        DEFAULT_MAX_BODY,
    )
    .await
    {
        Ok(answer) => {
            guard.app = None;
            respond(answer)
        }
        Err(e) => {
            // Nothing was acknowledged: the gateway retries, and ingest is idempotent.
            tracing::error!(error = %e, "ingest failed");
            respond(HttpReply::unavailable())
        }
    }
}

/// Marks the request's message, if stored, as never acknowledged when it is
/// dropped armed (`intake::unanswered`). The marking runs on its own task,
/// after the store's writes already queued (the SQLite writer keeps order).
struct UnansweredGuard<A: App> {
    app: Option<A>,
    auth: Option<String>,
    body: Bytes,
}

impl<A: App> Drop for UnansweredGuard<A> {
    fn drop(&mut self) {
        let Some(app) = self.app.take() else {
            return;
        };
        let (auth, body) = (self.auth.take(), std::mem::take(&mut self.body));
        tokio::spawn(async move {
            let marked =
                tendon_core::intake::unanswered(app.store(), app.queue(), auth.as_deref(), &body)
                    .await;
            if let Err(e) = marked {
                tracing::warn!(error = %e, "an unanswered message could not be marked");
            }
        });
    }
}

/// An email's unsubscribe link: GET shows the page with one button, POST
/// (that button, or a mail client's RFC 8058 one-click) unsubscribes
/// (`tendon_core::workflow::unsubscribe`). No answer says whether the patient
/// exists.
async fn unsubscribe<A: App>(
    State(state): State<Ingest<A>>,
    method: Method,
    Path((org, patient, token)): Path<(String, String, String)>,
) -> Response {
    let app = &state.app;
    let answer = unsubscribe::follow(
        app.store(),
        app.unsubscribe_secret(),
        unsubscribe::Request::from_method(method.as_str()),
        &org,
        &patient,
        &token,
    )
    .await;
    respond(answer.reply())
}

#[derive(serde::Deserialize)]
struct OpenQuery {
    patient_id: Option<String>,
}

/// Cliniko's "Open in" button: sync the patient, then redirect to their
/// profile. Every 404 goes out `NOT_FOUND_FLOOR` after the request came in,
/// whichever path found nothing (`tendon_core::cliniko::open::hold`), so its
/// timing does not tell whether the token exists.
async fn cliniko_open<A: App>(
    State(state): State<Open<A>>,
    Path(token): Path<String>,
    Query(query): Query<OpenQuery>,
) -> Response {
    let started = tokio::time::Instant::now();
    let answer = tendon_core::cliniko::open::open(
        state.app.store(),
        |c| tendon_cliniko::client_for(c).map_err(|e| e.to_string()),
        &token,
        query.patient_id.as_deref(),
        &state.profile_template,
        jiff::Timestamp::now(),
    )
    .await;
    match answer {
        Ok(answer) => {
            tendon_core::cliniko::open::hold(&answer, started, tokio::time::sleep_until).await;
            respond(answer.reply())
        }
        Err(e) => {
            tracing::error!(error = %e, "Open in failed");
            respond(OpenAnswer::try_later())
        }
    }
}

/// At most this much of a body over the limit is read, and dropped, before
/// the `413`, so that a client still sending reads the answer rather than a
/// reset connection. A larger one is answered at once and the connection
/// closed.
const DRAIN_LIMIT: u64 = 64 << 20;

/// Marks an answer as the connection's last: hyper closes it once sent.
pub(crate) fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Why [`read_body`] has no body to give.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
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
async fn read_body(
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
