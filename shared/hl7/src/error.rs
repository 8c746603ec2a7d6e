//! Why an input is not a parseable message ([`ParseError`]), with byte
//! offsets and never patient data.
use thiserror::Error;

/// Why an input is not a parseable HL7 v2 message. Offsets count bytes from the
/// start of the input as received (a BOM or MLLP byte included), and no error
/// message quotes patient data.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("empty input: no HL7 message found")]
    Empty,
    #[error("the message must start with an MSH segment, but byte {offset} starts {found:?}")]
    MissingMsh { offset: usize, found: String },
    #[error(
        "the MSH segment ends at byte {offset} before its field separator and encoding characters (MSH-1, MSH-2)"
    )]
    TruncatedHeader { offset: usize },
    #[error("MSH-1/MSH-2 at byte {offset} are not valid encoding characters: {reason}")]
    BadEncodingCharacters { offset: usize, reason: &'static str },
    #[error(
        "segment {index} at byte {offset} has an invalid segment ID {found:?}; expected three upper-case letters or digits followed by the field separator"
    )]
    BadSegmentId {
        index: usize,
        offset: usize,
        found: String,
    },
}

impl ParseError {
    /// The byte offset where parsing stopped, when there is one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            ParseError::Empty => None,
            ParseError::MissingMsh { offset, .. }
            | ParseError::TruncatedHeader { offset }
            | ParseError::BadEncodingCharacters { offset, .. }
            | ParseError::BadSegmentId { offset, .. } => Some(*offset),
        }
    }
}

/// A short, printable rendering of a few bytes for error messages.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(3)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}
