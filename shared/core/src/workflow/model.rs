//! Workflow definitions (docs/interface.md §6, extended): a patient group, a trigger,
//! and steps scheduled before or after it, each carrying a task.
//!
//! A definition is imported as JSON (or YAML) and checked by
//! [`Workflow::validate`]; the same structs are stored.
use serde::{Deserialize, Serialize};

use super::task::{Task, TaskKind};
use crate::Gender;
use crate::model::{EventKind, Source};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    Active,
    Inactive,
}

impl WorkflowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Active => "active",
            WorkflowStatus::Inactive => "inactive",
        }
    }
}

/// What a workflow is for, as the default workflows are grouped: keeping
/// patients engaged, or measuring their outcomes. Optional; the schematic
/// draws workflows without one under "Other workflows".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Engagement,
    Outcomes,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Engagement => "engagement",
            Category::Outcomes => "outcomes",
        }
    }
}

/// Which patients a workflow is for. Every filter is optional; all given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientGroup {
    #[serde(default)]
    pub source: SourceFilter,
    /// Clinic IDs (the appointment's location, else any of the patient's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
    /// Age in whole years at the trigger, in the org's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_age: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    /// Body regions of the trigger's case (see `catalogue::BodyRegion`), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_regions: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFilter {
    #[default]
    Any,
    Emr,
    Cliniko,
}

impl SourceFilter {
    pub fn admits(self, source: Source) -> bool {
        matches!(
            (self, source),
            (SourceFilter::Any, _)
                | (SourceFilter::Emr, Source::Emr)
                | (SourceFilter::Cliniko, Source::Cliniko)
        )
    }
}

/// The docs/interface.md §6 trigger events (`appointment_rescheduled` and
/// `appointment_deleted` are log events, not triggers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub event: EventKind,
    /// Only the patient's first such event (e.g. the first IE arrival).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first_only: bool,
}

impl Trigger {
    /// Appointment triggers have an appointment start to count back from.
    pub fn has_appointment(&self) -> bool {
        matches!(
            self.event,
            EventKind::AppointmentScheduled
                | EventKind::AppointmentArrived
                | EventKind::AppointmentCanceled
                | EventKind::AppointmentNoShow
                | EventKind::InitialEvaluationScheduled
                | EventKind::InitialEvaluationArrived
        )
    }

    pub fn is_trigger_event(kind: EventKind) -> bool {
        !matches!(
            kind,
            EventKind::AppointmentRescheduled | EventKind::AppointmentDeleted
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Before,
    After,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Hours,
    Days,
    Weeks,
    Months,
}

/// When a step runs: `amount` `unit`s before or after the trigger, then
/// optionally again every `repeat.every` `repeat.unit` until an exit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub direction: Direction,
    pub amount: u32,
    pub unit: Unit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
}

impl Schedule {
    /// A single send, `amount` `unit`s before or after the trigger.
    pub fn once(direction: Direction, amount: u32, unit: Unit) -> Schedule {
        Schedule {
            direction,
            amount,
            unit,
            repeat: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    pub every: u32,
    pub unit: Unit,
    /// The repetition stops at the first of these (always also when the
    /// episode is discharged, the patient unsubscribes or the workflow stops).
    #[serde(default)]
    pub until: Vec<Exit>,
    /// At most this many sends in all (the first included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// Explicit exit conditions of a repeating step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// Every survey and exercise assigned to the patient is complete.
    AssignmentsComplete,
    /// The trigger's episode is discharged.
    EpisodeDischarged,
    /// The patient has no scheduled appointment left.
    NoUpcomingAppointment,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub schedule: Schedule,
    pub task: Task,
}

/// A workflow as imported and stored. `id` defaults to a slug of the title;
/// `version` counts imports of the same id (steps already scheduled keep the
/// version they were scheduled from).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    #[serde(default)]
    pub id: String,
    pub title: String,
    pub status: WorkflowStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub patient_group: PatientGroup,
    pub trigger: Trigger,
    pub steps: Vec<StepDef>,
}

/// `title` as an ID: lower-case ASCII letters and digits joined by `-`.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for word in title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&word.to_ascii_lowercase());
    }
    out
}

impl Workflow {
    /// Parses a definition (JSON, or YAML when it does not start with `{`) and
    /// checks it; the error says which part is wrong.
    pub fn parse(text: &str) -> Result<Workflow, String> {
        let trimmed = text.trim_start_matches('\u{feff}').trim_start();
        let mut wf: Workflow = if trimmed.starts_with('{') {
            serde_json::from_str(trimmed).map_err(|e| format!("not a valid workflow: {e}"))?
        } else {
            serde_saphyr::from_str(trimmed)
                .map_err(|e| format!("not a valid workflow (YAML): {e}"))?
        };
        wf.normalize();
        wf.validate()?;
        Ok(wf)
    }

    fn normalize(&mut self) {
        if self.id.trim().is_empty() {
            self.id = slug(&self.title);
        }
        self.id = self.id.trim().to_owned();
        self.title = self.title.trim().to_owned();
    }

    /// The rules a definition must follow beyond its shape.
    pub fn validate(&self) -> Result<(), String> {
        if self.title.is_empty() {
            return Err("title: must not be empty".into());
        }
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "id {:?}: 1 to 64 ASCII letters, digits, '-' or '_'",
                self.id
            ));
        }
        if !Trigger::is_trigger_event(self.trigger.event) {
            return Err(format!(
                "trigger.event: {} is not a trigger event",
                self.trigger.event.as_str()
            ));
        }
        if let (Some(min), Some(max)) = (self.patient_group.min_age, self.patient_group.max_age)
            && min > max
        {
            return Err(format!(
                "patient_group: min_age {min} is above max_age {max}"
            ));
        }
        for region in &self.patient_group.body_regions {
            if crate::workflow::catalogue::BodyRegion::parse(region).is_none() {
                return Err(format!(
                    "patient_group.body_regions: unknown region {region:?}"
                ));
            }
        }
        if self.steps.is_empty() {
            return Err("steps: a workflow needs at least one step".into());
        }
        for (i, step) in self.steps.iter().enumerate() {
            let at = |what: &str| format!("steps[{i}].{what}");
            let s = &step.schedule;
            if s.direction == Direction::Before && !self.trigger.has_appointment() {
                return Err(format!(
                    "{}: only appointment and IE triggers can have a 'before' step",
                    at("schedule.direction")
                ));
            }
            if s.amount > 10_000 {
                return Err(format!("{}: at most 10000", at("schedule.amount")));
            }
            if let Some(r) = &s.repeat {
                if r.every == 0 {
                    return Err(format!(
                        "{}: must be at least 1",
                        at("schedule.repeat.every")
                    ));
                }
                if r.until.is_empty() && r.max.is_none() {
                    return Err(format!(
                        "{}: a repeating step needs an exit ('until') or a 'max'",
                        at("schedule.repeat")
                    ));
                }
            }
            let t = &step.task;
            match t.kind {
                TaskKind::Email => {
                    if t.subject.as_deref().is_none_or(|s| s.trim().is_empty()) {
                        return Err(format!("{}: an email needs a subject", at("task.subject")));
                    }
                    if t.body.as_deref().is_none_or(|s| s.trim().is_empty()) {
                        return Err(format!("{}: an email needs a body", at("task.body")));
                    }
                }
                TaskKind::Text => {
                    if t.body.as_deref().is_none_or(|s| s.trim().is_empty()) {
                        return Err(format!("{}: a text needs a body", at("task.body")));
                    }
                }
                kind => {
                    let Some(content) = t.content.as_deref() else {
                        return Err(format!(
                            "{}: a {} task names catalogue content",
                            at("task.content"),
                            kind.as_str()
                        ));
                    };
                    if !crate::workflow::catalogue::content_exists(kind, content) {
                        return Err(format!(
                            "{}: {content:?} is not {} content in the catalogue",
                            at("task.content"),
                            kind.as_str()
                        ));
                    }
                }
            }
            for template in [&t.subject, &t.body].into_iter().flatten() {
                crate::workflow::render::check(template)
                    .map_err(|e| format!("{}: {e}", at("task")))?;
            }
        }
        Ok(())
    }
}
