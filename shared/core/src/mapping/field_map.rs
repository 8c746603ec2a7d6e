//! The field map and what it reads into: where each docs/interface.md §3
//! field is read from (the default paths, first match wins; the rules some
//! fields follow beyond that; an org's [`FieldMap`] overrides), and the typed
//! result, [`MappedMessage`] (with the practitioners a message names, the
//! values that could not be read, and how the contract prints them).
use std::collections::BTreeMap;

use jiff::Zoned;
use jiff::civil::Date;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tendon_hl7::FieldPath;

use crate::{AppointmentStatus, CaseStatus, FieldName, Gender, MessageType};

const fn p(segment: &[u8; 3], field: u16, component: u16) -> FieldPath {
    FieldPath {
        segment: *segment,
        field,
        repetition: None,
        component: if component == 0 {
            None
        } else {
            Some(component)
        },
        subcomponent: None,
    }
}

const MSH_4: &[FieldPath] = &[p(b"MSH", 4, 1)];
pub(super) const MSH_7: FieldPath = p(b"MSH", 7, 0);
pub(super) const MSH_9_1: FieldPath = p(b"MSH", 9, 1);
pub(super) const MSH_9_2: FieldPath = p(b"MSH", 9, 2);
pub(super) const MSH_10: &[FieldPath] = &[p(b"MSH", 10, 0)];
const MSH_9: &[FieldPath] = &[p(b"MSH", 9, 0)];
/// Where a location's name may be (PL-9 the description, PL-4 the facility),
/// for the doctor's "unknown location" finding; not a §3 field.
pub(super) const CLINIC_NAME: &[FieldPath] = &[
    p(b"AIL", 3, 9),
    p(b"AIL", 3, 4),
    p(b"PV1", 3, 9),
    p(b"PV1", 3, 4),
];
const PID_3: &[FieldPath] = &[p(b"PID", 3, 1)];
const PID_5_1: &[FieldPath] = &[p(b"PID", 5, 1)];
const PID_5_2: &[FieldPath] = &[p(b"PID", 5, 2)];
const PID_7: &[FieldPath] = &[p(b"PID", 7, 0)];
const PID_8: &[FieldPath] = &[p(b"PID", 8, 0)];
const PID_13_4: &[FieldPath] = &[p(b"PID", 13, 4)];
const PID_13: &[FieldPath] = &[p(b"PID", 13, 0)];
const APPOINTMENT_ID: &[FieldPath] = &[p(b"SCH", 2, 1), p(b"SCH", 1, 1)];
const CLINIC_ID: &[FieldPath] = &[p(b"AIL", 3, 1), p(b"PV1", 3, 1)];
const SCH_7_1: &[FieldPath] = &[p(b"SCH", 7, 1)];
const APPOINTMENT_TYPE: &[FieldPath] = &[
    p(b"SCH", 8, 2),
    p(b"SCH", 8, 1),
    p(b"AIS", 3, 2),
    p(b"AIS", 3, 1),
];
const APPOINTMENT_START: &[FieldPath] = &[
    p(b"SCH", 11, 4),
    p(b"AIS", 4, 0),
    p(b"AIL", 6, 0),
    p(b"AIP", 6, 0),
];
const SCH_25_1: &[FieldPath] = &[p(b"SCH", 25, 1)];
const PV1_19_1: &[FieldPath] = &[p(b"PV1", 19, 1)];
const CASE_DESCRIPTION: &[FieldPath] = &[
    p(b"PV2", 3, 2),
    p(b"PV2", 3, 1),
    p(b"DG1", 4, 0),
    p(b"DG1", 3, 2),
];
const PV1_41_1: &[FieldPath] = &[p(b"PV1", 41, 1)];
const AIP_3_1: &[FieldPath] = &[p(b"AIP", 3, 1)];
const AIP_3_2: &[FieldPath] = &[p(b"AIP", 3, 2)];
const AIP_3_3: &[FieldPath] = &[p(b"AIP", 3, 3)];
const AIP_3: &[FieldPath] = &[p(b"AIP", 3, 0)];
const PV1_7_1: &[FieldPath] = &[p(b"PV1", 7, 1)];
const PV1_7_2: &[FieldPath] = &[p(b"PV1", 7, 2)];
const PV1_7_3: &[FieldPath] = &[p(b"PV1", 7, 3)];
const PV1_7: &[FieldPath] = &[p(b"PV1", 7, 0)];
const MRG_1_1: &[FieldPath] = &[p(b"MRG", 1, 1)];

/// Where docs/interface.md §3 looks for a field by default, first match wins. Fields with
/// a rule beyond "first non-empty" (the MR identifier, the NET e-mail, the CP
/// phone, the NPI repetition) list the field their rule reads.
pub fn default_paths(name: FieldName) -> &'static [FieldPath] {
    use FieldName::*;
    match name {
        AccountId => MSH_4,
        ControlId => MSH_10,
        MessageType => MSH_9,
        PatientId => PID_3,
        PatientFamilyName => PID_5_1,
        PatientGivenName => PID_5_2,
        PatientBirthDate => PID_7,
        PatientGender => PID_8,
        PatientEmail => PID_13_4,
        PatientMobile => PID_13,
        AppointmentId => APPOINTMENT_ID,
        ClinicId => CLINIC_ID,
        AppointmentCategory => SCH_7_1,
        AppointmentType => APPOINTMENT_TYPE,
        AppointmentStart => APPOINTMENT_START,
        AppointmentStatus => SCH_25_1,
        CaseId => PV1_19_1,
        CaseDescription => CASE_DESCRIPTION,
        CaseStatus => PV1_41_1,
        TreatingTherapistId => AIP_3_1,
        TreatingTherapistFamilyName => AIP_3_2,
        TreatingTherapistGivenName => AIP_3_3,
        TreatingTherapistNpi => AIP_3,
        SupervisingTherapistId => PV1_7_1,
        SupervisingTherapistFamilyName => PV1_7_2,
        SupervisingTherapistGivenName => PV1_7_3,
        SupervisingTherapistNpi => PV1_7,
        PriorPatientId => MRG_1_1,
    }
}

fn default_rule(name: FieldName) -> Option<&'static str> {
    use FieldName::*;
    Some(match name {
        PatientId => "of the repetition whose PID-3.5 is MR, else of the first",
        PatientEmail => "of the NET/Internet repetition, else any PID-13/PID-14 component with '@'",
        PatientMobile => {
            "CP repetition: PID-13.5-7, else PID-13.1; else PID-13.1 of the first untyped repetition"
        }
        AppointmentStatus => "unless the trigger is S15, S17 or S26",
        TreatingTherapistNpi | SupervisingTherapistNpi => {
            "repetition whose XCN-13 is NPI, or whose XCN-9 is NPI or 2.16.840.1.113883.4.6"
        }
        _ => return None,
    })
}

/// Per-org overrides of the default map: a field read from other paths, first
/// non-empty wins. The normalisation (dates, gender, status) still applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldMap {
    overrides: BTreeMap<FieldName, Vec<FieldPath>>,
}

impl FieldMap {
    /// Fields whose position the protocol fixes: dedupe and the ACK depend on them.
    pub const FIXED: &'static [FieldName] = &[
        FieldName::AccountId,
        FieldName::ControlId,
        FieldName::MessageType,
    ];

    pub fn set(&mut self, name: FieldName, paths: Vec<FieldPath>) -> Result<(), String> {
        if Self::FIXED.contains(&name) {
            return Err(format!(
                "{name} cannot be overridden: its position is fixed by the protocol"
            ));
        }
        if paths.is_empty() {
            self.overrides.remove(&name);
        } else {
            self.overrides.insert(name, paths);
        }
        Ok(())
    }

    /// Parses `name` and a comma-separated path list such as `PID-3(2).1, PID-2.1`.
    pub fn set_str(&mut self, name: &str, paths: &str) -> Result<(), String> {
        let name: FieldName = name.parse()?;
        let paths = paths
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<FieldPath>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        self.set(name, paths)
    }

    pub fn overrides(&self) -> &BTreeMap<FieldName, Vec<FieldPath>> {
        &self.overrides
    }

    pub(super) fn overridden(&self, name: FieldName) -> Option<&[FieldPath]> {
        self.overrides.get(&name).map(Vec::as_slice)
    }

    /// The paths a field is read from under this map.
    pub fn paths(&self, name: FieldName) -> &[FieldPath] {
        self.overridden(name).unwrap_or_else(|| default_paths(name))
    }

    /// Where a field comes from, for error messages: e.g. `PV2-3.2 or PV2-3.1 ...`.
    pub fn describe(&self, name: FieldName) -> String {
        let joined = self
            .paths(name)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        match (self.overridden(name), default_rule(name)) {
            (Some(_), _) => format!("{joined} (org override)"),
            (None, Some(rule)) => format!("{joined} ({rule})"),
            (None, None) => joined,
        }
    }
}

impl Serialize for FieldMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let plain: BTreeMap<&str, Vec<String>> = self
            .overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(ToString::to_string).collect()))
            .collect();
        plain.serialize(s)
    }
}

impl<'de> Deserialize<'de> for FieldMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let plain = BTreeMap::<String, Vec<String>>::deserialize(d)?;
        let mut map = FieldMap::default();
        for (name, paths) in plain {
            map.set_str(&name, &paths.join(","))
                .map_err(serde::de::Error::custom)?;
        }
        Ok(map)
    }
}

// The typed result of extraction.
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
    /// The location's name as the message gives it (not a §3 field).
    pub clinic_name: Option<String>,
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
