//! Cliniko's JSON as it is sent, and its mapping to the port's types.
//!
//! Lenient where Cliniko is loose: IDs may be strings or numbers, empty
//! fields may be `""`, `null` or absent, and unknown fields are ignored. A
//! record without an `id`, or a list without its array, is malformed.
use std::fmt;

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoCase, ClinikoError, ClinikoPatient,
    ClinikoPhone, ClinikoPractitioner,
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
    /// Where a merged patient went, if Cliniko links it here.
    #[serde(default)]
    merged_into: Option<Box<Link>>,
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

#[derive(Debug, Deserialize)]
struct WirePhone {
    #[serde(default, deserialize_with = "text")]
    phone_type: Option<String>,
    #[serde(default, deserialize_with = "text")]
    number: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WirePatient {
    id: Id,
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
    #[serde(default)]
    merged_into: Option<Link>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl From<WirePatient> for ClinikoPatient {
    fn from(w: WirePatient) -> Self {
        let merged_into_id = linked_id(w.merged_into.as_ref())
            .or_else(|| linked_id(w.links.as_ref()?.merged_into.as_deref()));
        ClinikoPatient {
            id: w.id.0,
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
            accepted_email_marketing: w.accepted_email_marketing,
            accepted_sms_marketing: w.accepted_sms_marketing,
            archived_at: w.archived_at,
            deleted_at: w.deleted_at,
            merged_at: w.merged_at,
            merged_into_id,
            updated_at: w.updated_at.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireAppointment {
    id: Id,
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
}

impl From<WireAppointment> for ClinikoAppointment {
    fn from(w: WireAppointment) -> Self {
        ClinikoAppointment {
            id: w.id.0,
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
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireAppointmentType {
    id: Id,
    #[serde(default, deserialize_with = "text")]
    name: Option<String>,
}

impl From<WireAppointmentType> for ClinikoAppointmentType {
    fn from(w: WireAppointmentType) -> Self {
        ClinikoAppointmentType {
            id: w.id.0,
            name: w.name.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireCase {
    id: Id,
    #[serde(default, deserialize_with = "text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    closed: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default)]
    patient: Option<Link>,
}

impl From<WireCase> for ClinikoCase {
    fn from(w: WireCase) -> Self {
        ClinikoCase {
            id: w.id.0,
            patient_id: linked_id(w.patient.as_ref()),
            name: w.name.unwrap_or_default(),
            closed: w.closed.unwrap_or(false),
            updated_at: w.updated_at.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WirePractitioner {
    id: Id,
    #[serde(default, deserialize_with = "text")]
    first_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    last_name: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    active: Option<bool>,
}

impl From<WirePractitioner> for ClinikoPractitioner {
    fn from(w: WirePractitioner) -> Self {
        ClinikoPractitioner {
            id: w.id.0,
            first_name: w.first_name,
            last_name: w.last_name,
            // Cliniko lists inactive practitioners elsewhere; a missing flag
            // on this list means active.
            active: w.active.unwrap_or(true),
        }
    }
}

/// One page of a list: `{"<key>": [...], "total_entries": N, "links": {...}}`.
#[derive(Debug)]
pub(crate) struct Envelope<T> {
    pub(crate) items: Vec<T>,
    pub(crate) links: ListLinks,
}

/// Reads a list response whose array is under `key`, in one pass; the other
/// keys (`total_entries`, …) are skipped.
pub(crate) fn decode_list<T: for<'de> Deserialize<'de>>(
    body: &[u8],
    key: &str,
) -> Result<Envelope<T>, ClinikoError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let page = EnvelopeSeed::<T> {
        key,
        marker: PhantomData,
    }
    .deserialize(&mut de)
    .and_then(|page| de.end().map(|()| page))
    .map_err(json_error)?;
    match page {
        (Some(items), links) => Ok(Envelope { items, links }),
        (None, _) => Err(ClinikoError::Malformed(format!(
            "the list has no `{key}` array"
        ))),
    }
}

struct EnvelopeSeed<'k, T> {
    key: &'k str,
    marker: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for EnvelopeSeed<'_, T> {
    type Value = (Option<Vec<T>>, ListLinks);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for EnvelopeSeed<'_, T> {
    type Value = (Option<Vec<T>>, ListLinks);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with a `{}` array", self.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut items = None;
        let mut links = ListLinks::default();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name == self.key {
                items = Some(map.next_value::<Vec<T>>()?);
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
pub(crate) fn decode_one<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ClinikoError> {
    serde_json::from_slice(body).map_err(json_error)
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
        let p: WirePatient = decode_one(
            br#"{"id": 9007199254740993, "first_name": "", "last_name": null, "sex": "",
                 "gender": "Female", "patient_phone_numbers": null, "accepted_sms_marketing": "",
                 "links": {"self": "https://api.au1.cliniko.com/v1/patients/9007199254740993"},
                 "merged_into": {"links": {"self": "https://api.au1.cliniko.com/v1/patients/7"}}}"#,
        )
        .unwrap();
        let p = ClinikoPatient::from(p);
        assert_eq!(p.id, "9007199254740993");
        assert_eq!(p.first_name, None);
        assert_eq!(p.last_name, None);
        assert_eq!(p.sex.as_deref(), Some("Female"));
        assert_eq!(p.accepted_sms_marketing, None);
        assert_eq!(p.merged_into_id.as_deref(), Some("7"));
        assert_eq!(p.updated_at, "");
    }

    #[test]
    fn merged_into_as_link() {
        let p: WirePatient = decode_one(
            br#"{"id": "5", "links": {"self": "https://x/v1/patients/5", "merged_into": "https://x/v1/patients/6"}}"#,
        )
        .unwrap();
        assert_eq!(ClinikoPatient::from(p).merged_into_id.as_deref(), Some("6"));
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
        assert!(!e.to_string().contains("Secretname"), "{e}");
        let e = decode_list::<WirePatient>(
            br#"{"patients": [{"first_name": "Secretname"}]}"#,
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
}
