//! Writing what a sync read: each profile in one commit with its events,
//! enrolments and skipped steps (retried on a version conflict), a page of
//! them at a time, and the changed appointments after the practitioners
//! and appointment types they name.
use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use super::lists::all_pages;
use super::profile::{Outcome, decide, present};
use super::report::{SyncError, SyncReport};
use crate::cliniko::ClinikoFailure;
use crate::cliniko::api::{ClinikoApi, ClinikoAppointment, ClinikoCase, ClinikoPatient, Listing};
use crate::cliniko::appointments::{apply_appointment, ensure_config};
use crate::event_effects::enrol_marked;
use crate::join::join_all;
use crate::org::OrgConfig;
use crate::ports::{CommitOutcome, RecordCommit, StoreError, SyncStore};
use crate::workflow::enrol::enrol;
use crate::workflow::steps::{StepStatus, StepUpdate};

/// Version conflicts (a concurrent sync, an "Open in" click) before giving up.
const MAX_CONFLICTS: usize = 8;

/// Profiles applied at once (each is a read and a commit: on DynamoDB,
/// network round trips worth overlapping).
const PROFILE_CONCURRENCY: usize = 16;

/// Applies a page of profiles, [`PROFILE_CONCURRENCY`] at a time; their
/// outcomes in order.
pub(super) async fn apply_page<S: SyncStore>(
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
    for _ in 0..MAX_CONFLICTS {
        let local = store.load_patient(org, &profile.id).await?;
        let (write, events, outcome) = decide(org, profile, local.as_ref(), region, now);
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
        let mut enrolled = Vec::new();
        for event in &events {
            enrolled.extend(enrol(config, &config.workflows, &write.record, event, now));
        }
        let mut records = vec![write];
        let scheduled = enrol_marked(config, &mut records, enrolled, now);
        let step_updates = if outcome == Outcome::Deactivated {
            store
                .list_steps(org, Some(&profile.id))
                .await?
                .into_iter()
                .filter(|s| s.status == StepStatus::Scheduled)
                .filter(|s| {
                    // A step a dispatcher holds is left to it: its verdict
                    // sees the inactive record.
                    s.claimed_until.is_none_or(|c| c <= now)
                })
                .map(|s| {
                    let read_claim = s.claimed_until;
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
            records,
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
    Err(StoreError::backend_detail(format!(
        "Cliniko patient {} kept changing while it was synced",
        profile.id
    )))
}

/// The Cliniko IDs of the org's saved failures.
pub(super) async fn failed_ids<S: SyncStore>(
    store: &S,
    org: &str,
) -> Result<HashSet<String>, StoreError> {
    Ok(store
        .failures(org)
        .await?
        .into_iter()
        .map(|f| f.cliniko_id)
        .collect())
}

/// Applies changed appointments: reads the practitioners and appointment
/// types they name, current and retired (a historic Initial Evaluation by a
/// former therapist, of an archived type, still creates its Case EOC), adds
/// the practitioners to the org, then applies each appointment in start
/// order, so a case's Initial Evaluation comes before its follow-ups.
pub(super) async fn apply_appointments<S: SyncStore, A: ClinikoApi>(
    store: &S,
    api: &A,
    config: OrgConfig,
    cases: &[ClinikoCase],
    mut appointments: Vec<ClinikoAppointment>,
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
