//! The "Open in" button: Cliniko sends the browser to
//! `GET /cliniko/open/{token}?patient_id=ID`; Tendon syncs that profile, then
//! redirects to the patient's profile in the engagement app. The answers for
//! an unknown token and an unknown patient are the same, so neither tells
//! whether the other exists.
use jiff::Timestamp;

use super::ClinikoConnection;
use super::api::ClinikoApi;
use super::sync::{Outcome, SyncError, SyncStore, sync_patient};
use crate::model::Source;
use crate::workflow::dispatch::path_segment;

/// The default profile URL template (`{org}` and `{patient_id}` are
/// replaced, URL-encoded).
pub const DEFAULT_PROFILE_URL: &str = "https://app.tendon.example/orgs/{org}/patients/{patient_id}";

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
    /// The HTTP answer: status, `Location` (a redirect's) and an HTML body
    /// (field names only, never patient data).
    pub fn http(&self) -> (u16, Option<&str>, String) {
        let page = |text: &str| format!("<!doctype html><meta charset=\"utf-8\"><p>{text}</p>\n");
        match self {
            OpenAnswer::Redirect(url) => (
                303,
                Some(url.as_str()),
                page("Opening the patient's profile."),
            ),
            OpenAnswer::NotFound => (404, None, page("This patient cannot be opened here.")),
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
                (422, None, page(&text))
            }
            OpenAnswer::Unavailable(_) => (
                502,
                None,
                page(
                    "Cliniko could not be reached with this clinic's connection. Try again; if it keeps failing, reconnect Cliniko in Tendon.",
                ),
            ),
        }
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
    fn only_digit_ids_can_be_patients() {
        assert!(plausible_id("1234567890123456789"));
        for bad in ["", "12a", "../1", "123456789012345678901"] {
            assert!(!plausible_id(bad), "{bad}");
        }
    }
}
