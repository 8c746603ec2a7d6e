//! The check of one received message, without storing it: parse, map and
//! validate it into a [`Report`] (what it maps to and what is wrong with
//! it; [`validate`] checks the required data, docs/interface.md §2, which
//! processing checks again on replay), refuse a body of [`several_messages`], and build the HL7 ACK its
//! errors call for ([`ack_bytes`]). Ingest ([`intake`](crate::intake))
//! stores and answers what [`inspect`] finds; `tendon hl7 inspect` prints it.
use serde::Serialize;
use tendon_hl7::{AckError, Charset, Header, MLLP_END, MLLP_START, Message, build_ack};

use crate::mapping::{FieldMap, MapContext, MappedMessage, extract};
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

    /// Whether the body was refused as more than one message
    /// ([`several_messages`]).
    pub fn holds_several_messages(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.code == ErrorCode::MultipleMessages)
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

/// Parses, maps and validates one message. A body that holds more than one
/// message ([`several_messages`]) is refused as a whole: its one error is
/// `multiple_messages`, whatever the first message says.
pub fn inspect(input: &[u8], ctx: &MapContext) -> Report {
    let (mut report, several) = match Message::parse(input) {
        Ok(msg) => (report_of(&msg, ctx), several_in(&msg)),
        Err(e) => (unparsed(input, &e), several_messages_in_bytes(input)),
    };
    if let Some(found) = several {
        report.errors = vec![Issue::new(
            ErrorCode::MultipleMessages,
            None,
            format!(
                "the body holds more than one message ({found}); send one message per request, without a batch envelope"
            ),
        )];
    }
    report
}

/// Segment IDs that only a batch has: file and batch headers and trailers.
const BATCH_SEGMENTS: [(&[u8], &str); 4] = [
    (b"FHS", "an FHS batch file header"),
    (b"BHS", "a BHS batch header"),
    (b"BTS", "a BTS batch trailer"),
    (b"FTS", "an FTS batch file trailer"),
];

/// What in `input` shows that it holds more than one message: a second MSH
/// segment (also one after an MLLP frame end, which the parser would keep as
/// text), or a batch envelope (FHS, BHS, BTS, FTS). `None` for one message,
/// and for a body that is not HL7 at all (that is `invalid_hl7`). A body that
/// does not parse as a message (a batch starts with FHS or BHS) is read from
/// its raw bytes, so it is named for what it is.
pub fn several_messages(input: &[u8]) -> Option<&'static str> {
    match Message::parse(input) {
        Ok(msg) => several_in(&msg),
        Err(_) => several_messages_in_bytes(input),
    }
}

/// Bytes a sender may leave between segments or messages.
fn framing(b: &u8) -> bool {
    matches!(*b, b'\r' | b'\n' | b' ' | b'\t' | MLLP_START | MLLP_END)
}

/// Whether `rest`, the start of a segment, is one only a second message or a
/// batch has: MSH with the field separator, or a batch segment ID followed by
/// it or by the end of its line.
fn another_message_starts(rest: &[u8], field_sep: u8) -> Option<&'static str> {
    let id = rest.get(..3)?;
    let next = rest.get(3).copied();
    if id == b"MSH" && next == Some(field_sep) {
        return Some("a second MSH segment");
    }
    let ends = matches!(next, None | Some(b'\r' | b'\n')) || next == Some(field_sep);
    BATCH_SEGMENTS
        .iter()
        .find(|(batch, _)| *batch == id && ends)
        .map(|(_, what)| *what)
}

/// [`several_messages`] of a parsed message: its segments after MSH, which
/// the parser has already found, and what follows an MLLP byte inside the
/// body, which the parser keeps as text. No scan of every line again: on a
/// long message that doubled the cost of reading it.
fn several_in(msg: &Message<'_>) -> Option<&'static str> {
    let field_sep = msg.delimiters().field;
    if !field_sep.is_ascii_punctuation() {
        return None;
    }
    if let Some(what) = msg
        .segments()
        .skip(1)
        .find_map(|seg| another_message_starts(seg.raw(), field_sep))
    {
        return Some(what);
    }
    let body = msg.body();
    memchr::memchr2_iter(MLLP_START, MLLP_END, body).find_map(|at| {
        let rest = &body[at..];
        let skip = rest.iter().take_while(|b| framing(b)).count();
        another_message_starts(&rest[skip..], field_sep)
    })
}

/// [`several_messages`] from the bytes alone, without parsing: what it
/// answers for a body that does not parse. A segment starts as the parser's
/// do: after a line break (or an MLLP frame end), three characters and the
/// field separator (a batch trailer may also stand alone on its line).
pub fn several_messages_in_bytes(input: &[u8]) -> Option<&'static str> {
    let start = input
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(input);
    let lead = start.iter().take_while(|b| framing(b)).count();
    let body = &start[lead..];
    let first = body.get(..3)?;
    let field_sep = *body.get(3)?;
    let header = first == b"MSH" || BATCH_SEGMENTS[..2].iter().any(|(id, _)| *id == first);
    if !header || !field_sep.is_ascii_punctuation() {
        return None;
    }
    if first != b"MSH" {
        return another_message_starts(body, field_sep);
    }
    let mut at = 0;
    while let Some(brk) = memchr::memchr3(b'\r', b'\n', MLLP_END, &body[at..]) {
        let rest = &body[at + brk..];
        let skip = rest.iter().take_while(|b| framing(b)).count();
        if let Some(what) = another_message_starts(&rest[skip..], field_sep) {
            return Some(what);
        }
        at += brk + skip.max(1);
    }
    None
}

/// The report of a message that parsed: its fields, its errors, how it was read.
fn report_of(msg: &Message<'_>, ctx: &MapContext) -> Report {
    let fields = extract(msg, ctx);
    let errors = validate(&fields, &ctx.field_map, ctx.account_id.as_deref());
    Report {
        message_type: fields.message_type.as_ref().map(ToString::to_string),
        control_id: fields.control_id.clone(),
        warnings: reading_notes(msg, &fields),
        fields,
        errors,
    }
}

/// The report of a body that does not parse: `invalid_hl7`, and the type
/// and control ID its MSH shows, if any, for the ACK and the message list.
fn unparsed(input: &[u8], e: &tendon_hl7::ParseError) -> Report {
    let header = Header::sniff(input);
    let raw_text =
        |b: &[u8]| Some(String::from_utf8_lossy(b).trim().to_owned()).filter(|s| !s.is_empty());
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

// The required data (docs/interface.md §2): what every supported message
// must carry, checked after mapping and reported with the §7 codes. Processing
// checks it again on replay, under the configuration of that moment.

/// Fields every supported SIU message must carry.
pub const SIU_REQUIRED: &[FieldName] = &[
    FieldName::PatientId,
    FieldName::PatientFamilyName,
    FieldName::PatientGivenName,
    FieldName::PatientBirthDate,
    FieldName::PatientGender,
    FieldName::PatientEmail,
    FieldName::AppointmentId,
    FieldName::ClinicId,
    FieldName::AppointmentType,
    FieldName::AppointmentStart,
    FieldName::AppointmentStatus,
    FieldName::CaseId,
    FieldName::CaseDescription,
];

/// Fields every supported ADT message must carry; A40 also needs MRG-1.
pub const ADT_REQUIRED: &[FieldName] = &[
    FieldName::PatientId,
    FieldName::PatientFamilyName,
    FieldName::PatientGivenName,
];

/// Checks a mapped message. `account_id` is the org of the ingest key, when known.
/// An unsupported type yields only `unsupported_message_type`: it is stored and ignored.
pub fn validate(m: &MappedMessage, map: &FieldMap, account_id: Option<&str>) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let (Some(org), Some(sent)) = (account_id, m.sending_facility.as_deref())
        && org != sent
    {
        issues.push(
            Issue::new(
                ErrorCode::AccountMismatch,
                Some(FieldName::AccountId),
                format!("MSH-4.1 (sending facility) {sent:?} does not match the account {org:?} of the ingest key"),
            )
            .at(map.paths(FieldName::AccountId).first().cloned()),
        );
    }
    let Some(kind) = m.message_type.as_ref() else {
        issues.push(missing(m, map, FieldName::MessageType));
        return issues;
    };
    if !kind.is_supported() {
        issues.push(Issue::new(
            ErrorCode::UnsupportedMessageType,
            Some(FieldName::MessageType),
            format!("{kind} is not a supported message type; it is stored and ignored"),
        ));
        return issues;
    }
    if m.blocked_slot {
        issues.push(
            Issue::new(
                ErrorCode::BlockedSlot,
                Some(FieldName::AppointmentStatus),
                "SCH-25 is Blocked: a blocked slot, not a visit; it is stored and ignored",
            )
            .at(map.paths(FieldName::AppointmentStatus).first().cloned()),
        );
        return issues;
    }
    if m.control_id.is_none() {
        issues.push(missing(m, map, FieldName::ControlId));
    }
    let required: &[FieldName] = if kind.is_siu() {
        SIU_REQUIRED
    } else {
        ADT_REQUIRED
    };
    for &field in required {
        if m.get(field).is_none() {
            issues.push(missing(m, map, field));
        }
    }
    if kind.is_siu() && m.treating_therapist.id.is_none() && m.supervising_therapist.id.is_none() {
        let mut issue = missing(m, map, FieldName::SupervisingTherapistId);
        issue.message = format!(
            "a treating therapist ({}) or a supervising therapist ({}) is required",
            map.describe(FieldName::TreatingTherapistId),
            map.describe(FieldName::SupervisingTherapistId)
        );
        issues.push(issue);
    }
    if kind.is("ADT", "A40") && m.prior_patient_id.is_none() {
        issues.push(missing(m, map, FieldName::PriorPatientId));
    }
    let warnings = invalid_value_warnings(m, &issues);
    issues.extend(warnings);
    issues
}

/// `invalid_value` warnings for the unreadable values `reported` does not
/// already name. A value that is sent but unreadable is left out either way
/// (ADT or SIU alike); where the type does not require it, the rest of the
/// message still applies, and the warning says what was left out.
pub fn invalid_value_warnings(m: &MappedMessage, reported: &[Issue]) -> Vec<Issue> {
    m.invalid
        .iter()
        .filter(|bad| !reported.iter().any(|i| i.field == Some(bad.field)))
        .map(|bad| {
            Issue::new(
                ErrorCode::InvalidValue,
                Some(bad.field),
                format!(
                    "{} in {} is present but invalid and was left out: {}",
                    bad.field, bad.path, bad.reason
                ),
            )
            .at(Some(bad.path.clone()))
        })
        .collect()
}

fn missing(m: &MappedMessage, map: &FieldMap, field: FieldName) -> Issue {
    let (message, location) = match m.invalid(field) {
        Some(bad) => (
            format!(
                "{field} in {} is present but invalid: {}",
                bad.path, bad.reason
            ),
            Some(bad.path.clone()),
        ),
        None => (
            format!("{field} is required: {} is empty", map.describe(field)),
            map.paths(field).first().cloned(),
        ),
    };
    Issue::new(ErrorCode::MissingField, Some(field), message).at(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKED: &str = include_str!("../../../examples/worked-example.hl7");

    fn codes(report: &Report) -> Vec<&'static str> {
        report.errors.iter().map(|e| e.code.as_str()).collect()
    }

    #[test]
    fn one_message_is_one_message() {
        assert_eq!(several_messages(WORKED.as_bytes()), None);
        // Framing, a BOM, LF ends, and text that merely mentions MSH.
        let framed = format!("\u{feff}\x0b{}\x1c\r", WORKED.replace('\r', "\n"));
        assert_eq!(several_messages(framed.as_bytes()), None);
        let nte = "MSH|^~\\&|A|B|||2026||ADT^A08|1|P|2.5\rNTE|1||see\nMSH-10 and MSH fields\r";
        assert_eq!(several_messages(nte.as_bytes()), None);
        assert_eq!(several_messages(b"garbage\rMSH|^~\\&|A"), None, "not HL7");
        assert!(codes(&inspect(WORKED.as_bytes(), &MapContext::default())).is_empty());
    }

    #[test]
    fn two_messages_or_a_batch_are_rejected_as_a_whole() {
        let second = WORKED.replace("MSG00042", "MSG00043");
        let batch_lines = |s: &str| s.trim_end_matches('\r').to_owned();
        let cases = [
            (format!("{WORKED}{second}"), "a second MSH segment"),
            (
                format!("{WORKED}\n\n{}", second.replace('\r', "\n")),
                "a second MSH segment",
            ),
            // Two MLLP frames in one body: the parser would keep the second
            // message as text in the last field of the first.
            (
                format!("\x0b{WORKED}\x1c\r\x0b{second}\x1c\r"),
                "a second MSH segment",
            ),
            (
                format!("\x0b{}\x1c\x0b{second}\x1c", batch_lines(WORKED)),
                "a second MSH segment",
            ),
            (
                format!("FHS|^~\\&|EMR\rBHS|^~\\&|EMR\r{WORKED}BTS|1\rFTS|1\r"),
                "an FHS batch file header",
            ),
            (
                format!("BHS|^~\\&|EMR\r{WORKED}BTS|1\r"),
                "a BHS batch header",
            ),
            (format!("{WORKED}BTS|1\rFTS|1"), "a BTS batch trailer"),
            (format!("{WORKED}FTS"), "an FTS batch file trailer"),
        ];
        for (body, found) in &cases {
            assert_eq!(several_messages(body.as_bytes()), Some(*found), "{body:?}");
            let report = inspect(body.as_bytes(), &MapContext::default());
            assert_eq!(codes(&report), ["multiple_messages"], "{body:?}");
            assert!(
                report.errors[0].message.contains(found),
                "{:?}",
                report.errors
            );
            assert_eq!(report.ack_code(), tendon_hl7::AckCode::Reject);
        }
        // The ACK names the first message and carries one ERR with code 100.
        let report = inspect(cases[0].0.as_bytes(), &MapContext::default());
        let ack = String::from_utf8(report.ack(cases[0].0.as_bytes(), "20261120", "ACK1")).unwrap();
        assert!(ack.contains("MSA|AR|MSG00042"), "{ack:?}");
        assert!(
            ack.contains("|100^") && ack.contains("multiple_messages^^TENDON"),
            "{ack:?}"
        );
        assert_eq!(ErrorCode::MultipleMessages.hl7_code(), 100);
    }
}
