//! Extraction end to end on the worked example: fallback chains, the rules
//! beyond "first non-empty", time zones, org overrides and invalid values.
use jiff::tz::TimeZone;
use tendon_hl7::Message;

use super::{FieldMap, MapContext, MappedMessage, extract};
use crate::{AppointmentStatus, CaseStatus, FieldName};

const WORKED: &str = include_str!("../../../../examples/worked-example.hl7");

fn map_with(input: &str, ctx: &MapContext) -> MappedMessage {
    extract(&Message::parse(input.as_bytes()).unwrap(), ctx)
}

fn map(input: &str) -> MappedMessage {
    map_with(input, &MapContext::default())
}

#[test]
fn msh7_without_an_offset_is_read_in_the_clinics_zone() {
    let at =
        |input: &str, ctx: &MapContext| map_with(input, ctx).message_time.map(|t| t.to_string());
    let mut ctx = MapContext {
        time_zone: TimeZone::get("America/Los_Angeles").unwrap(),
        ..MapContext::default()
    };
    let with_offset = at(WORKED, &ctx);
    assert_eq!(with_offset.as_deref(), Some("2026-11-20T17:30:00Z"));
    let bare = WORKED.replace("20261120093000-0800", "20261120093000");
    assert_eq!(
        at(&bare, &ctx),
        with_offset,
        "the same instant, read in the org's zone"
    );
    // The appointment's location (Clinic ID 12) has a zone of its own.
    ctx.location_time_zones
        .insert("12".into(), TimeZone::get("America/New_York").unwrap());
    assert_eq!(at(&bare, &ctx).as_deref(), Some("2026-11-20T14:30:00Z"));
}

#[test]
fn patient_id_prefers_the_mr_repetition() {
    assert_eq!(map(WORKED).patient_id.as_deref(), Some("P555"));
    let no_mr = WORKED.replace("P555^^^ACME^MR", "P555^^^ACME^PI");
    assert_eq!(map(&no_mr).patient_id.as_deref(), Some("X-991"));
}

#[test]
fn email_falls_back_to_any_component_with_an_at_sign() {
    let input = WORKED.replace(
        "^NET^Internet^ana.rivera@example.com",
        "^PRN^PH^^^^^^^ana@example.org",
    );
    assert_eq!(
        map(&input).patient_email.as_deref(),
        Some("ana@example.org")
    );
    let in_pid14 = WORKED.replace(
        "~^NET^Internet^ana.rivera@example.com\r",
        "|work@example.net\r",
    );
    assert_eq!(
        map(&in_pid14).patient_email.as_deref(),
        Some("work@example.net")
    );
}

#[test]
fn mobile_from_parts_then_from_the_first_untyped_number() {
    let input = WORKED.replace("^PRN^CP^^1^503^5550101", "(971) 555-0199^PRN^CP");
    assert_eq!(map(&input).patient_mobile.as_deref(), Some("+19715550199"));
    // A landline, fax, pager or address is never the mobile...
    for kind in ["PH", "FX", "BP", "MD", "TDD", "TTY", "Internet", "X.400"] {
        let typed = WORKED.replace(
            "^PRN^PH^^1^503^5550100~^PRN^CP^^1^503^5550101~",
            &format!("503.555.0123^PRN^{kind}~"),
        );
        assert_eq!(map(&typed).patient_mobile, None, "{kind}");
    }
    // ...but the first number without a type may be.
    let untyped = WORKED.replace(
        "^PRN^PH^^1^503^5550100~^PRN^CP^^1^503^5550101~",
        "503.555.0100^PRN^PH~503.555.0123~",
    );
    assert_eq!(
        map(&untyped).patient_mobile.as_deref(),
        Some("+15035550123")
    );
}

#[test]
fn fallback_chains() {
    let no_sch2 = WORKED.replace("SCH|PL-77|A9001|", "SCH|PL-77||");
    assert_eq!(map(&no_sch2).appointment_id.as_deref(), Some("PL-77"));
    let no_ail = WORKED.replace("AIL|1||12^^^Salem Clinic", "AIL|1||");
    assert_eq!(map(&no_ail).clinic_id.as_deref(), Some("12"));
    let type_from_ais = WORKED.replace("|IE^Initial Eval|45|", "||45|");
    assert_eq!(
        map(&type_from_ais).appointment_type.as_deref(),
        Some("Initial Eval")
    );
    let start_from_ais = WORKED.replace("^^45^202612011000", "").replace(
        "AIS|1||IE^Initial Eval|202612011000",
        "AIS|1||IE^Initial Eval|202612011030",
    );
    assert_eq!(
        map(&start_from_ais)
            .appointment_start
            .map(|z| z.time().minute()),
        Some(30)
    );
    let desc_from_dg1 = WORKED.replace(
        "PV2|||M75.1^Right Shoulder\r",
        "DG1|1||M75.1^Shoulder pain^I10|Rotator cuff\r",
    );
    assert_eq!(
        map(&desc_from_dg1).case_description.as_deref(),
        Some("Rotator cuff")
    );
}

#[test]
fn trigger_event_wins_over_sch25() {
    for (trigger, want) in [
        ("S15", AppointmentStatus::Canceled),
        ("S17", AppointmentStatus::Deleted),
        ("S26", AppointmentStatus::NoShow),
    ] {
        let input = WORKED.replace("SIU^S12^SIU_S12", &format!("SIU^{trigger}"));
        assert_eq!(map(&input).appointment_status, Some(want));
    }
    let arrived = WORKED.replace("||Booked", "||Arrived");
    assert_eq!(
        map(&arrived).appointment_status,
        Some(AppointmentStatus::Arrived)
    );
}

#[test]
fn appointment_time_uses_the_location_zone_unless_it_has_an_offset() {
    let mut ctx = MapContext::default();
    ctx.location_time_zones
        .insert("12".into(), TimeZone::get("America/Los_Angeles").unwrap());
    assert_eq!(
        map_with(WORKED, &ctx)
            .get(FieldName::AppointmentStart)
            .as_deref(),
        Some("2026-12-01T10:00:00-08:00")
    );
    assert_eq!(
        map(WORKED).get(FieldName::AppointmentStart).as_deref(),
        Some("2026-12-01T10:00:00-05:00")
    );
    let with_offset = WORKED.replace("^^45^202612011000", "^^45^202612011000+0100");
    assert_eq!(
        map_with(&with_offset, &ctx)
            .get(FieldName::AppointmentStart)
            .as_deref(),
        Some("2026-12-01T10:00:00+01:00")
    );
}

#[test]
fn overrides_replace_the_default_path_and_keep_normalisation() {
    let mut ctx = MapContext::default();
    ctx.field_map.set_str("patient_id", "PID-3(1).1").unwrap();
    ctx.field_map
        .set_str("case_id", "PV1-50.1, PV1-19.1")
        .unwrap();
    ctx.field_map
        .set_str("patient_birth_date", "PID-29")
        .unwrap();
    let m = map_with(WORKED, &ctx);
    assert_eq!(m.patient_id.as_deref(), Some("X-991"));
    assert_eq!(
        m.case_id.as_deref(),
        Some("C-42"),
        "falls through to the second path"
    );
    assert_eq!(m.patient_birth_date, None, "PID-29 is empty");
    assert!(
        ctx.field_map
            .describe(FieldName::CaseId)
            .contains("PV1-50.1 or PV1-19.1 (org override)")
    );

    assert!(ctx.field_map.set_str("control_id", "MSH-11").is_err());
    assert!(ctx.field_map.set_str("nope", "PID-3").is_err());
    assert!(ctx.field_map.set_str("patient_id", "PID-3(").is_err());

    let json = serde_json::to_string(&ctx.field_map).unwrap();
    assert_eq!(
        json,
        r#"{"case_id":["PV1-50.1","PV1-19.1"],"patient_birth_date":["PID-29"],"patient_id":["PID-3(1).1"]}"#
    );
    let back: FieldMap = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ctx.field_map);
}

#[test]
fn invalid_values_are_recorded_with_their_path() {
    let input = WORKED
        .replace("|19850312|F|", "|1985|F|")
        .replace("^^45^202612011000", "^^45^tomorrow");
    let m = map(&input);
    assert_eq!(m.patient_birth_date, None);
    let bad = m.invalid(FieldName::PatientBirthDate).unwrap();
    assert_eq!(bad.path.to_string(), "PID-7");
    assert!(m.invalid(FieldName::AppointmentStart).is_some());
    assert_eq!(m.count_present(), map(WORKED).count_present() - 2);
}

#[test]
fn case_status_needs_a_pv1() {
    assert_eq!(map(WORKED).case_status, Some(CaseStatus::Active));
    let adt = "MSH|^~\\&|A|B|||2026||ADT^A08|1|P|2.5\rPID|1||P1||Doe^Jo";
    assert_eq!(map(adt).case_status, None);
}
