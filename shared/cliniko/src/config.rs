//! The client's settings, and the shard an API key names.
use std::fmt;
use std::time::Duration;

use tendon_core::cliniko::api::ClinikoError;

/// The shard of keys made before Cliniko had shards (no suffix).
pub const DEFAULT_SHARD: &str = "au1";

/// Checks a `User-Agent` for Cliniko: `Application (contact email)`, the
/// form Cliniko asks of every integration (it may block requests that do
/// not name an application and a way to reach its owner). A reserved
/// domain (`example.com`, `*.example`, `*.test`, `*.invalid`) reaches no
/// one, so it is refused too. Returns the value trimmed.
pub fn check_user_agent(value: &str) -> Result<String, ClinikoError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ClinikoError::UserAgent("none is set".into()));
    }
    let contact = value
        .rsplit_once('(')
        .and_then(|(name, rest)| {
            let email = rest.strip_suffix(')')?.trim();
            (!name.trim().is_empty()).then_some(email)
        })
        .filter(|email| {
            email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains(char::is_whitespace)
            })
        })
        .ok_or_else(|| {
            ClinikoError::UserAgent("it is not of the form `Application (contact email)`".into())
        })?;
    let domain = contact
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase();
    let reserved = ["example.com", "example.net", "example.org"].contains(&domain.as_str())
        || [".example", ".test", ".invalid", ".localhost", ".local"]
            .iter()
            .any(|tld| domain.ends_with(tld));
    if reserved {
        return Err(ClinikoError::UserAgent(
            "its contact is a placeholder address that reaches no one".into(),
        ));
    }
    if value.chars().any(|c| !c.is_ascii() || c.is_ascii_control()) {
        return Err(ClinikoError::UserAgent(
            "it has characters an HTTP header cannot carry".into(),
        ));
    }
    Ok(value.to_owned())
}

/// The deployment's `User-Agent` for Cliniko, from
/// `TENDON_CLINIKO_USER_AGENT`, checked by [`check_user_agent`].
pub fn user_agent_from_env() -> Result<String, ClinikoError> {
    check_user_agent(&std::env::var(tendon_core::cliniko::ENV_USER_AGENT).unwrap_or_default())
}

/// How a [`Client`](crate::Client) talks to Cliniko. The defaults follow
/// Cliniko's documented limits; tests shorten the windows and delays.
#[derive(Clone)]
pub struct ClientConfig {
    /// The key, with or without its `-xx1` shard suffix.
    pub api_key: String,
    /// Replaces `https://api.{shard}.cliniko.com/v1` (for tests and fakes).
    pub base_url: Option<String>,
    /// `Application (contact email)`: checked by [`check_user_agent`].
    pub user_agent: String,
    /// How many requests the client sends per `rate_window` at most (Cliniko
    /// allows 200 a minute per key). 0 is taken as 1.
    pub requests_per_minute: u32,
    /// The rolling window `requests_per_minute` counts over: a minute, except
    /// in tests.
    pub rate_window: Duration,
    /// Tries for one call on 5xx and transport errors (at least 1), and
    /// separately how many 429s one call waits out.
    pub max_attempts: u32,
    /// The first retry's delay; each further one doubles it, with jitter.
    pub retry_base: Duration,
    /// The longest wait for an `X-RateLimit-Reset`; a later reset fails the
    /// call with `RateLimited` instead.
    pub max_rate_limit_wait: Duration,
    /// One request's deadline, from sending to the end of the body.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// Cliniko's defaults for `api_key`, sent with `user_agent`
    /// (`Application (contact email)`).
    pub fn new(api_key: impl Into<String>, user_agent: impl Into<String>) -> Self {
        ClientConfig {
            api_key: api_key.into(),
            base_url: None,
            user_agent: user_agent.into(),
            requests_per_minute: 200,
            rate_window: Duration::from_secs(60),
            max_attempts: 4,
            retry_base: Duration::from_millis(500),
            max_rate_limit_wait: Duration::from_secs(65),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("api_key", &masked_key(&self.api_key))
            .field("base_url", &self.base_url)
            .field("user_agent", &self.user_agent)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("rate_window", &self.rate_window)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base", &self.retry_base)
            .field("max_rate_limit_wait", &self.max_rate_limit_wait)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The key with everything but a valid shard suffix hidden: `****-au2`.
pub(crate) fn masked_key(api_key: &str) -> String {
    match api_key.rsplit_once('-') {
        Some((_, suffix)) if is_shard(suffix) => format!("****-{}", suffix.to_ascii_lowercase()),
        _ => "****".to_owned(),
    }
}

/// The shard an API key belongs to: its suffix after the last `-` (two
/// letters and one or two digits, such as `au2` or `UK1`, lowercased), or
/// `au1` for a key without one. The reason never quotes the key.
pub fn shard_of(api_key: &str) -> Result<String, ClinikoError> {
    let key = api_key.trim();
    if key.is_empty() {
        return Err(ClinikoError::InvalidKey("the API key is empty".into()));
    }
    if key.len() != api_key.len() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ClinikoError::InvalidKey(
            "the API key contains spaces or control characters".into(),
        ));
    }
    match key.rsplit_once('-') {
        None => Ok(DEFAULT_SHARD.to_owned()),
        Some(("", _)) => Err(ClinikoError::InvalidKey(
            "nothing precedes the shard suffix".into(),
        )),
        Some((_, suffix)) if is_shard(suffix) => Ok(suffix.to_ascii_lowercase()),
        Some(_) => Err(ClinikoError::InvalidKey(
            "expected two letters and one or two digits after the last '-' (such as -au1 or -uk2)"
                .into(),
        )),
    }
}

/// `aa1` or `aa12`, in either case: the shape of every Cliniko shard so far
/// (`au1`…`au4`, `uk1`, `uk2`, `ca1`, `us1`, …). Checked by shape rather
/// than against a list so that new shards work unchanged.
fn is_shard(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=4).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_alphabetic)
        && b[2..].iter().all(u8::is_ascii_digit)
}

/// `https://api.{shard}.cliniko.com/v1`.
pub fn base_url_for_shard(shard: &str) -> String {
    format!("https://api.{shard}.cliniko.com/v1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards() {
        assert_eq!(shard_of("MS0xLWl4SzYY-uk1").unwrap(), "uk1");
        assert_eq!(shard_of("MS0xLWl4SzYY-au12").unwrap(), "au12");
        assert_eq!(shard_of("MS0xLWl4SzYY").unwrap(), "au1");
        // Matched case-insensitively: a key pasted as `…-AU3` is on au3.
        assert_eq!(shard_of("MS0xLWl4SzYY-AU3").unwrap(), "au3");
        assert_eq!(shard_of("MS0xLWl4SzYY-Ca1").unwrap(), "ca1");
        for shard in [
            "au1", "au2", "au3", "au4", "uk1", "uk2", "ca1", "us1", "nz1",
        ] {
            assert_eq!(shard_of(&format!("key-{shard}")).unwrap(), shard);
        }
        for bad in [
            "",
            "key-au",
            "key-au123",
            "key-a1",
            "key-1au",
            "key-",
            "-au1",
            "key-au1 ",
            "key-aü1",
        ] {
            assert!(
                matches!(shard_of(bad), Err(ClinikoError::InvalidKey(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn user_agents_name_an_application_and_a_reachable_contact() {
        assert_eq!(
            check_user_agent(" Acme Physio Tendon (it@acmephysio.com.au) ").unwrap(),
            "Acme Physio Tendon (it@acmephysio.com.au)"
        );
        for bad in [
            "",
            "   ",
            "Tendon",
            "Tendon (nobody)",
            "(it@acmephysio.com.au)",
            "Tendon (integrations@tendon.example)",
            "Tendon (me@example.com)",
            "Tendon (ci@tendon.test)",
            "Tendön (it@acmephysio.com.au)",
        ] {
            let e = check_user_agent(bad).unwrap_err();
            assert!(matches!(e, ClinikoError::UserAgent(_)), "{bad:?}");
            assert!(e.to_string().contains("TENDON_CLINIKO_USER_AGENT"), "{e}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(masked_key("secret-au2"), "****-au2");
        assert_eq!(masked_key("secret"), "****");
        assert_eq!(masked_key("secret-nope"), "****");
    }
}
