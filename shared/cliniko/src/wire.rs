//! Cliniko's JSON as it is sent, and its mapping to the port's types.
//!
//! Lenient where Cliniko is loose: IDs may be strings or numbers, empty
//! fields may be `""`, `null` or absent, a key may repeat (the last value
//! wins), and unknown fields are ignored. A record's ID is its `id`, else
//! the last segment of its `links.self` (deleted entries carry only that).
//! A record that cannot be read is reported and the rest of its page kept;
//! a list without its array is malformed.
//!
//! The shapes live one file a kind of record (`patients.rs`,
//! `appointments.rs`, `practice.rs`) over the shared field decoders
//! (`fields.rs`); this file reads a response into them.
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use tendon_core::cliniko::api::{ClinikoError, Unreadable};

mod appointments;
mod fields;
mod patients;
mod practice;
#[cfg(test)]
mod tests;

pub(crate) use appointments::{WireAppointment, WireAttendee, WireGroupAppointment};
pub(crate) use fields::ListLinks;
use fields::id_from_url;
pub(crate) use patients::{WireCase, WirePatient};
pub(crate) use practice::{WireAppointmentType, WireBusiness, WirePractitioner};

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
