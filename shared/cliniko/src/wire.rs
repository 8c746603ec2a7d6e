//! Cliniko's JSON as it is sent, and its mapping to the port's types.
//!
//! Lenient where Cliniko is loose: IDs may be strings or numbers, empty
//! fields may be `""`, `null` or absent, a key may repeat (the last value
//! wins), and unknown fields are ignored. A record's ID is its `id`, else
//! the last segment of its `links.self` (deleted entries carry only that).
//! A record that cannot be read is reported and the rest of its page kept;
//! a list without its array is malformed.
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoAttendee, ClinikoBusiness, ClinikoCase,
    ClinikoError, ClinikoGroupAppointment, ClinikoPatient, ClinikoPhone, ClinikoPractitioner,
    Unreadable,
};

/// A JSON string or integer, as its decimal string (Cliniko's IDs are
/// 64-bit: above 2^53 only the string form survives JavaScript, but a Rust
/// u64 or i64 reads either exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Id(pub(crate) String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ID as a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                let v = v.trim();
                if v.is_empty() {
                    return Err(E::custom("an empty ID"));
                }
                Ok(Id(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// A text field: `""` and `null` are `None`.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

/// A flag that may be `null` (or, from older records, `""`).
fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Loose>::deserialize(d)? {
        Some(Loose::Bool(b)) => Some(b),
        Some(Loose::Text(s)) => match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        None => None,
    })
}

/// A value of the expected shape, else `None` rather than a failed page.
fn lenient<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient<T> {
        Expected(T),
        Other(de::IgnoredAny),
    }
    Ok(match Option::<Lenient<T>>::deserialize(d)? {
        Some(Lenient::Expected(t)) => Some(t),
        Some(Lenient::Other(_)) | None => None,
    })
}

/// A list that may be `null`.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A list's `links`: `next` is the following page's URL, if any.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListLinks {
    #[serde(default, deserialize_with = "text")]
    pub(crate) next: Option<String>,
}

/// A record's `links`.
#[derive(Debug, Default, Deserialize)]
struct RecordLinks {
    #[serde(default, rename = "self", deserialize_with = "text")]
    self_: Option<String>,
}

/// A linked record: `{"links": {"self": "https://…/v1/patients/123"}}`, or
/// (defensively) the URL alone. Any other shape links nothing rather than
/// failing the page.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Link {
    Url(String),
    Linked {
        #[serde(default)]
        links: Option<RecordLinks>,
    },
    Other(de::IgnoredAny),
}

impl Link {
    fn id(&self) -> Option<String> {
        match self {
            Link::Url(url) => id_from_url(url),
            Link::Linked { links } => id_from_url(links.as_ref()?.self_.as_deref()?),
            Link::Other(_) => None,
        }
    }
}

fn linked_id(link: Option<&Link>) -> Option<String> {
    link?.id()
}

/// The last path segment of a record's URL, when it is a number.
pub(crate) fn id_from_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())).then(|| last.to_owned())
}

/// A record's ID: its `id`, else the last segment of its `links.self`
/// (Cliniko's deleted entries carry only the link, on purpose).
fn record_id(id: Option<Id>, links: Option<&RecordLinks>) -> Result<String, &'static str> {
    id.map(|i| i.0)
        .or_else(|| id_from_url(links?.self_.as_deref()?))
        .ok_or("the record has neither an `id` nor a `links.self`")
}

/// Any record, read for nothing (a key's check).
#[derive(Debug, Deserialize)]
pub(crate) struct Ignored {}

impl Wire for Ignored {
    type Record = ();

    fn finish(self) -> Result<(), &'static str> {
        Ok(())
    }
}

/// A record as Cliniko sends it, and the port's type it becomes.
pub(crate) trait Wire: for<'de> Deserialize<'de> {
    type Record;
    /// The record, or why it is not one (never its data).
    fn finish(self) -> Result<Self::Record, &'static str>;
}

#[derive(Debug, Deserialize)]
struct WirePhone {
    #[serde(default, deserialize_with = "text")]
    phone_type: Option<String>,
    #[serde(default, deserialize_with = "text")]
    number: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WirePatient {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    first_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    last_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    date_of_birth: Option<String>,
    #[serde(default, deserialize_with = "text")]
    sex: Option<String>,
    /// Deprecated for `sex`; read only when `sex` is empty.
    #[serde(default, deserialize_with = "text")]
    gender: Option<String>,
    #[serde(default, deserialize_with = "text")]
    gender_identity: Option<String>,
    #[serde(default, deserialize_with = "text")]
    email: Option<String>,
    #[serde(default, deserialize_with = "list")]
    patient_phone_numbers: Vec<WirePhone>,
    #[serde(default, deserialize_with = "text")]
    time_zone: Option<String>,
    /// ISO 3166 alpha-2; newer than `country`, which it replaces.
    #[serde(default, deserialize_with = "text")]
    country_code: Option<String>,
    #[serde(default, deserialize_with = "text")]
    country: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    accepted_email_marketing: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    accepted_sms_marketing: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    archived_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    deleted_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    merged_at: Option<String>,
    /// Where an archived, merged patient went.
    #[serde(default)]
    merged_with_patient: Option<Link>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WirePatient {
    type Record = ClinikoPatient;

    fn finish(self) -> Result<ClinikoPatient, &'static str> {
        let w = self;
        // A deleted entry has no `updated_at`: its deletion is its change.
        let updated_at = w
            .updated_at
            .clone()
            .or_else(|| w.deleted_at.clone())
            .unwrap_or_default();
        Ok(ClinikoPatient {
            id: record_id(w.id, w.links.as_ref())?,
            merged_into_id: linked_id(w.merged_with_patient.as_ref()),
            first_name: w.first_name,
            last_name: w.last_name,
            date_of_birth: w.date_of_birth,
            sex: w.sex.or(w.gender),
            gender_identity: w.gender_identity,
            email: w.email,
            phone_numbers: w
                .patient_phone_numbers
                .into_iter()
                .filter_map(|p| {
                    Some(ClinikoPhone {
                        phone_type: p.phone_type,
                        number: p.number?,
                    })
                })
                .collect(),
            time_zone: w.time_zone,
            country: w.country_code.or(w.country),
            accepted_email_marketing: w.accepted_email_marketing,
            accepted_sms_marketing: w.accepted_sms_marketing,
            archived_at: w.archived_at,
            deleted_at: w.deleted_at,
            updated_at,
            merged_at: w.merged_at,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireAppointment {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    starts_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    cancelled_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    deleted_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    archived_at: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    patient_arrived: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    did_not_arrive: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default)]
    patient: Option<Link>,
    #[serde(default)]
    practitioner: Option<Link>,
    #[serde(default)]
    appointment_type: Option<Link>,
    #[serde(default)]
    business: Option<Link>,
    #[serde(default)]
    patient_case: Option<Link>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireAppointment {
    type Record = ClinikoAppointment;

    fn finish(self) -> Result<ClinikoAppointment, &'static str> {
        let w = self;
        Ok(ClinikoAppointment {
            id: record_id(w.id, w.links.as_ref())?,
            patient_id: linked_id(w.patient.as_ref()),
            practitioner_id: linked_id(w.practitioner.as_ref()),
            appointment_type_id: linked_id(w.appointment_type.as_ref()),
            patient_case_id: linked_id(w.patient_case.as_ref()),
            business_id: linked_id(w.business.as_ref()),
            starts_at: w.starts_at.unwrap_or_default(),
            cancelled_at: w.cancelled_at,
            deleted_at: w.deleted_at,
            archived_at: w.archived_at,
            patient_arrived: w.patient_arrived.unwrap_or(false),
            did_not_arrive: w.did_not_arrive.unwrap_or(false),
            updated_at: w.updated_at.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireAppointmentType {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    archived_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireAppointmentType {
    type Record = ClinikoAppointmentType;

    fn finish(self) -> Result<ClinikoAppointmentType, &'static str> {
        Ok(ClinikoAppointmentType {
            id: record_id(self.id, self.links.as_ref())?,
            name: self.name.unwrap_or_default(),
            archived: self.archived_at.is_some(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireCase {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    closed: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default)]
    patient: Option<Link>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireCase {
    type Record = ClinikoCase;

    fn finish(self) -> Result<ClinikoCase, &'static str> {
        Ok(ClinikoCase {
            id: record_id(self.id, self.links.as_ref())?,
            patient_id: linked_id(self.patient.as_ref()),
            name: self.name.unwrap_or_default(),
            closed: self.closed.unwrap_or(false),
            updated_at: self.updated_at.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WirePractitioner {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    first_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    last_name: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    active: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WirePractitioner {
    type Record = ClinikoPractitioner;

    fn finish(self) -> Result<ClinikoPractitioner, &'static str> {
        Ok(ClinikoPractitioner {
            id: record_id(self.id, self.links.as_ref())?,
            first_name: self.first_name,
            last_name: self.last_name,
            // The list says which: `/practitioners/inactive` sends
            // `active: false`; a missing flag on the current list means active.
            active: self.active.unwrap_or(true),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireBusiness {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    business_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    display_name: Option<String>,
    /// IANA (`Australia/Melbourne`); `time_zone` is a label (`Melbourne`).
    #[serde(default, deserialize_with = "text")]
    time_zone_identifier: Option<String>,
    #[serde(default, deserialize_with = "text")]
    country_code: Option<String>,
    #[serde(default, deserialize_with = "text")]
    country: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireBusiness {
    type Record = ClinikoBusiness;

    fn finish(self) -> Result<ClinikoBusiness, &'static str> {
        Ok(ClinikoBusiness {
            id: record_id(self.id, self.links.as_ref())?,
            name: self.business_name.or(self.display_name),
            time_zone: self.time_zone_identifier,
            country: self.country_code.or(self.country),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireGroupAppointment {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    starts_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    deleted_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    archived_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default)]
    practitioner: Option<Link>,
    #[serde(default)]
    appointment_type: Option<Link>,
    #[serde(default)]
    business: Option<Link>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireGroupAppointment {
    type Record = ClinikoGroupAppointment;

    fn finish(self) -> Result<ClinikoGroupAppointment, &'static str> {
        Ok(ClinikoGroupAppointment {
            id: record_id(self.id, self.links.as_ref())?,
            practitioner_id: linked_id(self.practitioner.as_ref()),
            appointment_type_id: linked_id(self.appointment_type.as_ref()),
            business_id: linked_id(self.business.as_ref()),
            starts_at: self.starts_at.unwrap_or_default(),
            deleted_at: self.deleted_at,
            archived_at: self.archived_at,
            updated_at: self.updated_at.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireAttendee {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "opt_bool")]
    arrived: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    cancelled_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    deleted_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default)]
    patient: Option<Link>,
    #[serde(default)]
    booking: Option<Link>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireAttendee {
    type Record = ClinikoAttendee;

    fn finish(self) -> Result<ClinikoAttendee, &'static str> {
        Ok(ClinikoAttendee {
            id: record_id(self.id, self.links.as_ref())?,
            patient_id: linked_id(self.patient.as_ref()),
            booking_id: linked_id(self.booking.as_ref()),
            arrived: self.arrived.unwrap_or(false),
            cancelled_at: self.cancelled_at,
            deleted_at: self.deleted_at,
            updated_at: self.updated_at.unwrap_or_default(),
        })
    }
}

/// One page of a list: `{"<key>": [...], "total_entries": N, "links": {...}}`.
#[derive(Debug)]
pub(crate) struct Envelope<T> {
    pub(crate) items: Vec<T>,
    pub(crate) unreadable: Vec<Unreadable>,
    pub(crate) links: ListLinks,
}

/// Reads a list response whose array is under `key`; the other keys
/// (`total_entries`, …) are skipped. Each record is read on its own, so one
/// that is not in the documented shape is reported (with its ID) and the
/// others are kept. A body that is not such a list at all is `Malformed`.
pub(crate) fn decode_list<W: Wire>(
    body: &[u8],
    key: &str,
) -> Result<Envelope<W::Record>, ClinikoError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let page = EnvelopeSeed { key }
        .deserialize(&mut de)
        .and_then(|page| de.end().map(|()| page))
        .map_err(json_error)?;
    let (Some(values), links) = page else {
        return Err(ClinikoError::Malformed(format!(
            "the list has no `{key}` array"
        )));
    };
    let mut items = Vec::with_capacity(values.len());
    let mut unreadable = Vec::new();
    for value in values {
        match record::<W>(value) {
            Ok(item) => items.push(item),
            Err(skipped) => unreadable.push(skipped),
        }
    }
    Ok(Envelope {
        items,
        unreadable,
        links,
    })
}

/// One record from its JSON value (in which a repeated key, as in Cliniko's
/// own patient examples, has already kept its last value).
fn record<W: Wire>(value: serde_json::Value) -> Result<W::Record, Unreadable> {
    let cliniko_id = value_id(&value);
    let fail = |reason: String| Unreadable {
        cliniko_id: cliniko_id.clone(),
        reason,
    };
    let wire: W = serde_path_to_error::deserialize(&value).map_err(|e| {
        // The path of the field, never serde's message (which quotes the value).
        let path = e.path().to_string();
        fail(if path == "." {
            "not a JSON object".to_owned()
        } else {
            format!("`{path}` is not in the documented shape")
        })
    })?;
    wire.finish().map_err(|reason| fail(reason.to_owned()))
}

/// The ID of a record as JSON: `id`, else its `links.self`.
fn value_id(value: &serde_json::Value) -> Option<String> {
    match value.get("id") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => value
            .get("links")
            .and_then(|l| l.get("self"))
            .and_then(serde_json::Value::as_str)
            .and_then(id_from_url),
    }
}

struct EnvelopeSeed<'k> {
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = (Option<Vec<serde_json::Value>>, ListLinks);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = (Option<Vec<serde_json::Value>>, ListLinks);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with a `{}` array", self.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut items = None;
        let mut links = ListLinks::default();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name == self.key {
                items = Some(map.next_value::<Vec<serde_json::Value>>()?);
            } else if name == "links" {
                links = map.next_value::<Option<ListLinks>>()?.unwrap_or_default();
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok((items, links))
    }
}

/// Reads one record.
pub(crate) fn decode_one<W: Wire>(body: &[u8]) -> Result<W::Record, ClinikoError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(json_error)?;
    record::<W>(value).map_err(|u| ClinikoError::Malformed(u.reason))
}

/// Where and what kind of JSON error, never the text around it (serde's
/// messages quote the offending value, which may be patient data).
fn json_error(e: serde_json::Error) -> ClinikoError {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "an I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected JSON types or missing fields",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    ClinikoError::Malformed(format!("{kind} at line {} column {}", e.line(), e.column()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_null_fields_are_none() {
        let p = decode_one::<WirePatient>(
            br#"{"id": 9007199254740993, "first_name": "", "last_name": null, "sex": "",
                 "gender": "Female", "patient_phone_numbers": null, "accepted_sms_marketing": "",
                 "links": {"self": "https://api.au1.cliniko.com/v1/patients/9007199254740993"},
                 "merged_with_patient": {"links": {"self": "https://api.au1.cliniko.com/v1/patients/7"}}}"#,
        )
        .unwrap();
        assert_eq!(p.id, "9007199254740993");
        assert_eq!(p.first_name, None);
        assert_eq!(p.last_name, None);
        assert_eq!(p.sex.as_deref(), Some("Female"));
        assert_eq!(p.accepted_sms_marketing, None);
        assert_eq!(p.merged_into_id.as_deref(), Some("7"));
        assert_eq!(p.updated_at, "");
    }

    #[test]
    fn a_record_that_cannot_be_read_is_reported_and_the_page_kept() {
        let page = decode_list::<WirePatient>(
            br#"{"patients": [
                  {"id": "1", "first_name": "Ada"},
                  {"id": "2", "first_name": ["Secretname"]},
                  {"first_name": "Nobody"},
                  7
                ], "links": {}}"#,
            "patients",
        )
        .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].id, "1");
        assert_eq!(page.unreadable.len(), 3);
        assert_eq!(page.unreadable[0].cliniko_id.as_deref(), Some("2"));
        assert_eq!(
            page.unreadable[0].reason,
            "`first_name` is not in the documented shape"
        );
        assert_eq!(page.unreadable[1].cliniko_id, None);
        assert!(page.unreadable[2].reason.contains("not a JSON object"));
        for u in &page.unreadable {
            assert!(!u.reason.contains("Secretname") && !u.reason.contains("Nobody"));
        }
    }

    #[test]
    fn ids_from_urls() {
        assert_eq!(
            id_from_url("https://x/v1/patients/12").as_deref(),
            Some("12")
        );
        assert_eq!(
            id_from_url("https://x/v1/patients/12/").as_deref(),
            Some("12")
        );
        assert_eq!(
            id_from_url("https://x/v1/patients/12?a=b").as_deref(),
            Some("12")
        );
        assert_eq!(id_from_url("https://x/v1/patients"), None);
        assert_eq!(id_from_url(""), None);
    }

    #[test]
    fn errors_do_not_quote_the_body() {
        let e =
            decode_one::<WirePatient>(br#"{"id": "1", "first_name": ["Secretname"]}"#).unwrap_err();
        assert!(matches!(e, ClinikoError::Malformed(_)));
        assert!(!e.to_string().contains("Secretname"), "{e}");
        let e = decode_list::<WirePatient>(
            br#"{"patients": [{"first_name": "Secretname"}"#,
            "patients",
        )
        .unwrap_err();
        assert!(matches!(e, ClinikoError::Malformed(_)));
        assert!(!e.to_string().contains("Secretname"), "{e}");
    }

    #[test]
    fn list_without_its_array_is_malformed() {
        let e = decode_list::<WirePatient>(br#"{"people": []}"#, "patients").unwrap_err();
        assert!(matches!(e, ClinikoError::Malformed(_)));
        let e = decode_list::<WirePatient>(br#"[1, 2]"#, "patients").unwrap_err();
        assert!(matches!(e, ClinikoError::Malformed(_)));
    }

    /// Cliniko's own example responses (`infra/fake-cliniko/docs/`, from the
    /// `redguava/cliniko-api` repository; each test names its page).
    macro_rules! docs {
        ($file:literal) => {
            include_bytes!(concat!("../../../infra/fake-cliniko/docs/", $file))
        };
    }

    fn one_of<W: Wire>(body: &[u8], key: &str) -> W::Record {
        let mut page = decode_list::<W>(body, key).unwrap();
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        assert_eq!(page.items.len(), 1);
        page.items.remove(0)
    }

    /// sections/patients.md, "Get Patients": an integer ID, `""` for empty
    /// dates, `patient_phone_numbers` given twice (the last wins), free-text
    /// `sex` beside the deprecated `gender`, the country in words.
    #[test]
    fn docs_patients() {
        let p = one_of::<WirePatient>(docs!("patients.json"), "patients");
        assert_eq!(p.id, "1");
        assert_eq!(p.first_name.as_deref(), Some("Peter"));
        assert_eq!(p.last_name.as_deref(), Some("Patientman"));
        assert_eq!(p.date_of_birth.as_deref(), Some("2001-05-26"));
        assert_eq!(p.sex.as_deref(), Some("Female to Male"));
        assert_eq!(p.email.as_deref(), Some("peter@example.com"));
        assert_eq!(p.country.as_deref(), Some("Australia"));
        assert_eq!(p.time_zone.as_deref(), Some("Australia/Melbourne"));
        assert_eq!(p.archived_at, None);
        assert_eq!(p.deleted_at, None);
        assert_eq!(p.updated_at, "2013-03-26T14:00:00Z");
        let phones: Vec<(&str, &str)> = p
            .phone_numbers
            .iter()
            .map(|n| (n.phone_type.as_deref().unwrap(), n.number.as_str()))
            .collect();
        assert_eq!(phones, [("Mobile", "61444444444"), ("Home", "61399999999")]);
        let single = decode_one::<WirePatient>(docs!("patient.json")).unwrap();
        assert_eq!(single, p);
    }

    /// sections/patients.md, "Get Archived Patients": a merged patient
    /// links the one it was merged into.
    #[test]
    fn docs_archived_patients() {
        let p = one_of::<WirePatient>(docs!("patients_archived.json"), "patients");
        assert_eq!(p.archived_at.as_deref(), Some("2013-06-05T14:37:18Z"));
        assert_eq!(p.merged_at.as_deref(), Some("2013-06-05T14:37:18Z"));
        assert_eq!(p.merged_into_id.as_deref(), Some("1001"));
    }

    /// sections/patients.md, "Get Deleted Patients": no `id`, only
    /// `deleted_at` and `links.self`.
    #[test]
    fn docs_deleted_patients() {
        let p = one_of::<WirePatient>(docs!("patients_deleted.json"), "patients");
        assert_eq!(p.id, "1");
        assert_eq!(p.deleted_at.as_deref(), Some("2013-06-05T14:38:48Z"));
        assert_eq!(p.updated_at, "2013-06-05T14:38:48Z");
        assert_eq!(p.first_name, None);
    }

    /// sections/practitioners.md, "Get Practitioners" (a string ID) and
    /// "Get Inactive Practitioners" (an integer ID).
    #[test]
    fn docs_practitioners() {
        let p = one_of::<WirePractitioner>(docs!("practitioners.json"), "practitioners");
        assert_eq!(p.id, "514810972972521916");
        assert_eq!(p.first_name.as_deref(), Some("Randy"));
        assert_eq!(p.last_name.as_deref(), Some("Savage"));
        let p = one_of::<WirePractitioner>(docs!("practitioners_inactive.json"), "practitioners");
        assert_eq!(p.id, "3");
        assert_eq!(p.first_name.as_deref(), Some("Andy"));
    }

    /// sections/appointment_types.md, "Get Appointment Types" and "Get
    /// Archived Appointment Types".
    #[test]
    fn docs_appointment_types() {
        let t = one_of::<WireAppointmentType>(docs!("appointment_types.json"), "appointment_types");
        assert_eq!(
            (t.id.as_str(), t.name.as_str(), t.archived),
            ("514810976034364376", "Initial Consultation", false)
        );
        let t = one_of::<WireAppointmentType>(
            docs!("appointment_types_archived.json"),
            "appointment_types",
        );
        assert!(t.archived);
    }

    /// sections/businesses.md, "Get Businesses": `total_entires` (sic) and
    /// the country both as words and as `country_code`.
    #[test]
    fn docs_businesses() {
        let b = one_of::<WireBusiness>(docs!("businesses.json"), "businesses");
        assert_eq!(b.id, "514810976554457178");
        assert_eq!(b.name.as_deref(), Some("Healthy Times"));
        assert_eq!(b.country.as_deref(), Some("AU"));
        // The 2022 example predates `time_zone_identifier`.
        assert_eq!(b.time_zone, None);
    }

    /// sections/individual_appointments.md: "Get Individual Appointments",
    /// "Get Cancelled Individual Appointments", "Get Deleted Individual
    /// Appointments" (the last with a trailing comma removed, see SOURCES.md).
    #[test]
    fn docs_individual_appointments() {
        let key = "individual_appointments";
        let a = one_of::<WireAppointment>(docs!("individual_appointments.json"), key);
        assert_eq!(a.id, "1");
        assert_eq!(a.patient_id.as_deref(), Some("82"));
        assert_eq!(a.practitioner_id.as_deref(), Some("1"));
        assert_eq!(a.appointment_type_id.as_deref(), Some("2"));
        assert_eq!(a.business_id.as_deref(), Some("1"));
        assert_eq!(a.starts_at, "2016-07-21T03:45:00Z");
        assert_eq!(
            (a.cancelled_at.as_deref(), a.deleted_at.as_deref()),
            (None, None)
        );
        let page =
            decode_list::<WireAppointment>(docs!("individual_appointments.json"), key).unwrap();
        assert_eq!(
            page.links.next.as_deref(),
            Some("https://api.au1.cliniko.com/v1/individual_appointments?page=2")
        );
        let c = one_of::<WireAppointment>(docs!("individual_appointments_cancelled.json"), key);
        assert_eq!(c.cancelled_at.as_deref(), Some("2016-07-22T15:10:08Z"));
        let d = one_of::<WireAppointment>(docs!("individual_appointments_deleted.json"), key);
        assert_eq!(d.deleted_at.as_deref(), Some("2016-07-22T15:10:08Z"));
    }

    /// sections/patient_cases.md, "Get Patient Cases".
    #[test]
    fn docs_patient_cases() {
        let c = one_of::<WireCase>(docs!("patient_cases.json"), "patient_cases");
        assert_eq!(c.id, "566562806174843905");
        assert_eq!(c.name, "Case One");
        assert!(!c.closed);
        assert_eq!(c.patient_id.as_deref(), Some("372481449527346255"));
    }

    /// sections/group_appointments.md, "Get Group Appointments" and "Get
    /// Deleted Group Appointments".
    #[test]
    fn docs_group_appointments() {
        let key = "group_appointments";
        let g = one_of::<WireGroupAppointment>(docs!("group_appointments.json"), key);
        assert_eq!(g.id, "1");
        assert_eq!(g.practitioner_id.as_deref(), Some("1"));
        assert_eq!(g.appointment_type_id.as_deref(), Some("7"));
        assert_eq!(g.business_id.as_deref(), Some("1"));
        assert_eq!(g.starts_at, "2016-07-13T03:45:00Z");
        assert_eq!(g.deleted_at, None);
        let d = one_of::<WireGroupAppointment>(docs!("group_appointments_deleted.json"), key);
        assert_eq!(d.deleted_at.as_deref(), Some("2016-07-12T20:13:42Z"));
    }

    /// sections/attendees.md: "Get Attendees", "Get Cancelled Attendees"
    /// (its broken `null"…"` value mended, see SOURCES.md) and "Get Deleted
    /// Attendees". The class is the booking.
    #[test]
    fn docs_attendees() {
        let a = one_of::<WireAttendee>(docs!("attendees.json"), "attendees");
        assert_eq!(a.id, "1");
        assert_eq!(a.patient_id.as_deref(), Some("82"));
        assert_eq!(a.booking_id.as_deref(), Some("1"));
        assert!(!a.arrived);
        let c = one_of::<WireAttendee>(docs!("attendees_cancelled.json"), "attendees");
        assert_eq!(c.cancelled_at.as_deref(), Some("2016-06-28T21:33:26Z"));
        let d = one_of::<WireAttendee>(docs!("attendees_deleted.json"), "attendees");
        assert_eq!(d.deleted_at.as_deref(), Some("2016-06-28T21:33:26Z"));
    }
}
