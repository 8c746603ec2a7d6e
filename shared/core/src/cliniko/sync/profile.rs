//! What one Cliniko profile does to its patient record, decided without
//! I/O: the required fields, the free-text sex, the regions phone numbers
//! are read in, and the write and events of [`decide`].
use jiff::Timestamp;

use crate::Gender;
use crate::cliniko::api::ClinikoPatient;
use crate::model::{DomainEvent, EventKind, Patient, PatientRecord, Source};
use crate::normalize;
use crate::ports::RecordWrite;

/// The required Cliniko fields, by their Cliniko names.
pub const REQUIRED: [&str; 5] = ["first_name", "last_name", "date_of_birth", "sex", "email"];

/// What happened to one profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    /// Not imported: these required fields are missing.
    Failed(Vec<&'static str>),
    /// Archived, deleted or merged in Cliniko: the record is now inactive.
    Deactivated,
    /// Nothing to do: an inactive profile never imported, or a record of the
    /// same ID that did not come from Cliniko.
    Ignored,
}

pub(super) fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn birth_date(p: &ClinikoPatient) -> Option<String> {
    let raw = present(&p.date_of_birth)?;
    raw.parse::<jiff::civil::Date>().ok().map(|d| d.to_string())
}

/// The required fields a profile lacks (a date of birth, sex or email that
/// cannot be read counts as missing).
pub fn missing_fields(p: &ClinikoPatient) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if present(&p.first_name).is_none() {
        missing.push("first_name");
    }
    if present(&p.last_name).is_none() {
        missing.push("last_name");
    }
    if birth_date(p).is_none() {
        missing.push("date_of_birth");
    }
    // Free text in Cliniko: any value is a value (the deprecated `gender`
    // stands in when `sex` is empty).
    if present(&p.sex).is_none() {
        missing.push("sex");
    }
    if present(&p.email).and_then(normalize::email).is_none() {
        missing.push("email");
    }
    missing
}

/// Cliniko's free-text `sex` as the contract's codes: the words clinics
/// use for female and male (and their one-letter forms), the ones that say
/// it is not known; anything else a clinic types (`AFAB`, `Female to Male`,
/// `Intersex`) is `other`, its text kept beside it.
pub fn sex(text: &str) -> Gender {
    let key: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    match key.as_str() {
        "f" | "female" | "woman" | "girl" => Gender::Female,
        "m" | "male" | "man" | "boy" => Gender::Male,
        "u" | "unknown" | "notknown" | "notstated" | "notspecified" | "prefernottosay"
        | "undisclosed" => Gender::Unknown,
        _ => Gender::Other,
    }
}

/// The region a profile's numbers are read in: the patient's country,
/// else the clinic's (`fallback`: its business's, else its shard's).
pub fn phone_region(p: &ClinikoPatient, fallback: Option<&str>) -> Option<String> {
    present(&p.country)
        .and_then(normalize::country_code)
        .or_else(|| fallback.map(str::to_owned))
}

/// The region of a shard: `au*` AU, `uk*` GB, `ca*` CA, `us*` US, `nz*` NZ.
pub fn shard_region(shard: &str) -> Option<&'static str> {
    let prefix = shard.get(..2)?.to_ascii_lowercase();
    match prefix.as_str() {
        "au" => Some("AU"),
        "uk" => Some("GB"),
        "ca" => Some("CA"),
        "us" => Some("US"),
        "nz" => Some("NZ"),
        _ => None,
    }
}

/// The first number typed `Mobile` that reads as a phone number in
/// `region` (E.164). A home, work or fax number is never the mobile.
fn mobile(p: &ClinikoPatient, region: Option<&str>) -> Option<String> {
    p.phone_numbers
        .iter()
        .filter(|n| {
            n.phone_type
                .as_deref()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("mobile"))
        })
        .find_map(|n| normalize::phone_in_region(&n.number, region))
}

/// Why an inactive profile is inactive.
fn inactive_reason(p: &ClinikoPatient) -> Option<&'static str> {
    if present(&p.merged_at).is_some() {
        Some("merged")
    } else if present(&p.deleted_at).is_some() {
        Some("deleted")
    } else if present(&p.archived_at).is_some() {
        Some("archived")
    } else {
        None
    }
}

/// The `patient_created` event of a profile: one per (org, profile), however
/// often it is synced.
fn created_event(org: &str, patient_id: &str, now: Timestamp) -> DomainEvent {
    let message_id = format!("cliniko:{patient_id}");
    DomainEvent {
        id: format!("{message_id}:patient_created:{patient_id}"),
        org: org.to_owned(),
        kind: EventKind::PatientCreated,
        patient_id: patient_id.to_owned(),
        case_id: None,
        appointment_id: None,
        at: now,
        message_id,
    }
}

/// What a profile does to its record: the write (if any), the events, and
/// the outcome. Pure.
/// `region` is the clinic's region for phone numbers written without a
/// country code ([`phone_region`]'s fallback).
pub fn decide(
    org: &str,
    profile: &ClinikoPatient,
    local: Option<&PatientRecord>,
    region: Option<&str>,
    now: Timestamp,
) -> (Option<RecordWrite>, Vec<DomainEvent>, Outcome) {
    if local.is_some_and(|r| r.patient.source != Source::Cliniko) {
        return (None, Vec::new(), Outcome::Ignored);
    }
    // A profile older than the one applied (a page read before an "Open in"
    // click fetched a newer one) changes nothing.
    let this = profile.updated_at.parse::<Timestamp>().ok();
    let stale = |r: &PatientRecord| matches!((r.patient.demographics_at, this), (Some(seen), Some(this)) if this < seen);
    if let Some(reason) = inactive_reason(profile) {
        let Some(rec) = local else {
            return (None, Vec::new(), Outcome::Ignored);
        };
        let merged_into = if reason == "merged" {
            present(&profile.merged_into_id).map(str::to_owned)
        } else {
            None
        };
        if stale(rec)
            || (rec.patient.inactive.as_deref() == Some(reason)
                && rec.patient.merged_into == merged_into)
        {
            return (None, Vec::new(), Outcome::Unchanged);
        }
        let mut next = rec.clone();
        next.patient.inactive = Some(reason.to_owned());
        next.patient.merged_into = merged_into;
        next.patient.demographics_at = this;
        next.version = rec.version + 1;
        let write = RecordWrite {
            record: next,
            expected_version: Some(rec.version),
        };
        return (Some(write), Vec::new(), Outcome::Deactivated);
    }
    let missing = missing_fields(profile);
    if !missing.is_empty() {
        return (None, Vec::new(), Outcome::Failed(missing));
    }
    if local.is_some_and(stale) {
        return (None, Vec::new(), Outcome::Unchanged);
    }
    let text = |v: &Option<String>| present(v).unwrap_or_default().to_owned();
    let fill = |p: &mut Patient| {
        p.first_name = text(&profile.first_name);
        p.last_name = text(&profile.last_name);
        p.birth_date = birth_date(profile);
        p.gender = present(&profile.sex).map(sex);
        p.sex_label = present(&profile.sex).map(str::to_owned);
        p.email = present(&profile.email).and_then(normalize::email);
        p.mobile = mobile(profile, phone_region(profile, region).as_deref());
        p.inactive = None;
        p.merged_into = None;
    };
    match local {
        Some(rec) => {
            let mut next = rec.clone();
            fill(&mut next.patient);
            if next.patient == rec.patient {
                return (None, Vec::new(), Outcome::Unchanged);
            }
            next.patient.demographics_at = this;
            next.version = rec.version + 1;
            let write = RecordWrite {
                record: next,
                expected_version: Some(rec.version),
            };
            (Some(write), Vec::new(), Outcome::Updated)
        }
        None => {
            let mut record = PatientRecord::new_patient(&profile.id, Source::Cliniko, now);
            record.patient.demographics_at = this;
            fill(&mut record.patient);
            let write = RecordWrite {
                record,
                expected_version: None,
            };
            let event = created_event(org, &profile.id, now);
            (Some(write), vec![event], Outcome::Created)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cliniko::api::ClinikoPhone;

    fn profile() -> ClinikoPatient {
        ClinikoPatient {
            id: "1234567890123456789".into(),
            first_name: Some("Ana".into()),
            last_name: Some("Rivera".into()),
            date_of_birth: Some("1985-03-12".into()),
            sex: Some("Female".into()),
            email: Some("ana@example.com".into()),
            phone_numbers: vec![
                ClinikoPhone {
                    phone_type: Some("Home".into()),
                    number: "+61 3 9999 9999".into(),
                },
                ClinikoPhone {
                    phone_type: Some("Mobile".into()),
                    number: "+61 444 444 444".into(),
                },
            ],
            updated_at: "2026-11-20T10:00:00Z".into(),
            ..Default::default()
        }
    }

    const NOW: Timestamp = Timestamp::constant(1_795_219_200, 0); // 2026-11-21T00:00:00Z

    #[test]
    fn every_required_field_is_checked_by_its_cliniko_name() {
        assert!(missing_fields(&profile()).is_empty());
        let blank = ClinikoPatient {
            id: "1".into(),
            first_name: Some("  ".into()),
            date_of_birth: Some("12/03/1985".into()),
            sex: Some("".into()),
            email: Some("not-an-address".into()),
            ..Default::default()
        };
        assert_eq!(missing_fields(&blank), REQUIRED);
    }

    #[test]
    fn a_new_profile_creates_a_record_with_its_default_episode_and_one_event() {
        let (write, events, outcome) = decide("ORG", &profile(), None, Some("AU"), NOW);
        assert_eq!(outcome, Outcome::Created);
        let write = write.unwrap();
        assert_eq!(write.expected_version, None);
        let p = &write.record.patient;
        assert_eq!(p.id, "1234567890123456789");
        assert_eq!(p.source, Source::Cliniko);
        assert_eq!(p.birth_date.as_deref(), Some("1985-03-12"));
        assert_eq!(p.gender, Some(crate::Gender::Female));
        assert_eq!(p.mobile.as_deref(), Some("+61444444444"));
        assert_eq!(write.record.episodes.len(), 1);
        assert!(write.record.episodes[0].default);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::PatientCreated);
        // The same profile again: the same event ID.
        let (_, again, _) = decide(
            "ORG",
            &profile(),
            None,
            Some("AU"),
            "2026-11-22T00:00:00Z".parse().unwrap(),
        );
        assert_eq!(again[0].id, events[0].id);
    }

    #[test]
    fn a_cliniko_edit_overwrites_and_the_same_profile_changes_nothing() {
        let (write, _, _) = decide("ORG", &profile(), None, Some("AU"), NOW);
        let rec = write.unwrap().record;
        assert_eq!(
            decide("ORG", &profile(), Some(&rec), Some("AU"), NOW).2,
            Outcome::Unchanged
        );
        let mut edited = profile();
        edited.last_name = Some("Rivera-Lopez".into());
        edited.updated_at = "2026-11-20T11:00:00Z".into();
        let (write, events, outcome) = decide("ORG", &edited, Some(&rec), Some("AU"), NOW);
        assert_eq!(outcome, Outcome::Updated);
        assert!(events.is_empty());
        let write = write.unwrap();
        assert_eq!(write.expected_version, Some(1));
        assert_eq!(write.record.patient.last_name, "Rivera-Lopez");
        // An older copy of the profile does not undo the edit.
        let newer = write.record;
        assert_eq!(
            decide("ORG", &profile(), Some(&newer), Some("AU"), NOW).2,
            Outcome::Unchanged
        );
    }

    #[test]
    fn archived_deleted_and_merged_profiles_deactivate_known_records_only() {
        let (write, _, _) = decide("ORG", &profile(), None, Some("AU"), NOW);
        let rec = write.unwrap().record;
        for (field, reason) in [
            ("archived", "archived"),
            ("deleted", "deleted"),
            ("merged", "merged"),
        ] {
            let mut p = profile();
            p.updated_at = "2026-11-20T12:00:00Z".into();
            match field {
                "archived" => p.archived_at = Some("2026-11-20T12:00:00Z".into()),
                "deleted" => p.deleted_at = Some("2026-11-20T12:00:00Z".into()),
                _ => {
                    p.merged_at = Some("2026-11-20T12:00:00Z".into());
                    p.merged_into_id = Some("99".into());
                }
            }
            let (write, _, outcome) = decide("ORG", &p, Some(&rec), Some("AU"), NOW);
            assert_eq!(outcome, Outcome::Deactivated, "{field}");
            let after = write.unwrap().record;
            assert_eq!(after.patient.inactive.as_deref(), Some(reason));
            assert_eq!(
                after.patient.merged_into.as_deref(),
                (field == "merged").then_some("99")
            );
            assert_eq!(
                decide("ORG", &p, Some(&after), Some("AU"), NOW).2,
                Outcome::Unchanged
            );
            assert_eq!(decide("ORG", &p, None, Some("AU"), NOW).2, Outcome::Ignored);
        }
    }

    #[test]
    fn a_record_from_the_emr_is_never_overwritten() {
        let (write, _, _) = decide("ORG", &profile(), None, Some("AU"), NOW);
        let mut rec = write.unwrap().record;
        rec.patient.source = Source::Emr;
        assert_eq!(
            decide("ORG", &profile(), Some(&rec), Some("AU"), NOW).2,
            Outcome::Ignored
        );
    }

    #[test]
    fn free_text_sex_maps_to_the_contract_and_is_never_missing() {
        for (text, want) in [
            ("Female", Gender::Female),
            ("f", Gender::Female),
            ("Woman", Gender::Female),
            ("MALE", Gender::Male),
            ("Not stated", Gender::Unknown),
            ("Prefer not to say", Gender::Unknown),
            ("AFAB", Gender::Other),
            ("AMAB", Gender::Other),
            ("Female to Male", Gender::Other),
            ("Intersex", Gender::Other),
        ] {
            assert_eq!(sex(text), want, "{text}");
            let p = ClinikoPatient {
                sex: Some(text.into()),
                ..profile()
            };
            assert!(missing_fields(&p).is_empty(), "{text}");
            let (write, _, _) = decide("ORG", &p, None, Some("AU"), NOW);
            let patient = write.unwrap().record.patient;
            assert_eq!(patient.gender, Some(want));
            assert_eq!(patient.sex_label.as_deref(), Some(text));
        }
    }

    #[test]
    fn mobiles_are_read_in_the_patients_region_else_the_clinics() {
        let with = |country: Option<&str>, number: &str| ClinikoPatient {
            country: country.map(str::to_owned),
            phone_numbers: vec![ClinikoPhone {
                phone_type: Some("Mobile".into()),
                number: number.into(),
            }],
            ..profile()
        };
        let mobile_of = |p: &ClinikoPatient, clinic: Option<&str>| {
            decide("ORG", p, None, clinic, NOW)
                .0
                .unwrap()
                .record
                .patient
                .mobile
        };
        // The clinic's region (its business, else its shard)...
        assert_eq!(
            mobile_of(&with(None, "0412 345 678"), Some("AU")).as_deref(),
            Some("+61412345678")
        );
        // ...unless the patient's country says otherwise.
        assert_eq!(
            mobile_of(&with(Some("United Kingdom"), "07700 900123"), Some("AU")).as_deref(),
            Some("+447700900123")
        );
        assert_eq!(mobile_of(&with(None, "0412 345 678"), None), None);
        assert_eq!(shard_region("au3"), Some("AU"));
        assert_eq!(shard_region("UK2"), Some("GB"));
        assert_eq!(shard_region("eu1"), None);
    }
}
