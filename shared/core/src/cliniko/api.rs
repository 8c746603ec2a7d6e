//! The [`ClinikoApi`] port: what the sync needs from Cliniko's REST API, in
//! the shapes it documents. `shared/cliniko` implements it over HTTP; the
//! sync in this module only sees these types.
//!
//! Cliniko IDs are 64-bit integers sent as JSON strings: they stay strings
//! here. Times are RFC 3339 strings as Cliniko sends them; an empty string
//! from Cliniko is `None`.
use std::future::Future;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A Cliniko patient (the fields the sync reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoPatient {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// Cliniko's `sex` (free text such as `Male`, `Female`).
    pub sex: Option<String>,
    pub gender_identity: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub phone_numbers: Vec<ClinikoPhone>,
    /// An IANA zone, if the patient has one.
    pub time_zone: Option<String>,
    /// The patient's country as Cliniko holds it: `country_code` (ISO
    /// 3166 alpha-2) when sent, else the free-text `country` (`Australia`).
    pub country: Option<String>,
    pub accepted_email_marketing: Option<bool>,
    pub accepted_sms_marketing: Option<bool>,
    pub archived_at: Option<String>,
    pub deleted_at: Option<String>,
    pub merged_at: Option<String>,
    /// The ID of the patient this one was merged into
    /// (`merged_with_patient.links.self`).
    pub merged_into_id: Option<String>,
    /// Empty for an entry of `GET /patients/deleted`, which holds only
    /// `deleted_at` and the record's link.
    pub updated_at: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoPhone {
    /// `Mobile`, `Home`, `Work`, `Fax`, `Other`.
    pub phone_type: Option<String>,
    pub number: String,
}

/// A Cliniko individual appointment; the linked records are by ID (taken
/// from the `links.self` URLs Cliniko sends).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoAppointment {
    pub id: String,
    pub patient_id: Option<String>,
    pub practitioner_id: Option<String>,
    pub appointment_type_id: Option<String>,
    pub patient_case_id: Option<String>,
    pub business_id: Option<String>,
    pub starts_at: String,
    pub cancelled_at: Option<String>,
    pub deleted_at: Option<String>,
    pub archived_at: Option<String>,
    #[serde(default)]
    pub patient_arrived: bool,
    #[serde(default)]
    pub did_not_arrive: bool,
    pub updated_at: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoAppointmentType {
    pub id: String,
    pub name: String,
    /// Listed under `/appointment_types/archived`: retired, but historic
    /// appointments still carry it.
    #[serde(default)]
    pub archived: bool,
}

/// A Cliniko business: one clinic site, a Tendon location.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoBusiness {
    pub id: String,
    /// `business_name` (else `display_name`).
    pub name: Option<String>,
    /// `time_zone_identifier`: an IANA zone.
    pub time_zone: Option<String>,
    /// `country_code` (ISO 3166 alpha-2), else the free-text `country`.
    pub country: Option<String>,
}

/// A Cliniko group appointment (a class); its patients are its attendees.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoGroupAppointment {
    pub id: String,
    pub practitioner_id: Option<String>,
    pub appointment_type_id: Option<String>,
    pub business_id: Option<String>,
    pub starts_at: String,
    pub deleted_at: Option<String>,
    pub archived_at: Option<String>,
    pub updated_at: String,
}

/// One patient's place in a group appointment. Its booking is the group
/// appointment (`booking.links.self`, a `/bookings/{id}` URL whose ID is
/// the group appointment's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoAttendee {
    pub id: String,
    pub patient_id: Option<String>,
    pub booking_id: Option<String>,
    #[serde(default)]
    pub arrived: bool,
    pub cancelled_at: Option<String>,
    pub deleted_at: Option<String>,
    pub updated_at: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoCase {
    pub id: String,
    pub patient_id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub closed: bool,
    pub updated_at: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinikoPractitioner {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default)]
    pub active: bool,
}

/// Which of Cliniko's patient lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientList {
    /// `GET /patients`
    Active,
    /// `GET /patients/archived`
    Archived,
    /// `GET /patients/deleted`
    Deleted,
}

/// Which of Cliniko's lists of appointments (individual ones, or a group
/// appointment's attendees): each leaves the others' records out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentList {
    /// `GET /individual_appointments`, `GET /attendees`: neither cancelled
    /// nor deleted.
    Booked,
    /// `…/cancelled`.
    Cancelled,
    /// `…/deleted`: filterable by `deleted_at` only.
    Deleted,
}

/// Current or retired records of a small configuration list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listing {
    /// `GET /practitioners`, `GET /appointment_types`.
    Current,
    /// `GET /practitioners/inactive`, `GET /appointment_types/archived`:
    /// former staff and retired types, which historic appointments name.
    Retired,
}

/// One page of a list, and where the next one is (`links.next`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Records of the page that could not be read: each is reported, and
    /// the rest of the page (and the sync) goes on.
    pub unreadable: Vec<Unreadable>,
    pub next: Option<String>,
}

/// A record Cliniko sent that is not in its documented shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// Its `id` (or the last segment of `links.self`), when it has one.
    pub cliniko_id: Option<String>,
    /// What is wrong, never its data: `invalid type at line 1 column 40`.
    pub reason: String,
}

/// Why a Cliniko call failed. Messages never carry patient data or the key.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ClinikoError {
    /// No `User-Agent` naming the application and a contact, which Cliniko
    /// asks of every integration (and may block requests without).
    #[error(
        "Cliniko asks every integration to name itself and a contact in its User-Agent, and may block requests without one: {0}. Set TENDON_CLINIKO_USER_AGENT to \"YourCompany Tendon (integrations@yourcompany.com)\" (on AWS, the template's ClinikoUserAgent parameter)"
    )]
    UserAgent(String),
    /// The key's shard suffix is not valid (two letters and one or two digits).
    #[error("the API key's shard suffix is not valid: {0}")]
    InvalidKey(String),
    /// 401: the key is wrong or revoked.
    #[error(
        "Cliniko refused the API key (401): check it, or create a new one in Cliniko under My info > Manage API keys"
    )]
    Unauthorized,
    /// 404.
    #[error("not found in Cliniko (404)")]
    NotFound,
    /// 429 more often than the client retries it, or the reset is too far off.
    #[error("Cliniko's rate limit was hit; try again after {retry_at}")]
    RateLimited { retry_at: String },
    /// 5xx or a transport failure, after retries.
    #[error("Cliniko is unavailable: {0}")]
    Unavailable(String),
    /// A body that is not the documented JSON.
    #[error("Cliniko sent a response that is not the documented JSON: {0}")]
    Malformed(String),
    /// Any other HTTP status.
    #[error("Cliniko answered HTTP {0}")]
    Status(u16),
}

/// Cliniko's REST API, for one connection (one API key).
pub trait ClinikoApi: Send + Sync {
    /// One cheap authenticated call that proves the key works.
    fn verify(&self) -> impl Future<Output = Result<(), ClinikoError>> + Send;
    /// A page of a patient list, `updated_at` after `updated_since` if given;
    /// `next` is a previous page's `next` (else the first page).
    fn patients(
        &self,
        list: PatientList,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> impl Future<Output = Result<Page<ClinikoPatient>, ClinikoError>> + Send;
    /// One patient (archived and deleted ones included); `NotFound` if none.
    fn patient(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<ClinikoPatient, ClinikoError>> + Send;
    /// A page of individual appointments of one list, of one patient if
    /// given, changed (for `Deleted`: deleted) after `updated_since`.
    fn appointments(
        &self,
        list: AppointmentList,
        patient_id: Option<&str>,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> impl Future<Output = Result<Page<ClinikoAppointment>, ClinikoError>> + Send;
    fn appointment_types(
        &self,
        listing: Listing,
        next: Option<&str>,
    ) -> impl Future<Output = Result<Page<ClinikoAppointmentType>, ClinikoError>> + Send;
    /// A page of patient cases, of one patient if given.
    fn patient_cases(
        &self,
        patient_id: Option<&str>,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> impl Future<Output = Result<Page<ClinikoCase>, ClinikoError>> + Send;
    fn practitioners(
        &self,
        listing: Listing,
        next: Option<&str>,
    ) -> impl Future<Output = Result<Page<ClinikoPractitioner>, ClinikoError>> + Send;
    fn businesses(
        &self,
        next: Option<&str>,
    ) -> impl Future<Output = Result<Page<ClinikoBusiness>, ClinikoError>> + Send;
    /// A page of group appointments changed after `updated_since`
    /// (`deleted`: of `/group_appointments/deleted`, deleted after it).
    fn group_appointments(
        &self,
        deleted: bool,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> impl Future<Output = Result<Page<ClinikoGroupAppointment>, ClinikoError>> + Send;
    /// A page of the group appointments with these IDs (at most 100).
    fn group_appointments_by_id(
        &self,
        ids: &[String],
        next: Option<&str>,
    ) -> impl Future<Output = Result<Page<ClinikoGroupAppointment>, ClinikoError>> + Send;
    /// A page of attendees of one list: of these group appointments (at
    /// most 100, by `booking_id`) if given, else of all.
    fn attendees(
        &self,
        list: AppointmentList,
        group_appointment_ids: Option<&[String]>,
        updated_since: Option<&str>,
        next: Option<&str>,
    ) -> impl Future<Output = Result<Page<ClinikoAttendee>, ClinikoError>> + Send;
}
