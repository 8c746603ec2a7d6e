//! Workflows (docs/workflows.md): definitions, the content catalogue, schedule
//! maths and rendering. Enrolment turns a domain event into scheduled steps;
//! dispatch sends the due ones. All pure; storage and sending are ports.
pub mod catalogue;
pub mod defaults;
pub mod describe;
pub mod dispatch;
pub mod enrol;
pub mod feedback;
pub mod model;
pub mod opt_out;
pub mod render;
pub mod retry;
pub mod schedule;
pub mod simulate;
pub mod steps;
pub mod task;
pub mod unsubscribe;

pub use model::{
    Category, Direction, Exit, PatientGroup, Repeat, Schedule, SourceFilter, StepDef, Trigger,
    Unit, Workflow, WorkflowStatus,
};
pub use task::{Task, TaskKind};
