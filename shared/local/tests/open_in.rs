//! The Cliniko "Open in" route's 404s take the same time whichever path found
//! nothing (`tendon_core::cliniko::open::NOT_FOUND_FLOOR`): the core's `open`
//! and `hold`, as `tendon serve` and the cliniko-open function call them, on
//! the embedded store with a Cliniko that takes its time to answer. Time is
//! tokio's paused clock, so the durations are exact, never measured.
use std::time::Duration;

use tendon_contract::{cliniko_connection, org, unique};
use tendon_core::cliniko::api::{
    AppointmentList, ClinikoApi, ClinikoAppointment, ClinikoAppointmentType, ClinikoAttendee,
    ClinikoBusiness, ClinikoCase, ClinikoError, ClinikoGroupAppointment, ClinikoPatient,
    ClinikoPractitioner, Listing, Page, PatientList,
};
use tendon_core::cliniko::open::{DEFAULT_PROFILE_URL, NOT_FOUND_FLOOR, OpenAnswer, hold, open};
use tendon_core::ports::{ClinikoStore, ConfigStore};
use tendon_local::SqliteStore;
use tokio::time::Instant;

/// How long the fake Cliniko takes to answer for one patient: far longer
/// than the store's read of an unknown token.
const CLINIKO_LATENCY: Duration = Duration::from_millis(400);

/// A Cliniko that knows one patient and answers after [`CLINIKO_LATENCY`].
struct SlowCliniko {
    known: ClinikoPatient,
}

type Paged<T> = Result<Page<T>, ClinikoError>;

impl ClinikoApi for SlowCliniko {
    async fn verify(&self) -> Result<(), ClinikoError> {
        Ok(())
    }
    async fn patient(&self, id: &str) -> Result<ClinikoPatient, ClinikoError> {
        tokio::time::sleep(CLINIKO_LATENCY).await;
        if id == self.known.id {
            Ok(self.known.clone())
        } else {
            Err(ClinikoError::NotFound)
        }
    }
    // The click reads one patient only; no list is ever asked for.
    async fn patients(
        &self,
        _: PatientList,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Paged<ClinikoPatient> {
        Err(ClinikoError::Status(500))
    }
    async fn appointments(
        &self,
        _: AppointmentList,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Paged<ClinikoAppointment> {
        Err(ClinikoError::Status(500))
    }
    async fn appointment_types(
        &self,
        _: Listing,
        _: Option<&str>,
    ) -> Paged<ClinikoAppointmentType> {
        Err(ClinikoError::Status(500))
    }
    async fn patient_cases(
        &self,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Paged<ClinikoCase> {
        Err(ClinikoError::Status(500))
    }
    async fn practitioners(&self, _: Listing, _: Option<&str>) -> Paged<ClinikoPractitioner> {
        Err(ClinikoError::Status(500))
    }
    async fn businesses(&self, _: Option<&str>) -> Paged<ClinikoBusiness> {
        Err(ClinikoError::Status(500))
    }
    async fn group_appointments(
        &self,
        _: bool,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Paged<ClinikoGroupAppointment> {
        Err(ClinikoError::Status(500))
    }
    async fn group_appointments_by_id(
        &self,
        _: &[String],
        _: Option<&str>,
    ) -> Paged<ClinikoGroupAppointment> {
        Err(ClinikoError::Status(500))
    }
    async fn attendees(
        &self,
        _: AppointmentList,
        _: Option<&[String]>,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Paged<ClinikoAttendee> {
        Err(ClinikoError::Status(500))
    }
}

const KNOWN: &str = "1234567890123456789";

fn known_profile() -> ClinikoPatient {
    ClinikoPatient {
        id: KNOWN.into(),
        first_name: Some("Ana".into()),
        last_name: Some("Rivera".into()),
        date_of_birth: Some("1985-03-12".into()),
        sex: Some("Female".into()),
        email: Some("ana@example.com".into()),
        updated_at: "2026-11-20T10:00:00Z".into(),
        ..Default::default()
    }
}

/// One click as an adapter answers it: `open`, then `hold` on tokio's timer.
/// The answer, and how long after the click it went out.
async fn click(
    store: &SqliteStore,
    token: &str,
    patient_id: Option<&str>,
) -> (OpenAnswer, Duration) {
    let started = Instant::now();
    let answer = open(
        store,
        |_| {
            Ok::<_, String>(SlowCliniko {
                known: known_profile(),
            })
        },
        token,
        patient_id,
        DEFAULT_PROFILE_URL,
        jiff::Timestamp::now(),
    )
    .await
    .expect("the store answers");
    hold(&answer, started, tokio::time::sleep_until).await;
    (answer, started.elapsed())
}

/// Within the timer's resolution (1 ms) of `want`, never before it.
fn about(got: Duration, want: Duration) -> bool {
    got >= want && got < want + Duration::from_millis(1)
}

#[tokio::test(start_paused = true)]
async fn every_not_found_answer_goes_out_at_the_floor_whichever_path_found_nothing() {
    let store = SqliteStore::open_in_memory().expect("in-memory store");
    let org_id = unique("ORG");
    store
        .create_org(&org(&org_id), &unique("keyhash"))
        .await
        .unwrap();
    let connection = cliniko_connection(&org_id);
    store.put_connection(&connection).await.unwrap();
    let token = connection.token.as_str();
    let unknown_token = "0".repeat(token.len());

    // The paths differ: no store hit, a store hit and no Cliniko call, a
    // store hit and a Cliniko call that finds nobody.
    let (answer, fast) = click(&store, &unknown_token, Some(KNOWN)).await;
    assert_eq!(answer, OpenAnswer::NotFound);
    for (patient_id, what) in [
        (None, "no patient_id"),
        (Some("abc"), "a patient_id that is no Cliniko ID"),
        (Some("99"), "a patient Cliniko does not have"),
    ] {
        let (answer, took) = click(&store, token, patient_id).await;
        assert_eq!(answer, OpenAnswer::NotFound, "{what}");
        assert_eq!(took, fast, "{what}: as long as an unknown token");
    }
    assert!(about(fast, NOT_FOUND_FLOOR), "{fast:?}");

    // A redirect needs the token anyway: it goes out when ready.
    let (answer, took) = click(&store, token, Some(KNOWN)).await;
    assert!(matches!(answer, OpenAnswer::Redirect(_)), "{answer:?}");
    assert!(about(took, CLINIKO_LATENCY), "{took:?}");
}
