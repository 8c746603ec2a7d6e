//! The one-way sync of Cliniko profiles into patient records (seed 3).
//!
//! Cliniko is the source of truth: a profile's fields overwrite the record's.
//! A profile without the required fields (first and last name, date of
//! birth, sex, email) is not imported; it is saved as a failure until a later
//! sync finds it fixed. Archived, deleted and merged profiles make their
//! record inactive, and its pending workflow steps are skipped in the same
//! commit. A new record gets its Default episode of care and a
//! `patient_created` event, which enrols it in matching workflows.
//!
//! Every write is idempotent without a message guard: the record is written
//! only if it changed (and only over the version it was read at), and the
//! event's ID derives from the profile, so a repeated or overlapping sync
//! writes nothing twice.
use std::collections::{HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use thiserror::Error;

use super::api::{
    AppointmentList, ClinikoApi, ClinikoAttendee, ClinikoCase, ClinikoError,
    ClinikoGroupAppointment, ClinikoPatient, Listing, Page, PatientList, Unreadable,
};
use super::appointments::{
    AppointmentReport, apply_appointment, apply_closed_case, ensure_config, ensure_locations,
};
use super::{ClinikoConnection, ClinikoFailure};
use crate::Gender;
use crate::join::{join_all, join2};
use crate::model::{
    DomainEvent, Episode, EpisodeStatus, EventKind, Patient, PatientRecord, Source,
};
use crate::normalize;
use crate::org::OrgConfig;
use crate::ports::{CommitOutcome, RecordCommit, RecordWrite, StoreError, SyncStore};
use crate::workflow::enrol::enrol;
use crate::workflow::steps::{StepStatus, StepUpdate};

/// The required Cliniko fields, by their Cliniko names.
pub const REQUIRED: [&str; 5] = ["first_name", "last_name", "date_of_birth", "sex", "email"];

/// How far before the watermark a re-sync starts asking: clocks differ, and
/// a profile saved as the last sync read its page could carry an earlier
/// `updated_at`. Re-reading a profile costs nothing: it is unchanged.
pub const WATERMARK_OVERLAP: SignedDuration = SignedDuration::from_secs(300);

/// Version conflicts (a concurrent sync, an "Open in" click) before giving up.
const MAX_CONFLICTS: usize = 8;

#[derive(Debug, Error)]
pub enum SyncError {
    #[error(
        "org {0} has no Cliniko connection: run `tendon cliniko connect --org {0} --api-key KEY`"
    )]
    NotConnected(String),
    #[error("org {0} does not exist")]
    NoOrg(String),
    #[error(transparent)]
    Cliniko(#[from] ClinikoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

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

/// A failed profile in a sync's result (docs/interface.md §5 `cliniko sync`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureReport {
    pub cliniko_id: String,
    pub missing: Vec<String>,
}

/// A sync's result: `synced` counts profiles imported or updated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub synced: usize,
    pub failed: usize,
    pub failures: Vec<FailureReport>,
    /// Profiles read that needed no change (the overlap, a repeated sync).
    pub unchanged: usize,
    /// Records made inactive (archived, deleted or merged in Cliniko).
    pub deactivated: usize,
    /// Profiles read, in all lists.
    pub read: usize,
    /// What the appointments changed since the last sync did.
    pub appointments: AppointmentReport,
    /// Records Cliniko sent that are not in its documented shape: each is
    /// skipped with its ID and the reason, and the sync goes on.
    pub unreadable: Vec<UnreadableReport>,
}

/// A record a sync could not read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnreadableReport {
    /// The Cliniko list it came from (`patients`, `individual_appointments`...).
    pub list: &'static str,
    pub cliniko_id: Option<String>,
    pub reason: String,
}

impl SyncReport {
    fn skipped(&mut self, list: &'static str, unreadable: Vec<Unreadable>) {
        self.unreadable
            .extend(unreadable.into_iter().map(|u| UnreadableReport {
                list,
                cliniko_id: u.cliniko_id,
                reason: u.reason,
            }));
    }

    fn count(&mut self, id: &str, outcome: &Outcome) {
        self.read += 1;
        match outcome {
            Outcome::Created | Outcome::Updated => self.synced += 1,
            Outcome::Unchanged | Outcome::Ignored => self.unchanged += 1,
            Outcome::Deactivated => self.deactivated += 1,
            Outcome::Failed(missing) => {
                self.failed += 1;
                self.failures.push(FailureReport {
                    cliniko_id: id.to_owned(),
                    missing: missing.iter().map(|m| (*m).to_owned()).collect(),
                });
            }
        }
    }
}

fn present(v: &Option<String>) -> Option<&str> {
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
fn created_event(org: &str, patient_id: &str, now: &str) -> DomainEvent {
    let message_id = format!("cliniko:{patient_id}");
    DomainEvent {
        id: format!("{message_id}:patient_created:{patient_id}"),
        org: org.to_owned(),
        kind: EventKind::PatientCreated,
        patient_id: patient_id.to_owned(),
        case_id: None,
        appointment_id: None,
        at: now.to_owned(),
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
    now: &str,
) -> (Option<RecordWrite>, Vec<DomainEvent>, Outcome) {
    if local.is_some_and(|r| r.patient.source != Source::Cliniko) {
        return (None, Vec::new(), Outcome::Ignored);
    }
    // A profile older than the one applied (a page read before an "Open in"
    // click fetched a newer one) changes nothing.
    let stale = |r: &PatientRecord| {
        let seen = r
            .patient
            .demographics_at
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok());
        let this = profile.updated_at.parse::<Timestamp>().ok();
        matches!((seen, this), (Some(seen), Some(this)) if this < seen)
    };
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
        next.patient.demographics_at = Some(profile.updated_at.clone());
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
            next.patient.demographics_at = Some(profile.updated_at.clone());
            next.version = rec.version + 1;
            let write = RecordWrite {
                record: next,
                expected_version: Some(rec.version),
            };
            (Some(write), Vec::new(), Outcome::Updated)
        }
        None => {
            let mut patient = Patient {
                id: profile.id.clone(),
                source: Source::Cliniko,
                first_name: String::new(),
                last_name: String::new(),
                birth_date: None,
                gender: None,
                email: None,
                mobile: None,
                demographics_at: Some(profile.updated_at.clone()),
                created_at: now.to_owned(),
                merged_into: None,
                unsubscribed: false,
                text_opt_out: false,
                inactive: None,
                sex_label: None,
            };
            fill(&mut patient);
            let record = PatientRecord {
                patient,
                episodes: vec![Episode {
                    name: "Default".to_owned(),
                    default: true,
                    case_id: None,
                    supervising_practitioner_id: None,
                    status: EpisodeStatus::Active,
                    created_at: now.to_owned(),
                }],
                appointments: Vec::new(),
                version: 1,
            };
            let write = RecordWrite {
                record,
                expected_version: None,
            };
            let event = created_event(org, &profile.id, now);
            (Some(write), vec![event], Outcome::Created)
        }
    }
}

/// Applies one profile: decides against the stored record, writes the
/// record with its events, enrolments and (when it becomes inactive) its
/// pending steps skipped, in one commit; keeps the saved failures in step.
/// `failed_before`: the org's saved failure IDs (so a fixed profile's is removed).
pub async fn apply_profile<S: SyncStore>(
    store: &S,
    config: &OrgConfig,
    profile: &ClinikoPatient,
    failed_before: &HashSet<String>,
    region: Option<&str>,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    let org = &config.org.id;
    let now_text = now.to_string();
    for _ in 0..MAX_CONFLICTS {
        let local = store.load_patient(org, &profile.id).await?;
        let (write, events, outcome) = decide(org, profile, local.as_ref(), region, &now_text);
        if let Outcome::Failed(missing) = &outcome {
            let failure = ClinikoFailure {
                cliniko_id: profile.id.clone(),
                first_name: present(&profile.first_name).map(str::to_owned),
                last_name: present(&profile.last_name).map(str::to_owned),
                missing: missing.iter().map(|m| (*m).to_owned()).collect(),
                updated_at: profile.updated_at.clone(),
            };
            store.put_failure(org, &failure).await?;
            tracing::info!(org = %org, cliniko_id = %profile.id, missing = ?missing, "Cliniko profile not imported");
            return Ok(outcome);
        }
        if failed_before.contains(&profile.id) {
            store.clear_failure(org, &profile.id).await?;
        }
        let Some(write) = write else {
            return Ok(outcome);
        };
        let mut scheduled = Vec::new();
        for event in &events {
            scheduled.extend(enrol(config, &config.workflows, &write.record, event, now));
        }
        let step_updates = if outcome == Outcome::Deactivated {
            store
                .list_steps(org, Some(&profile.id))
                .await?
                .into_iter()
                .filter(|s| s.status == StepStatus::Scheduled)
                .filter(|s| {
                    // A step a dispatcher holds is left to it: its verdict
                    // sees the inactive record.
                    s.claimed_until
                        .as_deref()
                        .and_then(|c| c.parse::<Timestamp>().ok())
                        .is_none_or(|c| c <= now)
                })
                .map(|s| {
                    let read_claim = s.claimed_until.clone();
                    let mut step = s;
                    step.status = StepStatus::Skipped;
                    step.note = Some("patient_inactive".to_owned());
                    step.claimed_until = None;
                    StepUpdate { step, read_claim }
                })
                .collect()
        } else {
            Vec::new()
        };
        let commit = RecordCommit {
            org: org.clone(),
            records: vec![write],
            events,
            scheduled,
            step_updates,
        };
        match store.commit_records(&commit).await? {
            CommitOutcome::Conflict => continue,
            CommitOutcome::Applied | CommitOutcome::AlreadyApplied => {
                crate::event_effects::log_events(&commit.events);
                tracing::info!(org = %org, patient_id = %profile.id, outcome = ?outcome, "Cliniko profile synced");
                return Ok(outcome);
            }
        }
    }
    Err(StoreError::Backend(format!(
        "Cliniko patient {} kept changing while it was synced",
        profile.id
    )))
}

/// Connects an org to Cliniko: proves the key with one call, then stores the
/// connection. A reconnect keeps the "Open in" token (the URL registered in
/// Cliniko stays valid) and, with the same key, the watermark; a new key may
/// be another account, so its first sync is a full one.
pub async fn connect<S: SyncStore, A: ClinikoApi>(
    store: &S,
    api: &A,
    org: &str,
    api_key: &str,
    shard: &str,
    base_url: Option<&str>,
    now: Timestamp,
) -> Result<ClinikoConnection, SyncError> {
    if store.org_config(org).await?.is_none() {
        return Err(SyncError::NoOrg(org.to_owned()));
    }
    api.verify().await?;
    let existing = store.connection(org).await?;
    let token = match &existing {
        Some(c) => c.token.clone(),
        None => super::new_token().map_err(StoreError::Backend)?,
    };
    let watermark = existing
        .as_ref()
        .filter(|c| c.api_key == api_key)
        .and_then(|c| c.watermark.clone());
    let connection = ClinikoConnection {
        org: org.to_owned(),
        api_key: api_key.to_owned(),
        shard: shard.to_owned(),
        base_url: base_url.map(str::to_owned),
        token,
        watermark,
        connected_at: now.to_string(),
        last_sync_at: existing.and_then(|c| c.last_sync_at),
    };
    store.put_connection(&connection).await?;
    tracing::info!(org = %org, shard = %shard, "Cliniko connected");
    Ok(connection)
}

/// The Cliniko IDs of the org's saved failures.
async fn failed_ids<S: SyncStore>(store: &S, org: &str) -> Result<HashSet<String>, StoreError> {
    Ok(store
        .failures(org)
        .await?
        .into_iter()
        .map(|f| f.cliniko_id)
        .collect())
}

/// Where a re-sync starts: the watermark less [`WATERMARK_OVERLAP`].
pub fn since(connection: &ClinikoConnection) -> Option<String> {
    let mark = connection.watermark.as_deref()?.parse::<Timestamp>().ok()?;
    Some(
        mark.checked_sub(WATERMARK_OVERLAP)
            .unwrap_or(mark)
            .to_string(),
    )
}

/// Syncs an org: its businesses (as locations), every profile of Cliniko's
/// active, archived and deleted lists changed since the last complete sync
/// (all of them the first time), then the appointments and classes changed
/// since then. `progress` sees the report after each page of profiles. The
/// watermark moves only when the whole sync succeeded, so a failed one is
/// simply run again; a record that cannot be read is reported and skipped.
pub async fn sync_org<S: SyncStore, A: ClinikoApi>(
    store: &S,
    api: &A,
    org: &str,
    now: Timestamp,
    mut progress: impl FnMut(&SyncReport) + Send,
) -> Result<SyncReport, SyncError> {
    let connection = store
        .connection(org)
        .await?
        .ok_or_else(|| SyncError::NotConnected(org.to_owned()))?;
    let config = store
        .org_config(org)
        .await?
        .ok_or_else(|| SyncError::NoOrg(org.to_owned()))?;
    let failed_before = failed_ids(store, org).await?;
    let since = since(&connection);
    let mut report = SyncReport::default();
    let mut high: Option<Timestamp> = None;
    let mut seen = |t: &str| {
        if let Ok(t) = t.parse::<Timestamp>() {
            high = Some(high.map_or(t, |h| h.max(t)));
        }
    };
    // Businesses first: they are the locations, and their country is the
    // region of the numbers clinics type without a country code.
    let businesses = all_pages(&mut report, "businesses", |n: Option<String>| async move {
        api.businesses(n.as_deref()).await
    })
    .await?;
    let region = businesses
        .iter()
        .find_map(|b| b.country.as_deref().and_then(normalize::country_code))
        .or_else(|| shard_region(&connection.shard).map(str::to_owned));
    let config = ensure_locations(store, config, &businesses).await?;
    for list in [
        PatientList::Active,
        PatientList::Archived,
        PatientList::Deleted,
    ] {
        let mut page = api.patients(list, since.as_deref(), None).await?;
        loop {
            // The next page is fetched while this one is applied, so a sync
            // takes about as long as Cliniko's pages, not pages plus writes.
            let next = page.next.take();
            let fetch = async {
                match &next {
                    Some(n) => Some(api.patients(list, since.as_deref(), Some(n)).await),
                    None => None,
                }
            };
            let apply = apply_page(
                store,
                &config,
                &page.items,
                &failed_before,
                region.as_deref(),
                now,
            );
            let (fetched, outcomes) = join2(fetch, apply).await;
            for (profile, outcome) in page.items.iter().zip(outcomes?) {
                seen(&profile.updated_at);
                report.count(&profile.id, &outcome);
            }
            report.skipped("patients", std::mem::take(&mut page.unreadable));
            progress(&report);
            match fetched {
                Some(p) => page = p?,
                None => break,
            }
        }
    }
    // Appointments and cases after the patients, so their patients exist.
    let since = since.as_deref();
    let cases = all_pages(
        &mut report,
        "patient_cases",
        |n: Option<String>| async move { api.patient_cases(None, since, n.as_deref()).await },
    )
    .await?;
    let mut appointments = Vec::new();
    for list in [
        AppointmentList::Booked,
        AppointmentList::Cancelled,
        AppointmentList::Deleted,
    ] {
        appointments.extend(
            all_pages(
                &mut report,
                "individual_appointments",
                |n: Option<String>| async move {
                    api.appointments(list, None, since, n.as_deref()).await
                },
            )
            .await?,
        );
    }
    appointments.extend(classes(api, &mut report, since).await?);
    for c in &cases {
        seen(&c.updated_at);
    }
    for a in &appointments {
        seen(&a.updated_at);
    }
    // What the records already hold at this version (the overlap re-reads
    // the last few minutes' changes) is counted, not applied: a quiet
    // re-sync then reads no practitioners or appointment types at all.
    let mut fresh = Vec::new();
    for a in appointments {
        let held = match a.patient_id.as_deref() {
            Some(p) => store.load_patient(org, p).await?,
            None => None,
        };
        if held.is_some_and(|r| super::appointments::is_applied(&r, &a)) {
            report.appointments.unchanged += 1;
        } else {
            fresh.push(a);
        }
    }
    if !fresh.is_empty() {
        apply_appointments(store, api, config.clone(), &cases, fresh, now, &mut report).await?;
    }
    for c in cases.iter().filter(|c| c.closed) {
        apply_closed_case(store, &config, c, now).await?;
    }
    // The highest `updated_at` seen, but never past when this sync began: a
    // record changed while the lists were read is read again next time.
    let watermark = high.map(|h| h.min(now).to_string());
    store
        .record_sync(org, watermark.as_deref(), &now.to_string())
        .await?;
    tracing::info!(org = %org, synced = report.synced, failed = report.failed, deactivated = report.deactivated, appointments = report.appointments.applied, unreadable = report.unreadable.len(), "Cliniko sync done");
    Ok(report)
}

/// Applies changed appointments: reads the practitioners and appointment
/// types they name, current and retired (a historic Initial Evaluation by a
/// former therapist, of an archived type, still creates its Case EOC), adds
/// the practitioners to the org, then applies each appointment in start
/// order, so a case's Initial Evaluation comes before its follow-ups.
async fn apply_appointments<S: SyncStore, A: ClinikoApi>(
    store: &S,
    api: &A,
    config: OrgConfig,
    cases: &[ClinikoCase],
    mut appointments: Vec<super::api::ClinikoAppointment>,
    now: Timestamp,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let mut practitioners = Vec::new();
    let mut types = HashMap::new();
    for listing in [Listing::Current, Listing::Retired] {
        practitioners.extend(
            all_pages(report, "practitioners", |n: Option<String>| async move {
                api.practitioners(listing, n.as_deref()).await
            })
            .await?,
        );
        let listed = all_pages(
            report,
            "appointment_types",
            |n: Option<String>| async move { api.appointment_types(listing, n.as_deref()).await },
        )
        .await?;
        types.extend(listed.into_iter().map(|t| (t.id, t.name)));
    }
    appointments.sort_by_cached_key(|a| (a.starts_at.parse::<Timestamp>().ok(), a.id.clone()));
    let config = ensure_config(store, config, &practitioners, &appointments).await?;
    let cases_by_id: HashMap<String, ClinikoCase> =
        cases.iter().map(|c| (c.id.clone(), c.clone())).collect();
    for a in &appointments {
        apply_appointment(
            store,
            &config,
            a,
            &types,
            &cases_by_id,
            now,
            &mut report.appointments,
        )
        .await?;
    }
    Ok(())
}

/// The class places changed since `since`, each as the appointment it is
/// for its patient: attendees booked, cancelled or deleted since then, and
/// every place in a class that moved or was deleted since then. A place's
/// class is its booking (`booking.links.self`).
async fn classes<A: ClinikoApi>(
    api: &A,
    report: &mut SyncReport,
    since: Option<&str>,
) -> Result<Vec<super::api::ClinikoAppointment>, ClinikoError> {
    let mut groups: HashMap<String, ClinikoGroupAppointment> = HashMap::new();
    for deleted in [false, true] {
        for g in all_pages(
            report,
            "group_appointments",
            |n: Option<String>| async move {
                api.group_appointments(deleted, since, n.as_deref()).await
            },
        )
        .await?
        {
            groups.insert(g.id.clone(), g);
        }
    }
    let mut places: HashMap<String, ClinikoAttendee> = HashMap::new();
    for list in [
        AppointmentList::Booked,
        AppointmentList::Cancelled,
        AppointmentList::Deleted,
    ] {
        for a in all_pages(report, "attendees", |n: Option<String>| async move {
            api.attendees(list, None, since, n.as_deref()).await
        })
        .await?
        {
            places.insert(a.id.clone(), a);
        }
    }
    // A class that changed carries its places with it (a new time, a
    // deleted class), whether or not the places themselves changed: one
    // request per 100 classes (`booking_id:=…`).
    let mut changed: Vec<String> = groups.keys().cloned().collect();
    changed.sort();
    for ids in changed.chunks(100) {
        let listed = all_pages(report, "attendees", |n: Option<String>| async move {
            api.attendees(AppointmentList::Booked, Some(ids), None, n.as_deref())
                .await
        })
        .await?;
        for a in listed {
            places.entry(a.id.clone()).or_insert(a);
        }
    }
    // A place whose class did not change: its class is read by ID.
    let missing: Vec<String> = places
        .values()
        .filter_map(|a| a.booking_id.clone())
        .filter(|g| !groups.contains_key(g))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    for ids in missing.chunks(100) {
        for g in all_pages(report, "group_appointments", |n: Option<String>| async move { api.group_appointments_by_id(ids, n.as_deref()).await })
        .await?
        {
            groups.insert(g.id.clone(), g);
        }
    }
    let mut out = Vec::new();
    for place in places.into_values() {
        match place.booking_id.as_deref().and_then(|g| groups.get(g)) {
            Some(group) => out.push(super::appointments::class_place(group, &place)),
            None => report.unreadable.push(UnreadableReport {
                list: "attendees",
                cliniko_id: Some(place.id.clone()),
                reason: "its group appointment is not in Cliniko's lists".to_owned(),
            }),
        }
    }
    Ok(out)
}

/// Profiles applied at once (each is a read and a commit: on DynamoDB,
/// network round trips worth overlapping).
const PROFILE_CONCURRENCY: usize = 16;

/// Applies a page of profiles, [`PROFILE_CONCURRENCY`] at a time; their
/// outcomes in order.
async fn apply_page<S: SyncStore>(
    store: &S,
    config: &OrgConfig,
    profiles: &[ClinikoPatient],
    failed_before: &HashSet<String>,
    region: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Outcome>, StoreError> {
    let mut out = Vec::with_capacity(profiles.len());
    for chunk in profiles.chunks(PROFILE_CONCURRENCY) {
        let applied = join_all(
            chunk
                .iter()
                .map(|p| apply_profile(store, config, p, failed_before, region, now))
                .collect(),
        )
        .await;
        for outcome in applied {
            out.push(outcome?);
        }
    }
    Ok(out)
}

/// Every item of a paged list; records that cannot be read go to the report.
async fn all_pages<T, F, Fut>(
    report: &mut SyncReport,
    list: &'static str,
    mut page: F,
) -> Result<Vec<T>, ClinikoError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, ClinikoError>>,
{
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let p = page(next.take()).await?;
        out.extend(p.items);
        report.skipped(list, p.unreadable);
        match p.next {
            Some(n) => next = Some(n),
            None => return Ok(out),
        }
    }
}

/// One org's result in [`sync_all`].
#[derive(Debug)]
pub struct OrgSync {
    pub org: String,
    pub result: Result<SyncReport, SyncError>,
}

/// Syncs every connected org, one after another (the scheduled re-sync;
/// each key's client keeps to its own rate limit). One org's failure does not
/// stop the others; it is in its result, and its watermark stays, so the next
/// run repeats its window.
pub async fn sync_all<S, A, F>(
    store: &S,
    client: F,
    now: Timestamp,
) -> Result<Vec<OrgSync>, StoreError>
where
    S: SyncStore,
    A: ClinikoApi,
    F: Fn(&ClinikoConnection) -> Result<A, ClinikoError>,
{
    let mut out = Vec::new();
    for connection in store.connections().await? {
        let result = match client(&connection) {
            Ok(api) => sync_org(store, &api, &connection.org, now, |_| {}).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = &result {
            tracing::warn!(org = %connection.org, error = %e, "scheduled Cliniko sync failed");
        }
        out.push(OrgSync {
            org: connection.org,
            result,
        });
    }
    Ok(out)
}

/// Syncs one profile of a connection (the "Open in" button): `Ok(None)` if
/// Cliniko has no such patient.
pub async fn sync_patient<S: SyncStore, A: ClinikoApi>(
    store: &S,
    api: &A,
    connection: &ClinikoConnection,
    cliniko_id: &str,
    now: Timestamp,
) -> Result<Option<Outcome>, SyncError> {
    let org = &connection.org;
    let config = store
        .org_config(org)
        .await?
        .ok_or_else(|| SyncError::NoOrg(org.to_owned()))?;
    let profile = match api.patient(cliniko_id).await {
        Ok(p) => p,
        Err(ClinikoError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let failed_before = failed_ids(store, org).await?;
    // One click, one profile: the region is the patient's, else the
    // shard's (a full sync also knows the businesses' country).
    let region = shard_region(&connection.shard);
    Ok(Some(
        apply_profile(store, &config, &profile, &failed_before, region, now).await?,
    ))
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

    const NOW: &str = "2026-11-21T00:00:00Z";

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
        let (_, again, _) = decide("ORG", &profile(), None, Some("AU"), "2026-11-22T00:00:00Z");
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
    fn a_re_sync_starts_five_minutes_before_the_watermark() {
        let c = ClinikoConnection {
            org: "ORG".into(),
            api_key: "secret-au2".into(),
            shard: "au2".into(),
            base_url: None,
            token: "t".into(),
            watermark: Some("2026-11-20T10:00:00Z".into()),
            connected_at: NOW.into(),
            last_sync_at: None,
        };
        assert_eq!(since(&c).as_deref(), Some("2026-11-20T09:55:00Z"));
        assert!(!format!("{c:?}").contains("secret"));
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
