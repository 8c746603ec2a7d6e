//! The records a test stores, changes and reads back. IDs are Cliniko's
//! 64-bit integers; every change stamps `updated_at`, always forward, so a
//! sync that asks for changes since its last run sees it.
use jiff::Timestamp;
use serde_json::Value;
use tendon_core::cliniko::api::{
    ClinikoAppointment, ClinikoAppointmentType, ClinikoAttendee, ClinikoBusiness, ClinikoCase,
    ClinikoGroupAppointment, ClinikoPatient, ClinikoPractitioner,
};

use super::{FakeState, Inner, Record, format_time};

/// A record's ID as the fake keys it. Panics on a non-numeric ID: Cliniko's
/// are 64-bit integers, and a fixture with another is a test bug.
fn numeric_id(id: &str) -> u64 {
    id.parse()
        .unwrap_or_else(|_| panic!("a Cliniko ID is a 64-bit integer, not {id:?}"))
}

impl FakeState {
    /// Adds or replaces a patient. An empty `updated_at` is stamped; which
    /// list it is on follows `deleted_at` and `archived_at`.
    pub fn upsert_patient(&self, mut patient: ClinikoPatient) {
        let id = numeric_id(&patient.id);
        let mut inner = self.lock();
        if patient.updated_at.is_empty() {
            let previous = inner.patients.get(&id).map(|r| r.value.updated_at.clone());
            patient.updated_at = inner.stamp(previous.as_deref());
        }
        let extra = inner
            .patients
            .remove(&id)
            .map(|r| r.extra)
            .unwrap_or_default();
        inner.patients.insert(
            id,
            Record {
                value: patient,
                extra,
            },
        );
    }

    /// Changes a stored patient and stamps `updated_at`. Panics if there is
    /// none with that ID.
    pub fn update_patient(&self, id: &str, change: impl FnOnce(&mut ClinikoPatient)) {
        self.lock().change_patient(id, |p, _| change(p));
    }

    /// Moves a patient to the archived list.
    pub fn archive_patient(&self, id: &str) {
        self.lock().change_patient(id, |p, now| {
            p.archived_at = Some(now.to_owned());
        });
    }

    /// Moves an archived patient back to the active list.
    pub fn unarchive_patient(&self, id: &str) {
        self.lock().change_patient(id, |p, _| p.archived_at = None);
    }

    /// Moves a patient to the deleted list.
    pub fn delete_patient(&self, id: &str) {
        self.lock().change_patient(id, |p, now| {
            p.deleted_at = Some(now.to_owned());
        });
    }

    /// Merges `from` into `into`: `from` gets `merged_at`, a `merged_into`
    /// link to `into`, and is archived (it leaves the active list).
    pub fn merge_patients(&self, from: &str, into: &str) {
        let into = numeric_id(into).to_string();
        self.lock().change_patient(from, |p, now| {
            p.merged_at = Some(now.to_owned());
            p.archived_at.get_or_insert_with(|| now.to_owned());
            p.merged_into_id = Some(into);
        });
    }

    /// Lays `value` over the patient's JSON field `field` (e.g. `"sex": ""`
    /// or a deprecated `gender`); `Value::Null` sends a null.
    pub fn set_patient_json(&self, id: &str, field: &str, value: Value) {
        let id = numeric_id(id);
        let mut inner = self.lock();
        let record = inner
            .patients
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no patient {id} in the fake"));
        record.extra.insert(field.to_owned(), value);
    }

    /// The patient as stored, if any.
    pub fn patient(&self, id: &str) -> Option<ClinikoPatient> {
        self.lock()
            .patients
            .get(&numeric_id(id))
            .map(|r| r.value.clone())
    }

    /// Adds or replaces an appointment (an empty `updated_at` is stamped).
    pub fn upsert_appointment(&self, mut appointment: ClinikoAppointment) {
        let id = numeric_id(&appointment.id);
        let mut inner = self.lock();
        if appointment.updated_at.is_empty() {
            let previous = inner
                .appointments
                .get(&id)
                .map(|r| r.value.updated_at.clone());
            appointment.updated_at = inner.stamp(previous.as_deref());
        }
        inner.appointments.insert(id, Record::new(appointment));
    }

    pub fn upsert_appointment_type(&self, appointment_type: ClinikoAppointmentType) {
        let id = numeric_id(&appointment_type.id);
        self.lock()
            .appointment_types
            .insert(id, Record::new(appointment_type));
    }

    /// Adds or replaces a patient case (an empty `updated_at` is stamped).
    pub fn upsert_patient_case(&self, mut case: ClinikoCase) {
        let id = numeric_id(&case.id);
        let mut inner = self.lock();
        if case.updated_at.is_empty() {
            let previous = inner.cases.get(&id).map(|r| r.value.updated_at.clone());
            case.updated_at = inner.stamp(previous.as_deref());
        }
        inner.cases.insert(id, Record::new(case));
    }

    pub fn upsert_practitioner(&self, practitioner: ClinikoPractitioner) {
        let id = numeric_id(&practitioner.id);
        self.lock()
            .practitioners
            .insert(id, Record::new(practitioner));
    }

    /// Adds or replaces a business.
    pub fn upsert_business(&self, business: ClinikoBusiness) {
        let id = numeric_id(&business.id);
        self.lock().businesses.insert(id, Record::new(business));
    }

    /// Adds or replaces a group appointment (an empty `updated_at` is stamped).
    pub fn upsert_group_appointment(&self, mut group: ClinikoGroupAppointment) {
        let id = numeric_id(&group.id);
        let mut inner = self.lock();
        if group.updated_at.is_empty() {
            let previous = inner.groups.get(&id).map(|r| r.value.updated_at.clone());
            group.updated_at = inner.stamp(previous.as_deref());
        }
        inner.groups.insert(id, Record::new(group));
    }

    /// Adds or replaces an attendee (an empty `updated_at` is stamped).
    pub fn upsert_attendee(&self, mut attendee: ClinikoAttendee) {
        let id = numeric_id(&attendee.id);
        let mut inner = self.lock();
        if attendee.updated_at.is_empty() {
            let previous = inner.attendees.get(&id).map(|r| r.value.updated_at.clone());
            attendee.updated_at = inner.stamp(previous.as_deref());
        }
        inner.attendees.insert(id, Record::new(attendee));
    }

    /// Cancels an attendee's place in a class as Cliniko does:
    /// `cancelled_at` (and `updated_at`) now; it leaves `/attendees` for
    /// `/attendees/cancelled`.
    pub fn cancel_attendee(&self, id: &str) {
        let key = numeric_id(id);
        let mut inner = self.lock();
        let previous = inner
            .attendees
            .get(&key)
            .unwrap_or_else(|| panic!("no attendee {id} in the fake"))
            .value
            .updated_at
            .clone();
        let now = inner.stamp(Some(&previous));
        let a = &mut inner.attendees.get_mut(&key).expect("checked").value;
        a.cancelled_at = Some(now.clone());
        a.updated_at = now;
    }
}

impl Inner {
    /// The time to stamp a change with, after `previous`.
    fn stamp(&mut self, previous: Option<&str>) -> String {
        let now = self.clock.unwrap_or_else(Timestamp::now);
        let mut t = Timestamp::from_second(now.as_second()).expect("a whole second is in range");
        if let Some(previous) = previous.and_then(|p| p.parse::<Timestamp>().ok())
            && t <= previous
        {
            t = Timestamp::from_second(previous.as_second() + 1).unwrap_or(Timestamp::MAX);
        }
        format_time(t)
    }

    fn change_patient(&mut self, id: &str, change: impl FnOnce(&mut ClinikoPatient, &str)) {
        let key = numeric_id(id);
        let previous = self
            .patients
            .get(&key)
            .unwrap_or_else(|| panic!("no patient {id} in the fake"))
            .value
            .updated_at
            .clone();
        let now = self.stamp(Some(&previous));
        let patient = &mut self.patients.get_mut(&key).expect("checked above").value;
        change(patient, &now);
        patient.updated_at = now;
    }
}
