//! The parser on hand-made messages: MSH numbering, segment ends (mixed
//! breaks, framing, BOM), encoding characters, typed errors and MSH-18.
use super::*;
use crate::Presence;

const SIU: &[u8] = b"MSH|^~\\&|EMRGATE|ACME01|TENDON|TENDON|20261120093000-0800||SIU^S12^SIU_S12|MSG00042|P|2.5.1\rSCH|PL-77|A9001\rPID|1||X-991^^^HOSP^PI~P555^^^ACME^MR||Rivera^Ana^M\r";

#[test]
fn msh_numbering_is_exact() {
    let m = Message::parse(SIU).unwrap();
    let msh = m.msh();
    assert_eq!(msh.field(1).raw(), Some(&b"|"[..]));
    assert_eq!(msh.field(2).raw(), Some(&b"^~\\&"[..]));
    assert_eq!(msh.field(2).text().as_deref(), Some("^~\\&"));
    assert_eq!(msh.field(2).component(2).presence(), Presence::Absent);
    assert_eq!(msh.field(3).text().as_deref(), Some("EMRGATE"));
    assert_eq!(msh.field(9).component(2).text().as_deref(), Some("S12"));
    assert_eq!(msh.field(10).text().as_deref(), Some("MSG00042"));
    assert_eq!(msh.field(13).presence(), Presence::Absent);
    assert_eq!(msh.field_count(), 12);
    assert_eq!(
        m.segment("PID")
            .unwrap()
            .field(3)
            .repetition(2)
            .component(1)
            .text()
            .as_deref(),
        Some("P555")
    );
}

fn ids(input: &[u8]) -> Vec<String> {
    Message::parse(input)
        .unwrap()
        .segments()
        .map(|s| s.id().to_owned())
        .collect()
}

#[test]
fn segment_terminators() {
    let want = ["MSH", "PID", "PV1"];
    assert_eq!(ids(b"MSH|^~\\&|A\rPID|1\rPV1|1\r"), want);
    assert_eq!(ids(b"MSH|^~\\&|A\r\nPID|1\r\nPV1|1\r\n"), want);
    assert_eq!(ids(b"MSH|^~\\&|A\nPID|1\nPV1|1"), want);
    assert_eq!(ids(b"MSH|^~\\&|A\r\rPID|1\r\n\r\nPV1|1"), want);
}

#[test]
fn mixed_line_breaks_each_end_a_segment_before_a_segment_id() {
    // CR, then LF, then CRLF, then a blank line: four segments, none lost.
    let m = Message::parse(b"MSH|^~\\&|A\rEVN|A01\nPID|1||P1\r\nPV1|1\n\nPD1\rZX1|z").unwrap();
    let ids: Vec<_> = m.segments().map(|s| s.id()).collect();
    assert_eq!(ids, ["MSH", "EVN", "PID", "PV1", "PD1", "ZX1"]);
    assert_eq!(
        m.segment("PID").unwrap().field(3).text().as_deref(),
        Some("P1")
    );
}

#[test]
fn a_break_not_followed_by_a_segment_id_is_text() {
    // An LF inside a CR message, a CR inside an LF message, and a short line.
    let m = Message::parse(b"MSH|^~\\&|A\nNTE|1||first\rsecond\nand\nPID|1").unwrap();
    assert_eq!(m.segments().count(), 3);
    assert_eq!(
        m.segment("NTE").unwrap().field(3).text().as_deref(),
        Some("first\rsecond\nand")
    );
    assert!(m.has_line_breaks_in_text());
    // Breaks that only end segments, blank lines and trailing breaks included, are not text.
    for input in [
        &b"MSH|^~\\&|A\rEVN|A01\nPID|1||P1\r\nPV1|1\n\nPD1\rZX1|z"[..],
        b"MSH|^~\\&|A\r\n\r\nPID|1\r\n\r\n",
        b"MSH|^~\\&|A",
    ] {
        assert!(!Message::parse(input).unwrap().has_line_breaks_in_text());
    }
    // Text in the last segment, with no break after it.
    assert!(
        Message::parse(b"MSH|^~\\&|A\rNTE|1||a\nb")
            .unwrap()
            .has_line_breaks_in_text()
    );
}

#[test]
fn three_encoding_characters_are_read_by_the_third() {
    // `^~\`: escapes work, `&` is text.
    let m = Message::parse(b"MSH|^~\\|A\rPID|1||P1||Smith&Co\\T\\x^Ann").unwrap();
    let d = m.delimiters();
    assert_eq!((d.escape, d.subcomponent), (Some(b'\\'), None));
    let name = m.segment("PID").unwrap().field(5);
    assert_eq!(name.component(1).text().as_deref(), Some("Smith&Co&x"));
    assert_eq!(
        name.component(1).subcomponent(2).presence(),
        Presence::Absent
    );
    assert_eq!(name.component(2).text().as_deref(), Some("Ann"));
    assert_eq!(d.encoding_characters(), b"^~\\");
    // `^~&`: subcomponents work, `\` is text.
    let m = Message::parse(b"MSH|^~&|A\rPID|1||P1&AUTH||a\\b").unwrap();
    let d = m.delimiters();
    assert_eq!((d.escape, d.subcomponent), (None, Some(b'&')));
    let pid = m.segment("PID").unwrap();
    assert_eq!(pid.field(3).subcomponent(2).text().as_deref(), Some("AUTH"));
    assert_eq!(pid.field(5).text().as_deref(), Some("a\\b"));
    assert_eq!(d.encoding_characters(), b"^~&");
    // Any other third character is ambiguous.
    assert!(matches!(
        Message::parse(b"MSH|^~#|A\rPID|1").unwrap_err(),
        ParseError::BadEncodingCharacters { offset: 4, .. }
    ));
}

#[test]
fn encoding_character_diagnostics_count_characters() {
    // Four characters, one of them two bytes: not "more than five".
    let err = Message::parse("MSH|^~\\é|A\rPID|1".as_bytes()).unwrap_err();
    assert!(err.to_string().contains("ASCII punctuation"), "{err}");
    let err = Message::parse("MSH|^~\\&!?|A".as_bytes()).unwrap_err();
    assert!(err.to_string().contains("more than five"), "{err}");
}

#[test]
fn literal_lf_inside_a_field_is_data_when_cr_ends_segments() {
    let m = Message::parse(b"MSH|^~\\&|A\rNTE|1||line one\nline two\rPV1|1").unwrap();
    assert_eq!(m.terminator(), Terminator::Cr);
    assert_eq!(m.segments().count(), 3);
    let nte = m.segment("NTE").unwrap();
    assert_eq!(nte.field(3).text().as_deref(), Some("line one\nline two"));
}

#[test]
fn framing_bytes_and_bom_are_stripped() {
    let m = Message::parse(b"\x0b\xEF\xBB\xBFMSH|^~\\&|A|B\rPID|1\r\x1c\r").unwrap();
    assert_eq!(m.segments().count(), 2);
    assert_eq!(m.msh().field(4).text().as_deref(), Some("B"));
    assert_eq!(m.segment("PID").unwrap().field(1).raw(), Some(&b"1"[..]));
}

#[test]
fn custom_encoding_characters_and_truncation() {
    let m = Message::parse(b"MSH#$*@%!#A#B\rPID#1##P1$x!F!y%a*P2").unwrap();
    let d = m.delimiters();
    assert_eq!(
        (
            d.field,
            d.component,
            d.repetition,
            d.escape,
            d.subcomponent,
            d.truncation
        ),
        (b'#', b'$', b'*', Some(b'@'), Some(b'%'), Some(b'!'))
    );
    // '!' is the truncation character here, '@' the escape.
    let pid = m.segment("PID").unwrap();
    assert_eq!(
        pid.field(3)
            .repetition(1)
            .component(2)
            .subcomponent(1)
            .text()
            .as_deref(),
        Some("x!F!y")
    );
    assert_eq!(pid.field(3).repetition(2).text().as_deref(), Some("P2"));
    let m = Message::parse(b"MSH|^~\\&#|A\rNTE|1||cut @\\P\\").unwrap();
    assert_eq!(m.delimiters().truncation, Some(b'#'));
    assert_eq!(
        m.segment("NTE").unwrap().field(3).text().as_deref(),
        Some("cut @#")
    );
}

#[test]
fn typed_errors_say_where() {
    assert_eq!(Message::parse(b"").unwrap_err(), ParseError::Empty);
    assert_eq!(
        Message::parse(b"\x0b\x1c\r").unwrap_err(),
        ParseError::Empty
    );
    assert!(matches!(
        Message::parse(b"PID|1").unwrap_err(),
        ParseError::MissingMsh { offset: 0, .. }
    ));
    assert_eq!(
        Message::parse(b"MS").unwrap_err(),
        ParseError::TruncatedHeader { offset: 2 }
    );
    assert_eq!(
        Message::parse(b"MSH|^~").unwrap_err(),
        ParseError::TruncatedHeader { offset: 6 }
    );
    assert!(matches!(
        Message::parse(b"MSHX^~\\&").unwrap_err(),
        ParseError::BadEncodingCharacters { offset: 3, .. }
    ));
    assert!(matches!(
        Message::parse(b"MSH|^^\\&|").unwrap_err(),
        ParseError::BadEncodingCharacters { offset: 4, .. }
    ));
    let err = Message::parse(b"MSH|^~\\&|A\rPID|1\rgar|bage\r").unwrap_err();
    assert_eq!(
        err,
        ParseError::BadSegmentId {
            index: 3,
            offset: 17,
            found: "gar".into()
        }
    );
    assert!(err.to_string().contains("byte 17"));
}

#[test]
fn empty_segments_have_absent_fields() {
    let m = Message::parse(b"MSH|^~\\&|A\rPD1\rEVN|").unwrap();
    let pd1 = m.segment("PD1").unwrap();
    assert_eq!(pd1.field(1).presence(), Presence::Absent);
    assert_eq!(pd1.field_count(), 0);
    let evn = m.segment("EVN").unwrap();
    assert_eq!(evn.field(1).presence(), Presence::Empty);
}

#[test]
fn charset_from_msh18() {
    let latin = b"MSH|^~\\&|A||||||ADT^A08|1|P|2.3||||||8859/1\rPID|1||1||M\xfcller^J\xf6rg";
    let m = Message::parse(latin).unwrap();
    assert_eq!(m.charset(), Charset::Latin1);
    let pid = m.segment("PID").unwrap();
    assert_eq!(pid.field(5).component(1).text().as_deref(), Some("Müller"));
    let undeclared = b"MSH|^~\\&|A\rPID|1||1||M\xfcller";
    let m = Message::parse(undeclared).unwrap();
    assert_eq!(m.charset(), Charset::Latin1);
    assert_eq!(
        m.segment("PID").unwrap().field(5).text().as_deref(),
        Some("Müller")
    );
}

#[test]
fn header_sniffing_survives_a_broken_body() {
    let input = b"\x0bMSH|^~\\&|EMR|ACME01|TENDON|T|2026||ADT^A01| C1 |P|2.5\rbad|";
    assert!(Message::parse(input).is_err());
    let h = Header::sniff(input).unwrap();
    assert_eq!(h.control_id, b" C1 ");
    assert_eq!(h.sending_facility, b"ACME01");
    assert_eq!(h.version, b"2.5");
    assert!(Header::sniff(b"hello").is_none());
}
