//! What the doctor reports, and the failures part of the analysis (pure):
//! from an org's configuration, its messages (oldest first) and the IDs of
//! its patients, one finding per cause of failure, most harmful first.
//!
//! A failure is charged to its cause. A message that failed only because an
//! earlier message of the same patient and case failed (`no_episode_of_care`
//! behind an Initial Evaluation that could not create the patient or the
//! case) is counted as `blocked` under that earlier cause: fixing the cause
//! and replaying in order unblocks both.
use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use serde::Serialize;

use crate::cliniko::ClinikoConnection;
use crate::mode::Mode;
use crate::model::{MessageStatus, StoredMessage};
use crate::org::OrgConfig;
use crate::report::{ADT_REQUIRED, SIU_REQUIRED};
use crate::{ErrorCode, FieldName};

const EXAMPLES: usize = 3;

/// What the doctor found for one org.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnosis {
    pub org: String,
    /// Whose messages were read: the org's live data or its test-mode data.
    pub mode: Mode,
    /// In test mode, what the messages would have created live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_create: Option<WouldCreate>,
    /// Only messages received at or after this instant were read.
    pub since: Option<Timestamp>,
    /// How many messages were read.
    pub messages: usize,
    pub findings: Vec<Finding>,
    /// The work queues as they stand (every org's), where the caller read
    /// them (`QueueDepths`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<crate::batch::QueueDepth>,
    /// When the dispatcher (every org's) last ran, if ever.
    pub last_dispatch_pass: Option<Timestamp>,
    /// The org's Cliniko connection as read, for the caller's live check
    /// (the key is never serialised).
    #[serde(skip)]
    pub cliniko: Option<ClinikoConnection>,
}

/// What test-mode messages would have created as live ones: their test
/// partition's patients and episodes of care (Default and Case).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WouldCreate {
    pub patients: usize,
    pub episodes: usize,
}

/// One thing that is wrong, with what it touches and how to fix it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// What kind of problem: `unknown_location`, `unknown_practitioner`,
    /// `ie_type_not_configured`, `missing_field`, `no_episode_of_care`,
    /// `rejected`, `pending_adt`, `clock_skew`, `ignored_types`.
    pub code: &'static str,
    /// The location ID, practitioner ID, appointment type, field name or
    /// error code the finding is about.
    pub subject: Option<String>,
    /// One sentence for a person, without patient data.
    pub summary: String,
    /// Messages that failed (or were stored) for this reason themselves.
    pub messages: usize,
    /// Later messages of the same patients and cases that failed only because
    /// of it (`no_episode_of_care`): fixing it unblocks them too.
    pub blocked: usize,
    /// Of the messages that had to carry the field, the share that did not
    /// (`missing_field`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Up to three control IDs, first seen first.
    pub examples: Vec<String>,
    /// What the messages call the location or practitioner, most used first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub npi: Option<String>,
    /// Why the doctor thinks so, where it is a judgement (an appointment type
    /// that looks like an Initial Evaluation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// The command that fixes it, or what to ask of the sending system.
    pub fix: String,
    /// The failed messages it explains, direct and blocked, in the order
    /// received: what a fix should replay (for the plan; not printed).
    #[serde(skip)]
    pub failed: Vec<FailedMessage>,
    /// A practitioner's (given, family) names as the messages send them most.
    #[serde(skip)]
    pub person: Option<(String, String)>,
}

/// A failed message a finding explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedMessage {
    pub id: String,
    pub control_id: Option<String>,
    pub received_at: Timestamp,
}

impl Finding {
    /// A finding of `code` over what `tally` counted; the caller says the rest.
    pub(super) fn of(code: &'static str, tally: &Tally) -> Finding {
        Finding {
            code,
            subject: None,
            summary: String::new(),
            messages: tally.messages,
            blocked: tally.blocked,
            share: None,
            first_seen: tally.first.unwrap_or_default(),
            last_seen: tally.last.unwrap_or_default(),
            examples: tally.examples.clone(),
            names: Vec::new(),
            npi: tally.npi.clone(),
            evidence: None,
            fix: String::new(),
            failed: tally.failed.clone(),
            person: None,
        }
    }
}

/// Why a message failed, as the doctor groups failures.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Cause {
    Location(String),
    Practitioner(String),
    /// An Initial Evaluation naming neither a treating nor a supervising therapist.
    NoPractitioner,
    IeType(String),
    Missing(FieldName),
    /// A case whose Initial Evaluation never arrived (or is not recognisable).
    NoEpisode,
    Other(ErrorCode),
}

impl Cause {
    /// Configuration causes first (they block patients), then what the
    /// sender leaves out, then the rest.
    fn rank(&self) -> u8 {
        match self {
            Cause::Location(_)
            | Cause::Practitioner(_)
            | Cause::NoPractitioner
            | Cause::IeType(_) => 0,
            Cause::Missing(_) => 1,
            Cause::NoEpisode | Cause::Other(_) => 2,
        }
    }
}

/// What the messages of one cause have in common.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) messages: usize,
    blocked: usize,
    pub(super) first: Option<Timestamp>,
    pub(super) last: Option<Timestamp>,
    pub(super) examples: Vec<String>,
    names: HashMap<String, usize>,
    /// A practitioner's (given, family) names as messages send them.
    people: HashMap<(String, String), usize>,
    npi: Option<String>,
    /// For an appointment type: how often it was the first message of a
    /// patient that was never created.
    first_of_uncreated: usize,
    /// The failed messages counted, direct or blocked, in the order read.
    failed: Vec<FailedMessage>,
}

impl Tally {
    fn seen(&mut self, m: &StoredMessage) {
        if m.status == MessageStatus::Failed {
            self.failed.push(FailedMessage {
                id: m.id.clone(),
                control_id: m.control_id.clone(),
                received_at: m.received_at,
            });
        }
        self.first = Some(self.first.map_or(m.received_at, |t| t.min(m.received_at)));
        self.last = Some(self.last.map_or(m.received_at, |t| t.max(m.received_at)));
    }

    pub(super) fn direct(&mut self, m: &StoredMessage) {
        self.seen(m);
        self.messages += 1;
        if self.examples.len() < EXAMPLES
            && let Some(cid) = &m.control_id
        {
            self.examples.push(cid.clone());
        }
    }

    fn name(&mut self, name: Option<String>) {
        if let Some(name) = name.map(|n| clean(&n)).filter(|n| !n.is_empty()) {
            *self.names.entry(name).or_default() += 1;
        }
    }

    /// The names, most used first (then alphabetically, for stable output).
    fn names(&self) -> Vec<String> {
        most_used_first(&self.names)
    }

    /// The (given, family) names a practitioner is sent with most.
    fn person(&self) -> Option<(String, String)> {
        most_used_first(&self.people).into_iter().next()
    }
}

/// The findings on failed messages (`messages` sorted oldest first) of the
/// org `config` describes; `known` holds the IDs of its patients.
pub(super) fn failures(
    config: &OrgConfig,
    messages: &[StoredMessage],
    known: &HashSet<String>,
) -> Vec<Finding> {
    let org = config.org.id.as_str();
    let mut causes: BTreeMap<Cause, Tally> = BTreeMap::new();
    // The cause that stopped each (patient, case): its first failure, or
    // the latest that could have started the case.
    let mut roots: HashMap<(String, Option<String>), Cause> = HashMap::new();
    for m in messages
        .iter()
        .filter(|m| m.status == MessageStatus::Failed)
    {
        let facts = m.facts.clone().unwrap_or_default();
        let chain = m.patient_id.clone().map(|p| (p, facts.case_id.clone()));
        let Some(first) = m.errors.first() else {
            continue;
        };
        let cause = match first.code {
            ErrorCode::UnknownLocation => {
                Cause::Location(facts.clinic_id.clone().unwrap_or_default())
            }
            ErrorCode::UnknownPractitioner => match &facts.practitioner {
                Some(p) => Cause::Practitioner(p.id.clone()),
                None => Cause::NoPractitioner,
            },
            ErrorCode::MissingField => {
                // Every field the message lacks counts; the first is its cause.
                for issue in m.errors.iter().skip(1) {
                    if let (ErrorCode::MissingField, Some(field)) = (issue.code, issue.field) {
                        causes.entry(Cause::Missing(field)).or_default().direct(m);
                    }
                }
                Cause::Missing(first.field.unwrap_or(FieldName::PatientId))
            }
            ErrorCode::NoEpisodeOfCare => {
                if let Some(root) = chain.as_ref().and_then(|c| roots.get(c)) {
                    let tally = causes.entry(root.clone()).or_default();
                    tally.blocked += 1;
                    tally.seen(m);
                    continue;
                }
                let uncreated = m.patient_id.as_ref().is_some_and(|p| !known.contains(p));
                match facts.appointment_type.as_deref() {
                    Some(kind)
                        if !config.org.is_ie_type(kind)
                            && (uncreated || looks_like_an_evaluation(kind)) =>
                    {
                        let cause = Cause::IeType(kind.to_owned());
                        if uncreated {
                            causes.entry(cause.clone()).or_default().first_of_uncreated += 1;
                        }
                        cause
                    }
                    _ => Cause::NoEpisode,
                }
            }
            code => Cause::Other(code),
        };
        let tally = causes.entry(cause.clone()).or_default();
        tally.direct(m);
        match &cause {
            Cause::Location(_) => tally.name(facts.clinic_name.clone()),
            Cause::Practitioner(_) => {
                if let Some(p) = &facts.practitioner {
                    let part = |n: &Option<String>| clean(n.as_deref().unwrap_or_default());
                    let (given, family) = (part(&p.given_name), part(&p.family_name));
                    tally.name(Some(format!("{given} {family}")));
                    *tally.people.entry((given, family)).or_default() += 1;
                    if tally.npi.is_none() {
                        tally.npi.clone_from(&p.npi);
                    }
                }
            }
            _ => {}
        }
        // A later message that could itself have started the case (an
        // Initial Evaluation, rescheduled say) takes over: once its cause is
        // fixed, replaying it unblocks the follow-ups behind it.
        let could_start = matches!(cause, Cause::IeType(_))
            || facts
                .appointment_type
                .as_deref()
                .is_some_and(|t| config.org.is_ie_type(t));
        if let Some(chain) = chain {
            if could_start {
                roots.insert(chain, cause);
            } else {
                roots.entry(chain).or_insert(cause);
            }
        }
    }

    let mut found: Vec<(Cause, Tally)> = causes.into_iter().collect();
    found.sort_by(|(a, x), (b, y)| {
        (a.rank(), std::cmp::Reverse(x.messages + x.blocked), a).cmp(&(
            b.rank(),
            std::cmp::Reverse(y.messages + y.blocked),
            b,
        ))
    });
    let required_in = |field: FieldName| -> usize {
        let siu = SIU_REQUIRED.contains(&field);
        let adt = ADT_REQUIRED.contains(&field);
        messages
            .iter()
            .filter(|m| match m.message_type.as_deref() {
                Some(t) if t.starts_with("SIU") => siu,
                Some(t) if t.starts_with("ADT") => adt,
                _ => false,
            })
            .count()
    };
    found
        .into_iter()
        .map(|(cause, tally)| failure_finding(org, config, cause, tally, &required_in))
        .collect()
}

fn failure_finding(
    org: &str,
    config: &OrgConfig,
    cause: Cause,
    tally: Tally,
    required_in: &dyn Fn(FieldName) -> usize,
) -> Finding {
    let names = tally.names();
    let person = tally.person();
    let mut finding = Finding::of("", &tally);
    let also = if tally.blocked > 0 {
        format!(
            ", and {} later message(s) of the same patients failed behind them",
            tally.blocked
        )
    } else {
        String::new()
    };
    match cause {
        Cause::Location(id) => {
            let name = names.first().cloned().unwrap_or_else(|| "NAME".to_owned());
            finding.code = "unknown_location";
            finding.summary = format!(
                "{} message(s) name location {id:?}, which is not configured{also}",
                tally.messages
            );
            finding.fix = format!(
                "tendon location add --org {} --id {} --name {}",
                config_org(org),
                quote(&id),
                quote(&name)
            );
            finding.subject = Some(id);
            finding.names = names;
        }
        Cause::Practitioner(id) => {
            let (given, family) = person.unwrap_or_default();
            let or = |name: String, blank: &str| {
                if name.is_empty() {
                    blank.to_owned()
                } else {
                    name
                }
            };
            let (first, last) = (or(given, "FIRST"), or(family, "LAST"));
            finding.code = "unknown_practitioner";
            finding.summary = format!(
                "{} Initial Evaluation(s) name practitioner {id:?}, who is not configured (practitioners are never created from messages){also}",
                tally.messages
            );
            let npi = finding
                .npi
                .as_deref()
                .map(|n| format!(" --npi {}", quote(n)))
                .unwrap_or_default();
            finding.fix = format!(
                "tendon practitioner add --org {} --id {} --first {} --last {}{npi}",
                config_org(org),
                quote(&id),
                quote(&first),
                quote(&last)
            );
            finding.subject = Some(id);
            finding.names = names;
            finding.person = Some((first, last));
        }
        Cause::NoPractitioner => {
            finding.code = "unknown_practitioner";
            finding.summary = format!(
                "{} Initial Evaluation(s) name neither a treating (AIP-3) nor a supervising (PV1-7) therapist{also}",
                tally.messages
            );
            finding.fix =
                "ask the EMR side to send the treating therapist (AIP-3) with every Initial Evaluation"
                    .to_owned();
        }
        Cause::IeType(kind) => {
            finding.code = "ie_type_not_configured";
            finding.summary = format!(
                "{} message(s) of appointment type {kind:?} could not start a case, because it is not one of the org's Initial Evaluation types{also}",
                tally.messages
            );
            let mut evidence = Vec::new();
            if tally.first_of_uncreated > 0 {
                evidence.push(format!(
                    "it was the first appointment of {} patient(s) who were never created",
                    tally.first_of_uncreated
                ));
            }
            if looks_like_an_evaluation(&kind) {
                evidence.push("its name suggests an evaluation".to_owned());
            }
            finding.evidence = Some(evidence.join("; "));
            finding.fix = format!(
                "tendon ie-type add --org {} --type {}",
                config_org(org),
                quote(&kind)
            );
            finding.subject = Some(kind);
        }
        Cause::Missing(field) => {
            let of = required_in(field).max(tally.messages);
            let share = tally.messages as f64 / of as f64;
            let paths = config
                .org
                .field_map
                .paths(field)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", else ");
            finding.code = "missing_field";
            finding.summary = format!(
                "{} of {of} message(s) that must carry {field} ({:.1} %) arrived without it{also}",
                tally.messages,
                share * 100.0,
                field = field.as_str()
            );
            finding.share = Some(share);
            finding.fix = format!(
                "ask the EMR side to fill {} ({paths}) in every message; then replay: tendon messages replay {} --failed",
                field.as_str(),
                messages_org(org)
            );
            finding.subject = Some(field.as_str().to_owned());
        }
        Cause::NoEpisode => {
            finding.code = "no_episode_of_care";
            finding.summary = format!(
                "{} appointment message(s) belong to cases whose Initial Evaluation never arrived{also}",
                tally.messages
            );
            finding.fix = format!(
                "have the EMR send each case's Initial Evaluation (an SIU with one of the IE types), then replay: tendon messages replay {} --failed",
                messages_org(org)
            );
        }
        Cause::Other(code) => {
            finding.code = "failed";
            finding.summary = format!(
                "{} message(s) failed with {}",
                tally.messages,
                code.as_str()
            );
            finding.fix = format!(
                "read their errors: tendon messages list {} --status failed",
                messages_org(org)
            );
            finding.subject = Some(code.as_str().to_owned());
        }
    }
    finding
}

/// The keys of `counts`, most counted first, then in order.
fn most_used_first<K: Clone + Ord>(counts: &HashMap<K, usize>) -> Vec<K> {
    let mut keys: Vec<_> = counts.iter().collect();
    keys.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    keys.into_iter().map(|(k, _)| k.clone()).collect()
}

/// An appointment type whose name reads like an Initial Evaluation.
pub(crate) fn looks_like_an_evaluation(kind: &str) -> bool {
    let lower = kind.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().any(|w| {
        w.starts_with("eval")
            || w.starts_with("assess")
            || *w == "initial"
            || *w == "ie"
            || *w == "intake"
    }) || lower.contains("new patient")
}

/// Text from a message, safe to print: control characters dropped.
pub(super) fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A word for a POSIX shell: as it is when plain, else single-quoted, so a
/// printed fix can be pasted whatever the message called things.
/// The `--org` arguments of a command over the partition's messages
/// (`--org ACME01`, or `--org ACME01 --mode test`).
pub(super) fn messages_org(partition: &str) -> String {
    crate::mode::cli_args(partition, quote)
}

/// The `--org` argument of a configuration command: the org, whichever
/// partition was read (a test partition reads the live configuration).
pub(super) fn config_org(partition: &str) -> String {
    quote(crate::mode::org_of(partition))
}

pub(crate) fn quote(word: &str) -> String {
    let word = clean(word);
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/@+=".contains(c))
    {
        word
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
