//! The typed result of extraction: a message's §3 fields as
//! [`MappedMessage`], with the practitioners it names and the values that
//! could not be read, and how the contract prints them.
use jiff::Zoned;
use jiff::civil::Date;
use serde::{Serialize, Serializer};
use tendon_hl7::FieldPath;

use crate::{AppointmentStatus, CaseStatus, FieldName, Gender, MessageType};

/// A practitioner as a message names one (AIP-3 or PV1-7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Therapist {
    pub id: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub npi: Option<String>,
}

/// A value that was sent but could not be read (a date that is not a date).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidValue {
    pub field: FieldName,
    pub path: FieldPath,
    /// Why, without the value itself: it may be patient data.
    pub reason: String,
}

/// The docs/interface.md §3 fields of one message, normalised and typed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MappedMessage {
    /// The org of the ingest key, or MSH-4.1 when there is none.
    pub account_id: Option<String>,
    /// MSH-4.1 as sent, checked against the org's account ID.
    pub sending_facility: Option<String>,
    pub control_id: Option<String>,
    pub message_type: Option<MessageType>,
    /// MSH-7 as an instant (without an offset, read in the clinic's zone like
    /// the appointment times), used to keep an older message from
    /// overwriting newer state.
    pub message_time: Option<jiff::Timestamp>,
    pub patient_id: Option<String>,
    pub patient_family_name: Option<String>,
    pub patient_given_name: Option<String>,
    pub patient_birth_date: Option<Date>,
    pub patient_gender: Option<Gender>,
    pub patient_email: Option<String>,
    pub patient_mobile: Option<String>,
    pub appointment_id: Option<String>,
    pub clinic_id: Option<String>,
    pub appointment_category: Option<String>,
    pub appointment_type: Option<String>,
    pub appointment_start: Option<Zoned>,
    pub appointment_status: Option<AppointmentStatus>,
    pub case_id: Option<String>,
    pub case_description: Option<String>,
    pub case_status: Option<CaseStatus>,
    pub treating_therapist: Therapist,
    pub supervising_therapist: Therapist,
    pub prior_patient_id: Option<String>,
    pub invalid: Vec<InvalidValue>,
    /// SCH-25 is `Blocked`: a blocked slot, not a visit (the message is ignored).
    pub blocked_slot: bool,
    /// Fields whose value holds a line break that did not start a segment
    /// (kept as text, and reported by `hl7 inspect`).
    pub line_breaks: Vec<FieldName>,
}

impl MappedMessage {
    /// A field as the contract prints it: ISO dates, RFC 3339 instants, snake-case codes.
    pub fn get(&self, name: FieldName) -> Option<String> {
        use FieldName::*;
        let s = |v: &Option<String>| v.clone();
        match name {
            AccountId => s(&self.account_id),
            ControlId => s(&self.control_id),
            MessageType => self.message_type.as_ref().map(ToString::to_string),
            PatientId => s(&self.patient_id),
            PatientFamilyName => s(&self.patient_family_name),
            PatientGivenName => s(&self.patient_given_name),
            PatientBirthDate => self.patient_birth_date.map(|d| d.to_string()),
            PatientGender => self.patient_gender.map(|g| g.as_str().to_owned()),
            PatientEmail => s(&self.patient_email),
            PatientMobile => s(&self.patient_mobile),
            AppointmentId => s(&self.appointment_id),
            ClinicId => s(&self.clinic_id),
            AppointmentCategory => s(&self.appointment_category),
            AppointmentType => s(&self.appointment_type),
            AppointmentStart => self.appointment_start.as_ref().map(rfc3339),
            AppointmentStatus => self.appointment_status.map(|v| v.as_str().to_owned()),
            CaseId => s(&self.case_id),
            CaseDescription => s(&self.case_description),
            CaseStatus => self.case_status.map(|v| v.as_str().to_owned()),
            TreatingTherapistId => s(&self.treating_therapist.id),
            TreatingTherapistFamilyName => s(&self.treating_therapist.family_name),
            TreatingTherapistGivenName => s(&self.treating_therapist.given_name),
            TreatingTherapistNpi => s(&self.treating_therapist.npi),
            SupervisingTherapistId => s(&self.supervising_therapist.id),
            SupervisingTherapistFamilyName => s(&self.supervising_therapist.family_name),
            SupervisingTherapistGivenName => s(&self.supervising_therapist.given_name),
            SupervisingTherapistNpi => s(&self.supervising_therapist.npi),
            PriorPatientId => s(&self.prior_patient_id),
        }
    }

    /// How many contract fields have a value.
    pub fn count_present(&self) -> usize {
        FieldName::ALL
            .iter()
            .filter(|n| self.get(**n).is_some())
            .count()
    }

    pub fn invalid(&self, name: FieldName) -> Option<&InvalidValue> {
        self.invalid.iter().find(|v| v.field == name)
    }
}

/// Serialises as `{"account_id": .., ...}` in contract order, `null` when absent.
impl Serialize for MappedMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(FieldName::ALL.len()))?;
        for name in FieldName::ALL {
            map.serialize_entry(name.as_str(), &self.get(*name))?;
        }
        map.end()
    }
}

/// RFC 3339 with the offset and whole seconds, e.g. `2026-12-01T10:00:00-08:00`.
pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}
