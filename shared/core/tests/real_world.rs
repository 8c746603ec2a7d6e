//! One test per real-world reading problem (issue 15), each on a message that
//! another open-source project publishes. The files are byte-exact copies in
//! `tests/fixtures/hl7/external/`; their project, path, commit and licence are
//! in that folder's SOURCES.md.
use std::path::PathBuf;

use tendon_core::{ErrorCode, FieldName, MapContext, Report, inspect};
use tendon_hl7::{AckCode, Message};

fn external(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hl7/external")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report(bytes: &[u8]) -> Report {
    inspect(bytes, &MapContext::default())
}

fn field(r: &Report, name: FieldName) -> Option<String> {
    r.fields.get(name)
}

fn codes(r: &Report) -> Vec<(ErrorCode, Option<FieldName>)> {
    r.errors.iter().map(|e| (e.code, e.field)).collect()
}

fn segment_ids(bytes: &[u8]) -> Vec<String> {
    Message::parse(bytes)
        .unwrap()
        .segments()
        .map(|s| s.id().to_owned())
        .collect()
}

/// LinuxForHealth/hl7v2-fhir-converter, src/test/java/io/github/linuxforhealth/
/// IssueFixTest.java (line 37): CR-terminated, but PID ends in a bare LF. The
/// OBX after it used to be glued into PID's last field.
#[test]
fn a_bare_lf_before_a_segment_ends_the_segment_in_a_cr_message() {
    let bytes = external("linuxforhealth-hl7v2-fhir-converter/adt_a01_issuefixtest_l37.hl7");
    assert!(bytes.contains(&b'\r') && bytes.contains(&b'\n'));
    assert_eq!(
        segment_ids(&bytes),
        ["MSH", "EVN", "PID", "OBX", "AL1", "PRB"]
    );
    let r = report(&bytes);
    assert_eq!(field(&r, FieldName::PatientId).as_deref(), Some("1234"));
    assert_eq!(
        field(&r, FieldName::PatientGender).as_deref(),
        Some("female")
    );
}

/// lenaten/hl7 (Go), testdata/msg2.hl7: CR, LF and CRLF in one message.
#[test]
fn cr_lf_and_crlf_mixed_in_one_message_lose_no_segment() {
    let bytes = external("lenaten-hl7-go/oru_r01_msg2.hl7");
    let breaks = |pat: &[u8]| bytes.windows(pat.len()).filter(|w| *w == pat).count();
    assert!(breaks(b"\r\n") > 0 && breaks(b"\n") > breaks(b"\r\n"));
    let ids = segment_ids(&bytes);
    // Every line that starts with a segment ID is a segment of its own.
    let lines = bytes
        .split(|b| *b == b'\r' || *b == b'\n')
        .filter(|l| l.len() > 3 && l[3] == b'|')
        .count();
    assert_eq!(ids.len(), lines, "{ids:?}");
    assert!(ids.iter().all(|id| id.len() == 3));
}

/// Bugs5382/node-hl7, __tests__/client/hl7.parser.test.ts (line 44): a Dutch
/// ADT^A08 that declares `8859/1` in MSH-18 and is sent as UTF-8.
#[test]
fn valid_utf8_is_read_as_utf8_whatever_msh18_declares() {
    let bytes = external("node-hl7/adt_a08_hl7_parser_test_l44.hl7");
    assert!(std::str::from_utf8(&bytes).is_ok());
    let r = report(&bytes);
    assert_eq!(
        field(&r, FieldName::PatientFamilyName).as_deref(),
        Some("van Testpatiënt-van het Hek")
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.code == "character_set" && w.message.contains("8859/1")),
        "{:?}",
        r.warnings
    );
}

/// The same message with its name re-encoded as ISO-8859-1 and MSH-18 saying
/// UTF-8: the bytes are not UTF-8, so the ISO-8859-1 fallback applies (not
/// replacement characters).
#[test]
fn bytes_that_are_not_utf8_fall_back_to_latin1_even_when_utf8_is_declared() {
    let text = String::from_utf8(external("node-hl7/adt_a08_hl7_parser_test_l44.hl7")).unwrap();
    let text = text.replace("|8859/1|", "|UNICODE UTF-8|");
    let bytes: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
    assert!(std::str::from_utf8(&bytes).is_err());
    let r = report(&bytes);
    assert_eq!(
        field(&r, FieldName::PatientFamilyName).as_deref(),
        Some("van Testpatiënt-van het Hek")
    );
}

/// The same Dutch message: PID-13 is `050-1234567^PRN^PH`, a landline.
/// microsoft/FHIR-Converter, data/SampleData/Hl7v2/ADT-A40-01.hl7:
/// `(111)111-1111^^PH^^^111^1111111`, a landline with its parts filled in.
#[test]
fn a_landline_is_never_the_mobile() {
    for rel in [
        "node-hl7/adt_a08_hl7_parser_test_l44.hl7",
        "fhir-converter/adt_a40_adt_a40_01.hl7",
    ] {
        let r = report(&external(rel));
        assert_eq!(field(&r, FieldName::PatientMobile), None, "{rel}");
    }
}

/// microsoft/FHIR-Converter, data/SampleData/Hl7v2/ADT04-28.hl7: PV1-7 is
/// `4356789876^Granite^Pat^^^^^^NPI`, labelled by its assigning authority
/// (XCN-9), with no identifier type (XCN-13).
#[test]
fn npi_is_found_by_its_assigning_authority() {
    let r = report(&external("fhir-converter/adt_a04_adt04_28.hl7"));
    assert_eq!(
        field(&r, FieldName::SupervisingTherapistNpi).as_deref(),
        Some("4356789876")
    );
    // microsoft/FHIR-Converter, data/SampleData/Hl7v2/SIU-S17-01.hl7: SCH-12
    // is an XCN with the NPI OID in XCN-9.2 (`NPIID&2.16.840.1.113883.4.6&ISO`).
    // Moved into AIP-3 without its XCN-13, the OID alone must find it.
    let s17 = String::from_utf8(external("fhir-converter/siu_s17_siu_s17_01.hl7")).unwrap();
    let line = |id: &str| {
        s17.split('\n')
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_owned()
    };
    let xcn = line("SCH|").split('|').nth(12).unwrap().to_owned();
    assert!(xcn.contains("&2.16.840.1.113883.4.6&") && xcn.contains("^NPI^"));
    let oid_only = xcn.replacen("^L^^^NPI^", "^L^^^^", 1);
    let aip = line("AIP|");
    let mut fields: Vec<&str> = aip.split('|').collect();
    fields[3] = &oid_only;
    let r = report(s17.replace(&aip, &fields.join("|")).as_bytes());
    assert_eq!(
        field(&r, FieldName::TreatingTherapistNpi).as_deref(),
        Some("9941339109")
    );
}

/// microsoft/FHIR-Converter, data/SampleData/Hl7v2/SIU-S16-01.hl7: SCH-25 `Dc`
/// (discontinued, HL7 table 0278).
#[test]
fn dc_overbook_and_blocked_are_table_0278_statuses() {
    let s16 = external("fhir-converter/siu_s16_siu_s16_01.hl7");
    let r = report(&s16);
    assert_eq!(
        field(&r, FieldName::AppointmentStatus).as_deref(),
        Some("canceled")
    );
    // microsoft/FHIR-Converter, data/SampleData/Hl7v2/SIU-S12-01.hl7 with its
    // SCH-25 changed to the other two table 0278 values no sample carries.
    let s12 = String::from_utf8(external("fhir-converter/siu_s12_siu_s12_01.hl7")).unwrap();
    let sch = s12.split('\n').find(|l| l.starts_with("SCH|")).unwrap();
    let sch25 = sch.split('|').nth(25).unwrap();
    assert!(!sch25.is_empty());
    let with = |status: &str| {
        let mut fields: Vec<&str> = sch.split('|').collect();
        fields[25] = status;
        report(s12.replace(sch, &fields.join("|")).as_bytes())
    };
    let r = with("Overbook");
    assert_eq!(
        field(&r, FieldName::AppointmentStatus).as_deref(),
        Some("scheduled")
    );
    let r = with("Blocked");
    assert_eq!(field(&r, FieldName::AppointmentStatus), None);
    assert_eq!(
        codes(&r),
        [(ErrorCode::BlockedSlot, Some(FieldName::AppointmentStatus))]
    );
    assert_eq!(r.ack_code(), AckCode::Accept);
    // Accepted without an ERR segment, like an unsupported type.
    let ack = String::from_utf8(r.ack(s12.as_bytes(), "20261204", "A1")).unwrap();
    assert!(
        ack.contains("MSA|AA|MSG00012") && !ack.contains("ERR"),
        "{ack}"
    );
}

/// nHapiNET/nHapi, tests/NHapi.NUnit/Parser/PipeParserTests.cs (line 559):
/// MSH-9 is `ACK^`. Efferent-Health/HL7-V2, test/EncodingTests.cs (line 150):
/// MSH-9 is `ACK`.
#[test]
fn message_type_without_a_trigger_has_no_caret() {
    for rel in [
        "nhapi/ack_pipeparsertests_l559.hl7",
        "efferent-hl7-v2/ack_encodingtests_l150.hl7",
    ] {
        let r = report(&external(rel));
        assert_eq!(r.message_type.as_deref(), Some("ACK"), "{rel}");
        assert_eq!(
            field(&r, FieldName::MessageType).as_deref(),
            Some("ACK"),
            "{rel}"
        );
    }
}

/// An invalid birth date (`19791131`, no 31 November) in a real ADT and a real
/// SIU: left out in both and reported in both. microsoft/FHIR-Converter,
/// data/SampleData/Hl7v2/ADT-A08-01.hl7 and SIU-S12-01.hl7.
#[test]
fn an_invalid_birth_date_is_left_out_and_reported_in_adt_and_siu_alike() {
    let with_dob = |rel: &str| {
        let text = String::from_utf8(external(rel)).unwrap();
        let pid = text
            .split(['\r', '\n'])
            .find(|l| l.starts_with("PID|"))
            .unwrap()
            .to_owned();
        let mut fields: Vec<&str> = pid.split('|').collect();
        assert!(!fields[7].is_empty(), "{rel} has a PID-7");
        fields[7] = "19791131";
        report(text.replace(&pid, &fields.join("|")).as_bytes())
    };
    let adt = with_dob("fhir-converter/adt_a08_adt_a08_01.hl7");
    let siu = with_dob("fhir-converter/siu_s12_siu_s12_01.hl7");
    for r in [&adt, &siu] {
        assert_eq!(field(r, FieldName::PatientBirthDate), None);
        let issue = r
            .errors
            .iter()
            .find(|e| e.field == Some(FieldName::PatientBirthDate))
            .expect("the birth date is reported");
        assert!(issue.message.contains("present but invalid"), "{issue:?}");
        assert!(issue.message.contains("PID-7"), "{issue:?}");
        assert!(!issue.message.contains("19791131"), "no patient data");
    }
    // ADT does not require a birth date: the rest applies, with a warning.
    let issue = |r: &Report| {
        r.errors
            .iter()
            .find(|e| e.field == Some(FieldName::PatientBirthDate))
            .unwrap()
            .code
    };
    assert_eq!(issue(&adt), ErrorCode::InvalidValue);
    assert_eq!(adt.ack_code(), AckCode::Accept);
    let text = String::from_utf8(external("fhir-converter/adt_a08_adt_a08_01.hl7")).unwrap();
    let ack = String::from_utf8(adt.ack(text.as_bytes(), "20261204", "A1")).unwrap();
    assert!(ack.contains("|W|invalid_value^patient_birth_date"), "{ack}");
    // SIU does: the message fails with missing_field, as before.
    assert_eq!(issue(&siu), ErrorCode::MissingField);
    assert_eq!(siu.ack_code(), AckCode::Error);
}

/// Efferent-Health/HL7-V2, test/AckNackTests.cs (line 81): MSH-2 is `^~&`,
/// three encoding characters (no escape character).
#[test]
fn three_encoding_characters_are_accepted_with_a_warning() {
    let bytes = external("efferent-hl7-v2/orm_o01_acknacktests_l81.hl7");
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(msg.delimiters().escape, None);
    assert_eq!(msg.delimiters().subcomponent, Some(b'&'));
    let r = report(&bytes);
    assert!(!codes(&r).iter().any(|(c, _)| *c == ErrorCode::InvalidHl7));
    assert_eq!(r.message_type.as_deref(), Some("ORM^O01"));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.code == "three_encoding_characters"),
        "{:?}",
        r.warnings
    );
    // The ACK keeps the sender's three characters.
    let ack = r.ack(&bytes, "20261204", "A1");
    assert!(
        ack.starts_with(b"MSH|^~&|"),
        "{}",
        String::from_utf8_lossy(&ack)
    );
    // `^~\` (no subcomponents) reads the same message with `&` as text.
    let text = String::from_utf8(bytes).unwrap().replacen("^~&", "^~\\", 1);
    let msg = Message::parse(text.as_bytes()).unwrap();
    assert_eq!(msg.delimiters().subcomponent, None);
    assert_eq!(msg.delimiters().escape, Some(b'\\'));
}

/// The MSH-2 diagnostic counts characters: four characters, one of them two
/// bytes, on a real header (nHapi, PipeParserTests.cs line 559).
#[test]
fn msh2_diagnostics_count_characters_not_bytes() {
    let text = String::from_utf8(external("nhapi/ack_pipeparsertests_l559.hl7")).unwrap();
    let r = report(text.replacen("^~\\&", "^~\\§", 1).as_bytes());
    let message = &r.errors[0].message;
    assert_eq!(r.errors[0].code, ErrorCode::InvalidHl7);
    assert!(!message.contains("more than five"), "{message}");
    assert!(message.contains("ASCII punctuation"), "{message}");
}
