//! The names and value types of the contract: §3.1 field names, §7 error codes.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tendon_hl7::{AckCode, FieldPath};

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

/// docs/interface.md §7 error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidHl7,
    MissingField,
    UnknownLocation,
    UnknownPractitioner,
    NoEpisodeOfCare,
    AccountMismatch,
    ControlIdReused,
    UnsupportedMessageType,
    /// An extension of §7: processing kept failing on an infrastructure error
    /// until the queue moved the message to its dead-letter queue.
    DeadLetter,
    /// An extension of §7, a warning: a field the message type does not
    /// require is present but unreadable (a birth date of `19791131`), so it
    /// is left out and the rest of the message is applied. Acknowledged `AA`
    /// with an ERR of severity `W`.
    InvalidValue,
    /// An extension of §7: SCH-25 is `Blocked`, a blocked slot and not a
    /// visit. Acknowledged `AA` and stored `ignored`, like an unsupported type.
    BlockedSlot,
    /// An extension of §7: an A40 whose prior patient (MRG-1) already took in
    /// this message's patient (PID-3) by an earlier merge. Applying it would
    /// undo that merge, which an A40 cannot do (HL7 has A37 for unlinking), so
    /// it fails at once instead of retrying, and blocks no later message.
    MergeReversed,
    /// An extension of §7: the body holds more than one message (a second
    /// MSH, or an FHS/BHS batch envelope). One message per request: the body
    /// is rejected as a whole, so no message in it is silently dropped.
    MultipleMessages,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidHl7 => "invalid_hl7",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::UnknownLocation => "unknown_location",
            ErrorCode::UnknownPractitioner => "unknown_practitioner",
            ErrorCode::NoEpisodeOfCare => "no_episode_of_care",
            ErrorCode::AccountMismatch => "account_mismatch",
            ErrorCode::ControlIdReused => "control_id_reused",
            ErrorCode::UnsupportedMessageType => "unsupported_message_type",
            ErrorCode::DeadLetter => "dead_letter",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::BlockedSlot => "blocked_slot",
            ErrorCode::MergeReversed => "merge_reversed",
            ErrorCode::MultipleMessages => "multiple_messages",
        }
    }

    /// The HL7 table 0357 code that goes in ERR-3.
    pub fn hl7_code(self) -> u16 {
        match self {
            ErrorCode::InvalidHl7 => 100,
            ErrorCode::MissingField => 101,
            ErrorCode::UnknownLocation
            | ErrorCode::UnknownPractitioner
            | ErrorCode::NoEpisodeOfCare => 204,
            ErrorCode::AccountMismatch => 204,
            ErrorCode::ControlIdReused => 205,
            ErrorCode::UnsupportedMessageType => 200,
            ErrorCode::DeadLetter => 207,
            ErrorCode::InvalidValue => 102,
            ErrorCode::BlockedSlot => 0,
            ErrorCode::MergeReversed => 204,
            // Segment sequence error: a segment (MSH, FHS, BHS) where none may be.
            ErrorCode::MultipleMessages => 100,
        }
    }

    /// The acknowledgement a gateway gets when ingest finds this error (docs/interface.md §4).
    /// An unsupported type is accepted and ignored.
    pub fn ack_code(self) -> AckCode {
        match self {
            ErrorCode::InvalidHl7
            | ErrorCode::AccountMismatch
            | ErrorCode::ControlIdReused
            | ErrorCode::MultipleMessages => AckCode::Reject,
            ErrorCode::UnsupportedMessageType
            | ErrorCode::BlockedSlot
            | ErrorCode::InvalidValue => AckCode::Accept,
            _ => AckCode::Error,
        }
    }

    /// Whether a message with this issue is stored `ignored` (and its ACK
    /// carries no ERR for it).
    pub fn ignores_message(self) -> bool {
        matches!(
            self,
            ErrorCode::UnsupportedMessageType | ErrorCode::BlockedSlot
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with a message: `{"code","field","message"}` in JSON. The message
/// names fields and HL7 positions, never patient data, so it is safe to log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub code: ErrorCode,
    pub field: Option<FieldName>,
    pub message: String,
    /// Where in the message the value was looked for (ERR-2).
    #[serde(skip)]
    pub location: Option<FieldPath>,
}

impl Issue {
    pub fn new(code: ErrorCode, field: Option<FieldName>, message: impl Into<String>) -> Issue {
        Issue {
            code,
            field,
            message: message.into(),
            location: None,
        }
    }

    pub fn at(mut self, location: Option<FieldPath>) -> Issue {
        self.location = location;
        self
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
