//! The fake's state: what it holds (its records, the faults queued, the
//! enforced rate limit, the log of requests) and the scenario knobs a test
//! turns (keys, clock, faults, latency, the log).
//!
//! The rest is beside it: `records.rs` stores and changes records,
//! `answer.rs` answers a request (faults, auth, the rate limit, the routes),
//! `filters.rs` says which records a list holds and reads its `q[]` filters,
//! and `paging.rs` serves one record or a page of a list.
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoAttendee, ClinikoBusiness, ClinikoCase,
    ClinikoGroupAppointment, ClinikoPatient, ClinikoPractitioner,
};

use answer::key_body;

mod answer;
mod filters;
mod paging;
mod records;
#[cfg(test)]
mod tests;

/// One request as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Without the query, such as `/v1/patients/archived`.
    pub path: String,
    /// The raw (still encoded) query string.
    pub query: Option<String>,
    /// The Basic auth user name: the API key.
    pub auth_user: Option<String>,
    /// The Basic auth password (Cliniko wants none: `Some("")`).
    pub auth_password: Option<String>,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
    /// What the fake answered.
    pub status: u16,
    /// The `X-RateLimit-Reset` it sent (unix seconds), with a 429.
    pub rate_limit_reset: Option<u64>,
    /// When it arrived, by the wall clock (to compare with
    /// `X-RateLimit-Reset`).
    pub at: SystemTime,
    /// When it arrived, since the fake started (monotonic).
    pub since_start: Duration,
    /// When it arrived, on this process's monotonic clock (to compare with
    /// an `Instant` a test took).
    pub arrived: Instant,
}

impl RequestRecord {
    /// The decoded values of a query parameter, such as `q[]`.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    /// The first decoded value of a query parameter.
    pub fn query_value(&self, name: &str) -> Option<String> {
        self.query_values(name).into_iter().next()
    }
}

/// The fake's state; clones share it.
#[derive(Clone)]
pub struct FakeState {
    inner: Arc<Mutex<Inner>>,
    base_url: Arc<str>,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    RateLimited { reset_after: Duration },
    Status(u16),
    Malformed,
}

struct Limit {
    requests: usize,
    window: Duration,
    sent: HashMap<String, VecDeque<Instant>>,
}

pub(crate) struct Record<T> {
    pub(crate) value: T,
    /// Fields laid over the rendered JSON, to send odd shapes.
    pub(crate) extra: Map<String, Value>,
}

impl<T> Record<T> {
    fn new(value: T) -> Record<T> {
        Record {
            value,
            extra: Map::new(),
        }
    }
}

struct Inner {
    started: Instant,
    clock: Option<Timestamp>,
    api_keys: Option<HashSet<String>>,
    legacy_json: bool,
    latency: Duration,
    faults: VecDeque<Fault>,
    limit: Option<Limit>,
    rate_limited: u64,
    log: Vec<RequestRecord>,
    counts: HashMap<String, u64>,
    patients: BTreeMap<u64, Record<ClinikoPatient>>,
    appointments: BTreeMap<u64, Record<ClinikoAppointment>>,
    appointment_types: BTreeMap<u64, Record<ClinikoAppointmentType>>,
    cases: BTreeMap<u64, Record<ClinikoCase>>,
    practitioners: BTreeMap<u64, Record<ClinikoPractitioner>>,
    businesses: BTreeMap<u64, Record<ClinikoBusiness>>,
    groups: BTreeMap<u64, Record<ClinikoGroupAppointment>>,
    attendees: BTreeMap<u64, Record<ClinikoAttendee>>,
    /// Filters every list refuses (`refuse_filter`).
    refused_filters: HashSet<String>,
    /// Paths answered 404 (`retire_path`).
    retired_paths: HashSet<String>,
}

/// A request, as `respond` needs it.
pub(crate) struct Incoming {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) authorization: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) accept: Option<String>,
}

/// An answer.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: serde_json::to_vec(body).expect("JSON values serialize"),
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({ "message": message }))
    }
}

/// Cliniko's timestamp form: UTC, whole seconds.
pub(crate) fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl FakeState {
    pub(crate) fn new(base_url: String) -> FakeState {
        FakeState {
            base_url: base_url.into(),
            inner: Arc::new(Mutex::new(Inner {
                started: Instant::now(),
                clock: None,
                api_keys: None,
                legacy_json: false,
                latency: Duration::ZERO,
                faults: VecDeque::new(),
                limit: None,
                rate_limited: 0,
                log: Vec::new(),
                counts: HashMap::new(),
                patients: BTreeMap::new(),
                appointments: BTreeMap::new(),
                appointment_types: BTreeMap::new(),
                cases: BTreeMap::new(),
                practitioners: BTreeMap::new(),
                businesses: BTreeMap::new(),
                groups: BTreeMap::new(),
                attendees: BTreeMap::new(),
                refused_filters: HashSet::new(),
                retired_paths: HashSet::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not take the fake down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A record's URL as the fake links it, e.g. `link("patients", "7")`.
    pub fn link(&self, resource: &str, id: &str) -> String {
        format!("{}/{resource}/{id}", self.base_url)
    }

    // --- access ---

    /// Only these keys are accepted (with or without their shard suffix);
    /// others get a 401. Until called, any non-empty key is.
    pub fn set_api_keys<I, S>(&self, keys: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.lock().api_keys = Some(
            keys.into_iter()
                .map(|k| key_body(k.as_ref()).to_owned())
                .collect(),
        );
    }

    /// Sends IDs as JSON numbers and empty fields as `""`, as older Cliniko
    /// responses did.
    pub fn set_legacy_json(&self, legacy: bool) {
        self.lock().legacy_json = legacy;
    }

    // --- time ---

    /// Pins the time that changes are stamped with (`None`: the real clock).
    /// Each change still moves a record's `updated_at` forward by at least a
    /// second.
    pub fn set_clock(&self, now: Option<Timestamp>) {
        self.lock().clock = now;
    }

    // --- lists ---

    /// Answers `404` at `path` (such as `/v1/individual_appointments/cancelled`),
    /// as a Cliniko that no longer serves a list would.
    pub fn retire_path(&self, path: &str) {
        self.lock().retired_paths.insert(path.to_owned());
    }

    /// Makes every list refuse filters on `field` with Cliniko's `400`
    /// ("This column is not searchable."), as a list that does not take it.
    pub fn refuse_filter(&self, field: &str) {
        self.lock().refused_filters.insert(field.to_owned());
    }

    // --- faults ---

    /// The next `n` requests get a 429 whose `X-RateLimit-Reset` is
    /// `reset_after` from then, rounded up to the next whole second.
    pub fn rate_limit_next(&self, n: usize, reset_after: Duration) {
        self.push_faults(n, Fault::RateLimited { reset_after });
    }

    /// The next `n` requests get `status` (such as 500 or 503).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.push_faults(n, Fault::Status(status));
    }

    /// The next `n` requests get a 200 whose body is broken JSON.
    pub fn malformed_next(&self, n: usize) {
        self.push_faults(n, Fault::Malformed);
    }

    /// Faults queue in the order given, one per request, before auth.
    fn push_faults(&self, n: usize, fault: Fault) {
        self.lock().faults.extend(std::iter::repeat_n(fault, n));
    }

    /// Every answer waits this long first.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Enforces Cliniko's limit itself: more than `requests` from one key in
    /// a rolling `window` get a 429 with `X-RateLimit-Reset` (`None` lifts it).
    pub fn enforce_rate_limit(&self, limit: Option<(u32, Duration)>) {
        self.lock().limit = limit.map(|(requests, window)| Limit {
            requests: requests as usize,
            window,
            sent: HashMap::new(),
        });
    }

    /// How many 429s the fake answered: injected, or from the enforced limit.
    pub fn rate_limited_count(&self) -> u64 {
        self.lock().rate_limited
    }

    // --- the log ---

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().log.clone()
    }

    /// The requests to one path (such as `/v1/patients`), in arrival order.
    pub fn requests_to(&self, path: &str) -> Vec<RequestRecord> {
        self.lock()
            .log
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many requests went to a path since the start (or the last clear).
    pub fn request_count(&self, path: &str) -> u64 {
        self.lock().counts.get(path).copied().unwrap_or(0)
    }

    /// Every request counted so far.
    pub fn total_requests(&self) -> u64 {
        self.lock().counts.values().sum()
    }

    /// Forgets the log and the counters.
    pub fn clear_requests(&self) {
        let mut inner = self.lock();
        inner.log.clear();
        inner.counts.clear();
    }
}
