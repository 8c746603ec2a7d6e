//! The fake's records, faults and request log, and how it answers.
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoAttendee, ClinikoBusiness, ClinikoCase,
    ClinikoGroupAppointment, ClinikoPatient, ClinikoPractitioner,
};

use crate::render::{self, Render};

/// Cliniko's page size unless asked, and its largest.
const DEFAULT_PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 100;

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

/// A record's ID as the fake keys it. Panics on a non-numeric ID: Cliniko's
/// are 64-bit integers, and a fixture with another is a test bug.
fn numeric_id(id: &str) -> u64 {
    id.parse()
        .unwrap_or_else(|_| panic!("a Cliniko ID is a 64-bit integer, not {id:?}"))
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

    // --- records ---

    /// Adds or replaces a patient. An empty `updated_at` is stamped; which
    /// list it is on follows `deleted_at` and `archived_at`.
    pub fn upsert_patient(&self, mut patient: ClinikoPatient) {
        let id = numeric_id(&patient.id);
        let mut inner = self.lock();
        if patient.updated_at.is_empty() {
            let previous = inner.patients.get(&id).map(|r| r.value.updated_at.clone());
            patient.updated_at = inner.stamp(previous.as_deref());
        }
        let extra = inner
            .patients
            .remove(&id)
            .map(|r| r.extra)
            .unwrap_or_default();
        inner.patients.insert(
            id,
            Record {
                value: patient,
                extra,
            },
        );
    }

    /// Changes a stored patient and stamps `updated_at`. Panics if there is
    /// none with that ID.
    pub fn update_patient(&self, id: &str, change: impl FnOnce(&mut ClinikoPatient)) {
        self.lock().change_patient(id, |p, _| change(p));
    }

    /// Moves a patient to the archived list.
    pub fn archive_patient(&self, id: &str) {
        self.lock().change_patient(id, |p, now| {
            p.archived_at = Some(now.to_owned());
        });
    }

    /// Moves an archived patient back to the active list.
    pub fn unarchive_patient(&self, id: &str) {
        self.lock().change_patient(id, |p, _| p.archived_at = None);
    }

    /// Moves a patient to the deleted list.
    pub fn delete_patient(&self, id: &str) {
        self.lock().change_patient(id, |p, now| {
            p.deleted_at = Some(now.to_owned());
        });
    }

    /// Merges `from` into `into`: `from` gets `merged_at`, a `merged_into`
    /// link to `into`, and is archived (it leaves the active list).
    pub fn merge_patients(&self, from: &str, into: &str) {
        let into = numeric_id(into).to_string();
        self.lock().change_patient(from, |p, now| {
            p.merged_at = Some(now.to_owned());
            p.archived_at.get_or_insert_with(|| now.to_owned());
            p.merged_into_id = Some(into);
        });
    }

    /// Lays `value` over the patient's JSON field `field` (e.g. `"sex": ""`
    /// or a deprecated `gender`); `Value::Null` sends a null.
    pub fn set_patient_json(&self, id: &str, field: &str, value: Value) {
        let id = numeric_id(id);
        let mut inner = self.lock();
        let record = inner
            .patients
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no patient {id} in the fake"));
        record.extra.insert(field.to_owned(), value);
    }

    /// The patient as stored, if any.
    pub fn patient(&self, id: &str) -> Option<ClinikoPatient> {
        self.lock()
            .patients
            .get(&numeric_id(id))
            .map(|r| r.value.clone())
    }

    /// Adds or replaces an appointment (an empty `updated_at` is stamped).
    pub fn upsert_appointment(&self, mut appointment: ClinikoAppointment) {
        let id = numeric_id(&appointment.id);
        let mut inner = self.lock();
        if appointment.updated_at.is_empty() {
            let previous = inner
                .appointments
                .get(&id)
                .map(|r| r.value.updated_at.clone());
            appointment.updated_at = inner.stamp(previous.as_deref());
        }
        inner.appointments.insert(id, Record::new(appointment));
    }

    pub fn upsert_appointment_type(&self, appointment_type: ClinikoAppointmentType) {
        let id = numeric_id(&appointment_type.id);
        self.lock()
            .appointment_types
            .insert(id, Record::new(appointment_type));
    }

    /// Adds or replaces a patient case (an empty `updated_at` is stamped).
    pub fn upsert_patient_case(&self, mut case: ClinikoCase) {
        let id = numeric_id(&case.id);
        let mut inner = self.lock();
        if case.updated_at.is_empty() {
            let previous = inner.cases.get(&id).map(|r| r.value.updated_at.clone());
            case.updated_at = inner.stamp(previous.as_deref());
        }
        inner.cases.insert(id, Record::new(case));
    }

    pub fn upsert_practitioner(&self, practitioner: ClinikoPractitioner) {
        let id = numeric_id(&practitioner.id);
        self.lock()
            .practitioners
            .insert(id, Record::new(practitioner));
    }

    /// Adds or replaces a business.
    pub fn upsert_business(&self, business: ClinikoBusiness) {
        let id = numeric_id(&business.id);
        self.lock().businesses.insert(id, Record::new(business));
    }

    /// Adds or replaces a group appointment (an empty `updated_at` is stamped).
    pub fn upsert_group_appointment(&self, mut group: ClinikoGroupAppointment) {
        let id = numeric_id(&group.id);
        let mut inner = self.lock();
        if group.updated_at.is_empty() {
            let previous = inner.groups.get(&id).map(|r| r.value.updated_at.clone());
            group.updated_at = inner.stamp(previous.as_deref());
        }
        inner.groups.insert(id, Record::new(group));
    }

    /// Adds or replaces an attendee (an empty `updated_at` is stamped).
    pub fn upsert_attendee(&self, mut attendee: ClinikoAttendee) {
        let id = numeric_id(&attendee.id);
        let mut inner = self.lock();
        if attendee.updated_at.is_empty() {
            let previous = inner.attendees.get(&id).map(|r| r.value.updated_at.clone());
            attendee.updated_at = inner.stamp(previous.as_deref());
        }
        inner.attendees.insert(id, Record::new(attendee));
    }

    /// Cancels an attendee's place in a class as Cliniko does:
    /// `cancelled_at` (and `updated_at`) now; it leaves `/attendees` for
    /// `/attendees/cancelled`.
    pub fn cancel_attendee(&self, id: &str) {
        let key = numeric_id(id);
        let mut inner = self.lock();
        let previous = inner
            .attendees
            .get(&key)
            .unwrap_or_else(|| panic!("no attendee {id} in the fake"))
            .value
            .updated_at
            .clone();
        let now = inner.stamp(Some(&previous));
        let a = &mut inner.attendees.get_mut(&key).expect("checked").value;
        a.cancelled_at = Some(now.clone());
        a.updated_at = now;
    }

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

    // --- answering ---

    /// Logs the request and decides the answer, all at arrival; the latency
    /// to wait before sending it comes back beside it.
    pub(crate) fn respond(&self, request: &Incoming) -> (Reply, Duration) {
        let mut inner = self.lock();
        let arrived = Instant::now();
        let (auth_user, auth_password) = request
            .authorization
            .as_deref()
            .and_then(basic_credentials)
            .unzip();
        let reply = inner.answer(&self.base_url, request, auth_user.as_deref(), arrived);
        let rate_limit_reset = reply
            .headers
            .iter()
            .find(|(name, _)| *name == "x-ratelimit-reset")
            .and_then(|(_, v)| v.parse().ok());
        let since_start = arrived.duration_since(inner.started);
        inner.log.push(RequestRecord {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            auth_user,
            auth_password,
            user_agent: request.user_agent.clone(),
            accept: request.accept.clone(),
            status: reply.status,
            rate_limit_reset,
            at: SystemTime::now(),
            since_start,
            arrived,
        });
        *inner.counts.entry(request.path.clone()).or_default() += 1;
        (reply, inner.latency)
    }
}

impl<T> Record<T> {
    fn new(value: T) -> Record<T> {
        Record {
            value,
            extra: Map::new(),
        }
    }
}

/// The user name and password of `Basic base64(user:password)`.
fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, encoded) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// A key without its shard suffix: Cliniko takes either form.
fn key_body(key: &str) -> &str {
    match key.rsplit_once('-') {
        Some((body, suffix))
            if (3..=4).contains(&suffix.len())
                && suffix[..2].bytes().all(|b| b.is_ascii_lowercase())
                && suffix[2..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            body
        }
        _ => key,
    }
}

/// The first whole unix second at or after `t`.
fn unix_seconds_ceil(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn rate_limited_reply(reset: u64, limit: Option<usize>) -> Reply {
    let mut reply = Reply::error(429, "Too many requests");
    reply.headers.push(("x-ratelimit-reset", reset.to_string()));
    if let Some(limit) = limit {
        reply.headers.push(("x-ratelimit-limit", limit.to_string()));
        reply
            .headers
            .push(("x-ratelimit-remaining", "0".to_owned()));
    }
    reply
}

/// One `q[]` filter the fake understands: a date-time comparison, or IDs.
enum Filter {
    Time(String, Comparison, Timestamp),
    Ids(String, Vec<u64>),
    /// `field:*`: any value, set or not (the current reference).
    Any,
}

#[derive(Clone, Copy)]
enum Comparison {
    Gt,
    Ge,
    Lt,
    Le,
}

/// Fields compared as date-times; the others take `=` and IDs.
const TIME_FIELDS: &[&str] = &[
    "updated_at",
    "created_at",
    "deleted_at",
    "cancelled_at",
    "archived_at",
    "starts_at",
    "ends_at",
];

impl Filter {
    /// Cliniko's answer to a field a list does not search: 400.
    fn parse(q: &str, searchable: &[&str]) -> Result<Filter, String> {
        let (field, rest) = q
            .split_once(':')
            .ok_or_else(|| format!("filter {q:?} is not field:operator value"))?;
        if !searchable.contains(&field) {
            return Err("This column is not searchable.".to_owned());
        }
        if TIME_FIELDS.contains(&field) {
            if rest == "*" {
                return Ok(Filter::Any);
            }
            let (cmp, value) = if let Some(v) = rest.strip_prefix(">=") {
                (Comparison::Ge, v)
            } else if let Some(v) = rest.strip_prefix("<=") {
                (Comparison::Le, v)
            } else if let Some(v) = rest.strip_prefix('>') {
                (Comparison::Gt, v)
            } else if let Some(v) = rest.strip_prefix('<') {
                (Comparison::Lt, v)
            } else {
                return Err(format!("unsupported {field} operator in {q:?}"));
            };
            let at = value
                .parse::<Timestamp>()
                .map_err(|_| format!("{field} needs a UTC date-time, got {value:?}"))?;
            return Ok(Filter::Time(field.to_owned(), cmp, at));
        }
        let ids = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("unsupported {field} operator in {q:?}"))?;
        ids.split(',')
            .map(|id| id.trim().parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map(|ids| Filter::Ids(field.to_owned(), ids))
            .map_err(|_| format!("{field} needs numbers, got {ids:?}"))
    }

    fn accepts(&self, value: impl Fn(&str) -> Option<String>) -> bool {
        match self {
            Filter::Time(field, cmp, at) => {
                let Some(t) = value(field).and_then(|u| u.parse::<Timestamp>().ok()) else {
                    return false;
                };
                match cmp {
                    Comparison::Gt => t > *at,
                    Comparison::Ge => t >= *at,
                    Comparison::Lt => t < *at,
                    Comparison::Le => t <= *at,
                }
            }
            Filter::Any => true,
            Filter::Ids(field, ids) => value(field)
                .and_then(|p| p.parse::<u64>().ok())
                .is_some_and(|p| ids.contains(&p)),
        }
    }
}

/// Which records a list serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PatientList {
    Active,
    Archived,
    Deleted,
}

fn on_list(p: &ClinikoPatient, list: PatientList) -> bool {
    let deleted = p.deleted_at.is_some();
    let archived = p.archived_at.is_some();
    match list {
        PatientList::Active => !deleted && !archived,
        PatientList::Archived => !deleted && archived,
        PatientList::Deleted => deleted,
    }
}

impl Inner {
    /// The time to stamp a change with, after `previous`.
    fn stamp(&mut self, previous: Option<&str>) -> String {
        let now = self.clock.unwrap_or_else(Timestamp::now);
        let mut t = Timestamp::from_second(now.as_second()).expect("a whole second is in range");
        if let Some(previous) = previous.and_then(|p| p.parse::<Timestamp>().ok())
            && t <= previous
        {
            t = Timestamp::from_second(previous.as_second() + 1).unwrap_or(Timestamp::MAX);
        }
        format_time(t)
    }

    fn change_patient(&mut self, id: &str, change: impl FnOnce(&mut ClinikoPatient, &str)) {
        let key = numeric_id(id);
        let previous = self
            .patients
            .get(&key)
            .unwrap_or_else(|| panic!("no patient {id} in the fake"))
            .value
            .updated_at
            .clone();
        let now = self.stamp(Some(&previous));
        let patient = &mut self.patients.get_mut(&key).expect("checked above").value;
        change(patient, &now);
        patient.updated_at = now;
    }

    fn answer(
        &mut self,
        base_url: &str,
        request: &Incoming,
        auth_user: Option<&str>,
        arrived: Instant,
    ) -> Reply {
        if let Some(fault) = self.faults.pop_front() {
            return match fault {
                Fault::RateLimited { reset_after } => {
                    self.rate_limited += 1;
                    rate_limited_reply(unix_seconds_ceil(SystemTime::now() + reset_after), None)
                }
                Fault::Status(status) => Reply::error(status, "Injected failure"),
                Fault::Malformed => Reply {
                    status: 200,
                    headers: Vec::new(),
                    body: br#"{"patients": [{"id": "1", "first_name": "#.to_vec(),
                },
            };
        }
        let Some(user) = auth_user.filter(|u| !u.is_empty()) else {
            return Reply::error(401, "Unauthorized");
        };
        let key = key_body(user);
        if self
            .api_keys
            .as_ref()
            .is_some_and(|keys| !keys.contains(key))
        {
            return Reply::error(401, "Unauthorized");
        }
        if let Some(limit) = &mut self.limit {
            let sent = limit.sent.entry(key.to_owned()).or_default();
            while sent
                .front()
                .is_some_and(|&at| arrived.duration_since(at) >= limit.window)
            {
                sent.pop_front();
            }
            if sent.len() >= limit.requests {
                let frees = sent.front().map_or(Duration::ZERO, |&at| {
                    limit.window - arrived.duration_since(at)
                });
                let reset = unix_seconds_ceil(SystemTime::now() + frees);
                let requests = limit.requests;
                self.rate_limited += 1;
                return rate_limited_reply(reset, Some(requests));
            }
            sent.push_back(arrived);
        }
        if request.method != "GET" {
            return Reply::error(405, "Method not allowed");
        }
        let Some(path) = request.path.strip_prefix("/v1/") else {
            return Reply::error(404, "Not found");
        };
        let query: Vec<(String, String)> =
            form_urlencoded::parse(request.query.as_deref().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let refused = query.iter().any(|(k, v)| {
            k == "q[]"
                && v.split_once(':')
                    .is_some_and(|(field, _)| self.refused_filters.contains(field))
        });
        if refused {
            return Reply::error(400, "This column is not searchable.");
        }
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let r = render::Renderer {
            base_url,
            legacy: self.legacy_json,
        };
        // The current reference's "any value" filters put the records a
        // main list leaves out back in it.
        let any = |field: &str| {
            query
                .iter()
                .any(|(k, v)| k == "q[]" && *v == format!("{field}:*"))
        };
        let (any_cancelled, any_archived) = (any("cancelled_at"), any("archived_at"));
        let on = move |cancelled: bool, deleted: bool, list: Listed| match list {
            Listed::Main => (!cancelled || any_cancelled) && (!deleted || any_archived),
            Listed::Cancelled => cancelled && !deleted,
            Listed::Deleted => deleted,
        };
        let appointment_on = |a: &ClinikoAppointment, list: Listed| {
            on(
                a.cancelled_at.is_some(),
                a.deleted_at.is_some() || a.archived_at.is_some(),
                list,
            )
        };
        let attendee_on = |a: &ClinikoAttendee, list: Listed| {
            on(a.cancelled_at.is_some(), a.deleted_at.is_some(), list)
        };
        if self.retired_paths.contains(request.path.as_str()) {
            return Reply::error(404, "Not found");
        }
        let q = &query;
        match segments.as_slice() {
            ["patients"] => self.patient_list(&r, path, q, PatientList::Active),
            ["patients", "archived"] => self.patient_list(&r, path, q, PatientList::Archived),
            ["patients", "deleted"] => self.patient_list(&r, path, q, PatientList::Deleted),
            ["patients", id] => one(&r, &self.patients, id),
            ["individual_appointments"] | ["individual_appointments", "cancelled" | "deleted"] => {
                let which = Listed::of(segments.get(1).copied());
                list(
                    &r,
                    path,
                    "individual_appointments",
                    q,
                    which.searchable(APPOINTMENT_FILTERS),
                    self.appointments
                        .values()
                        .filter(|a| appointment_on(&a.value, which)),
                    |a: &ClinikoAppointment, f| match f {
                        "updated_at" => Some(a.updated_at.clone()),
                        "cancelled_at" => a.cancelled_at.clone(),
                        "deleted_at" => a.deleted_at.clone(),
                        "archived_at" => a.archived_at.clone(),
                        "starts_at" => Some(a.starts_at.clone()),
                        "id" => Some(a.id.clone()),
                        "patient_id" => a.patient_id.clone(),
                        "practitioner_id" => a.practitioner_id.clone(),
                        _ => None,
                    },
                    |rec| r.record(rec),
                )
            }
            ["individual_appointments", id] => one(&r, &self.appointments, id),
            ["appointment_types"] | ["appointment_types", "archived"] => {
                let archived = segments.len() == 2;
                list(
                    &r,
                    path,
                    "appointment_types",
                    q,
                    &["created_at", "id", "updated_at"],
                    self.appointment_types
                        .values()
                        .filter(|t| t.value.archived == archived),
                    |t: &ClinikoAppointmentType, f| (f == "id").then(|| t.id.clone()),
                    |rec| r.record(rec),
                )
            }
            ["appointment_types", id] => one(&r, &self.appointment_types, id),
            ["patient_cases"] => list(
                &r,
                path,
                "patient_cases",
                q,
                &["created_at", "id", "patient_id", "updated_at"],
                self.cases.values(),
                |c: &ClinikoCase, f| match f {
                    "updated_at" => Some(c.updated_at.clone()),
                    "id" => Some(c.id.clone()),
                    "patient_id" => c.patient_id.clone(),
                    _ => None,
                },
                |rec| r.record(rec),
            ),
            ["patient_cases", id] => one(&r, &self.cases, id),
            ["practitioners"] | ["practitioners", "inactive"] => {
                let active = segments.len() == 1;
                list(
                    &r,
                    path,
                    "practitioners",
                    q,
                    &["created_at", "id", "updated_at", "user_id"],
                    self.practitioners
                        .values()
                        .filter(|p| p.value.active == active),
                    |p: &ClinikoPractitioner, f| (f == "id").then(|| p.id.clone()),
                    |rec| r.record(rec),
                )
            }
            ["practitioners", id] => one(&r, &self.practitioners, id),
            ["businesses"] => list(
                &r,
                path,
                "businesses",
                q,
                &["created_at", "id", "updated_at"],
                self.businesses.values(),
                |b: &ClinikoBusiness, f| (f == "id").then(|| b.id.clone()),
                |rec| r.record(rec),
            ),
            ["businesses", id] => one(&r, &self.businesses, id),
            ["group_appointments"] | ["group_appointments", "deleted"] => {
                let deleted = segments.len() == 2;
                let which = if deleted {
                    Listed::Deleted
                } else {
                    Listed::Main
                };
                list(
                    &r,
                    path,
                    "group_appointments",
                    q,
                    which.searchable(GROUP_FILTERS),
                    self.groups
                        .values()
                        .filter(|g| g.value.deleted_at.is_some() == deleted),
                    |g: &ClinikoGroupAppointment, f| match f {
                        "updated_at" => Some(g.updated_at.clone()),
                        "deleted_at" => g.deleted_at.clone(),
                        "starts_at" => Some(g.starts_at.clone()),
                        "id" => Some(g.id.clone()),
                        _ => None,
                    },
                    |rec| r.record(rec),
                )
            }
            ["group_appointments", id] => one(&r, &self.groups, id),
            ["attendees"]
            | ["attendees", "cancelled" | "deleted"]
            | ["group_appointments", _, "attendees"]
            | [
                "group_appointments",
                _,
                "attendees",
                "cancelled" | "deleted",
            ] => {
                let (group, rest) = match segments.as_slice() {
                    ["group_appointments", g, rest @ ..] => (Some(*g), &rest[1..]),
                    [_, rest @ ..] => (None, rest),
                    [] => (None, &[][..]),
                };
                let which = Listed::of(rest.first().copied());
                list(
                    &r,
                    path,
                    "attendees",
                    q,
                    which.searchable(ATTENDEE_FILTERS),
                    self.attendees.values().filter(|a| {
                        attendee_on(&a.value, which)
                            && group.is_none_or(|g| a.value.booking_id.as_deref() == Some(g))
                    }),
                    |a: &ClinikoAttendee, f| match f {
                        "updated_at" => Some(a.updated_at.clone()),
                        "deleted_at" => a.deleted_at.clone(),
                        "cancelled_at" => a.cancelled_at.clone(),
                        "id" => Some(a.id.clone()),
                        "patient_id" => a.patient_id.clone(),
                        "booking_id" => a.booking_id.clone(),
                        _ => None,
                    },
                    |rec| r.record(rec),
                )
            }
            ["attendees", id] => one(&r, &self.attendees, id),
            _ => Reply::error(404, "Not found"),
        }
    }

    fn patient_list(
        &self,
        r: &render::Renderer<'_>,
        path: &str,
        query: &[(String, String)],
        which: PatientList,
    ) -> Reply {
        let searchable: &[&str] = match which {
            // Cliniko's maintainers: a `/deleted` list is searchable by
            // `deleted_at` and `id` only (`updated_at` is a 400).
            PatientList::Deleted => &["deleted_at", "id"],
            _ => &[
                "created_at",
                "date_of_birth",
                "email",
                "first_name",
                "id",
                "last_name",
                "updated_at",
            ],
        };
        list(
            r,
            path,
            "patients",
            query,
            searchable,
            self.patients.values().filter(|p| on_list(&p.value, which)),
            |p: &ClinikoPatient, f| match f {
                "updated_at" => Some(p.updated_at.clone()),
                "deleted_at" => p.deleted_at.clone(),
                "id" => Some(p.id.clone()),
                "first_name" => p.first_name.clone(),
                "last_name" => p.last_name.clone(),
                "email" => p.email.clone(),
                "date_of_birth" => p.date_of_birth.clone(),
                _ => None,
            },
            |p: &Record<ClinikoPatient>| {
                if which == PatientList::Deleted {
                    r.deleted_patient(&p.value)
                } else {
                    r.record(p)
                }
            },
        )
    }
}

/// The filters Cliniko documents for individual appointments.
const APPOINTMENT_FILTERS: &[&str] = &[
    "appointment_type_id",
    "archived_at",
    "business_id",
    "cancelled_at",
    "created_at",
    "ends_at",
    "id",
    "patient_id",
    "practitioner_id",
    "repeated_from_id",
    "starts_at",
    "updated_at",
];
const GROUP_FILTERS: &[&str] = &[
    "appointment_type_id",
    "archived_at",
    "business_id",
    "created_at",
    "ends_at",
    "id",
    "practitioner_id",
    "repeated_from_id",
    "starts_at",
    "updated_at",
];
/// The 2022 list, and the dates the current reference adds (its `:*` form).
const ATTENDEE_FILTERS: &[&str] = &[
    "archived_at",
    "booking_id",
    "cancelled_at",
    "created_at",
    "id",
    "patient_id",
    "updated_at",
];

/// Which of a resource's lists: its main one, `/cancelled` or `/deleted`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listed {
    Main,
    Cancelled,
    Deleted,
}

impl Listed {
    fn of(segment: Option<&str>) -> Listed {
        match segment {
            Some("cancelled") => Listed::Cancelled,
            Some("deleted") => Listed::Deleted,
            _ => Listed::Main,
        }
    }

    /// The filters this list takes: a `/deleted` list only `deleted_at` and `id`.
    fn searchable(self, documented: &'static [&'static str]) -> &'static [&'static str] {
        match self {
            Listed::Deleted => &["deleted_at", "id"],
            _ => documented,
        }
    }
}

/// `GET /{resource}/{id}`.
fn one<T: Render>(r: &render::Renderer<'_>, records: &BTreeMap<u64, Record<T>>, id: &str) -> Reply {
    match id.parse::<u64>().ok().and_then(|id| records.get(&id)) {
        Some(record) => Reply::json(200, &r.record(record)),
        None => Reply::error(404, "Not found"),
    }
}

/// A list page: filtered, in ID order (the maps are ordered), paged.
/// `field` gives a record's value of a filter's field; `searchable` are the
/// fields the list takes filters on.
#[allow(clippy::too_many_arguments)]
fn list<'a, T: 'a>(
    r: &render::Renderer<'_>,
    path: &str,
    key: &str,
    query: &[(String, String)],
    searchable: &[&str],
    records: impl Iterator<Item = &'a Record<T>>,
    field: impl Fn(&T, &str) -> Option<String>,
    render: impl Fn(&Record<T>) -> Value,
) -> Reply {
    let filters = match query
        .iter()
        .filter(|(k, _)| k == "q[]")
        .map(|(_, v)| Filter::parse(v, searchable))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(filters) => filters,
        Err(message) => return Reply::error(400, &message),
    };
    let number = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let page = number("page").unwrap_or(1).max(1);
    let per_page = number("per_page")
        .unwrap_or(DEFAULT_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let matching: Vec<&Record<T>> = records
        .filter(|record| {
            filters
                .iter()
                .all(|f| f.accepts(|name| field(&record.value, name)))
        })
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|record| render(record))
        .collect();
    let page_url = |page: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "page" && k != "per_page") {
            q.append_pair(k, v);
        }
        q.append_pair("page", &page.to_string());
        q.append_pair("per_page", &per_page.to_string());
        format!("{}/{path}?{}", r.base_url, q.finish())
    };
    let mut links = Map::new();
    links.insert("self".into(), page_url(page).into());
    if page.saturating_mul(per_page) < total {
        links.insert("next".into(), page_url(page + 1).into());
    }
    if page > 1 {
        links.insert("previous".into(), page_url(page - 1).into());
    }
    let mut body = Map::new();
    body.insert(key.to_owned(), Value::Array(items));
    // Cliniko's own businesses example spells it so.
    let total_key = if key == "businesses" {
        "total_entires"
    } else {
        "total_entries"
    };
    body.insert(total_key.into(), total.into());
    body.insert("links".into(), Value::Object(links));
    Reply::json(200, &Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> FakeState {
        FakeState::new("http://fake.test/v1".into())
    }

    fn get(state: &FakeState, path_and_query: &str) -> (u16, Value) {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (path_and_query, None),
        };
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("key-au1:")
        );
        let (reply, _) = state.respond(&Incoming {
            method: "GET".into(),
            path: path.into(),
            query,
            authorization: Some(auth),
            user_agent: None,
            accept: None,
        });
        let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (reply.status, body)
    }

    fn patient(id: u64, updated_at: &str) -> ClinikoPatient {
        ClinikoPatient {
            id: id.to_string(),
            updated_at: updated_at.into(),
            ..Default::default()
        }
    }

    #[test]
    fn pages_keep_filters_and_order() {
        let s = state();
        for id in (1..=7).rev() {
            s.upsert_patient(patient(id, &format!("2026-01-0{id}T00:00:00Z")));
        }
        let (status, body) = get(
            &s,
            "/v1/patients?per_page=2&q%5B%5D=updated_at%3A%3E2026-01-02T00%3A00%3A00Z",
        );
        assert_eq!(status, 200);
        assert_eq!(body["total_entries"], 5);
        // Integer IDs, as the documented patients example has them.
        assert_eq!(body["patients"][0]["id"], 3);
        assert_eq!(body["patients"][1]["id"], 4);
        let next = body["links"]["next"].as_str().unwrap();
        assert_eq!(
            next,
            "http://fake.test/v1/patients?q%5B%5D=updated_at%3A%3E2026-01-02T00%3A00%3A00Z&page=2&per_page=2"
        );
        let (_, last) = get(
            &s,
            &next["http://fake.test".len()..].replace("&page=2&", "&page=3&"),
        );
        assert_eq!(last["patients"].as_array().unwrap().len(), 1);
        assert!(last["links"].get("next").is_none());
        assert!(last["links"]["previous"].is_string());
    }

    #[test]
    fn stamps_move_forward_and_lists_follow_state() {
        let s = state();
        let t0: Timestamp = "2026-03-01T09:00:00Z".parse().unwrap();
        s.set_clock(Some(t0));
        s.upsert_patient(patient(1, ""));
        s.upsert_patient(patient(2, ""));
        assert_eq!(s.patient("1").unwrap().updated_at, "2026-03-01T09:00:00Z");
        s.archive_patient("1");
        let p1 = s.patient("1").unwrap();
        assert_eq!(p1.updated_at, "2026-03-01T09:00:01Z");
        assert_eq!(p1.archived_at.as_deref(), Some("2026-03-01T09:00:01Z"));
        s.merge_patients("2", "3");
        s.delete_patient("2");
        let ids = |path| {
            let (_, b) = get(&s, path);
            b["patients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].to_string())
                .collect::<Vec<_>>()
        };
        assert!(ids("/v1/patients").is_empty());
        assert_eq!(ids("/v1/patients/archived"), ["1"]);
        // A deleted entry is bare, as documented: `deleted_at` and its link.
        let (_, deleted) = get(&s, "/v1/patients/deleted");
        assert_eq!(
            deleted["patients"][0],
            json!({
                "deleted_at": "2026-03-01T09:00:02Z",
                "links": {"self": "http://fake.test/v1/patients/2"}
            })
        );
        let (_, two) = get(&s, "/v1/patients/2");
        assert_eq!(
            two["merged_with_patient"]["links"]["self"],
            "http://fake.test/v1/patients/3"
        );
        // `/deleted` lists take `deleted_at` (or `id`), never `updated_at`.
        assert_eq!(
            get(
                &s,
                "/v1/patients/deleted?q[]=updated_at:>2026-01-01T00:00:00Z"
            )
            .0,
            400
        );
        let (status, since) = get(
            &s,
            "/v1/patients/deleted?q[]=deleted_at:>2026-03-01T09:00:01Z",
        );
        assert_eq!((status, since["total_entries"].as_u64()), (200, Some(1)));
    }

    #[test]
    fn faults_and_auth() {
        let s = state();
        s.set_api_keys(["key"]);
        s.fail_next(1, 503);
        s.rate_limit_next(1, Duration::from_secs(30));
        s.malformed_next(1);
        assert_eq!(get(&s, "/v1/patients").0, 503);
        assert_eq!(get(&s, "/v1/patients").0, 429);
        assert_eq!(s.rate_limited_count(), 1);
        assert_eq!(get(&s, "/v1/patients"), (200, Value::Null));
        // "key-au1" is "key" with its shard suffix.
        assert_eq!(get(&s, "/v1/patients").0, 200);
        s.set_api_keys(["other-uk1"]);
        assert_eq!(get(&s, "/v1/patients").0, 401);
        let log = s.requests();
        assert_eq!(log.len(), 5);
        assert_eq!(log[0].auth_user.as_deref(), Some("key-au1"));
        assert_eq!(log[0].auth_password.as_deref(), Some(""));
        assert!(log[1].rate_limit_reset.is_some());
        assert_eq!(s.request_count("/v1/patients"), 5);
    }

    #[test]
    fn enforced_rate_limit() {
        let s = state();
        s.enforce_rate_limit(Some((2, Duration::from_secs(60))));
        assert_eq!(get(&s, "/v1/practitioners").0, 200);
        assert_eq!(get(&s, "/v1/practitioners").0, 200);
        assert_eq!(get(&s, "/v1/practitioners").0, 429);
        assert_eq!(s.rate_limited_count(), 1);
    }

    #[test]
    fn unknown_filters_are_refused() {
        let s = state();
        assert_eq!(get(&s, "/v1/patients?q[]=first_name:=Ada").0, 400);
        assert_eq!(get(&s, "/v1/patient_cases?q[]=patient_id:=1,2").0, 200);
        assert_eq!(get(&s, "/v1/nothing").0, 404);
        assert_eq!(get(&s, "/v1/patients/12").0, 404);
    }
}
