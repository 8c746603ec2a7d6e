//! Workflows in words: what `workflow show` prints beside the definition and
//! what the schematic (`tendon-schematic`) draws. The trigger, the patient
//! group and each step's schedule and task as a clinic owner would say them,
//! and each step's place on a time axis, measured with the schedule maths
//! the dispatcher uses (`schedule::shift`), so no second copy of it exists.
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::catalogue::{self, BodyRegion, MIPS_AUTO};
use super::model::{
    Category, Direction, Exit, PatientGroup, Repeat, Schedule, SourceFilter, Trigger, Unit,
    Workflow, WorkflowStatus,
};
use super::schedule::shift;
use super::task::{Task, TaskKind};
use crate::Gender;
use crate::model::EventKind;

/// Which patients' records a workflow reads, as the default workflows are
/// split: clinics with an EMR integration, clinics without one (Cliniko), or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Integration {
    WithEmr,
    WithoutEmr,
    Any,
}

impl Integration {
    pub fn of(group: &PatientGroup) -> Integration {
        match group.source {
            SourceFilter::Emr => Integration::WithEmr,
            SourceFilter::Cliniko => Integration::WithoutEmr,
            SourceFilter::Any => Integration::Any,
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Integration::WithEmr => "with an EMR integration",
            Integration::WithoutEmr => "without an EMR integration",
            Integration::Any => "for every patient source",
        }
    }
}

/// A workflow as words and axis positions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkflowWords {
    pub id: String,
    pub title: String,
    pub status: WorkflowStatus,
    pub category: Option<Category>,
    pub integration: Integration,
    /// "an Initial Evaluation is scheduled (first time only)".
    pub trigger: String,
    /// The trigger as an axis label: "IE scheduled".
    pub trigger_short: &'static str,
    /// "female patients aged 65 and over from Cliniko".
    pub patient_group: String,
    pub steps: Vec<StepWords>,
}

/// One step in words, with its place on the axis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepWords {
    /// The step's index in the definition.
    pub step: usize,
    /// "2 days before", "1 week after", "at the trigger".
    pub when: String,
    /// "then every 2 weeks until …, at most 6 sends in all".
    pub repeat: Option<String>,
    pub kind: TaskKind,
    /// "Email", "Survey", "Care plan".
    pub kind_label: &'static str,
    /// The subject, the text, or the catalogue content's name.
    pub content: String,
    /// Where on the time axis the first send falls, in hours from the
    /// trigger (negative before it); months and days as a calendar counts them
    /// from a fixed reference day, so the value never depends on today.
    pub offset_hours: i64,
    pub direction: Direction,
}

/// The day offsets are measured from: any fixed day works; a fixed one keeps
/// "1 month" the same number of hours on every run.
const AXIS_REFERENCE: Timestamp = Timestamp::constant(1_767_225_600, 0); // 2026-01-01T00:00:00Z

/// `s`'s first send, in whole hours from the trigger (before is negative).
pub fn offset_hours(s: &Schedule) -> i64 {
    let back = s.direction == Direction::Before;
    let moved =
        shift(AXIS_REFERENCE, &TimeZone::UTC, s.amount, s.unit, back).unwrap_or(AXIS_REFERENCE);
    moved.duration_since(AXIS_REFERENCE).as_secs() / 3600
}

fn unit_words(amount: u32, unit: Unit) -> String {
    let name = match unit {
        Unit::Hours => "hour",
        Unit::Days => "day",
        Unit::Weeks => "week",
        Unit::Months => "month",
    };
    if amount == 1 {
        format!("1 {name}")
    } else {
        format!("{amount} {name}s")
    }
}

/// "2 days before", "1 week after"; zero is "at the trigger" (after) or "at
/// the appointment's start" (before).
pub fn when_words(s: &Schedule) -> String {
    match (s.amount, s.direction) {
        (0, Direction::After) => "at the trigger".to_owned(),
        (0, Direction::Before) => "at the appointment's start".to_owned(),
        (n, Direction::Before) => format!("{} before", unit_words(n, s.unit)),
        (n, Direction::After) => format!("{} after", unit_words(n, s.unit)),
    }
}

/// "then every 2 weeks until the patient completes every assigned survey and
/// exercise, at most 6 sends in all".
pub fn repeat_words(r: &Repeat) -> String {
    // "every week", not "every 1 week".
    let every = unit_words(r.every, r.unit);
    let mut out = format!("then every {}", every.strip_prefix("1 ").unwrap_or(&every));
    let exits: Vec<&str> = r
        .until
        .iter()
        .map(|e| match e {
            Exit::AssignmentsComplete => "the patient completes every assigned survey and exercise",
            Exit::EpisodeDischarged => "the episode is discharged",
            Exit::NoUpcomingAppointment => "no appointment is coming up",
        })
        .collect();
    if !exits.is_empty() {
        out += &format!(" until {}", exits.join(" or "));
    }
    if let Some(max) = r.max {
        out += &format!(", at most {max} sends in all");
    }
    out
}

/// The trigger as a sentence's end: "when {words}".
pub fn trigger_words(t: &Trigger) -> String {
    let event = match t.event {
        EventKind::PatientCreated => "a patient is created",
        EventKind::EpisodeCreated => "an episode of care is created",
        EventKind::InitialEvaluationScheduled => "an Initial Evaluation is scheduled",
        EventKind::InitialEvaluationArrived => "the patient arrives for an Initial Evaluation",
        EventKind::AppointmentScheduled => "an appointment is scheduled",
        EventKind::AppointmentRescheduled => "an appointment is rescheduled",
        EventKind::AppointmentArrived => "the patient arrives for an appointment",
        EventKind::AppointmentCanceled => "an appointment is canceled",
        EventKind::AppointmentNoShow => "the patient misses an appointment (no-show)",
        EventKind::AppointmentDeleted => "an appointment is deleted",
        EventKind::EpisodeDischarged => "an episode of care is discharged",
    };
    if t.first_only {
        format!("{event} (the patient's first time only)")
    } else {
        event.to_owned()
    }
}

/// The trigger as a short axis label.
pub fn trigger_short(event: EventKind) -> &'static str {
    match event {
        EventKind::PatientCreated => "Patient created",
        EventKind::EpisodeCreated => "Episode created",
        EventKind::InitialEvaluationScheduled => "IE scheduled",
        EventKind::InitialEvaluationArrived => "IE arrived",
        EventKind::AppointmentScheduled => "Appointment scheduled",
        EventKind::AppointmentRescheduled => "Appointment rescheduled",
        EventKind::AppointmentArrived => "Appointment arrived",
        EventKind::AppointmentCanceled => "Appointment canceled",
        EventKind::AppointmentNoShow => "No-show",
        EventKind::AppointmentDeleted => "Appointment deleted",
        EventKind::EpisodeDischarged => "Episode discharged",
    }
}

/// Where the trigger sits in a patient's journey, for ordering workflows.
pub fn journey_order(event: EventKind) -> u8 {
    match event {
        EventKind::PatientCreated => 0,
        EventKind::EpisodeCreated => 1,
        EventKind::InitialEvaluationScheduled => 2,
        EventKind::AppointmentScheduled => 3,
        EventKind::AppointmentRescheduled => 4,
        EventKind::InitialEvaluationArrived => 5,
        EventKind::AppointmentArrived => 6,
        EventKind::AppointmentCanceled => 7,
        EventKind::AppointmentNoShow => 8,
        EventKind::AppointmentDeleted => 9,
        EventKind::EpisodeDischarged => 10,
    }
}

fn region_words(region: &str) -> &str {
    match BodyRegion::parse(region) {
        Some(BodyRegion::HipThigh) => "hip or thigh",
        Some(BodyRegion::LowerLeg) => "lower leg",
        Some(BodyRegion::AnkleFoot) => "ankle or foot",
        Some(BodyRegion::Back) => "back",
        Some(BodyRegion::Neck) => "neck",
        Some(BodyRegion::Knee) => "knee",
        Some(BodyRegion::Shoulder) => "shoulder",
        Some(BodyRegion::Elbow) => "elbow",
        Some(BodyRegion::WristHand) => "wrist or hand",
        None => region,
    }
}

/// "female patients aged 65 and over from Cliniko, at location 12, with a
/// knee or shoulder case"; "all patients" when nothing filters.
pub fn patient_group_words(g: &PatientGroup) -> String {
    let who = match g.gender {
        None => "patients",
        Some(Gender::Female) => "female patients",
        Some(Gender::Male) => "male patients",
        Some(Gender::Other) => "patients of other gender",
        Some(Gender::Unknown) => "patients of unknown gender",
    };
    let mut out = who.to_owned();
    match (g.min_age, g.max_age) {
        (Some(min), Some(max)) => out += &format!(" aged {min} to {max}"),
        (Some(min), None) => out += &format!(" aged {min} and over"),
        (None, Some(max)) => out += &format!(" aged {max} and under"),
        (None, None) => {}
    }
    match g.source {
        SourceFilter::Emr => out += " from the EMR",
        SourceFilter::Cliniko => out += " from Cliniko",
        SourceFilter::Any => {}
    }
    match g.locations.as_slice() {
        [] => {}
        [one] => out += &format!(", at location {one}"),
        many => out += &format!(", at locations {}", many.join(", ")),
    }
    if !g.body_regions.is_empty() {
        let regions: Vec<&str> = g.body_regions.iter().map(|r| region_words(r)).collect();
        out += &format!(", with a {} case", regions.join(" or "));
    }
    if out == "patients" {
        "all patients".to_owned()
    } else {
        out
    }
}

pub fn kind_label(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Email => "Email",
        TaskKind::Text => "Text",
        TaskKind::Survey => "Survey",
        TaskKind::Education => "Education",
        TaskKind::Exercise => "Exercise",
        TaskKind::CarePlan => "Care plan",
    }
}

/// A template as a reader sees it: each `{{ patient.first_name }}` becomes
/// `[patient first name]` (filters dropped) and `{% … %}` tags go.
pub fn template_words(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find(['{']) {
        let (before, tail) = rest.split_at(start);
        out.push_str(before);
        let close = match tail.get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            Some("{#") => "#}",
            _ => {
                out.push('{');
                rest = &tail[1..];
                continue;
            }
        };
        let Some(end) = tail.find(close) else {
            out.push_str(tail);
            return out;
        };
        if close == "}}" {
            let expr = tail[2..end].split('|').next().unwrap_or("").trim();
            out.push('[');
            out.push_str(&expr.replace(['.', '_'], " "));
            out.push(']');
        }
        rest = &tail[end + 2..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a task sends or assigns: the email's subject, the text, or the
/// catalogue content's name; templates as [`template_words`] shows them.
pub fn content_words(t: &Task) -> String {
    match t.kind {
        TaskKind::Email => template_words(t.subject.as_deref().unwrap_or_default()),
        TaskKind::Text => template_words(t.body.as_deref().unwrap_or_default()),
        _ => match t.content.as_deref() {
            Some(MIPS_AUTO) => "MIPS outcome measure for the case's body region".to_owned(),
            Some(id) => catalogue::find(id).map_or_else(|| id.to_owned(), |c| c.name.to_owned()),
            None => String::new(),
        },
    }
}

/// `w` in words, its steps in definition order.
pub fn describe(w: &Workflow) -> WorkflowWords {
    WorkflowWords {
        id: w.id.clone(),
        title: w.title.clone(),
        status: w.status,
        category: w.category,
        integration: Integration::of(&w.patient_group),
        trigger: trigger_words(&w.trigger),
        trigger_short: trigger_short(w.trigger.event),
        patient_group: patient_group_words(&w.patient_group),
        steps: w
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepWords {
                step: i,
                when: when_words(&s.schedule),
                repeat: s.schedule.repeat.as_ref().map(repeat_words),
                kind: s.task.kind,
                kind_label: kind_label(s.task.kind),
                content: content_words(&s.task),
                offset_hours: offset_hours(&s.schedule),
                direction: s.schedule.direction,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::defaults;

    fn sched(direction: Direction, amount: u32, unit: Unit) -> Schedule {
        Schedule::once(direction, amount, unit)
    }

    #[test]
    fn schedules_read_as_a_clinic_says_them() {
        assert_eq!(
            when_words(&sched(Direction::Before, 2, Unit::Days)),
            "2 days before"
        );
        assert_eq!(
            when_words(&sched(Direction::After, 1, Unit::Weeks)),
            "1 week after"
        );
        assert_eq!(
            when_words(&sched(Direction::After, 0, Unit::Hours)),
            "at the trigger"
        );
        let r = Repeat {
            every: 1,
            unit: Unit::Weeks,
            until: vec![Exit::AssignmentsComplete, Exit::EpisodeDischarged],
            max: Some(6),
        };
        assert_eq!(
            repeat_words(&r),
            "then every week until the patient completes every assigned survey and exercise \
             or the episode is discharged, at most 6 sends in all"
        );
    }

    #[test]
    fn offsets_order_hours_days_weeks_and_months_on_one_axis() {
        let h = |d, n, u| offset_hours(&sched(d, n, u));
        assert_eq!(h(Direction::Before, 1, Unit::Days), -24);
        assert_eq!(h(Direction::After, 2, Unit::Weeks), 14 * 24);
        // January 2026 has 31 days: the fixed reference keeps this stable.
        assert_eq!(h(Direction::After, 1, Unit::Months), 31 * 24);
        assert!(h(Direction::After, 4, Unit::Weeks) < h(Direction::After, 1, Unit::Months));
        assert!(h(Direction::After, 30, Unit::Hours) < h(Direction::After, 2, Unit::Days));
    }

    #[test]
    fn templates_read_with_their_placeholders_named() {
        assert_eq!(
            template_words("Welcome to {{ clinic.name }}, {{patient.first_name|title}}!"),
            "Welcome to [clinic name], [patient first name]!"
        );
        assert_eq!(
            template_words("{% if x %}Hi{% endif %} {# note #}{ brace {{ unclosed"),
            "Hi { brace {{ unclosed"
        );
    }

    #[test]
    fn patient_groups_read_as_sentences() {
        let g = PatientGroup {
            source: SourceFilter::Cliniko,
            min_age: Some(65),
            ..PatientGroup::default()
        };
        assert_eq!(
            patient_group_words(&g),
            "patients aged 65 and over from Cliniko"
        );
        assert_eq!(
            patient_group_words(&PatientGroup::default()),
            "all patients"
        );
        let g = PatientGroup {
            gender: Some(Gender::Female),
            min_age: Some(18),
            max_age: Some(64),
            locations: vec!["12".into(), "14".into()],
            body_regions: vec!["knee".into(), "wrist_hand".into()],
            ..PatientGroup::default()
        };
        assert_eq!(
            patient_group_words(&g),
            "female patients aged 18 to 64, at locations 12, 14, with a knee or wrist or hand case"
        );
    }

    #[test]
    fn every_default_workflow_has_a_category_and_readable_steps() {
        for w in defaults::all() {
            let words = describe(&w);
            assert!(words.category.is_some(), "{}", w.id);
            assert_ne!(words.integration, Integration::Any, "{}", w.id);
            for s in &words.steps {
                assert!(
                    !s.content.is_empty() && !s.when.is_empty(),
                    "{} step {}",
                    w.id,
                    s.step
                );
            }
        }
        let nps = describe(
            &defaults::all()
                .into_iter()
                .find(|w| w.id == "nps-emr")
                .unwrap(),
        );
        assert_eq!(
            nps.trigger,
            "the patient arrives for an Initial Evaluation (the patient's first time only)"
        );
        assert_eq!(nps.steps[1].when, "28 days after");
        assert_eq!(nps.steps[0].content, catalogue::find("nps").unwrap().name);
    }
}
