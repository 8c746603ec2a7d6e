//! The docs/interface.md §7 error codes ([`ErrorCode`]), with the ACK code
//! and HL7 error code each calls for, and [`Issue`], one problem with a
//! message as stored, acknowledged and printed.
use std::fmt;

use serde::{Deserialize, Serialize};
use tendon_hl7::{AckCode, FieldPath};

use crate::field_types::FieldName;

/// docs/interface.md §7 error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
