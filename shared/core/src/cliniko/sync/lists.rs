//! Reading Cliniko's paged lists for a sync: every page of a list, with the
//! records that cannot be read set aside in the report, and the class
//! places changed since the last sync.
use std::collections::{HashMap, HashSet};

use super::report::{SyncReport, UnreadableReport};
use crate::cliniko::api::{
    AppointmentList, ClinikoApi, ClinikoAppointment, ClinikoAttendee, ClinikoError,
    ClinikoGroupAppointment, Page,
};
use crate::cliniko::appointments::class_place;

/// Every item of a paged list; records that cannot be read go to the report.
pub(super) async fn all_pages<T, F, Fut>(
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

/// The class places changed since `since`, each as the appointment it is
/// for its patient: attendees booked, cancelled or deleted since then, and
/// every place in a class that moved or was deleted since then. A place's
/// class is its booking (`booking.links.self`).
pub(super) async fn classes<A: ClinikoApi>(
    api: &A,
    report: &mut SyncReport,
    since: Option<&str>,
) -> Result<Vec<ClinikoAppointment>, ClinikoError> {
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
            Some(group) => out.push(class_place(group, &place)),
            None => report.unreadable.push(UnreadableReport {
                list: "attendees",
                cliniko_id: Some(place.id.clone()),
                reason: "its group appointment is not in Cliniko's lists".to_owned(),
            }),
        }
    }
    Ok(out)
}
