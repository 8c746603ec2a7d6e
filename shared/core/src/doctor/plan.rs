//! The doctor's fixes as data, and applying them: `doctor --plan` writes a
//! [`Plan`] (locations, practitioners and IE types to add, the failed
//! messages they unblock, in the order received); a person edits or deletes
//! entries; `doctor --apply` applies exactly what is left with [`apply`].
//!
//! A plan is checked whole before anything is written (its org, its shape,
//! every entry), so a bad plan changes nothing. An entry that no longer fits
//! (a location that now exists under another name, a message already
//! processed) is skipped with the reason. Applying a plan twice changes
//! nothing the second time.
use std::collections::HashSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::findings::{Diagnosis, FailedMessage};
use crate::intake;
use crate::mode::{self, Mode};
use crate::model::MessageStatus;
use crate::org::{Location, Practitioner};
use crate::ports::{ConfigStore, Intake, MessageLog, PatientStore, StoreResult};

/// The fixes of one org, for a person to review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub org: String,
    /// Whose messages it replays: the org's live data, or its test-mode data.
    #[serde(default, skip_serializing_if = "is_live")]
    pub mode: Mode,
    pub created_at: Timestamp,
    #[serde(default)]
    pub locations: Vec<PlannedLocation>,
    #[serde(default)]
    pub practitioners: Vec<PlannedPractitioner>,
    #[serde(default)]
    pub ie_types: Vec<String>,
    /// Failed messages to replay after the configuration changes, in order.
    #[serde(default)]
    pub replay: Vec<PlannedReplay>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedLocation {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedPractitioner {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npi: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedReplay {
    /// Tendon's message ID.
    pub id: String,
    /// For the person reading the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
}

fn is_live(mode: &Mode) -> bool {
    *mode == Mode::Live
}

/// The plan of a diagnosis: its configuration fixes, and the failed messages
/// they explain.
pub fn plan_of(diagnosis: &Diagnosis, now: Timestamp) -> Plan {
    let mut plan = Plan {
        org: diagnosis.org.clone(),
        mode: diagnosis.mode,
        created_at: now,
        locations: Vec::new(),
        practitioners: Vec::new(),
        ie_types: Vec::new(),
        replay: Vec::new(),
    };
    let mut unblocked: Vec<&FailedMessage> = Vec::new();
    for f in &diagnosis.findings {
        let Some(subject) = f.subject.clone() else {
            continue;
        };
        match f.code {
            "unknown_location" => plan.locations.push(PlannedLocation {
                name: f
                    .names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| format!("Location {subject}")),
                id: subject,
            }),
            "unknown_practitioner" => {
                let (first_name, last_name) = f.person.clone().unwrap_or_default();
                plan.practitioners.push(PlannedPractitioner {
                    id: subject,
                    first_name,
                    last_name,
                    npi: f.npi.clone(),
                });
            }
            "ie_type_not_configured" => plan.ie_types.push(subject),
            _ => continue,
        }
        unblocked.extend(&f.failed);
    }
    unblocked.sort_by_key(|m| m.received_at);
    let mut seen = HashSet::new();
    plan.replay = unblocked
        .into_iter()
        .filter(|m| seen.insert(m.id.clone()))
        .map(|m| PlannedReplay {
            id: m.id.clone(),
            control_id: m.control_id.clone(),
        })
        .collect();
    plan
}

/// Why a plan was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanRefused {
    #[error("the plan is for org {plan:?}, not {org:?}")]
    OtherOrg { plan: String, org: String },
    #[error(
        "the plan is for the org's {plan} data, not its {asked} data (apply it with --mode {plan})"
    )]
    OtherMode { plan: Mode, asked: Mode },
    #[error("no org {0:?}")]
    NoOrg(String),
    #[error("the plan's {0}")]
    Invalid(String),
}

/// What applying a plan did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// What was added, as `location 34`, `practitioner 1235123`, `ie_type X`.
    pub added: Vec<String>,
    /// What was already so.
    pub unchanged: Vec<String>,
    /// What was left out, with why.
    pub skipped: Vec<String>,
    /// Messages put back through the steps, in the plan's order.
    pub replayed: usize,
    /// Their IDs (not printed: the plan names them), for a caller that waits
    /// for their outcome.
    #[serde(skip)]
    pub replayed_ids: Vec<String>,
}

/// Checks `plan` whole, then applies it to `partition` (an org, or its test
/// partition): the org's configuration first, then the replay of the
/// partition's messages still failed, in the plan's order.
pub async fn apply<S, I>(
    store: &S,
    intake_port: &I,
    partition: &str,
    plan: &Plan,
) -> StoreResult<Result<Applied, PlanRefused>>
where
    S: ConfigStore + MessageLog + PatientStore,
    I: Intake,
{
    let (org, mode) = mode::split(partition);
    if plan.org != org {
        return Ok(Err(PlanRefused::OtherOrg {
            plan: plan.org.clone(),
            org: org.to_owned(),
        }));
    }
    if plan.mode != mode {
        return Ok(Err(PlanRefused::OtherMode {
            plan: plan.mode,
            asked: mode,
        }));
    }
    if let Err(why) = check(plan) {
        return Ok(Err(PlanRefused::Invalid(why)));
    }
    let Some(config) = store.org_config(org).await? else {
        return Ok(Err(PlanRefused::NoOrg(org.to_owned())));
    };
    let mut done = Applied::default();
    for l in &plan.locations {
        let what = format!("location {}", l.id);
        match config.location(&l.id) {
            Some(held) if held.name == l.name => done.unchanged.push(what),
            Some(held) => done.skipped.push(format!(
                "{what}: it exists now, named {:?}, not {:?}; left as it is",
                held.name, l.name
            )),
            None => {
                let location = Location {
                    id: l.id.clone(),
                    name: l.name.clone(),
                    timezone: None,
                };
                store.put_location(org, &location).await?;
                done.added.push(what);
            }
        }
    }
    for p in &plan.practitioners {
        let what = format!("practitioner {}", p.id);
        match config.practitioner(&p.id) {
            Some(held) if held.first_name == p.first_name && held.last_name == p.last_name => {
                done.unchanged.push(what)
            }
            Some(held) => done.skipped.push(format!(
                "{what}: it exists now, named {:?} {:?}; left as it is",
                held.first_name, held.last_name
            )),
            None => {
                let practitioner = Practitioner {
                    id: p.id.clone(),
                    first_name: p.first_name.clone(),
                    last_name: p.last_name.clone(),
                    npi: p.npi.clone(),
                    email: None,
                };
                store.put_practitioner(org, &practitioner).await?;
                done.added.push(what);
            }
        }
    }
    let mut org_record = config.org.clone();
    for kind in &plan.ie_types {
        let what = format!("ie_type {kind}");
        if org_record.is_ie_type(kind) {
            done.unchanged.push(what);
        } else {
            org_record.add_ie_type(kind);
            done.added.push(what);
        }
    }
    if org_record != config.org {
        store.update_org(&org_record).await?;
    }
    let mut replay = Vec::new();
    for r in &plan.replay {
        let what = format!(
            "message {}",
            r.control_id.as_deref().unwrap_or(r.id.as_str())
        );
        match store.get_message(partition, &r.id).await? {
            None => done.skipped.push(format!("{what}: no such message")),
            Some(m) if m.status != MessageStatus::Failed => done.skipped.push(format!(
                "{what}: it is {} now, not failed",
                m.status.as_str()
            )),
            Some(m) => replay.push(m),
        }
    }
    done.replayed = intake::replay(store, intake_port, &replay).await?;
    done.replayed_ids = replay.into_iter().map(|m| m.id).collect();
    Ok(Ok(done))
}

/// Every entry has what it needs, and nothing is named twice.
fn check(plan: &Plan) -> Result<(), String> {
    let blank = |s: &str| s.trim().is_empty();
    let mut ids = HashSet::new();
    for l in &plan.locations {
        if blank(&l.id) || blank(&l.name) {
            return Err(format!("location {:?} needs an id and a name", l.id));
        }
        if !ids.insert(("location", l.id.as_str())) {
            return Err(format!("location {:?} is listed twice", l.id));
        }
    }
    for p in &plan.practitioners {
        if blank(&p.id) || blank(&p.first_name) || blank(&p.last_name) {
            return Err(format!(
                "practitioner {:?} needs an id, a first_name and a last_name",
                p.id
            ));
        }
        if !ids.insert(("practitioner", p.id.as_str())) {
            return Err(format!("practitioner {:?} is listed twice", p.id));
        }
    }
    if plan.ie_types.iter().any(|t| blank(t)) {
        return Err("ie_types hold an empty type".to_owned());
    }
    if plan.replay.iter().any(|r| blank(&r.id)) {
        return Err("replay holds a message without an id".to_owned());
    }
    Ok(())
}
