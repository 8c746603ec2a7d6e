//! The client's pure parts: the filters' time form, URL encoding, which
//! `links.next` it follows, and the backoff's growth and jitter.
use std::time::Duration;

use super::Client;
use super::lists::since_filter;
use super::request::MAX_BACKOFF;
use crate::config::ClientConfig;

#[test]
fn filters_are_utc_seconds() {
    assert_eq!(
        since_filter("updated_at", "2026-01-01T10:00:00.250+10:00"),
        "updated_at:>2026-01-01T00:00:00Z"
    );
    assert_eq!(
        since_filter("updated_at", "yesterday"),
        "updated_at:>yesterday"
    );
    assert_eq!(
        since_filter("deleted_at", "2026-01-01T00:00:00Z"),
        "deleted_at:>2026-01-01T00:00:00Z"
    );
}

#[test]
fn urls_are_encoded() {
    let client = Client::new(ClientConfig {
        base_url: Some("https://example.test/v1/".into()),
        ..ClientConfig::new("k-au2", "Tendon tests (ci@tendon-health.dev)")
    })
    .unwrap();
    assert_eq!(client.base_url(), "https://example.test/v1");
    let url = client.url(
        &["patients", "1/2"],
        &[("q[]", "updated_at:>2026-01-01T00:00:00Z")],
    );
    assert_eq!(
        url.as_str(),
        "https://example.test/v1/patients/1%2F2?q%5B%5D=updated_at%3A%3E2026-01-01T00%3A00%3A00Z"
    );
}

#[test]
fn next_links_stay_inside_the_base() {
    let client = Client::new(ClientConfig {
        base_url: Some("https://example.test/v1".into()),
        ..ClientConfig::new("k-au2", "Tendon tests (ci@tendon-health.dev)")
    })
    .unwrap();
    assert!(
        client
            .next_url("https://example.test/v1/patients?page=2")
            .is_ok()
    );
    for bad in [
        "https://evil.test/v1/patients?page=2",
        "http://example.test/v1/patients?page=2",
        "https://example.test/v10/patients",
        "https://example.test/other",
        "not a url",
    ] {
        assert!(client.next_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn backoff_grows_with_jitter() {
    let client = Client::new(ClientConfig {
        retry_base: Duration::from_millis(100),
        ..ClientConfig::new("k", "Tendon tests (ci@tendon-health.dev)")
    })
    .unwrap();
    for n in 1..=4 {
        let full = Duration::from_millis(100 * (1 << (n - 1)));
        let d = client.backoff(n);
        assert!(d >= full / 2 && d <= full, "{n}: {d:?}");
    }
    assert!(client.backoff(40) <= MAX_BACKOFF);
}
