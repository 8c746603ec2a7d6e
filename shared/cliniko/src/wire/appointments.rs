//! The bookings as Cliniko sends them: an individual appointment, a group
//! appointment (a class) and an attendee of one. Each points to its patient,
//! practitioner, type and business by link.
use serde::Deserialize;
use tendon_core::cliniko::api::{ClinikoAppointment, ClinikoAttendee, ClinikoGroupAppointment};

use super::Wire;
use super::fields::{Id, Link, RecordLinks, lenient, linked_id, opt_bool, record_id, text};

#[derive(Debug, Deserialize)]
pub(crate) struct WireAppointment {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    starts_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    cancelled_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    deleted_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    archived_at: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    patient_arrived: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    did_not_arrive: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default)]
    patient: Option<Link>,
    #[serde(default)]
    practitioner: Option<Link>,
    #[serde(default)]
    appointment_type: Option<Link>,
    #[serde(default)]
    business: Option<Link>,
    #[serde(default)]
    patient_case: Option<Link>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireAppointment {
    type Record = ClinikoAppointment;

    fn finish(self) -> Result<ClinikoAppointment, &'static str> {
        let w = self;
        Ok(ClinikoAppointment {
            id: record_id(w.id, w.links.as_ref())?,
            patient_id: linked_id(w.patient.as_ref()),
            practitioner_id: linked_id(w.practitioner.as_ref()),
            appointment_type_id: linked_id(w.appointment_type.as_ref()),
            patient_case_id: linked_id(w.patient_case.as_ref()),
            business_id: linked_id(w.business.as_ref()),
            starts_at: w.starts_at.unwrap_or_default(),
            cancelled_at: w.cancelled_at,
            deleted_at: w.deleted_at,
            archived_at: w.archived_at,
            patient_arrived: w.patient_arrived.unwrap_or(false),
            did_not_arrive: w.did_not_arrive.unwrap_or(false),
            updated_at: w.updated_at.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireGroupAppointment {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "text")]
    starts_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    deleted_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    archived_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default)]
    practitioner: Option<Link>,
    #[serde(default)]
    appointment_type: Option<Link>,
    #[serde(default)]
    business: Option<Link>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireGroupAppointment {
    type Record = ClinikoGroupAppointment;

    fn finish(self) -> Result<ClinikoGroupAppointment, &'static str> {
        Ok(ClinikoGroupAppointment {
            id: record_id(self.id, self.links.as_ref())?,
            practitioner_id: linked_id(self.practitioner.as_ref()),
            appointment_type_id: linked_id(self.appointment_type.as_ref()),
            business_id: linked_id(self.business.as_ref()),
            starts_at: self.starts_at.unwrap_or_default(),
            deleted_at: self.deleted_at,
            archived_at: self.archived_at,
            updated_at: self.updated_at.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireAttendee {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default, deserialize_with = "opt_bool")]
    arrived: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    cancelled_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    deleted_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    updated_at: Option<String>,
    #[serde(default)]
    patient: Option<Link>,
    #[serde(default)]
    booking: Option<Link>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<RecordLinks>,
}

impl Wire for WireAttendee {
    type Record = ClinikoAttendee;

    fn finish(self) -> Result<ClinikoAttendee, &'static str> {
        Ok(ClinikoAttendee {
            id: record_id(self.id, self.links.as_ref())?,
            patient_id: linked_id(self.patient.as_ref()),
            booking_id: linked_id(self.booking.as_ref()),
            arrived: self.arrived.unwrap_or(false),
            cancelled_at: self.cancelled_at,
            deleted_at: self.deleted_at,
            updated_at: self.updated_at.unwrap_or_default(),
        })
    }
}
