//! `tendon hl7 inspect`: parse, map and validate one message without storing it.
use serde::Serialize;
use tendon_hl7::{AckError, Charset, Header, Message, build_ack};

use crate::mapping::{MapContext, MappedMessage, extract};
use crate::validation::validate;
use crate::{ErrorCode, FieldName, Issue};

/// What a message maps to and what is wrong with it (docs/interface.md §5 `hl7 inspect`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    pub fields: MappedMessage,
    pub errors: Vec<Issue>,
    /// How the message was read where a sender did something unusual that
    /// Tendon accepted (an extension of the `hl7 inspect` keys). Never patient data.
    pub warnings: Vec<ReadingNote>,
}

/// One note on how a message was read: `{"code","field","message"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadingNote {
    pub code: &'static str,
    pub field: Option<FieldName>,
    pub message: String,
}

/// What was unusual in how `msg` was read: three encoding characters, a
/// character set other than the one MSH-18 declares, line breaks inside fields.
pub fn reading_notes(msg: &Message<'_>, fields: &MappedMessage) -> Vec<ReadingNote> {
    let mut notes = Vec::new();
    let d = msg.delimiters();
    if d.escape.is_none() || d.subcomponent.is_none() {
        let (has, lacks) = if d.escape.is_none() {
            (
                "component, repetition and subcomponent",
                "no escape character: a backslash is plain text",
            )
        } else {
            (
                "component, repetition and escape",
                "no subcomponent separator: '&' is plain text",
            )
        };
        notes.push(ReadingNote {
            code: "three_encoding_characters",
            field: None,
            message: format!(
                "MSH-2 has three encoding characters ({has}), so the message has {lacks}; HL7 asks for four, such as ^~\\&"
            ),
        });
    }
    let declared = msg.msh().field(18).repetition(1).component(1).trimmed();
    if let Some(declared) = declared {
        let named = Charset::from_msh18(declared.as_bytes());
        let read = msg.charset();
        let differs = match (named, read) {
            (Some(Charset::Utf8), Charset::Utf8) => false,
            (Some(_), Charset::Utf8) => !msg.body().is_ascii(),
            (Some(Charset::Utf8), _) => true,
            _ => false,
        };
        if differs {
            let how = match read {
                Charset::Utf8 => "its bytes are valid UTF-8, so it was read as UTF-8",
                _ => "its bytes are not valid UTF-8, so it was read as ISO-8859-1",
            };
            notes.push(ReadingNote {
                code: "character_set",
                field: None,
                message: format!("MSH-18 declares {declared:?}, but {how}"),
            });
        }
    }
    for &field in &fields.line_breaks {
        notes.push(ReadingNote {
            code: "line_break_in_field",
            field: Some(field),
            message: format!(
                "{field} holds a line break that is not followed by a segment ID, so it was kept as text in the field"
            ),
        });
    }
    notes
}

impl Report {
    /// The acknowledgement code ingest answers with: the strictest the errors call for.
    pub fn ack_code(&self) -> tendon_hl7::AckCode {
        ack_code(&self.errors)
    }

    /// The HL7 ACK for `input`, as ingest would send it.
    pub fn ack(&self, input: &[u8], now: &str, ack_control_id: &str) -> Vec<u8> {
        ack_bytes(input, &self.errors, now, ack_control_id)
    }
}

/// The ACK for `input` given its errors: the strictest code they call for, and
/// one ERR per error (an unsupported type is acknowledged AA without ERR).
pub fn ack_bytes(input: &[u8], errors: &[Issue], now: &str, ack_control_id: &str) -> Vec<u8> {
    let code = ack_code(errors);
    let header = Header::sniff(input);
    let errs: Vec<AckError<'_>> = errors
        .iter()
        .filter(|e| !e.code.ignores_message())
        .map(|e| AckError {
            code: e.code.as_str(),
            field: e.field.map(|f| f.as_str()),
            location: e.location.as_ref(),
            hl7_code: e.code.hl7_code(),
            message: &e.message,
            warning: e.code.ack_code() == tendon_hl7::AckCode::Accept,
        })
        .collect();
    build_ack(header.as_ref(), code, &errs, now, ack_control_id)
}

/// Parses, maps and validates one message.
pub fn inspect(input: &[u8], ctx: &MapContext) -> Report {
    match Message::parse(input) {
        Ok(msg) => {
            let fields = extract(&msg, ctx);
            let errors = validate(&fields, &ctx.field_map, ctx.account_id.as_deref());
            Report {
                message_type: fields.message_type.as_ref().map(ToString::to_string),
                control_id: fields.control_id.clone(),
                warnings: reading_notes(&msg, &fields),
                fields,
                errors,
            }
        }
        Err(e) => {
            let header = Header::sniff(input);
            let raw_text = |b: &[u8]| {
                Some(String::from_utf8_lossy(b).trim().to_owned()).filter(|s| !s.is_empty())
            };
            Report {
                message_type: header.as_ref().and_then(|h| raw_text(h.message_type)),
                control_id: header.as_ref().and_then(|h| raw_text(h.control_id)),
                fields: MappedMessage::default(),
                warnings: Vec::new(),
                errors: vec![Issue::new(
                    ErrorCode::InvalidHl7,
                    None,
                    format!("not parseable HL7 v2: {e}"),
                )],
            }
        }
    }
}

/// The strictest acknowledgement code the errors call for.
pub fn ack_code(errors: &[Issue]) -> tendon_hl7::AckCode {
    use tendon_hl7::AckCode::*;
    errors
        .iter()
        .map(|e| e.code.ack_code())
        .fold(Accept, |worst, c| match (worst, c) {
            (Reject, _) | (_, Reject) => Reject,
            (Error, _) | (_, Error) => Error,
            _ => Accept,
        })
}
