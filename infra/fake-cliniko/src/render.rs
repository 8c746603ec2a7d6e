//! Records as Cliniko's JSON.
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoCase, ClinikoPatient, ClinikoPractitioner,
};

use crate::state::{Record, format_time};

pub(crate) struct Renderer<'a> {
    pub(crate) base_url: &'a str,
    /// Numeric IDs and `""` for empty fields, as older Cliniko responses.
    pub(crate) legacy: bool,
}

pub(crate) trait Render {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value>;
}

impl Renderer<'_> {
    /// The record's JSON with its extra fields laid over it.
    pub(crate) fn record<T: Render>(&self, record: &Record<T>) -> Value {
        let mut json = record.value.render(self);
        for (k, v) in &record.extra {
            json.insert(k.clone(), v.clone());
        }
        Value::Object(json)
    }

    fn id(&self, id: &str) -> Value {
        match id.parse::<u64>() {
            Ok(n) if self.legacy => n.into(),
            _ => id.into(),
        }
    }

    fn text(&self, value: Option<&str>) -> Value {
        match value {
            Some(v) => v.into(),
            None if self.legacy => "".into(),
            None => Value::Null,
        }
    }

    fn url(&self, resource: &str, id: &str) -> String {
        format!("{}/{resource}/{id}", self.base_url)
    }

    /// `{"links": {"self": URL}}`, or null.
    fn linked(&self, resource: &str, id: Option<&str>) -> Value {
        match id {
            Some(id) => json!({ "links": { "self": self.url(resource, id) } }),
            None => Value::Null,
        }
    }

    fn self_links(&self, resource: &str, id: &str) -> Value {
        json!({ "self": self.url(resource, id) })
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json!({{…}}) is an object"),
    }
}

impl Render for ClinikoPatient {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        let phones: Vec<Value> = self
            .phone_numbers
            .iter()
            .map(|p| json!({ "phone_type": r.text(p.phone_type.as_deref()), "number": p.number }))
            .collect();
        let flag = |b: Option<bool>| b.map_or(Value::Null, Value::Bool);
        let mut json = object(json!({
            "id": r.id(&self.id),
            "first_name": r.text(self.first_name.as_deref()),
            "last_name": r.text(self.last_name.as_deref()),
            "date_of_birth": r.text(self.date_of_birth.as_deref()),
            "sex": r.text(self.sex.as_deref()),
            // Deprecated, still sent: the same value as `sex`.
            "gender": r.text(self.sex.as_deref()),
            "gender_identity": r.text(self.gender_identity.as_deref()),
            "email": r.text(self.email.as_deref()),
            "patient_phone_numbers": phones,
            "time_zone": r.text(self.time_zone.as_deref()),
            "accepted_email_marketing": flag(self.accepted_email_marketing),
            "accepted_sms_marketing": flag(self.accepted_sms_marketing),
            "archived_at": r.text(self.archived_at.as_deref()),
            "deleted_at": r.text(self.deleted_at.as_deref()),
            "merged_at": r.text(self.merged_at.as_deref()),
            "created_at": self.updated_at,
            "updated_at": self.updated_at,
            "links": r.self_links("patients", &self.id),
        }));
        if let Some(into) = &self.merged_into_id {
            json.insert("merged_into".into(), r.linked("patients", Some(into)));
        }
        json
    }
}

impl Render for ClinikoAppointment {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        // Half an hour, when `starts_at` is a time at all.
        let ends_at = self
            .starts_at
            .parse::<Timestamp>()
            .ok()
            .and_then(|t| t.checked_add(SignedDuration::from_mins(30)).ok())
            .map_or_else(|| self.starts_at.clone(), format_time);
        object(json!({
            "id": r.id(&self.id),
            "starts_at": self.starts_at,
            "ends_at": ends_at,
            "cancelled_at": r.text(self.cancelled_at.as_deref()),
            "deleted_at": r.text(self.deleted_at.as_deref()),
            "archived_at": r.text(self.archived_at.as_deref()),
            "patient_arrived": self.patient_arrived,
            "did_not_arrive": self.did_not_arrive,
            "created_at": self.updated_at,
            "updated_at": self.updated_at,
            "patient": r.linked("patients", self.patient_id.as_deref()),
            "practitioner": r.linked("practitioners", self.practitioner_id.as_deref()),
            "appointment_type": r.linked("appointment_types", self.appointment_type_id.as_deref()),
            "business": r.linked("businesses", self.business_id.as_deref()),
            "patient_case": r.linked("patient_cases", self.patient_case_id.as_deref()),
            "links": r.self_links("individual_appointments", &self.id),
        }))
    }
}

impl Render for ClinikoAppointmentType {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        object(json!({
            "id": r.id(&self.id),
            "name": self.name,
            "links": r.self_links("appointment_types", &self.id),
        }))
    }
}

impl Render for ClinikoCase {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        object(json!({
            "id": r.id(&self.id),
            "name": self.name,
            "closed": self.closed,
            "created_at": self.updated_at,
            "updated_at": self.updated_at,
            "patient": r.linked("patients", self.patient_id.as_deref()),
            "links": r.self_links("patient_cases", &self.id),
        }))
    }
}

impl Render for ClinikoPractitioner {
    fn render(&self, r: &Renderer<'_>) -> Map<String, Value> {
        object(json!({
            "id": r.id(&self.id),
            "first_name": r.text(self.first_name.as_deref()),
            "last_name": r.text(self.last_name.as_deref()),
            "active": self.active,
            "links": r.self_links("practitioners", &self.id),
        }))
    }
}
