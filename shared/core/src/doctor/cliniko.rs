//! The Cliniko part of the analysis (pure): a connection that never synced
//! or stopped syncing, and the profiles that could not be imported, by the
//! field they lack. Whether Cliniko still takes the key, and the User-Agent
//! it asks for, are checked by the caller, which can reach Cliniko
//! ([`unusable`] words what it found).
use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::findings::{Finding, Tally, config_org, quote};
use crate::cliniko::{ClinikoConnection, ClinikoFailure};

/// The re-sync runs every 15 minutes by default: an hour without one means
/// it is not running.
const SYNC_LATE: SignedDuration = SignedDuration::from_hours(1);
const EXAMPLES: usize = 3;

pub(super) fn cliniko(
    connection: Option<&ClinikoConnection>,
    failures: &[ClinikoFailure],
    now: Timestamp,
) -> Vec<Finding> {
    let Some(c) = connection else {
        return Vec::new();
    };
    let org = quote(&c.org);
    let mut found = Vec::new();
    match c.last_sync_at {
        None => found.push(Finding {
            summary: format!(
                "Cliniko was connected at {} and has never been synced",
                c.connected_at
            ),
            first_seen: c.connected_at,
            last_seen: c.connected_at,
            fix: format!("tendon cliniko sync --org {org}"),
            ..Finding::of("cliniko_never_synced", &Tally::default())
        }),
        Some(last) if now.duration_since(last) > SYNC_LATE => found.push(Finding {
            summary: format!(
                "the last Cliniko sync ran at {last}, {} minute(s) ago; the re-sync runs every 15 minutes",
                now.duration_since(last).as_secs() / 60
            ),
            first_seen: last,
            last_seen: last,
            fix: format!(
                "check the re-sync (tendon serve's --cliniko-resync-minutes; on AWS the cliniko-sync function's schedule), then tendon cliniko sync --org {org}"
            ),
            ..Finding::of("cliniko_sync_late", &Tally::default())
        }),
        Some(_) => {}
    }
    let mut by_field: BTreeMap<&str, Vec<&ClinikoFailure>> = BTreeMap::new();
    for f in failures {
        for field in &f.missing {
            by_field.entry(field.as_str()).or_default().push(f);
        }
    }
    found.extend(by_field.into_iter().map(|(field, profiles)| Finding {
        subject: Some(field.to_owned()),
        summary: format!(
            "{} Cliniko profile(s) could not be imported without {field}",
            profiles.len()
        ),
        messages: profiles.len(),
        examples: profiles
            .iter()
            .take(EXAMPLES)
            .map(|p| p.cliniko_id.clone())
            .collect(),
        fix: format!(
            "the clinic fills {field} in Cliniko; the next sync imports them (tendon cliniko failures --org {org} lists them)"
        ),
        ..Finding::of("cliniko_failures", &Tally::default())
    }));
    found
}

/// Cliniko does not take the connection as it is: `reason` says why (the
/// key refused, no User-Agent naming the deployment), never the key.
pub fn unusable(org: &str, reason: &str) -> Finding {
    Finding {
        summary: format!("Cliniko cannot be used: {reason}"),
        fix: format!(
            "fix what it says; a new key: tendon cliniko connect --org {} --api-key KEY",
            config_org(org)
        ),
        ..Finding::of("cliniko_connection", &Tally::default())
    }
}
