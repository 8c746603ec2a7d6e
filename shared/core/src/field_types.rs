//! The contract's fields (docs/interface.md §3.1): their names
//! ([`FieldName`]) and the types of their coded values ([`MessageType`],
//! [`Gender`], [`AppointmentStatus`], [`CaseStatus`]).
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! names {
    ($($variant:ident => $name:literal,)*) => {
        /// A mapped field, named as in docs/interface.md §3.1 (`prior_patient_id`, MRG-1, is our extension).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum FieldName { $($variant,)* }

        impl FieldName {
            /// Every field, in the contract's order.
            pub const ALL: &'static [FieldName] = &[$(FieldName::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(FieldName::$variant => $name,)* }
            }
        }

        impl FromStr for FieldName {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok(FieldName::$variant),)*
                    _ => Err(format!("unknown field name {s:?}")),
                }
            }
        }
    };
}

names! {
    AccountId => "account_id",
    ControlId => "control_id",
    MessageType => "message_type",
    PatientId => "patient_id",
    PatientFamilyName => "patient_family_name",
    PatientGivenName => "patient_given_name",
    PatientBirthDate => "patient_birth_date",
    PatientGender => "patient_gender",
    PatientEmail => "patient_email",
    PatientMobile => "patient_mobile",
    AppointmentId => "appointment_id",
    ClinicId => "clinic_id",
    AppointmentCategory => "appointment_category",
    AppointmentType => "appointment_type",
    AppointmentStart => "appointment_start",
    AppointmentStatus => "appointment_status",
    CaseId => "case_id",
    CaseDescription => "case_description",
    CaseStatus => "case_status",
    TreatingTherapistId => "treating_therapist_id",
    TreatingTherapistFamilyName => "treating_therapist_family_name",
    TreatingTherapistGivenName => "treating_therapist_given_name",
    TreatingTherapistNpi => "treating_therapist_npi",
    SupervisingTherapistId => "supervising_therapist_id",
    SupervisingTherapistFamilyName => "supervising_therapist_family_name",
    SupervisingTherapistGivenName => "supervising_therapist_given_name",
    SupervisingTherapistNpi => "supervising_therapist_npi",
    PriorPatientId => "prior_patient_id",
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FieldName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// MSH-9.1 and MSH-9.2, upper-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageType {
    pub code: String,
    pub trigger: String,
}

impl MessageType {
    pub fn is(&self, code: &str, trigger: &str) -> bool {
        self.code == code && self.trigger == trigger
    }

    pub fn is_adt(&self) -> bool {
        self.code == "ADT"
    }

    pub fn is_siu(&self) -> bool {
        self.code == "SIU"
    }

    /// The types docs/interface.md §3.1 supports; any other is acknowledged and ignored.
    pub fn is_supported(&self) -> bool {
        match self.code.as_str() {
            "ADT" => matches!(
                self.trigger.as_str(),
                "A01" | "A04" | "A08" | "A28" | "A31" | "A40"
            ),
            "SIU" => matches!(
                self.trigger.as_str(),
                "S12" | "S13" | "S14" | "S15" | "S17" | "S26"
            ),
            _ => false,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // MSH-9.1 alone when MSH-9.2 is empty (an `ACK` has no trigger).
        if self.trigger.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{}^{}", self.code, self.trigger)
        }
    }
}

/// PID-8 (HL7 table 0001) as the contract maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Scheduled,
    Arrived,
    Canceled,
    NoShow,
    Deleted,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Scheduled => "scheduled",
            AppointmentStatus::Arrived => "arrived",
            AppointmentStatus::Canceled => "canceled",
            AppointmentStatus::NoShow => "no_show",
            AppointmentStatus::Deleted => "deleted",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Active,
    Inactive,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Active => "active",
            CaseStatus::Inactive => "inactive",
        }
    }
}
