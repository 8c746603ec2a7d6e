//! Records as Cliniko's JSON: each is the example record of Cliniko's own
//! documentation (`infra/fake-cliniko/docs/`, from `redguava/cliniko-api`)
//! with the fields Tendon reads laid over it. So every response carries the
//! documented field set and its quirks: the ID as a JSON number or string
//! as that resource's example has it, `""` where the example sends `""`
//! for an empty value and `null` where it sends `null`, linked records as
//! `{"links": {"self": URL}}`, and the fields Tendon never reads (addresses,
//! notes, invoices) as the example has them.
use std::sync::LazyLock;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoAttendee, ClinikoBusiness, ClinikoCase,
    ClinikoGroupAppointment, ClinikoPatient, ClinikoPractitioner,
};

use crate::state::{Record, format_time};

/// Where the documentation's examples link to; rewritten to the fake's base.
const DOCS_BASE: &str = "https://api.au1.cliniko.com/v1";

/// The first record of a documented example list.
fn example(json: &str, key: &str) -> Map<String, Value> {
    let list: Value = serde_json::from_str(json).expect("the documented examples are JSON");
    match &list[key][0] {
        Value::Object(record) => record.clone(),
        _ => panic!("the `{key}` example has no record"),
    }
}

macro_rules! template {
    ($name:ident, $file:literal, $key:literal) => {
        static $name: LazyLock<Map<String, Value>> =
            LazyLock::new(|| example(include_str!(concat!("../docs/", $file)), $key));
    };
}

template!(PATIENT, "patients.json", "patients");
template!(ARCHIVED_PATIENT, "patients_archived.json", "patients");
template!(PRACTITIONER, "practitioners.json", "practitioners");
template!(
    INACTIVE_PRACTITIONER,
    "practitioners_inactive.json",
    "practitioners"
);
template!(
    APPOINTMENT_TYPE,
    "appointment_types.json",
    "appointment_types"
);
template!(
    ARCHIVED_APPOINTMENT_TYPE,
    "appointment_types_archived.json",
    "appointment_types"
);
template!(
    APPOINTMENT,
    "individual_appointments.json",
    "individual_appointments"
);
template!(CASE, "patient_cases.json", "patient_cases");
template!(BUSINESS, "businesses.json", "businesses");
template!(GROUP, "group_appointments.json", "group_appointments");
template!(ATTENDEE, "attendees.json", "attendees");

pub(crate) struct Renderer<'a> {
    pub(crate) base_url: &'a str,
    /// Numeric IDs and `""` for every empty field, whatever the example.
    pub(crate) legacy: bool,
}

pub(crate) trait Render {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value>;
}

/// A record being laid over its example.
struct Over<'r, 'a> {
    r: &'r Renderer<'a>,
    json: Map<String, Value>,
}

impl Over<'_, '_> {
    /// The ID, as a number where the example's is one (and it fits).
    fn id(&mut self, id: &str) -> &mut Self {
        let numeric = self.r.legacy || self.json.get("id").is_some_and(Value::is_number);
        let value = match id.parse::<u64>() {
            Ok(n) if numeric => n.into(),
            _ => id.into(),
        };
        self.json.insert("id".into(), value);
        self
    }

    /// A text field: empty as the example sends it (`""` or `null`).
    fn text(&mut self, field: &str, value: Option<&str>) -> &mut Self {
        let value = match value {
            Some(v) => v.into(),
            None if self.r.legacy || self.json.get(field).is_some_and(Value::is_string) => {
                "".into()
            }
            None => Value::Null,
        };
        self.json.insert(field.to_owned(), value);
        self
    }

    fn set(&mut self, field: &str, value: Value) -> &mut Self {
        self.json.insert(field.to_owned(), value);
        self
    }

    /// `{"links": {"self": URL}}`, or null.
    fn link(&mut self, field: &str, resource: &str, id: Option<&str>) -> &mut Self {
        let value = match id {
            Some(id) => json!({ "links": { "self": self.r.url(resource, id) } }),
            None => Value::Null,
        };
        self.set(field, value)
    }

    /// What a booking is with and where: its practitioner, type and business.
    fn booked(
        &mut self,
        practitioner: Option<&str>,
        appointment_type: Option<&str>,
        business: Option<&str>,
    ) -> &mut Self {
        self.link("practitioner", "practitioners", practitioner)
            .link("appointment_type", "appointment_types", appointment_type)
            .link("business", "businesses", business)
    }

    fn self_link(&mut self, resource: &str, id: &str) -> Map<String, Value> {
        let url = self.r.url(resource, id);
        self.json.insert("links".into(), json!({ "self": url }));
        std::mem::take(&mut self.json)
    }
}

impl<'a> Renderer<'a> {
    /// The record's JSON with its extra fields laid over it.
    pub(crate) fn record<T: Render>(&self, record: &Record<T>) -> Value {
        let mut json = record.value.render(self);
        for (k, v) in &record.extra {
            json.insert(k.clone(), v.clone());
        }
        Value::Object(json)
    }

    fn url(&self, resource: &str, id: &str) -> String {
        format!("{}/{resource}/{id}", self.base_url)
    }

    /// The example record, its links pointing at this fake.
    fn over<'r>(&'r self, example: &Map<String, Value>) -> Over<'r, 'a> {
        let mut json = example.clone();
        for value in json.values_mut() {
            rebase(value, self.base_url);
        }
        Over { r: self, json }
    }

    /// An entry of `GET /patients/deleted`: only `deleted_at` and the link,
    /// as Cliniko documents it (the ID was trimmed on purpose).
    pub(crate) fn deleted_patient(&self, p: &ClinikoPatient) -> Value {
        json!({
            "deleted_at": p.deleted_at,
            "links": { "self": self.url("patients", &p.id) },
        })
    }
}

/// Rewrites the documentation's API base in every string of `value`.
fn rebase(value: &mut Value, base: &str) {
    match value {
        Value::String(s) if s.starts_with(DOCS_BASE) => {
            *s = format!("{base}{}", &s[DOCS_BASE.len()..]);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rebase(v, base)),
        Value::Object(map) => map.values_mut().for_each(|v| rebase(v, base)),
        _ => {}
    }
}

/// `minutes` after `starts_at`, when that is a time at all.
fn ends_at(starts_at: &str, minutes: i64) -> String {
    starts_at
        .parse::<Timestamp>()
        .ok()
        .and_then(|t| t.checked_add(SignedDuration::from_mins(minutes)).ok())
        .map_or_else(|| starts_at.to_owned(), format_time)
}

impl Render for ClinikoPatient {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        let merged = self.merged_at.is_some() || self.merged_into_id.is_some();
        let mut o = r.over(if merged { &ARCHIVED_PATIENT } else { &PATIENT });
        let phones: Vec<Value> = self
            .phone_numbers
            .iter()
            .map(|p| json!({ "phone_type": p.phone_type, "number": p.number }))
            .collect();
        let flag = |b: Option<bool>| b.map_or(Value::Null, Value::Bool);
        o.id(&self.id)
            .text("first_name", self.first_name.as_deref())
            .text("last_name", self.last_name.as_deref())
            .text("date_of_birth", self.date_of_birth.as_deref())
            .text("sex", self.sex.as_deref())
            // Deprecated since 2018 and still sent: the same value as `sex`.
            .text("gender", self.sex.as_deref())
            .text("gender_identity", self.gender_identity.as_deref())
            .text("email", self.email.as_deref())
            .set("patient_phone_numbers", Value::Array(phones))
            .text("time_zone", self.time_zone.as_deref())
            // The documented example names the country in words.
            .text("country", self.country.as_deref())
            .set(
                "accepted_email_marketing",
                flag(self.accepted_email_marketing),
            )
            .set("accepted_sms_marketing", flag(self.accepted_sms_marketing))
            .text("archived_at", self.archived_at.as_deref())
            .text("deleted_at", self.deleted_at.as_deref())
            .set("created_at", self.updated_at.clone().into())
            .set("updated_at", self.updated_at.clone().into());
        if merged {
            o.text("merged_at", self.merged_at.as_deref()).link(
                "merged_with_patient",
                "patients",
                self.merged_into_id.as_deref(),
            );
        }
        o.self_link("patients", &self.id)
    }
}

impl Render for ClinikoAppointment {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        let ends_at = ends_at(&self.starts_at, 30);
        let mut o = r.over(&APPOINTMENT);
        o.id(&self.id)
            .set("starts_at", self.starts_at.clone().into())
            .set("ends_at", ends_at.into())
            .text("cancelled_at", self.cancelled_at.as_deref())
            .text("deleted_at", self.deleted_at.as_deref())
            // Newer than the example: the current reference documents both.
            .text("archived_at", self.archived_at.as_deref())
            .link(
                "patient_case",
                "patient_cases",
                self.patient_case_id.as_deref(),
            )
            .set("patient_arrived", self.patient_arrived.into())
            .set("did_not_arrive", self.did_not_arrive.into())
            .set("created_at", self.updated_at.clone().into())
            .set("updated_at", self.updated_at.clone().into())
            .link("patient", "patients", self.patient_id.as_deref())
            .booked(
                self.practitioner_id.as_deref(),
                self.appointment_type_id.as_deref(),
                self.business_id.as_deref(),
            );
        o.self_link("individual_appointments", &self.id)
    }
}

impl Render for ClinikoAppointmentType {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        let mut o = r.over(if self.archived {
            &ARCHIVED_APPOINTMENT_TYPE
        } else {
            &APPOINTMENT_TYPE
        });
        o.id(&self.id).set("name", self.name.clone().into());
        o.self_link("appointment_types", &self.id)
    }
}

impl Render for ClinikoCase {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        let mut o = r.over(&CASE);
        o.id(&self.id)
            .set("name", self.name.clone().into())
            .set("closed", self.closed.into())
            .set("created_at", self.updated_at.clone().into())
            .set("updated_at", self.updated_at.clone().into())
            .link("patient", "patients", self.patient_id.as_deref());
        o.self_link("patient_cases", &self.id)
    }
}

impl Render for ClinikoPractitioner {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        let mut o = r.over(if self.active {
            &PRACTITIONER
        } else {
            &INACTIVE_PRACTITIONER
        });
        o.id(&self.id)
            .text("first_name", self.first_name.as_deref())
            .text("last_name", self.last_name.as_deref());
        o.self_link("practitioners", &self.id)
    }
}

impl Render for ClinikoBusiness {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        let mut o = r.over(&BUSINESS);
        // A two-letter country is a code; the example sends both forms.
        let (code, name) = match self.country.as_deref() {
            Some(c) if c.len() == 2 => (Some(c), None),
            other => (None, other),
        };
        o.id(&self.id)
            .text("business_name", self.name.as_deref())
            .text("country_code", code)
            .text("country", name)
            // The current reference's fields, which the 2022 example lacks:
            // the IANA zone and its label.
            .set("time_zone_identifier", self.time_zone.clone().into())
            .set(
                "time_zone",
                self.time_zone
                    .as_deref()
                    .map(|z| z.rsplit('/').next().unwrap_or(z).replace('_', " "))
                    .into(),
            );
        o.self_link("businesses", &self.id)
    }
}

impl Render for ClinikoGroupAppointment {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        let ends_at = ends_at(&self.starts_at, 60);
        let mut o = r.over(&GROUP);
        o.id(&self.id)
            .set("starts_at", self.starts_at.clone().into())
            .set("ends_at", ends_at.into())
            .text("deleted_at", self.deleted_at.as_deref())
            .set("created_at", self.updated_at.clone().into())
            .set("updated_at", self.updated_at.clone().into())
            .booked(
                self.practitioner_id.as_deref(),
                self.appointment_type_id.as_deref(),
                self.business_id.as_deref(),
            )
            .set(
                "attendees",
                json!({ "links": { "self": format!("{}/attendees", r.url("group_appointments", &self.id)) } }),
            );
        o.self_link("group_appointments", &self.id)
    }
}

impl Render for ClinikoAttendee {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        let mut o = r.over(&ATTENDEE);
        // `arrived` is null until the practitioner marks it.
        let arrived = if self.arrived {
            Value::Bool(true)
        } else {
            Value::Null
        };
        o.id(&self.id)
            .set("arrived", arrived)
            .text("cancelled_at", self.cancelled_at.as_deref())
            .text("deleted_at", self.deleted_at.as_deref())
            .set("created_at", self.updated_at.clone().into())
            .set("updated_at", self.updated_at.clone().into())
            .link("patient", "patients", self.patient_id.as_deref())
            // The booking is the class: `/bookings/{group appointment ID}`.
            .link("booking", "bookings", self.booking_id.as_deref());
        o.self_link("attendees", &self.id)
    }
}
