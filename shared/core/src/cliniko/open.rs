//! The "Open in" button: Cliniko sends the browser to
//! `GET /cliniko/open/{token}?patient_id=ID`; Tendon syncs that profile, then
//! redirects to the patient's profile in the engagement app. The answers for
//! an unknown token and an unknown patient are the same, so neither tells
//! whether the other exists, and they take the same time: every 404 is held
//! until [`NOT_FOUND_FLOOR`] after the request started ([`hold`]).
use std::future::Future;
use std::ops::Add;
use std::time::Duration;

use jiff::Timestamp;

use super::ClinikoConnection;
use super::api::ClinikoApi;
use super::sync::{Outcome, SyncError, sync_patient};
use crate::model::Source;
use crate::ports::SyncStore;
use crate::reply::HttpReply;
use crate::workflow::dispatch::path_segment;

/// The environment variable holding the profile URL template, for the
/// "Open in" route on every server.
pub const ENV_PROFILE_URL: &str = "TENDON_PROFILE_URL";

/// The default profile URL template (`{org}` and `{patient_id}` are
/// replaced, URL-encoded).
pub const DEFAULT_PROFILE_URL: &str = "https://app.tendon.example/orgs/{org}/patients/{patient_id}";

/// How long after the request started every 404 of the route goes out, at
/// the earliest.
///
/// An unknown token is answered after one store read (milliseconds); a known
/// token with an unknown patient only after asking Cliniko for the profile
/// (some 25 times longer, hundreds of milliseconds from another continent).
/// Sent when ready, the two 404s would tell a guesser by their timing which
/// tokens exist, although their status and page are the same. Held to this
/// floor, they leave at the same moment: 1.5 s is above Cliniko's usual
/// answer to one patient request plus our writes, and still short for a
/// person who clicked a button. A 404 whose Cliniko call took longer than the
/// floor (Cliniko slow or rate limiting) goes out when ready. The other
/// answers (303, 422, 502) need a valid token anyway, so they are not held.
pub const NOT_FOUND_FLOOR: Duration = Duration::from_millis(1500);

/// Holds `answer` until it may be sent ([`OpenAnswer::not_before`]) for a
/// request that started at `started`, with `sleep_until`, the adapter's
/// timer (`tokio::time::sleep_until`); any other answer returns at once.
pub async fn hold<I, W>(answer: &OpenAnswer, started: I, sleep_until: impl FnOnce(I) -> W)
where
    I: Add<Duration, Output = I>,
    W: Future<Output = ()>,
{
    if let Some(at) = answer.not_before(started) {
        sleep_until(at).await;
    }
}

/// What the endpoint answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenAnswer {
    /// 303 to the patient's profile.
    Redirect(String),
    /// 404: unknown token, no or unknown patient, or a profile not active.
    NotFound,
    /// 422: the profile lacks required fields (named), so it is not imported.
    Incomplete(Vec<&'static str>),
    /// 502: Cliniko refused the stored key or failed; the text says what to do.
    Unavailable(String),
}

impl OpenAnswer {
    /// When the answer may be sent, for a request that started at `started`
    /// (an instant of any clock: std's, tokio's): a 404 not before
    /// [`NOT_FOUND_FLOOR`] after it, whichever path found nothing; `None`
    /// (at once) for the others.
    pub fn not_before<I: Add<Duration, Output = I>>(&self, started: I) -> Option<I> {
        matches!(self, OpenAnswer::NotFound).then(|| started + NOT_FOUND_FLOOR)
    }

    /// The HTTP answer: an HTML page (field names only, never patient data),
    /// with a redirect's `Location`.
    pub fn reply(&self) -> HttpReply {
        match self {
            OpenAnswer::Redirect(url) => {
                HttpReply::page(303, "Opening the patient's profile.").with_location(url.clone())
            }
            OpenAnswer::NotFound => HttpReply::page(404, "This patient cannot be opened here."),
            OpenAnswer::Incomplete(missing) => {
                let names: Vec<&str> = missing
                    .iter()
                    .map(|m| match *m {
                        "first_name" => "first name",
                        "last_name" => "last name",
                        "date_of_birth" => "date of birth",
                        "sex" => "sex",
                        "email" => "email",
                        other => other,
                    })
                    .collect();
                let text = format!(
                    "This patient's Cliniko profile is missing: {}. Add it in Cliniko, then open the patient again.",
                    names.join(", ")
                );
                HttpReply::page(422, &text)
            }
            OpenAnswer::Unavailable(_) => HttpReply::page(
                502,
                "Cliniko could not be reached with this clinic's connection. Try again; if it keeps failing, reconnect Cliniko in Tendon.",
            ),
        }
    }

    /// The answer when the store failed before Cliniko was asked.
    pub fn try_later() -> HttpReply {
        HttpReply::page(503, "Please try again later.")
    }
}

/// The profile URL of a patient from `template`.
pub fn profile_url(template: &str, org: &str, patient_id: &str) -> String {
    template
        .replace("{org}", &path_segment(org))
        .replace("{patient_id}", &path_segment(patient_id))
}

/// Cliniko IDs are digits; anything else cannot be a patient.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Handles one click. `client` makes the connection's Cliniko client.
pub async fn open<S, A, F>(
    store: &S,
    client: F,
    token: &str,
    patient_id: Option<&str>,
    profile_template: &str,
    now: Timestamp,
) -> Result<OpenAnswer, crate::ports::StoreError>
where
    S: SyncStore,
    A: ClinikoApi,
    F: FnOnce(&ClinikoConnection) -> Result<A, String>,
{
    let Some(connection) = store.connection_for_token(token).await? else {
        return Ok(OpenAnswer::NotFound);
    };
    let Some(id) = patient_id.map(str::trim).filter(|id| plausible_id(id)) else {
        return Ok(OpenAnswer::NotFound);
    };
    let api = match client(&connection) {
        Ok(api) => api,
        Err(e) => return Ok(OpenAnswer::Unavailable(e)),
    };
    match sync_patient(store, &api, &connection, id, now).await {
        Ok(Some(Outcome::Failed(missing))) => Ok(OpenAnswer::Incomplete(missing)),
        Ok(None) => Ok(OpenAnswer::NotFound),
        Ok(Some(_)) => {
            // Whatever the profile did, open only an active Cliniko patient.
            let record = store.load_patient(&connection.org, id).await?;
            let active = record.is_some_and(|r| {
                r.patient.source == Source::Cliniko
                    && r.patient.inactive.is_none()
                    && r.patient.merged_into.is_none()
            });
            Ok(if active {
                OpenAnswer::Redirect(profile_url(profile_template, &connection.org, id))
            } else {
                OpenAnswer::NotFound
            })
        }
        Err(SyncError::Store(e)) => Err(e),
        Err(e) => {
            tracing::warn!(org = %connection.org, error = %e, "Open in: Cliniko failed");
            Ok(OpenAnswer::Unavailable(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_url_encodes_its_parts() {
        assert_eq!(
            profile_url(DEFAULT_PROFILE_URL, "ACME 01", "1234567890123456789"),
            "https://app.tendon.example/orgs/ACME%2001/patients/1234567890123456789"
        );
    }

    #[test]
    fn every_not_found_answer_waits_for_the_floor_and_no_other_does() {
        let started = std::time::Instant::now();
        assert_eq!(
            OpenAnswer::NotFound.not_before(started),
            Some(started + NOT_FOUND_FLOOR)
        );
        for other in [
            OpenAnswer::Redirect("https://app.example/p/1".into()),
            OpenAnswer::Incomplete(vec!["email"]),
            OpenAnswer::Unavailable("refused".into()),
        ] {
            assert_eq!(other.not_before(started), None, "{other:?}");
        }
        // As docs/interface.md §4 and docs/cliniko.md say.
        assert_eq!(NOT_FOUND_FLOOR, Duration::from_millis(1500));
    }

    #[test]
    fn only_digit_ids_can_be_patients() {
        assert!(plausible_id("1234567890123456789"));
        for bad in ["", "12a", "../1", "123456789012345678901"] {
            assert!(!plausible_id(bad), "{bad}");
        }
    }
}
