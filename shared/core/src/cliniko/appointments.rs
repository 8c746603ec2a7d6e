//! Cliniko appointments and cases into episodes of care and appointments,
//! through the same rules as an EMR's SIU messages ([`rules::episode_step`]):
//! a Cliniko appointment is read as the fields an SIU would carry, so a
//! Cliniko clinic gets Case EOCs (created by an Initial Evaluation, the
//! org's IE types matched by name) and every appointment-driven workflow
//! trigger, exactly as an integrated EMR clinic does.
//!
//! How Cliniko's records map:
//! - the appointment's type is the name of its `appointment_type`;
//! - its case is its `patient_case` (named after the case); an appointment
//!   without one belongs to the patient's one case `cliniko:<patient id>`
//!   ("Cliniko care"), so clinics that do not use cases still get an EOC;
//! - its location is its business, a location the sync adds to the org
//!   (`Cliniko business <id>`, the org's zone) the first time it sees it;
//! - its practitioner is a Cliniko practitioner, which the sync adds to
//!   the org (practitioners are never created from EMR messages; Cliniko's
//!   own list is the source here);
//! - its status: deleted or archived → `deleted`, `cancelled_at` →
//!   `canceled`, `did_not_arrive` → `no_show`, `patient_arrived` →
//!   `arrived`, else `scheduled`;
//! - its `updated_at` orders updates, as MSH-7 does (an older copy never
//!   overwrites a newer one); a closed case discharges its episode.
use std::collections::HashMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::api::{
    ClinikoAppointment, ClinikoAttendee, ClinikoBusiness, ClinikoCase, ClinikoGroupAppointment,
};
use crate::event_effects::{enrol_marked, enrolments, pending_steps, step_updates};
use crate::mapping::{MappedMessage, Therapist};
use crate::org::{Location, OrgConfig, Practitioner};
use crate::ports::{CommitOutcome, RecordCommit, StoreError, SyncStore};
use crate::rules::{self, Context, Decision};
use crate::{AppointmentStatus, CaseStatus, MessageType};

/// The case of an appointment that names none.
pub fn default_case_id(patient_id: &str) -> String {
    format!("cliniko:{patient_id}")
}

/// The location of an appointment without a business.
pub const NO_BUSINESS: &str = "cliniko";

/// The location ID of a Cliniko business.
pub fn location_id(business_id: Option<&str>) -> String {
    business_id.unwrap_or(NO_BUSINESS).to_owned()
}

pub fn status(a: &ClinikoAppointment) -> AppointmentStatus {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if set(&a.deleted_at) || set(&a.archived_at) {
        AppointmentStatus::Deleted
    } else if set(&a.cancelled_at) {
        AppointmentStatus::Canceled
    } else if a.did_not_arrive {
        AppointmentStatus::NoShow
    } else if a.patient_arrived {
        AppointmentStatus::Arrived
    } else {
        AppointmentStatus::Scheduled
    }
}

/// An appointment as the fields an SIU message would carry.
pub fn as_message(
    config: &OrgConfig,
    a: &ClinikoAppointment,
    patient_id: &str,
    type_name: Option<&str>,
    case: Option<&ClinikoCase>,
) -> MappedMessage {
    let location = location_id(a.business_id.as_deref());
    let zone = config
        .location(&location)
        .and_then(|l| l.timezone.clone())
        .unwrap_or_else(|| config.org.timezone.clone());
    let zone = TimeZone::get(&zone).unwrap_or(TimeZone::UTC);
    let (case_id, case_description) = match (&a.patient_case_id, case) {
        (Some(id), Some(c)) => (id.clone(), Some(c.name.clone())),
        (Some(id), None) => (id.clone(), None),
        (None, _) => (default_case_id(patient_id), Some("Cliniko care".to_owned())),
    };
    MappedMessage {
        account_id: Some(config.org.id.clone()),
        control_id: Some(a.id.clone()),
        message_type: Some(MessageType {
            code: "SIU".to_owned(),
            trigger: "S14".to_owned(),
        }),
        message_time: a.updated_at.parse().ok(),
        patient_id: Some(patient_id.to_owned()),
        appointment_id: Some(a.id.clone()),
        clinic_id: Some(location),
        appointment_type: type_name.map(str::to_owned),
        appointment_start: a
            .starts_at
            .parse::<Timestamp>()
            .ok()
            .map(|t| t.to_zoned(zone)),
        appointment_status: Some(status(a)),
        case_id: Some(case_id),
        case_description,
        case_status: Some(if case.is_some_and(|c| c.closed) {
            CaseStatus::Inactive
        } else {
            CaseStatus::Active
        }),
        treating_therapist: Therapist {
            id: a.practitioner_id.clone(),
            ..Therapist::default()
        },
        ..MappedMessage::default()
    }
}

/// A patient's place in a class as the appointment it is for them: the
/// class's time, practitioner, type and business; the place's own arrival
/// and cancellation (a deleted class deletes every place in it). Its ID is
/// `attendee:<id>`, apart from individual appointments' IDs.
pub fn class_place(group: &ClinikoGroupAppointment, place: &ClinikoAttendee) -> ClinikoAppointment {
    // The later of the two: either changing is a new version of the place.
    let updated_at = match (
        group.updated_at.parse::<Timestamp>(),
        place.updated_at.parse::<Timestamp>(),
    ) {
        (Ok(g), Ok(p)) if g > p => group.updated_at.clone(),
        (Ok(_), Err(_)) => group.updated_at.clone(),
        _ => place.updated_at.clone(),
    };
    ClinikoAppointment {
        id: format!("attendee:{}", place.id),
        patient_id: place.patient_id.clone(),
        practitioner_id: group.practitioner_id.clone(),
        appointment_type_id: group.appointment_type_id.clone(),
        patient_case_id: None,
        business_id: group.business_id.clone(),
        starts_at: group.starts_at.clone(),
        cancelled_at: place.cancelled_at.clone(),
        deleted_at: place
            .deleted_at
            .clone()
            .or_else(|| group.deleted_at.clone()),
        archived_at: group.archived_at.clone(),
        patient_arrived: place.arrived,
        did_not_arrive: false,
        updated_at,
    }
}

/// The location of a Cliniko business: named after it, in its time zone
/// (an IANA name; one Tendon cannot read leaves the org's zone).
pub fn business_location(b: &ClinikoBusiness) -> Location {
    let unnamed = || match b.id.as_str() {
        NO_BUSINESS => "Cliniko".to_owned(),
        id => format!("Cliniko business {id}"),
    };
    Location {
        id: b.id.clone(),
        name: b.name.clone().unwrap_or_else(unnamed),
        timezone: b.time_zone.clone().filter(|z| TimeZone::get(z).is_ok()),
    }
}

/// Whether the record already holds this version of the appointment (or a
/// newer one): re-reading it in the re-sync's overlap changes nothing, so
/// it needs neither applying nor the lists that applying reads.
pub fn is_applied(record: &crate::model::PatientRecord, a: &ClinikoAppointment) -> bool {
    let Ok(version) = a.updated_at.parse::<Timestamp>() else {
        return false;
    };
    record
        .appointment(&a.id)
        .and_then(|held| held.updated_by)
        .is_some_and(|held| held >= version)
}

/// What an appointment sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AppointmentReport {
    /// Appointments whose patient's record changed (an appointment, an episode).
    pub applied: usize,
    pub unchanged: usize,
    /// Of patients that are not imported (missing fields, inactive).
    pub without_patient: usize,
    /// Refused by the rules (`no_episode_of_care` for a first appointment
    /// that is not an Initial Evaluation, ...): `[{appointment_id, code}]`.
    pub failures: Vec<AppointmentFailure>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppointmentFailure {
    pub appointment_id: String,
    pub code: String,
}

/// Adds the practitioners and business locations the appointments name and
/// the org lacks; the configuration as it is afterwards.
pub async fn ensure_config<S: SyncStore>(
    store: &S,
    config: OrgConfig,
    practitioners: &[super::api::ClinikoPractitioner],
    appointments: &[ClinikoAppointment],
) -> Result<OrgConfig, StoreError> {
    let org = config.org.id.clone();
    let mut changed = false;
    for p in practitioners {
        let want = Practitioner {
            id: p.id.clone(),
            first_name: p.first_name.clone().unwrap_or_default(),
            last_name: p.last_name.clone().unwrap_or_default(),
            npi: None,
            email: None,
        };
        let have = config.practitioner(&p.id);
        if have.is_none_or(|h| h.first_name != want.first_name || h.last_name != want.last_name) {
            store.put_practitioner(&org, &want).await?;
            changed = true;
        }
    }
    let mut seen = Vec::new();
    for a in appointments {
        let id = location_id(a.business_id.as_deref());
        if config.location(&id).is_none() && !seen.contains(&id) {
            // A business Cliniko no longer lists (archived): named by its ID,
            // on the org's clock.
            let location = business_location(&ClinikoBusiness {
                id: id.clone(),
                ..ClinikoBusiness::default()
            });
            store.put_location(&org, &location).await?;
            seen.push(id);
            changed = true;
        }
    }
    reloaded(store, config, changed).await
}

/// Names each business's location after it and gives it the business's time
/// zone, so appointment times and reminders run on each site's own clock;
/// the configuration as it is afterwards.
pub async fn ensure_locations<S: SyncStore>(
    store: &S,
    config: OrgConfig,
    businesses: &[ClinikoBusiness],
) -> Result<OrgConfig, StoreError> {
    let mut changed = false;
    for b in businesses {
        let want = business_location(b);
        if config.location(&want.id) != Some(&want) {
            store.put_location(&config.org.id, &want).await?;
            changed = true;
        }
    }
    reloaded(store, config, changed).await
}

/// `config`, or as the store holds it now if it `changed`.
async fn reloaded<S: SyncStore>(
    store: &S,
    config: OrgConfig,
    changed: bool,
) -> Result<OrgConfig, StoreError> {
    if !changed {
        return Ok(config);
    }
    let org = &config.org.id;
    store
        .org_config(org)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("org {org}")))
}

/// Version conflicts before an appointment is given up (the next sync retries it).
const MAX_CONFLICTS: usize = 8;

/// Applies one decision with its workflow effects; `Conflict` means decide again.
async fn commit_decision<S: SyncStore>(
    store: &S,
    config: &OrgConfig,
    decision: &Decision,
    now: Timestamp,
) -> Result<CommitOutcome, StoreError> {
    if decision.writes.is_empty() {
        return Ok(CommitOutcome::Applied);
    }
    let pending = pending_steps(store, config, &decision.events).await?;
    let mut records = decision.writes.clone();
    let enrolled = enrolments(config, &decision.writes, None, &decision.events, now);
    let scheduled = enrol_marked(config, &mut records, enrolled, now);
    let commit = RecordCommit {
        org: config.org.id.clone(),
        records,
        events: decision.events.clone(),
        scheduled,
        step_updates: step_updates(config, &decision.writes, &decision.events, &pending, now),
    };
    let outcome = store.commit_records(&commit).await?;
    if outcome == CommitOutcome::Applied {
        crate::event_effects::log_events(&commit.events);
    }
    Ok(outcome)
}

/// Applies one Cliniko appointment to its patient's record.
pub async fn apply_appointment<S: SyncStore>(
    store: &S,
    config: &OrgConfig,
    a: &ClinikoAppointment,
    types: &HashMap<String, String>,
    cases: &HashMap<String, ClinikoCase>,
    now: Timestamp,
    report: &mut AppointmentReport,
) -> Result<(), StoreError> {
    let Some(patient_id) = a.patient_id.as_deref() else {
        report.without_patient += 1;
        return Ok(());
    };
    let type_name = a
        .appointment_type_id
        .as_deref()
        .and_then(|t| types.get(t))
        .map(String::as_str);
    let case = a.patient_case_id.as_deref().and_then(|c| cases.get(c));
    let m = as_message(config, a, patient_id, type_name, case);
    // Event IDs derive from the appointment and its version, as an SIU's
    // from its control ID: a repeated sync writes none twice.
    let message_id = format!("cliniko-appt:{}:{}", a.id, a.updated_at);
    let ctx = Context {
        config,
        message_id: &message_id,
        now,
    };
    for _ in 0..MAX_CONFLICTS {
        let record = store.load_patient(&config.org.id, patient_id).await?;
        let usable = record.as_ref().filter(|r| {
            r.patient.source == crate::model::Source::Cliniko
                && r.patient.inactive.is_none()
                && r.patient.merged_into.is_none()
        });
        let Some(record) = usable else {
            report.without_patient += 1;
            return Ok(());
        };
        let decision = rules::episode_step(&ctx, &m, Some(record));
        if let Some(issue) = decision.errors.first() {
            tracing::info!(org = %config.org.id, appointment_id = %a.id, code = %issue.code.as_str(), "Cliniko appointment not applied");
            report.failures.push(AppointmentFailure {
                appointment_id: a.id.clone(),
                code: issue.code.as_str().to_owned(),
            });
            return Ok(());
        }
        let applied = !decision.writes.is_empty();
        match commit_decision(store, config, &decision, now).await? {
            CommitOutcome::Conflict => continue,
            _ => {
                if applied {
                    report.applied += 1;
                } else {
                    report.unchanged += 1;
                }
                return Ok(());
            }
        }
    }
    Err(StoreError::backend_detail(format!(
        "Cliniko appointment {} kept conflicting",
        a.id
    )))
}

/// Discharges the episode of a closed Cliniko case.
pub async fn apply_closed_case<S: SyncStore>(
    store: &S,
    config: &OrgConfig,
    case: &ClinikoCase,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(patient_id) = case.patient_id.as_deref().filter(|_| case.closed) else {
        return Ok(());
    };
    let message_id = format!("cliniko-case:{}:{}", case.id, case.updated_at);
    let ctx = Context {
        config,
        message_id: &message_id,
        now,
    };
    for _ in 0..MAX_CONFLICTS {
        let Some(record) = store.load_patient(&config.org.id, patient_id).await? else {
            return Ok(());
        };
        let decision = rules::close_case(&ctx, &record, &case.id);
        if commit_decision(store, config, &decision, now).await? != CommitOutcome::Conflict {
            return Ok(());
        }
    }
    Err(StoreError::backend_detail(format!(
        "Cliniko case {} kept conflicting",
        case.id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::Org;

    fn config() -> OrgConfig {
        OrgConfig {
            org: Org {
                id: "ORG".into(),
                name: "Physio".into(),
                timezone: "Australia/Melbourne".into(),
                ie_types: vec!["Initial Consult".into()],
                field_map: Default::default(),
            },
            locations: Vec::new(),
            practitioners: Vec::new(),
            workflows: Vec::new(),
        }
    }

    fn appt() -> ClinikoAppointment {
        ClinikoAppointment {
            id: "900000000000000001".into(),
            patient_id: Some("1".into()),
            practitioner_id: Some("77".into()),
            appointment_type_id: Some("5".into()),
            business_id: Some("3".into()),
            starts_at: "2026-12-10T23:00:00Z".into(),
            updated_at: "2026-12-01T00:00:00Z".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_status_follows_cliniko_fields_in_order() {
        let mut a = appt();
        assert_eq!(status(&a), AppointmentStatus::Scheduled);
        a.patient_arrived = true;
        assert_eq!(status(&a), AppointmentStatus::Arrived);
        a.did_not_arrive = true;
        assert_eq!(status(&a), AppointmentStatus::NoShow);
        a.cancelled_at = Some("2026-12-02T00:00:00Z".into());
        assert_eq!(status(&a), AppointmentStatus::Canceled);
        a.archived_at = Some("2026-12-03T00:00:00Z".into());
        assert_eq!(status(&a), AppointmentStatus::Deleted);
    }

    #[test]
    fn an_appointment_reads_as_an_siu_in_the_clinic_zone() {
        let case = ClinikoCase {
            id: "44".into(),
            patient_id: Some("1".into()),
            name: "Left knee".into(),
            closed: false,
            updated_at: "2026-12-01T00:00:00Z".into(),
        };
        let mut a = appt();
        a.patient_case_id = Some("44".into());
        let m = as_message(&config(), &a, "1", Some("Initial Consult"), Some(&case));
        assert_eq!(m.case_id.as_deref(), Some("44"));
        assert_eq!(m.case_description.as_deref(), Some("Left knee"));
        assert_eq!(m.clinic_id.as_deref(), Some("3"));
        assert_eq!(m.treating_therapist.id.as_deref(), Some("77"));
        assert_eq!(
            m.appointment_start.unwrap().to_string(),
            "2026-12-11T10:00:00+11:00[Australia/Melbourne]"
        );
        let no_case = as_message(&config(), &appt(), "1", None, None);
        assert_eq!(no_case.case_id.as_deref(), Some("cliniko:1"));
        assert_eq!(no_case.case_description.as_deref(), Some("Cliniko care"));
    }

    #[test]
    fn a_class_place_is_the_class_for_its_patient() {
        let group = ClinikoGroupAppointment {
            id: "600".into(),
            practitioner_id: Some("77".into()),
            appointment_type_id: Some("8".into()),
            business_id: Some("32".into()),
            starts_at: "2026-12-16T10:00:00Z".into(),
            updated_at: "2026-12-01T00:00:00Z".into(),
            ..Default::default()
        };
        let place = ClinikoAttendee {
            id: "701".into(),
            patient_id: Some("3".into()),
            booking_id: Some("600".into()),
            updated_at: "2026-12-02T00:00:00Z".into(),
            ..Default::default()
        };
        let a = class_place(&group, &place);
        assert_eq!(a.id, "attendee:701");
        assert_eq!(a.patient_id.as_deref(), Some("3"));
        assert_eq!(a.practitioner_id.as_deref(), Some("77"));
        assert_eq!(a.business_id.as_deref(), Some("32"));
        assert_eq!(a.updated_at, "2026-12-02T00:00:00Z");
        assert_eq!(status(&a), AppointmentStatus::Scheduled);
        let cancelled = ClinikoAttendee {
            cancelled_at: Some("2026-12-03T00:00:00Z".into()),
            ..place.clone()
        };
        assert_eq!(
            status(&class_place(&group, &cancelled)),
            AppointmentStatus::Canceled
        );
        let arrived = ClinikoAttendee {
            arrived: true,
            ..place.clone()
        };
        assert_eq!(
            status(&class_place(&group, &arrived)),
            AppointmentStatus::Arrived
        );
        // A deleted class deletes every place; its change is the newer one.
        let deleted = ClinikoGroupAppointment {
            deleted_at: Some("2026-12-04T00:00:00Z".into()),
            updated_at: "2026-12-04T00:00:00Z".into(),
            ..group
        };
        let a = class_place(&deleted, &place);
        assert_eq!(status(&a), AppointmentStatus::Deleted);
        assert_eq!(a.updated_at, "2026-12-04T00:00:00Z");
    }

    #[test]
    fn a_business_is_a_named_location_in_its_zone() {
        let b = ClinikoBusiness {
            id: "31".into(),
            name: Some("Fitzroy Physio".into()),
            time_zone: Some("Australia/Melbourne".into()),
            country: Some("AU".into()),
        };
        assert_eq!(
            business_location(&b),
            Location {
                id: "31".into(),
                name: "Fitzroy Physio".into(),
                timezone: Some("Australia/Melbourne".into()),
            }
        );
        // A zone Tendon cannot read leaves the org's; no name, its ID.
        let odd = ClinikoBusiness {
            id: "32".into(),
            time_zone: Some("Melbourne".into()),
            ..Default::default()
        };
        let l = business_location(&odd);
        assert_eq!((l.name.as_str(), l.timezone), ("Cliniko business 32", None));
    }
}
