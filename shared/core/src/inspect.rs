//! `tendon hl7 inspect`: parse, map and validate one message without storing it.
use serde::Serialize;
use tendon_hl7::{AckError, Header, Message, build_ack};

use crate::mapping::{MapContext, MappedMessage, extract};
use crate::validation::validate;
use crate::{ErrorCode, Issue};

/// What a message maps to and what is wrong with it (CONTRACT §5 `hl7 inspect`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    pub fields: MappedMessage,
    pub errors: Vec<Issue>,
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
        .filter(|e| e.code != ErrorCode::UnsupportedMessageType)
        .map(|e| AckError {
            code: e.code.as_str(),
            field: e.field.map(|f| f.as_str()),
            location: e.location.as_ref(),
            hl7_code: e.code.hl7_code(),
            message: &e.message,
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
