//! What a workflow step does ([`Task`]): its kind ([`TaskKind`]: an email,
//! a text, or an assignment of catalogue content) and its templates. A leaf
//! of the workflow definitions, shared with the content catalogue.
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Email,
    Text,
    Survey,
    Education,
    Exercise,
    CarePlan,
}

impl TaskKind {
    pub const ALL: [TaskKind; 6] = [
        TaskKind::Email,
        TaskKind::Text,
        TaskKind::Survey,
        TaskKind::Education,
        TaskKind::Exercise,
        TaskKind::CarePlan,
    ];

    /// The kind a `as_str` name stands for.
    pub fn parse(name: &str) -> Option<TaskKind> {
        TaskKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Email => "email",
            TaskKind::Text => "text",
            TaskKind::Survey => "survey",
            TaskKind::Education => "education",
            TaskKind::Exercise => "exercise",
            TaskKind::CarePlan => "care_plan",
        }
    }

    /// Assigns content to the patient's account (and notifies by email).
    pub fn assigns_content(self) -> bool {
        !matches!(self, TaskKind::Email | TaskKind::Text)
    }
}

/// What a step does. `subject` and `body` are minijinja templates; `content`
/// names catalogue content for the assigning kinds (`mips:auto` picks the
/// MIPS outcome measure for the case's body region).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub kind: TaskKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}
