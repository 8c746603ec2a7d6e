//! The fake's records, faults and request log, and how it answers.
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoCase, ClinikoPatient, ClinikoPractitioner,
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

/// One `q[]` filter the fake understands.
enum Filter {
    UpdatedAt(Comparison, Timestamp),
    PatientIds(Vec<u64>),
}

#[derive(Clone, Copy)]
enum Comparison {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Filter {
    fn parse(q: &str) -> Result<Filter, String> {
        let (field, rest) = q
            .split_once(':')
            .ok_or_else(|| format!("filter {q:?} is not field:operator value"))?;
        match field {
            "updated_at" => {
                let (cmp, value) = if let Some(v) = rest.strip_prefix(">=") {
                    (Comparison::Ge, v)
                } else if let Some(v) = rest.strip_prefix("<=") {
                    (Comparison::Le, v)
                } else if let Some(v) = rest.strip_prefix('>') {
                    (Comparison::Gt, v)
                } else if let Some(v) = rest.strip_prefix('<') {
                    (Comparison::Lt, v)
                } else {
                    return Err(format!("unsupported updated_at operator in {q:?}"));
                };
                let at = value
                    .parse::<Timestamp>()
                    .map_err(|_| format!("updated_at needs a UTC date-time, got {value:?}"))?;
                Ok(Filter::UpdatedAt(cmp, at))
            }
            "patient_id" => {
                let ids = rest
                    .strip_prefix('=')
                    .ok_or_else(|| format!("unsupported patient_id operator in {q:?}"))?;
                ids.split(',')
                    .map(|id| id.trim().parse::<u64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map(Filter::PatientIds)
                    .map_err(|_| format!("patient_id needs numbers, got {ids:?}"))
            }
            other => Err(format!("the fake does not filter on {other:?}")),
        }
    }

    fn accepts(&self, updated_at: Option<&str>, patient_id: Option<&str>) -> bool {
        match self {
            Filter::UpdatedAt(cmp, at) => {
                let Some(t) = updated_at.and_then(|u| u.parse::<Timestamp>().ok()) else {
                    return false;
                };
                match cmp {
                    Comparison::Gt => t > *at,
                    Comparison::Ge => t >= *at,
                    Comparison::Lt => t < *at,
                    Comparison::Le => t <= *at,
                }
            }
            Filter::PatientIds(ids) => patient_id
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
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let r = render::Renderer {
            base_url,
            legacy: self.legacy_json,
        };
        match segments.as_slice() {
            ["patients"] => self.patient_list(&r, path, &query, PatientList::Active),
            ["patients", "archived"] => self.patient_list(&r, path, &query, PatientList::Archived),
            ["patients", "deleted"] => self.patient_list(&r, path, &query, PatientList::Deleted),
            ["patients", id] => one(&r, &self.patients, id),
            ["individual_appointments"] => list(
                &r,
                path,
                "individual_appointments",
                &query,
                self.appointments.values(),
                |a| (Some(a.updated_at.as_str()), a.patient_id.as_deref()),
            ),
            ["individual_appointments", id] => one(&r, &self.appointments, id),
            ["appointment_types"] => list(
                &r,
                path,
                "appointment_types",
                &query,
                self.appointment_types.values(),
                |_| (None, None),
            ),
            ["appointment_types", id] => one(&r, &self.appointment_types, id),
            ["patient_cases"] => list(
                &r,
                path,
                "patient_cases",
                &query,
                self.cases.values(),
                |c| (Some(c.updated_at.as_str()), c.patient_id.as_deref()),
            ),
            ["patient_cases", id] => one(&r, &self.cases, id),
            ["practitioners"] => list(
                &r,
                path,
                "practitioners",
                &query,
                self.practitioners.values(),
                |_| (None, None),
            ),
            ["practitioners", id] => one(&r, &self.practitioners, id),
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
        list(
            r,
            path,
            "patients",
            query,
            self.patients.values().filter(|p| on_list(&p.value, which)),
            // Patients have no patient_id: a patient_id filter matches none.
            |p| (Some(p.updated_at.as_str()), None),
        )
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
/// `fields` gives a record's `updated_at` and `patient_id` for the filters.
fn list<'a, T: Render + 'a>(
    r: &render::Renderer<'_>,
    path: &str,
    key: &str,
    query: &[(String, String)],
    records: impl Iterator<Item = &'a Record<T>>,
    fields: impl Fn(&T) -> (Option<&str>, Option<&str>),
) -> Reply {
    let filters = match query
        .iter()
        .filter(|(k, _)| k == "q[]")
        .map(|(_, v)| Filter::parse(v))
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
            let (updated_at, patient_id) = fields(&record.value);
            filters.iter().all(|f| f.accepts(updated_at, patient_id))
        })
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|record| r.record(record))
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
    body.insert("total_entries".into(), total.into());
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
        assert_eq!(body["patients"][0]["id"], "3");
        assert_eq!(body["patients"][1]["id"], "4");
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
                .map(|p| p["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert!(ids("/v1/patients").is_empty());
        assert_eq!(ids("/v1/patients/archived"), ["1"]);
        assert_eq!(ids("/v1/patients/deleted"), ["2"]);
        let (_, two) = get(&s, "/v1/patients/2");
        assert_eq!(
            two["merged_into"]["links"]["self"],
            "http://fake.test/v1/patients/3"
        );
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
