//! Reading Cliniko's lists: a page (the first, with `per_page` and the `q[]`
//! filters, or a checked `links.next`), the changes since a time, and the
//! fallbacks where Cliniko refuses a `/deleted` list's filter or no longer
//! serves a `/cancelled` or `/deleted` list.
use tendon_core::cliniko::api::{AppointmentList, ClinikoError, Page};

use super::Client;
use crate::wire::{Wire, decode_list};

/// Cliniko's largest page.
const PER_PAGE: &str = "100";

impl Client {
    /// A list page: `next` as given, else the first page at `segments` with
    /// `per_page=100` and the filters.
    pub(super) async fn list<W: Wire>(
        &self,
        segments: &[&str],
        key: &str,
        filters: &[String],
        next: Option<&str>,
    ) -> Result<Page<W::Record>, ClinikoError> {
        let url = match next {
            Some(next) => self.next_url(next)?,
            None => {
                let mut query = vec![("per_page", PER_PAGE)];
                query.extend(filters.iter().map(|f| ("q[]", f.as_str())));
                self.url(segments, &query)
            }
        };
        let body = self.get(url).await?;
        let page = decode_list::<W>(&body, key)?;
        if !page.unreadable.is_empty() {
            tracing::warn!(
                list = key,
                unreadable = page.unreadable.len(),
                "Cliniko records not in the documented shape were skipped"
            );
        }
        Ok(Page {
            items: page.items,
            unreadable: page.unreadable,
            next: page.links.next,
        })
    }

    /// A list of changes since `updated_since`: for a `/deleted` list, the
    /// records deleted since then. Cliniko documents `updated_at` as a
    /// filter of every list, but answers `400` ("not searchable") to it on a
    /// `/deleted` list, which its maintainers say takes `deleted_at` or `id`
    /// only; if a `/deleted` list refuses `deleted_at` too, it is read whole
    /// (deleted lists are short, and re-reading an entry changes nothing).
    pub(super) async fn changes<W: Wire>(
        &self,
        segments: &[&str],
        key: &str,
        patient_id: Option<&str>,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> Result<Page<W::Record>, ClinikoError> {
        let deleted = segments.last() == Some(&"deleted");
        let field = if deleted { "deleted_at" } else { "updated_at" };
        let wanted = filters(patient_id, updated_since, field);
        match self.list::<W>(segments, key, &wanted, next).await {
            Err(ClinikoError::Status(400))
                if deleted && next.is_none() && updated_since.is_some() =>
            {
                tracing::info!(list = key, "a deleted list refused its filter: read whole");
                self.list::<W>(segments, key, &filters(patient_id, None, field), None)
                    .await
            }
            other => other,
        }
    }

    /// The changes of one of an appointment-like resource's lists. Cliniko's
    /// 2022 documentation gives cancelled and deleted records their own
    /// lists (`/cancelled`, `/deleted`); its current reference describes the
    /// main list with an "any value" filter instead (`q[]=cancelled_at:*`,
    /// `q[]=archived_at:*`), which includes the records it otherwise leaves
    /// out. The separate list is asked first; where Cliniko no longer serves
    /// it (404), the main list with the filter. The caller keeps the records
    /// of the kind it asked for.
    pub(super) async fn hidden_changes<W: Wire>(
        &self,
        resource: &str,
        list: AppointmentList,
        patient_id: Option<&str>,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> Result<Page<W::Record>, ClinikoError> {
        let segments = list_path(resource, list);
        match self
            .changes::<W>(&segments, resource, patient_id, updated_since, next)
            .await
        {
            Err(ClinikoError::NotFound) if list != AppointmentList::Booked && next.is_none() => {
                let any = match list {
                    AppointmentList::Cancelled => "cancelled_at:*",
                    _ => "archived_at:*",
                };
                tracing::info!(
                    list = resource,
                    filter = any,
                    "no separate list: the main one, filtered"
                );
                let mut wanted = filters(patient_id, updated_since, "updated_at");
                wanted.push(any.to_owned());
                self.list::<W>(&[resource], resource, &wanted, None).await
            }
            other => other,
        }
    }
}

/// `FIELD:>T`, with `T` in the UTC form Cliniko documents
/// (`2026-01-01T00:00:00Z`). Fractions are dropped, which can only widen the
/// result; a value that does not parse is sent as given.
pub(super) fn since_filter(field: &str, since: &str) -> String {
    let since = match since.trim().parse::<jiff::Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => since.trim().to_owned(),
    };
    format!("{field}:>{since}")
}

fn filters(patient_id: Option<&str>, updated_since: Option<&str>, field: &str) -> Vec<String> {
    let mut filters = Vec::new();
    if let Some(id) = patient_id {
        filters.push(format!("patient_id:={}", id.trim()));
    }
    if let Some(since) = updated_since {
        filters.push(since_filter(field, since));
    }
    filters
}

/// Whether a record belongs on `list` (a fallback's main list brings all
/// kinds): a deleted record is only on the deleted list, a cancelled one
/// only on the cancelled list.
pub(super) fn belongs(list: AppointmentList, cancelled: bool, deleted: bool) -> bool {
    match list {
        AppointmentList::Booked => true,
        AppointmentList::Cancelled => cancelled && !deleted,
        AppointmentList::Deleted => deleted,
    }
}

/// The path of one of Cliniko's appointment-like lists.
pub(super) fn list_path(resource: &str, list: AppointmentList) -> Vec<&str> {
    match list {
        AppointmentList::Booked => vec![resource],
        AppointmentList::Cancelled => vec![resource, "cancelled"],
        AppointmentList::Deleted => vec![resource, "deleted"],
    }
}
