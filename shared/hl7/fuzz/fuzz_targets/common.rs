//! What the fuzz targets share, included by each as `mod common;` (it is not
//! a target itself: only the `[[bin]]`s in Cargo.toml are): the ERR segment
//! they build ACKs with.
use tendon_hl7::{AckError, FieldPath};

/// Where [`ack_errors`]' error points: PID-3, second repetition, component 1.
pub fn error_path() -> FieldPath {
    FieldPath::new("PID", 3).repetition(2).component(1)
}

/// One error at `path` whose message holds every character an ACK must
/// escape (the delimiters, `""`, CR and LF).
pub fn ack_errors(path: &FieldPath) -> [AckError<'_>; 1] {
    [AckError {
        code: "missing_field",
        field: Some("patient_id"),
        location: Some(path),
        hl7_code: 101,
        message: "PID-3 is \"\" | ^~\\& \r\n",
        warning: false,
    }]
}
