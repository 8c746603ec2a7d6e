//! HL7 acknowledgements (ACK): MSH with sender and receiver swapped, MSA, ERR.
use crate::value::nth;
use crate::{Delimiters, FieldPath, Header, escape};

/// MSA-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckCode {
    /// AA: accepted.
    Accept,
    /// AE: stored, but the content failed validation.
    Error,
    /// AR: rejected (not parseable, wrong account, reused control ID).
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// One ERR segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckError<'e> {
    /// The application's error code (ERR-5.1), e.g. `missing_field`.
    pub code: &'e str,
    /// The application's field name (ERR-5.2), e.g. `patient_email`.
    pub field: Option<&'e str>,
    /// Where in the message the problem is (ERR-2).
    pub location: Option<&'e FieldPath>,
    /// HL7 table 0357 code (ERR-3), e.g. 101 for a required field.
    pub hl7_code: u16,
    /// Text for a person (ERR-8). It must not carry patient data.
    pub message: &'e str,
    /// ERR-4 `W` rather than `E`: the message was accepted, but something in it
    /// was not usable.
    pub warning: bool,
}

fn hl7_error_text(code: u16) -> &'static str {
    match code {
        0 => "Message accepted",
        100 => "Segment sequence error",
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        200 => "Unsupported message type",
        201 => "Unsupported event code",
        202 => "Unsupported processing id",
        203 => "Unsupported version id",
        204 => "Unknown key identifier",
        205 => "Duplicate key identifier",
        206 => "Application record locked",
        _ => "Application internal error",
    }
}

/// Builds an ACK for `header`, or a generic one when the input had no usable MSH.
///
/// The ACK uses the incoming message's delimiters, so MSA-2 can echo MSH-10 byte
/// for byte. `now` is the HL7 timestamp for MSH-7 and `control_id` the ACK's own
/// MSH-10; both come from the caller so this stays pure.
pub fn build_ack(
    header: Option<&Header<'_>>,
    code: AckCode,
    errors: &[AckError<'_>],
    now: &str,
    control_id: &str,
) -> Vec<u8> {
    let d = header.map_or_else(Delimiters::default, |h| h.delimiters);
    let (ours_app, ours_fac, theirs_app, theirs_fac, trigger, their_id, processing, version) =
        match header {
            Some(h) => (
                if h.receiving_application.is_empty() {
                    &b"TENDON"[..]
                } else {
                    h.receiving_application
                },
                h.receiving_facility,
                h.sending_application,
                h.sending_facility,
                nth(h.message_type, d.component, 2).unwrap_or_default(),
                h.control_id,
                if h.processing_id.is_empty() {
                    &b"P"[..]
                } else {
                    h.processing_id
                },
                if h.version.is_empty() {
                    &b"2.5.1"[..]
                } else {
                    h.version
                },
            ),
            None => (
                &b"TENDON"[..],
                &b"TENDON"[..],
                &b""[..],
                &b""[..],
                &b""[..],
                &b""[..],
                &b"P"[..],
                &b"2.5.1"[..],
            ),
        };
    let c = d.component;
    let text = |t: &str| escape(t, &d).into_bytes();

    let mut msg_type = b"ACK".to_vec();
    if !trigger.is_empty() {
        msg_type.push(c);
        msg_type.extend_from_slice(trigger);
        msg_type.push(c);
        msg_type.extend_from_slice(b"ACK");
    }
    let mut w = crate::MessageWriter::new(
        d,
        &[
            ours_app,
            ours_fac,
            theirs_app,
            theirs_fac,
            &text(now),
            b"",
            &msg_type,
            &text(control_id),
            processing,
            version,
        ],
    );
    w.segment("MSA", &[code.as_str().as_bytes(), their_id]);
    for e in errors {
        let location = e.location.map(|p| {
            let mut l = p.segment_id().as_bytes().to_vec();
            for part in [
                Some(1),
                Some(p.field),
                p.repetition.or(Some(1)),
                p.component,
                p.subcomponent,
            ] {
                match part {
                    Some(n) => {
                        l.push(c);
                        l.extend(n.to_string().bytes());
                    }
                    None => break,
                }
            }
            l
        });
        let hl7 = [
            e.hl7_code.to_string().as_bytes(),
            &[c],
            &text(hl7_error_text(e.hl7_code)),
            &[c],
            b"HL70357",
        ]
        .concat();
        let app = [
            text(e.code),
            vec![c],
            text(e.field.unwrap_or_default()),
            vec![c],
            b"TENDON".to_vec(),
        ]
        .concat();
        w.segment(
            "ERR",
            &[
                &b""[..],
                &location.unwrap_or_default(),
                &hl7,
                if e.warning { b"W" } else { b"E" },
                &app,
                b"",
                b"",
                &text(e.message),
            ],
        );
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn ack_text(input: &[u8], code: AckCode, errors: &[AckError<'_>]) -> String {
        let header = Header::sniff(input);
        String::from_utf8(build_ack(
            header.as_ref(),
            code,
            errors,
            "20261120093001",
            "ACK1",
        ))
        .unwrap()
    }

    #[test]
    fn swaps_sender_and_receiver_and_echoes_the_control_id() {
        let input = b"MSH|^~\\&|EMRGATE|ACME01|TENDON|TENDONFAC|20261120093000-0800||SIU^S12^SIU_S12| MSG\\T\\42|P|2.5.1\rSCH|1";
        let ack = ack_text(input, AckCode::Accept, &[]);
        assert_eq!(
            ack,
            "MSH|^~\\&|TENDON|TENDONFAC|EMRGATE|ACME01|20261120093001||ACK^S12^ACK|ACK1|P|2.5.1\rMSA|AA| MSG\\T\\42\r"
        );
        let m = Message::parse(ack.as_bytes()).unwrap();
        assert_eq!(
            m.segment("MSA").unwrap().field(2).raw(),
            Some(&b" MSG\\T\\42"[..])
        );
    }

    #[test]
    fn err_segments_carry_codes_fields_and_locations() {
        let input = b"MSH|^~\\&|EMR|ACME01|||2026||SIU^S12|M1|P|2.5\r";
        let path: FieldPath = "PID-13.4".parse().unwrap();
        let errors = [AckError {
            code: "missing_field",
            field: Some("patient_email"),
            location: Some(&path),
            hl7_code: 101,
            message: "patient_email is required (PID-13.4)",
            warning: false,
        }];
        let ack = ack_text(input, AckCode::Error, &errors);
        let m = Message::parse(ack.as_bytes()).unwrap();
        assert_eq!(
            m.segment("MSA").unwrap().field(1).text().as_deref(),
            Some("AE")
        );
        let err = m.segment("ERR").unwrap();
        assert_eq!(err.field(2).raw(), Some(&b"PID^1^13^1^4"[..]));
        assert_eq!(
            err.field(3).raw(),
            Some(&b"101^Required field missing^HL70357"[..])
        );
        assert_eq!(err.field(4).raw(), Some(&b"E"[..]));
        assert_eq!(
            err.field(5).component(1).text().as_deref(),
            Some("missing_field")
        );
        assert_eq!(
            err.field(5).component(2).text().as_deref(),
            Some("patient_email")
        );
        assert_eq!(
            err.field(8).text().as_deref(),
            Some("patient_email is required (PID-13.4)")
        );
    }

    #[test]
    fn uses_the_message_delimiters() {
        let input = b"MSH#$*@%#EMR#ACME01###2026##SIU$S12#M^1#P#2.5\r";
        let ack = ack_text(input, AckCode::Accept, &[]);
        assert!(ack.starts_with("MSH#$*@%#"), "{ack}");
        assert!(ack.contains("ACK$S12$ACK"), "{ack}");
        assert!(ack.ends_with("MSA#AA#M^1\r"), "{ack}");
    }

    #[test]
    fn input_without_msh_gets_a_generic_reject() {
        let errors = [AckError {
            code: "invalid_hl7",
            field: None,
            location: None,
            hl7_code: 100,
            message: "the message must start with an MSH segment",
            warning: false,
        }];
        let ack = ack_text(b"\x00\x01garbage", AckCode::Reject, &errors);
        let m = Message::parse(ack.as_bytes()).unwrap();
        assert_eq!(m.msh().field(9).text().as_deref(), Some("ACK"));
        let msa = m.segment("MSA").unwrap();
        assert_eq!(msa.field(1).text().as_deref(), Some("AR"));
        assert_eq!(msa.field(2).presence(), crate::Presence::Empty);
        assert_eq!(
            m.segment("ERR")
                .unwrap()
                .field(5)
                .component(1)
                .text()
                .as_deref(),
            Some("invalid_hl7")
        );
    }
}
