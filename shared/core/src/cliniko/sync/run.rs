//! Running a sync: one org (its businesses, profiles, appointments and
//! classes, then the watermark), every connected org (the scheduled
//! re-sync), and one profile (the "Open in" button).
use jiff::Timestamp;

use super::apply::{apply_appointments, apply_page, apply_profile, failed_ids};
use super::connection::since;
use super::lists::{all_pages, classes};
use super::profile::{Outcome, shard_region};
use super::report::{SyncError, SyncReport};
use crate::cliniko::ClinikoConnection;
use crate::cliniko::api::{AppointmentList, ClinikoApi, ClinikoError, PatientList};
use crate::cliniko::appointments::{apply_closed_case, ensure_locations, is_applied};
use crate::join::join2;
use crate::normalize;
use crate::ports::{StoreError, SyncStore};

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
        if held.is_some_and(|r| is_applied(&r, &a)) {
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
    store.record_sync(org, watermark.as_deref(), now).await?;
    tracing::info!(org = %org, synced = report.synced, failed = report.failed, deactivated = report.deactivated, appointments = report.appointments.applied, unreadable = report.unreadable.len(), "Cliniko sync done");
    Ok(report)
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
