//! A patient and the patient's cases, as Cliniko sends them: the patient's
//! deprecated fields (`gender`, `country`) are read only where their
//! replacements are empty.
use serde::Deserialize;
use tendon_core::cliniko::api::{ClinikoCase, ClinikoPatient, ClinikoPhone};

use super::Wire;
use super::fields::{Id, Link, RecordLinks, lenient, linked_id, list, opt_bool, record_id, text};

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
