//! Which records a list holds (a patient's active, archived or deleted
//! list; an appointment's main, cancelled or deleted one), the filters each
//! list takes, and the `q[]` filters themselves: date-time comparisons, IDs
//! and the current reference's `field:*`.
use jiff::Timestamp;
use tendon_core::cliniko::api::ClinikoPatient;

/// One `q[]` filter the fake understands: a date-time comparison, or IDs.
pub(super) enum Filter {
    Time(String, Comparison, Timestamp),
    Ids(String, Vec<u64>),
    /// `field:*`: any value, set or not (the current reference).
    Any,
}

#[derive(Clone, Copy)]
pub(super) enum Comparison {
    Gt,
    Ge,
    Lt,
    Le,
}

/// Fields compared as date-times; the others take `=` and IDs.
const TIME_FIELDS: &[&str] = &[
    "updated_at",
    "created_at",
    "deleted_at",
    "cancelled_at",
    "archived_at",
    "starts_at",
    "ends_at",
];

impl Filter {
    /// Cliniko's answer to a field a list does not search: 400.
    pub(super) fn parse(q: &str, searchable: &[&str]) -> Result<Filter, String> {
        let (field, rest) = q
            .split_once(':')
            .ok_or_else(|| format!("filter {q:?} is not field:operator value"))?;
        if !searchable.contains(&field) {
            return Err("This column is not searchable.".to_owned());
        }
        if TIME_FIELDS.contains(&field) {
            if rest == "*" {
                return Ok(Filter::Any);
            }
            let (cmp, value) = if let Some(v) = rest.strip_prefix(">=") {
                (Comparison::Ge, v)
            } else if let Some(v) = rest.strip_prefix("<=") {
                (Comparison::Le, v)
            } else if let Some(v) = rest.strip_prefix('>') {
                (Comparison::Gt, v)
            } else if let Some(v) = rest.strip_prefix('<') {
                (Comparison::Lt, v)
            } else {
                return Err(format!("unsupported {field} operator in {q:?}"));
            };
            let at = value
                .parse::<Timestamp>()
                .map_err(|_| format!("{field} needs a UTC date-time, got {value:?}"))?;
            return Ok(Filter::Time(field.to_owned(), cmp, at));
        }
        let ids = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("unsupported {field} operator in {q:?}"))?;
        ids.split(',')
            .map(|id| id.trim().parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map(|ids| Filter::Ids(field.to_owned(), ids))
            .map_err(|_| format!("{field} needs numbers, got {ids:?}"))
    }

    pub(super) fn accepts(&self, value: impl Fn(&str) -> Option<String>) -> bool {
        match self {
            Filter::Time(field, cmp, at) => {
                let Some(t) = value(field).and_then(|u| u.parse::<Timestamp>().ok()) else {
                    return false;
                };
                match cmp {
                    Comparison::Gt => t > *at,
                    Comparison::Ge => t >= *at,
                    Comparison::Lt => t < *at,
                    Comparison::Le => t <= *at,
                }
            }
            Filter::Any => true,
            Filter::Ids(field, ids) => value(field)
                .and_then(|p| p.parse::<u64>().ok())
                .is_some_and(|p| ids.contains(&p)),
        }
    }
}

/// Which records a list serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum PatientList {
    Active,
    Archived,
    Deleted,
}

pub(super) fn on_list(p: &ClinikoPatient, list: PatientList) -> bool {
    let deleted = p.deleted_at.is_some();
    let archived = p.archived_at.is_some();
    match list {
        PatientList::Active => !deleted && !archived,
        PatientList::Archived => !deleted && archived,
        PatientList::Deleted => deleted,
    }
}

/// The filters Cliniko documents for individual appointments.
pub(super) const APPOINTMENT_FILTERS: &[&str] = &[
    "appointment_type_id",
    "archived_at",
    "business_id",
    "cancelled_at",
    "created_at",
    "ends_at",
    "id",
    "patient_id",
    "practitioner_id",
    "repeated_from_id",
    "starts_at",
    "updated_at",
];
pub(super) const GROUP_FILTERS: &[&str] = &[
    "appointment_type_id",
    "archived_at",
    "business_id",
    "created_at",
    "ends_at",
    "id",
    "practitioner_id",
    "repeated_from_id",
    "starts_at",
    "updated_at",
];
/// The 2022 list, and the dates the current reference adds (its `:*` form).
pub(super) const ATTENDEE_FILTERS: &[&str] = &[
    "archived_at",
    "booking_id",
    "cancelled_at",
    "created_at",
    "id",
    "patient_id",
    "updated_at",
];

/// Which of a resource's lists: its main one, `/cancelled` or `/deleted`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Listed {
    Main,
    Cancelled,
    Deleted,
}

impl Listed {
    pub(super) fn of(segment: Option<&str>) -> Listed {
        match segment {
            Some("cancelled") => Listed::Cancelled,
            Some("deleted") => Listed::Deleted,
            _ => Listed::Main,
        }
    }

    /// The filters this list takes: a `/deleted` list only `deleted_at` and `id`.
    pub(super) fn searchable(self, documented: &'static [&'static str]) -> &'static [&'static str] {
        match self {
            Listed::Deleted => &["deleted_at", "id"],
            _ => documented,
        }
    }
}
