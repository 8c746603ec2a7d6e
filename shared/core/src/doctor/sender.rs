//! The sender's part of the analysis (pure): messages refused (`AR`), ADTs
//! parked for long, the sender's clock, and the types stored `ignored`.
use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::findings::{Finding, Tally, clean, messages_org};
use crate::ErrorCode;
use crate::model::{MessageStatus, StoredMessage};

/// A parked ADT waiting longer than this is reported.
const PENDING_FOR_LONG: SignedDuration = SignedDuration::from_hours(24);
/// A sender's clock off by more than this (the median) is reported.
const SKEW_LIMIT: SignedDuration = SignedDuration::from_mins(5);
/// The clock skew is the median over at most this many of the latest messages.
const SKEW_SAMPLE: usize = 1000;

/// One finding per reason a message was refused (`AR`).
pub(super) fn rejected(org: &str, messages: &[StoredMessage]) -> Vec<Finding> {
    let mut by_code: BTreeMap<ErrorCode, Tally> = BTreeMap::new();
    for m in messages
        .iter()
        .filter(|m| m.status == MessageStatus::Rejected)
    {
        if let Some(issue) = m.errors.first() {
            by_code.entry(issue.code).or_default().direct(m);
        }
    }
    by_code
        .into_iter()
        .map(|(code, tally)| {
            let fix = match code {
                ErrorCode::AccountMismatch => format!(
                    "set the sending facility (MSH-4.1) to the Account ID {:?} on the gateway, then resend",
                    crate::mode::org_of(org)
                ),
                ErrorCode::ControlIdReused => {
                    "the sender reuses control IDs (MSH-10) for different messages: each message needs its own; resend them with new ones".to_owned()
                }
                _ => format!(
                    "the sender posts bodies that are not one HL7 v2 message: see tendon messages list {} --status rejected",
                    messages_org(org)
                ),
            };
            Finding {
                subject: Some(code.as_str().to_owned()),
                summary: format!("{} message(s) were refused (AR) with {}", tally.messages, code.as_str()),
                fix,
                ..Finding::of("rejected", &tally)
            }
        })
        .collect()
}

/// ADT messages parked for a patient that does not exist yet, for long.
pub(super) fn pending(org: &str, messages: &[StoredMessage], now: Timestamp) -> Option<Finding> {
    let mut tally = Tally::default();
    for m in messages.iter().filter(|m| {
        m.status == MessageStatus::Pending && now.duration_since(m.received_at) > PENDING_FOR_LONG
    }) {
        tally.direct(m);
    }
    (tally.messages > 0).then(|| Finding {
        summary: format!(
            "{} ADT message(s) have waited more than a day for a patient whose Initial Evaluation has not arrived",
            tally.messages
        ),
        fix: format!(
            "nothing, if those patients have no appointment yet: they are processed when it arrives; otherwise look for the Initial Evaluation's failure (tendon messages list {} --status failed)",
            messages_org(org)
        ),
        ..Finding::of("pending_adt", &tally)
    })
}

/// The sender's clock against ours: the median of received minus MSH-7 over
/// the latest messages that carry MSH-7.
pub(super) fn clock_skew(messages: &[StoredMessage]) -> Option<Finding> {
    let sample: Vec<&StoredMessage> = messages
        .iter()
        .rev()
        .filter(|m| m.facts.as_ref().is_some_and(|f| f.sent_at.is_some()))
        .take(SKEW_SAMPLE)
        .collect();
    let mut skews: Vec<SignedDuration> = sample
        .iter()
        .filter_map(|m| Some(m.received_at.duration_since(m.facts.as_ref()?.sent_at?)))
        .collect();
    if skews.is_empty() {
        return None;
    }
    skews.sort();
    let median = skews[skews.len() / 2];
    if median.abs() <= SKEW_LIMIT {
        return None;
    }
    let minutes = median.as_secs() / 60;
    let (how, by) = if minutes > 0 {
        ("behind", minutes)
    } else {
        ("ahead of", -minutes)
    };
    let oldest = sample.last().map(|m| m.received_at).unwrap_or_default();
    let newest = sample.first().map(|m| m.received_at).unwrap_or_default();
    Some(Finding {
        summary: format!(
            "the sender's clock (MSH-7) is about {by} minute(s) {how} Tendon's (the median of the latest {} messages)",
            skews.len()
        ),
        messages: skews.len(),
        first_seen: oldest,
        last_seen: newest,
        evidence: Some(
            "an older MSH-7 can make a newer message look stale and not update a patient"
                .to_owned(),
        ),
        fix: "set the sending system's clock from NTP, and send MSH-7 with its UTC offset"
            .to_owned(),
        ..Finding::of("clock_skew", &Tally::default())
    })
}

/// The message types stored `ignored`: acknowledged, never processed.
pub(super) fn ignored(messages: &[StoredMessage]) -> Option<Finding> {
    let mut tally = Tally::default();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for m in messages
        .iter()
        .filter(|m| m.status == MessageStatus::Ignored)
    {
        tally.direct(m);
        *kinds
            .entry(clean(m.message_type.as_deref().unwrap_or("(none)")))
            .or_default() += 1;
    }
    (tally.messages > 0).then(|| Finding {
        summary: format!(
            "{} message(s) of types Tendon does not process were acknowledged and stored ignored: {}",
            tally.messages,
            kinds
                .iter()
                .map(|(k, n)| format!("{k} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        names: kinds.into_keys().collect(),
        fix: "nothing is lost; if the gateway can filter them, stop sending them (supported: ADT^A01/A04/A08/A28/A31/A40, SIU^S12-S15/S17/S26)".to_owned(),
        ..Finding::of("ignored_types", &tally)
    })
}
