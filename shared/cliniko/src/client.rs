//! The HTTP client: building one for a key (its shard, base URL, User-Agent
//! and shared rate limit) and the URLs it asks for.
//!
//! What it does with them is beside it: `request.rs` sends one GET with the
//! rate limit and retries, `lists.rs` reads Cliniko's lists (paging, filters
//! and the fallbacks for lists Cliniko answers differently), and `api.rs` is
//! the port, `ClinikoApi`, over those.
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use tendon_core::cliniko::ClinikoConnection;
use tendon_core::cliniko::api::ClinikoError;

use crate::config::{
    ClientConfig, base_url_for_shard, check_user_agent, masked_key, shard_of, user_agent_from_env,
};
use crate::limiter::RateLimiter;

mod api;
mod lists;
mod request;
#[cfg(test)]
mod tests;

/// A Cliniko client for one API key. Clones share the connection pool, the
/// rate limiter and the request counter: make one per key and clone it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_key: String,
    shard: String,
    base_url: String,
    base: Url,
    max_attempts: u32,
    retry_base: Duration,
    max_rate_limit_wait: Duration,
    limiter: Arc<RateLimiter>,
    requests: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_key", &masked_key(&self.inner.api_key))
            .field("shard", &self.inner.shard)
            .field("base_url", &self.inner.base_url)
            .field("requests_made", &self.requests_made())
            .finish()
    }
}

impl Client {
    /// Checks the key's shard suffix and sets up the HTTP client; sends
    /// nothing (see
    /// [`ClinikoApi::verify`](tendon_core::cliniko::api::ClinikoApi::verify)).
    ///
    /// `InvalidKey` for a bad suffix; `Unavailable` if the base URL override
    /// is not an http(s) URL or the TLS setup fails.
    pub fn new(config: ClientConfig) -> Result<Client, ClinikoError> {
        let shard = shard_of(&config.api_key)?;
        let base_url = match &config.base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => base_url_for_shard(&shard),
        };
        let base = Url::parse(&base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ClinikoError::Unavailable("the Cliniko base URL is not an http(s) URL".into())
            })?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let user_agent = check_user_agent(&config.user_agent)?;
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(user_agent)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)));
        if is_loopback(&base) {
            // A fake on this machine: an HTTP(S)_PROXY from the environment
            // must not capture it.
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|_| ClinikoError::Unavailable("the HTTP client could not be set up".into()))?;
        // One budget per Cliniko user in this process: every client of the
        // key (a sync, the "Open in" clicks) shares it.
        let limiter = RateLimiter::shared(
            &config.api_key,
            &base_url,
            config.requests_per_minute,
            config.rate_window,
        );
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                api_key: config.api_key,
                shard,
                base_url,
                base,
                max_attempts: config.max_attempts.max(1),
                retry_base: config.retry_base,
                max_rate_limit_wait: config.max_rate_limit_wait,
                limiter,
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// A client with the defaults for a stored connection: its key, its
    /// base URL override if it has one, and the deployment's User-Agent
    /// (`TENDON_CLINIKO_USER_AGENT`; without a valid one, no client).
    pub fn for_connection(connection: &ClinikoConnection) -> Result<Client, ClinikoError> {
        Client::for_connection_with(connection, &user_agent_from_env()?)
    }

    /// [`Client::for_connection`] with the given User-Agent.
    pub fn for_connection_with(
        connection: &ClinikoConnection,
        user_agent: &str,
    ) -> Result<Client, ClinikoError> {
        Client::new(ClientConfig {
            base_url: connection.base_url.clone(),
            ..ClientConfig::new(connection.api_key.clone(), user_agent)
        })
    }

    /// `https://api.{shard}.cliniko.com/v1`, or the override (no trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The key's shard, such as `au2`.
    pub fn shard(&self) -> &str {
        &self.inner.shard
    }

    /// HTTP requests sent so far by this client and its clones, retries
    /// included.
    pub fn requests_made(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// `{base}/{segments…}?{query}`, each part percent-encoded.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            // The base was checked to be an http(s) URL, which has a path.
            .expect("an http(s) URL has path segments")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A `links.next` from an earlier page, if it points inside the base URL:
    /// the key goes to Cliniko and nowhere else.
    fn next_url(&self, next: &str) -> Result<Url, ClinikoError> {
        let base = &self.inner.base;
        Url::parse(next)
            .ok()
            .filter(|u| {
                u.origin() == base.origin()
                    && u.path()
                        .strip_prefix(base.path().trim_end_matches('/'))
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .ok_or_else(|| {
                ClinikoError::Malformed("a `links.next` points outside the Cliniko API".into())
            })
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
