//! One GET to Cliniko within the rate limit, and its retries: a 429 waits
//! for `X-RateLimit-Reset` (and holds every clone back with it), a 5xx or a
//! transport error backs off with jitter. Failures are told by kind, path,
//! status and attempt, never by reqwest's message (which quotes the URL).
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{StatusCode, Url};
use tendon_core::cliniko::api::ClinikoError;

use super::Client;

/// The longest single backoff, however many attempts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Client {
    /// GET with the rate limit and retries; the body of a 2xx.
    pub(super) async fn get(&self, url: Url) -> Result<Vec<u8>, ClinikoError> {
        let inner = &*self.inner;
        let path = url.path().to_owned();
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        loop {
            inner.limiter.acquire().await;
            inner.requests.fetch_add(1, Ordering::Relaxed);
            let attempt = failures + rate_limited + 1;
            let sent = inner
                .http
                .get(url.clone())
                .basic_auth(&inner.api_key, None::<&str>)
                .send()
                .await;
            let failure = match sent {
                Err(e) => transport_failure(&e),
                Ok(response) => {
                    let status = response.status();
                    tracing::debug!(path, attempt, status = status.as_u16(), "Cliniko answered");
                    if status.is_success() {
                        match response.bytes().await {
                            Ok(body) => return Ok(body.to_vec()),
                            Err(e) => transport_failure(&e),
                        }
                    } else if status == StatusCode::TOO_MANY_REQUESTS {
                        rate_limited += 1;
                        let reset = response
                            .headers()
                            .get("x-ratelimit-reset")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok());
                        let wait = reset
                            .and_then(until_unix)
                            .filter(|w| !w.is_zero())
                            // No reset, or one already past by our clock: back off.
                            .unwrap_or_else(|| self.backoff(rate_limited));
                        if rate_limited > inner.max_attempts || wait > inner.max_rate_limit_wait {
                            let retry_at = reset.map_or_else(
                                || jiff::Timestamp::now() + wait,
                                |s| {
                                    i64::try_from(s)
                                        .ok()
                                        .and_then(|s| jiff::Timestamp::from_second(s).ok())
                                        .unwrap_or(jiff::Timestamp::MAX)
                                },
                            );
                            tracing::warn!(path, attempt, "Cliniko's rate limit: giving up");
                            return Err(ClinikoError::RateLimited {
                                retry_at: retry_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                            });
                        }
                        tracing::info!(
                            path,
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            "Cliniko's rate limit: waiting for the reset"
                        );
                        // Every clone holds back until the reset, not just this call.
                        inner.limiter.pause_for(wait);
                        continue;
                    } else if status.is_server_error() {
                        format!("HTTP {}", status.as_u16())
                    } else {
                        return Err(match status {
                            StatusCode::UNAUTHORIZED => ClinikoError::Unauthorized,
                            StatusCode::NOT_FOUND => ClinikoError::NotFound,
                            other => ClinikoError::Status(other.as_u16()),
                        });
                    }
                }
            };
            failures += 1;
            if failures >= inner.max_attempts {
                tracing::warn!(path, attempt, failure, "Cliniko call failed; giving up");
                return Err(ClinikoError::Unavailable(format!(
                    "{failure} (after {failures} attempts)"
                )));
            }
            let delay = self.backoff(failures);
            tracing::info!(
                path,
                attempt,
                failure,
                delay_ms = delay.as_millis() as u64,
                "Cliniko call failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// The delay before retry `n` (from 1): `retry_base * 2^(n-1)`, capped,
    /// then a random point in its upper half, so that clients that failed
    /// together do not retry together.
    pub(super) fn backoff(&self, n: u32) -> Duration {
        let full = self
            .inner
            .retry_base
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
            .min(MAX_BACKOFF);
        let half = full / 2;
        let nanos = half.as_nanos() as u64;
        let jitter = match getrandom::u64() {
            Ok(r) if nanos > 0 => Duration::from_nanos(r % (nanos + 1)),
            _ => Duration::ZERO,
        };
        half + jitter
    }
}

/// How long until the unix second `reset` by this machine's clock.
fn until_unix(reset: u64) -> Option<Duration> {
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(reset))?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A transport error's kind; reqwest's own message would quote the URL.
fn transport_failure(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response body broke off"
    } else if e.is_redirect() {
        "too many redirects"
    } else {
        "the request failed"
    };
    kind.to_owned()
}
