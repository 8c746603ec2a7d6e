//! A fake of Cliniko's REST API for tests, served in-process on
//! `127.0.0.1` with the JSON shapes Cliniko documents.
//!
//! ```no_run
//! # async fn demo() {
//! use tendon_core::cliniko::api::ClinikoPatient;
//! use tendon_fake_cliniko::FakeCliniko;
//!
//! let fake = FakeCliniko::start().await;
//! fake.set_api_keys(["test-key-au1"]);
//! fake.upsert_patient(ClinikoPatient {
//!     id: "1001".into(),
//!     first_name: Some("Ada".into()),
//!     ..Default::default()
//! });
//! fake.fail_next(2, 503);
//! // ... point a client at fake.base_url() (`http://127.0.0.1:PORT/v1`), then:
//! assert_eq!(fake.request_count("/v1/patients"), 3);
//! # }
//! ```
//!
//! What it serves (`GET` only), under `/v1`:
//! - `/patients`, `/patients/archived`, `/patients/deleted`, `/patients/{id}`;
//! - `/individual_appointments`, `/appointment_types`, `/patient_cases`,
//!   `/practitioners`, and `/{resource}/{id}` for each;
//! - lists as `{"<resource>": [...], "total_entries": N, "links": {"self",
//!   "next", "previous"}}`, ordered by ID, paged by `page` and `per_page`
//!   (50 by default, at most 100), with absolute links that keep the filters;
//! - filters `q[]=updated_at:{>,>=,<,<=}T` everywhere, and
//!   `q[]=patient_id:=ID[,ID…]` on appointments and cases; others are a 400;
//! - IDs as JSON strings (or numbers, with [`FakeState::set_legacy_json`],
//!   which also sends `""` for empty fields as older Cliniko did), linked
//!   records as `{"links": {"self": URL}}`;
//! - HTTP Basic auth with the key as user name: any non-empty key until
//!   [`FakeState::set_api_keys`] names some; others get a 401.
//!
//! Scenarios are driven through [`FakeState`] (which [`FakeCliniko`]
//! dereferences to, and which can be cloned into other tasks): records,
//! faults (429 with `X-RateLimit-Reset`, 5xx, malformed JSON), latency, an
//! enforced per-key rate limit, and a log of every request for assertions.
mod render;
mod state;

use std::net::SocketAddr;
use std::ops::Deref;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::sync::oneshot;

pub use state::{FakeState, RequestRecord};

/// A running fake: stops serving when dropped.
pub struct FakeCliniko {
    state: FakeState,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl FakeCliniko {
    /// Serves on `127.0.0.1` at a free port. Panics if it cannot listen (a
    /// test fixture).
    pub async fn start() -> FakeCliniko {
        FakeCliniko::start_at(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("the fake Cliniko could not listen on 127.0.0.1")
    }

    /// Serves on `addr` (port 0 for a free one).
    pub async fn start_at(addr: SocketAddr) -> std::io::Result<FakeCliniko> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = FakeState::new(format!("http://{addr}/v1"));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(FakeCliniko {
            state,
            addr,
            shutdown: Some(shutdown),
        })
    }

    /// `http://127.0.0.1:PORT/v1`: a client's base URL.
    pub fn base_url(&self) -> &str {
        self.state.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle on the scenario state, for other tasks.
    pub fn state(&self) -> &FakeState {
        &self.state
    }
}

impl Deref for FakeCliniko {
    type Target = FakeState;

    fn deref(&self) -> &FakeState {
        &self.state
    }
}

impl Drop for FakeCliniko {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn handle(State(state): State<FakeState>, request: Request) -> Response {
    // The parts only: a body is not `Sync`, so no borrow of it may live
    // across the latency's await.
    let (request, _body) = request.into_parts();
    let header = |name: header::HeaderName| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let incoming = state::Incoming {
        method: request.method.as_str().to_owned(),
        path: request.uri.path().to_owned(),
        query: request.uri.query().map(str::to_owned),
        authorization: header(header::AUTHORIZATION),
        user_agent: header(header::USER_AGENT),
        accept: header(header::ACCEPT),
    };
    let (reply, latency) = state.respond(&incoming);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = axum::http::StatusCode::from_u16(reply.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}
