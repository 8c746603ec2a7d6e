//! Tendon's HL7 v2 parser.
//!
//! ```
//! use tendon_hl7::Message;
//!
//! let msg = Message::parse(b"MSH|^~\\&|EMR|ACME01|||20261120093000||ADT^A08|C1|P|2.5.1\rPID|1||P555^^^ACME^MR||Rivera^Ana\\T\\Co")?;
//! let pid = msg.segment("PID").unwrap();
//! assert_eq!(pid.field(5).component(2).text().as_deref(), Some("Ana&Co"));
//! assert_eq!(msg.header().control_id, b"C1");
//! # Ok::<(), tendon_hl7::ParseError>(())
//! ```
//!
//! Parsing only finds segment boundaries and the encoding characters; fields,
//! repetitions, components and subcomponents are split on access, and escapes and
//! character sets are decoded only when a value's text is asked for. A value keeps
//! three states apart: absent (not in the message), empty (`||`) and the explicit
//! null `""`.

mod ack;
mod charset;
mod delimiters;
mod encode;
mod error;
mod escape;
mod message;
mod path;
mod timestamp;
mod value;

pub use ack::{AckCode, AckError, build_ack};
pub use charset::Charset;
pub use delimiters::Delimiters;
pub use encode::{MessageWriter, escape};
pub use error::ParseError;
pub use message::{Header, MLLP_END, MLLP_START, Message, Segment, Terminator};
pub use path::{FieldPath, PathError};
pub use timestamp::{Precision, Timestamp, TimestampError};
pub use value::{Level, Presence, Value};
