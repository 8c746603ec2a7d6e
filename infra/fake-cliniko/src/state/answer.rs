//! Answering a request, all at its arrival: a queued fault first, then the
//! key (HTTP Basic, with or without its shard suffix), the enforced rate
//! limit, and the route to a record or a list. Each answer is logged.
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoAttendee, ClinikoBusiness, ClinikoCase,
    ClinikoGroupAppointment, ClinikoPatient, ClinikoPractitioner,
};

use super::filters::{
    APPOINTMENT_FILTERS, ATTENDEE_FILTERS, GROUP_FILTERS, Listed, PatientList, on_list,
};
use super::paging::{list, one};
use super::{FakeState, Fault, Incoming, Inner, Record, Reply, RequestRecord};
use crate::render;

impl FakeState {
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
pub(super) fn key_body(key: &str) -> &str {
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

impl Inner {
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
