//! Tendon's Cliniko client: [`tendon_core::cliniko::api::ClinikoApi`] over
//! Cliniko's REST API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tendon_core::cliniko::api::ClinikoError> {
//! use tendon_cliniko::{Client, ClientConfig};
//! use tendon_core::cliniko::api::{ClinikoApi, PatientList};
//!
//! let client = Client::new(ClientConfig::new(
//!     "MS0xLWl4SzYY-au2",                            // https://api.au2.cliniko.com/v1
//!     "Acme Physio Tendon (it@acmephysio.com.au)", // who Cliniko can contact
//! ))?;
//! client.verify().await?;
//! let mut next = None;
//! loop {
//!     let page = client
//!         .patients(PatientList::Active, Some("2026-01-01T00:00:00Z"), next.as_deref())
//!         .await?;
//!     // ... page.items
//!     match page.next {
//!         Some(n) => next = Some(n),
//!         None => break,
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! - The key's suffix names the shard (`-au2`; none is `au1`), and so the base
//!   URL, unless [`ClientConfig::base_url`] overrides it.
//! - Requests carry HTTP Basic auth (the key, no password),
//!   `Accept: application/json` and a `User-Agent` of the form
//!   `Application (contact email)`, which Cliniko requires: a client is not
//!   built without one ([`check_user_agent`]).
//! - Lists ask for 100 a page and hand back Cliniko's `links.next`, which is
//!   only followed when it points inside the base URL (the key is never sent
//!   elsewhere).
//! - The client keeps itself within a budget of requests per rolling window
//!   (200 a minute by default), shared by its clones; on a 429 it waits until
//!   `X-RateLimit-Reset` (if that is soon enough) and tries again; on a 5xx or
//!   a transport error it retries with jittered exponential backoff.
//! - Errors and logs carry the request path, status and attempt only: never
//!   the key, a query string or a response body.
mod client;
mod config;
mod limiter;
mod wire;

pub use client::Client;
pub use config::{
    ClientConfig, DEFAULT_SHARD, base_url_for_shard, check_user_agent, shard_of,
    user_agent_from_env,
};

/// [`Client::for_connection`] as a plain function, for callers that take a
/// `Fn(&ClinikoConnection) -> Result<impl ClinikoApi, ClinikoError>`.
pub fn client_for(
    connection: &tendon_core::cliniko::ClinikoConnection,
) -> Result<Client, tendon_core::cliniko::api::ClinikoError> {
    Client::for_connection(connection)
}
