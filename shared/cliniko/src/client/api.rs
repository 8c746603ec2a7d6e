//! The port, [`ClinikoApi`], over the client: which of Cliniko's lists or
//! records each call reads, and which records of a list it keeps.
use tendon_core::cliniko::api::{
    AppointmentList, ClinikoApi, ClinikoAppointment, ClinikoAppointmentType, ClinikoAttendee,
    ClinikoBusiness, ClinikoCase, ClinikoError, ClinikoGroupAppointment, ClinikoPatient,
    ClinikoPractitioner, Listing, Page, PatientList,
};

use super::Client;
use super::lists::{belongs, list_path};
use crate::wire::{self, decode_list, decode_one};

impl ClinikoApi for Client {
    async fn verify(&self) -> Result<(), ClinikoError> {
        let url = self.url(&["patients"], &[("per_page", "1")]);
        let body = self.get(url).await?;
        // A 200 that is not Cliniko's list (a wrong base URL) fails here.
        decode_list::<wire::Ignored>(&body, "patients").map(|_| ())
    }

    async fn patients(
        &self,
        list: PatientList,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> Result<Page<ClinikoPatient>, ClinikoError> {
        let segments: &[&str] = match list {
            PatientList::Active => &["patients"],
            PatientList::Archived => &["patients", "archived"],
            PatientList::Deleted => &["patients", "deleted"],
        };
        self.changes::<wire::WirePatient>(segments, "patients", None, updated_since, next)
            .await
    }

    async fn patient(&self, id: &str) -> Result<ClinikoPatient, ClinikoError> {
        let body = self.get(self.url(&["patients", id.trim()], &[])).await?;
        decode_one::<wire::WirePatient>(&body)
    }

    async fn appointments(
        &self,
        list: AppointmentList,
        patient_id: Option<&str>,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> Result<Page<ClinikoAppointment>, ClinikoError> {
        let mut page = self
            .hidden_changes::<wire::WireAppointment>(
                "individual_appointments",
                list,
                patient_id,
                updated_since,
                next,
            )
            .await?;
        page.items.retain(|a| {
            belongs(
                list,
                a.cancelled_at.is_some(),
                a.deleted_at.is_some() || a.archived_at.is_some(),
            )
        });
        Ok(page)
    }

    async fn appointment_types(
        &self,
        listing: Listing,
        next: Option<&str>,
    ) -> Result<Page<ClinikoAppointmentType>, ClinikoError> {
        let segments: &[&str] = match listing {
            Listing::Current => &["appointment_types"],
            Listing::Retired => &["appointment_types", "archived"],
        };
        self.list::<wire::WireAppointmentType>(segments, "appointment_types", &[], next)
            .await
    }

    async fn patient_cases(
        &self,
        patient_id: Option<&str>,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> Result<Page<ClinikoCase>, ClinikoError> {
        self.changes::<wire::WireCase>(
            &["patient_cases"],
            "patient_cases",
            patient_id,
            updated_since,
            next,
        )
        .await
    }

    async fn practitioners(
        &self,
        listing: Listing,
        next: Option<&str>,
    ) -> Result<Page<ClinikoPractitioner>, ClinikoError> {
        let segments: &[&str] = match listing {
            Listing::Current => &["practitioners"],
            Listing::Retired => &["practitioners", "inactive"],
        };
        let mut page = self
            .list::<wire::WirePractitioner>(segments, "practitioners", &[], next)
            .await?;
        if listing == Listing::Retired {
            for p in &mut page.items {
                p.active = false;
            }
        }
        Ok(page)
    }

    async fn businesses(&self, next: Option<&str>) -> Result<Page<ClinikoBusiness>, ClinikoError> {
        self.list::<wire::WireBusiness>(&["businesses"], "businesses", &[], next)
            .await
    }

    async fn group_appointments(
        &self,
        deleted: bool,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> Result<Page<ClinikoGroupAppointment>, ClinikoError> {
        let segments: &[&str] = if deleted {
            &["group_appointments", "deleted"]
        } else {
            &["group_appointments"]
        };
        self.changes::<wire::WireGroupAppointment>(
            segments,
            "group_appointments",
            None,
            updated_since,
            next,
        )
        .await
    }

    async fn group_appointments_by_id(
        &self,
        ids: &[String],
        next: Option<&str>,
    ) -> Result<Page<ClinikoGroupAppointment>, ClinikoError> {
        let ids: Vec<&str> = ids.iter().map(|i| i.trim()).collect();
        let filter = [format!("id:={}", ids.join(","))];
        self.list::<wire::WireGroupAppointment>(
            &["group_appointments"],
            "group_appointments",
            &filter,
            next,
        )
        .await
    }

    async fn attendees(
        &self,
        list: AppointmentList,
        group_appointment_ids: Option<&[String]>,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> Result<Page<ClinikoAttendee>, ClinikoError> {
        let segments = list_path("attendees", list);
        match group_appointment_ids {
            // A class's attendee is booked on it: `booking_id` is the class.
            Some(ids) => {
                let ids: Vec<&str> = ids.iter().map(|i| i.trim()).collect();
                let filter = [format!("booking_id:={}", ids.join(","))];
                self.list::<wire::WireAttendee>(&segments, "attendees", &filter, next)
                    .await
            }
            None => {
                let mut page = self
                    .hidden_changes::<wire::WireAttendee>(
                        "attendees",
                        list,
                        None,
                        updated_since,
                        next,
                    )
                    .await?;
                page.items
                    .retain(|a| belongs(list, a.cancelled_at.is_some(), a.deleted_at.is_some()));
                Ok(page)
            }
        }
    }
}
