//! The decoding on hand-made bodies (empty fields, unreadable records, IDs
//! from links, errors that quote nothing) and on Cliniko's own examples.
use super::*;

#[test]
fn empty_and_null_fields_are_none() {
    let p = decode_one::<WirePatient>(
        br#"{"id": 9007199254740993, "first_name": "", "last_name": null, "sex": "",
             "gender": "Female", "patient_phone_numbers": null, "accepted_sms_marketing": "",
             "links": {"self": "https://api.au1.cliniko.com/v1/patients/9007199254740993"},
             "merged_with_patient": {"links": {"self": "https://api.au1.cliniko.com/v1/patients/7"}}}"#,
    )
    .unwrap();
    assert_eq!(p.id, "9007199254740993");
    assert_eq!(p.first_name, None);
    assert_eq!(p.last_name, None);
    assert_eq!(p.sex.as_deref(), Some("Female"));
    assert_eq!(p.accepted_sms_marketing, None);
    assert_eq!(p.merged_into_id.as_deref(), Some("7"));
    assert_eq!(p.updated_at, "");
}

#[test]
fn a_record_that_cannot_be_read_is_reported_and_the_page_kept() {
    let page = decode_list::<WirePatient>(
        br#"{"patients": [
              {"id": "1", "first_name": "Ada"},
              {"id": "2", "first_name": ["Secretname"]},
              {"first_name": "Nobody"},
              7
            ], "links": {}}"#,
        "patients",
    )
    .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, "1");
    assert_eq!(page.unreadable.len(), 3);
    assert_eq!(page.unreadable[0].cliniko_id.as_deref(), Some("2"));
    assert_eq!(
        page.unreadable[0].reason,
        "`first_name` is not in the documented shape"
    );
    assert_eq!(page.unreadable[1].cliniko_id, None);
    assert!(page.unreadable[2].reason.contains("not a JSON object"));
    for u in &page.unreadable {
        assert!(!u.reason.contains("Secretname") && !u.reason.contains("Nobody"));
    }
}

#[test]
fn ids_from_urls() {
    assert_eq!(
        id_from_url("https://x/v1/patients/12").as_deref(),
        Some("12")
    );
    assert_eq!(
        id_from_url("https://x/v1/patients/12/").as_deref(),
        Some("12")
    );
    assert_eq!(
        id_from_url("https://x/v1/patients/12?a=b").as_deref(),
        Some("12")
    );
    assert_eq!(id_from_url("https://x/v1/patients"), None);
    assert_eq!(id_from_url(""), None);
}

#[test]
fn errors_do_not_quote_the_body() {
    let e = decode_one::<WirePatient>(br#"{"id": "1", "first_name": ["Secretname"]}"#).unwrap_err();
    assert!(matches!(e, ClinikoError::Malformed(_)));
    assert!(!e.to_string().contains("Secretname"), "{e}");
    let e =
        decode_list::<WirePatient>(br#"{"patients": [{"first_name": "Secretname"}"#, "patients")
            .unwrap_err();
    assert!(matches!(e, ClinikoError::Malformed(_)));
    assert!(!e.to_string().contains("Secretname"), "{e}");
}

#[test]
fn list_without_its_array_is_malformed() {
    let e = decode_list::<WirePatient>(br#"{"people": []}"#, "patients").unwrap_err();
    assert!(matches!(e, ClinikoError::Malformed(_)));
    let e = decode_list::<WirePatient>(br#"[1, 2]"#, "patients").unwrap_err();
    assert!(matches!(e, ClinikoError::Malformed(_)));
}

/// Cliniko's own example responses (`infra/fake-cliniko/docs/`, from the
/// `redguava/cliniko-api` repository; each test names its page).
macro_rules! docs {
    ($file:literal) => {
        include_bytes!(concat!("../../../../infra/fake-cliniko/docs/", $file))
    };
}

fn one_of<W: Wire>(body: &[u8], key: &str) -> W::Record {
    let mut page = decode_list::<W>(body, key).unwrap();
    assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
    assert_eq!(page.items.len(), 1);
    page.items.remove(0)
}

/// sections/patients.md, "Get Patients": an integer ID, `""` for empty
/// dates, `patient_phone_numbers` given twice (the last wins), free-text
/// `sex` beside the deprecated `gender`, the country in words.
#[test]
fn docs_patients() {
    let p = one_of::<WirePatient>(docs!("patients.json"), "patients");
    assert_eq!(p.id, "1");
    assert_eq!(p.first_name.as_deref(), Some("Peter"));
    assert_eq!(p.last_name.as_deref(), Some("Patientman"));
    assert_eq!(p.date_of_birth.as_deref(), Some("2001-05-26"));
    assert_eq!(p.sex.as_deref(), Some("Female to Male"));
    assert_eq!(p.email.as_deref(), Some("peter@example.com"));
    assert_eq!(p.country.as_deref(), Some("Australia"));
    assert_eq!(p.time_zone.as_deref(), Some("Australia/Melbourne"));
    assert_eq!(p.archived_at, None);
    assert_eq!(p.deleted_at, None);
    assert_eq!(p.updated_at, "2013-03-26T14:00:00Z");
    let phones: Vec<(&str, &str)> = p
        .phone_numbers
        .iter()
        .map(|n| (n.phone_type.as_deref().unwrap(), n.number.as_str()))
        .collect();
    assert_eq!(phones, [("Mobile", "61444444444"), ("Home", "61399999999")]);
    let single = decode_one::<WirePatient>(docs!("patient.json")).unwrap();
    assert_eq!(single, p);
}

/// sections/patients.md, "Get Archived Patients": a merged patient
/// links the one it was merged into.
#[test]
fn docs_archived_patients() {
    let p = one_of::<WirePatient>(docs!("patients_archived.json"), "patients");
    assert_eq!(p.archived_at.as_deref(), Some("2013-06-05T14:37:18Z"));
    assert_eq!(p.merged_at.as_deref(), Some("2013-06-05T14:37:18Z"));
    assert_eq!(p.merged_into_id.as_deref(), Some("1001"));
}

/// sections/patients.md, "Get Deleted Patients": no `id`, only
/// `deleted_at` and `links.self`.
#[test]
fn docs_deleted_patients() {
    let p = one_of::<WirePatient>(docs!("patients_deleted.json"), "patients");
    assert_eq!(p.id, "1");
    assert_eq!(p.deleted_at.as_deref(), Some("2013-06-05T14:38:48Z"));
    assert_eq!(p.updated_at, "2013-06-05T14:38:48Z");
    assert_eq!(p.first_name, None);
}

/// sections/practitioners.md, "Get Practitioners" (a string ID) and
/// "Get Inactive Practitioners" (an integer ID).
#[test]
fn docs_practitioners() {
    let p = one_of::<WirePractitioner>(docs!("practitioners.json"), "practitioners");
    assert_eq!(p.id, "514810972972521916");
    assert_eq!(p.first_name.as_deref(), Some("Randy"));
    assert_eq!(p.last_name.as_deref(), Some("Savage"));
    let p = one_of::<WirePractitioner>(docs!("practitioners_inactive.json"), "practitioners");
    assert_eq!(p.id, "3");
    assert_eq!(p.first_name.as_deref(), Some("Andy"));
}

/// sections/appointment_types.md, "Get Appointment Types" and "Get
/// Archived Appointment Types".
#[test]
fn docs_appointment_types() {
    let t = one_of::<WireAppointmentType>(docs!("appointment_types.json"), "appointment_types");
    assert_eq!(
        (t.id.as_str(), t.name.as_str(), t.archived),
        ("514810976034364376", "Initial Consultation", false)
    );
    let t = one_of::<WireAppointmentType>(
        docs!("appointment_types_archived.json"),
        "appointment_types",
    );
    assert!(t.archived);
}

/// sections/businesses.md, "Get Businesses": `total_entires` (sic) and
/// the country both as words and as `country_code`.
#[test]
fn docs_businesses() {
    let b = one_of::<WireBusiness>(docs!("businesses.json"), "businesses");
    assert_eq!(b.id, "514810976554457178");
    assert_eq!(b.name.as_deref(), Some("Healthy Times"));
    assert_eq!(b.country.as_deref(), Some("AU"));
    // The 2022 example predates `time_zone_identifier`.
    assert_eq!(b.time_zone, None);
}

/// sections/individual_appointments.md: "Get Individual Appointments",
/// "Get Cancelled Individual Appointments", "Get Deleted Individual
/// Appointments" (the last with a trailing comma removed, see SOURCES.md).
#[test]
fn docs_individual_appointments() {
    let key = "individual_appointments";
    let a = one_of::<WireAppointment>(docs!("individual_appointments.json"), key);
    assert_eq!(a.id, "1");
    assert_eq!(a.patient_id.as_deref(), Some("82"));
    assert_eq!(a.practitioner_id.as_deref(), Some("1"));
    assert_eq!(a.appointment_type_id.as_deref(), Some("2"));
    assert_eq!(a.business_id.as_deref(), Some("1"));
    assert_eq!(a.starts_at, "2016-07-21T03:45:00Z");
    assert_eq!(
        (a.cancelled_at.as_deref(), a.deleted_at.as_deref()),
        (None, None)
    );
    let page = decode_list::<WireAppointment>(docs!("individual_appointments.json"), key).unwrap();
    assert_eq!(
        page.links.next.as_deref(),
        Some("https://api.au1.cliniko.com/v1/individual_appointments?page=2")
    );
    let c = one_of::<WireAppointment>(docs!("individual_appointments_cancelled.json"), key);
    assert_eq!(c.cancelled_at.as_deref(), Some("2016-07-22T15:10:08Z"));
    let d = one_of::<WireAppointment>(docs!("individual_appointments_deleted.json"), key);
    assert_eq!(d.deleted_at.as_deref(), Some("2016-07-22T15:10:08Z"));
}

/// sections/patient_cases.md, "Get Patient Cases".
#[test]
fn docs_patient_cases() {
    let c = one_of::<WireCase>(docs!("patient_cases.json"), "patient_cases");
    assert_eq!(c.id, "566562806174843905");
    assert_eq!(c.name, "Case One");
    assert!(!c.closed);
    assert_eq!(c.patient_id.as_deref(), Some("372481449527346255"));
}

/// sections/group_appointments.md, "Get Group Appointments" and "Get
/// Deleted Group Appointments".
#[test]
fn docs_group_appointments() {
    let key = "group_appointments";
    let g = one_of::<WireGroupAppointment>(docs!("group_appointments.json"), key);
    assert_eq!(g.id, "1");
    assert_eq!(g.practitioner_id.as_deref(), Some("1"));
    assert_eq!(g.appointment_type_id.as_deref(), Some("7"));
    assert_eq!(g.business_id.as_deref(), Some("1"));
    assert_eq!(g.starts_at, "2016-07-13T03:45:00Z");
    assert_eq!(g.deleted_at, None);
    let d = one_of::<WireGroupAppointment>(docs!("group_appointments_deleted.json"), key);
    assert_eq!(d.deleted_at.as_deref(), Some("2016-07-12T20:13:42Z"));
}

/// sections/attendees.md: "Get Attendees", "Get Cancelled Attendees"
/// (its broken `null"…"` value mended, see SOURCES.md) and "Get Deleted
/// Attendees". The class is the booking.
#[test]
fn docs_attendees() {
    let a = one_of::<WireAttendee>(docs!("attendees.json"), "attendees");
    assert_eq!(a.id, "1");
    assert_eq!(a.patient_id.as_deref(), Some("82"));
    assert_eq!(a.booking_id.as_deref(), Some("1"));
    assert!(!a.arrived);
    let c = one_of::<WireAttendee>(docs!("attendees_cancelled.json"), "attendees");
    assert_eq!(c.cancelled_at.as_deref(), Some("2016-06-28T21:33:26Z"));
    let d = one_of::<WireAttendee>(docs!("attendees_deleted.json"), "attendees");
    assert_eq!(d.deleted_at.as_deref(), Some("2016-06-28T21:33:26Z"));
}
