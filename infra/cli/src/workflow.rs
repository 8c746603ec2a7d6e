//! Workflow commands (docs/interface.md §5): import, list, activate and deactivate,
//! install the default workflows, show scheduled steps; one dispatcher pass;
//! the outbox.
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};
use tendon_core::ports::{
    ConfigStore, DeliveryLog, PatientStore, StepSchedule, StoreError, WorkflowStore,
};
use tendon_core::workflow::{Workflow, WorkflowStatus, defaults};

use crate::admin::require_config;
use crate::args::{JsonFlag, OrgArgs, RecordArgs};
use crate::output::print;

use crate::error::{CliError, CliResult};

#[derive(Subcommand)]
pub enum WorkflowCommand {
    /// Import a workflow definition (JSON or YAML); re-importing an ID makes a new version.
    Import {
        #[arg(long)]
        org: String,
        file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List the org's workflows.
    List(OrgArgs),
    /// A workflow as a "View Workflow" page shows it (title, patient
    /// group, trigger, each step's schedule and content), with each step's
    /// counts: scheduled, sent, skipped, failed.
    Show(RecordArgs),
    /// Switch a workflow on: triggers from now on enrol patients (no back-fill).
    Activate(RecordArgs),
    /// Switch a workflow off: nothing new is scheduled, and its pending steps are skipped.
    Deactivate(RecordArgs),
    /// Install the default global workflows (engagement and outcomes, with and
    /// without an EMR integration).
    InstallDefaults(OrgArgs),
    /// A patient's workflow timeline: what was sent, what is scheduled, and
    /// the repeats to come, on the clinic's clock. Sends nothing.
    Simulate {
        #[arg(long)]
        org: String,
        #[arg(long)]
        patient: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// The scheduled steps of an org or of one patient, by due time.
    Steps {
        #[arg(long)]
        org: String,
        #[arg(long)]
        patient: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Make a failed step (`workflow steps`) due now, as a new send, once
    /// what made it fail is fixed. The next dispatch pass decides on it as on
    /// any due step. Prints the step.
    RetryStep {
        #[arg(long)]
        org: String,
        #[arg(long)]
        patient: String,
        /// The step's `id`.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
pub enum AssignmentCommand {
    /// Mark the survey or exercise a delivery assigned as completed by the
    /// patient (ends "until assignments_complete" repeats once none is open).
    Complete {
        #[arg(long)]
        org: String,
        /// The delivery's ID (`tendon outbox list --json`, key `id`).
        #[arg(long)]
        delivery: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Messages sent (or being sent) to patients, oldest first.
    List(OrgArgs),
}

/// The `workflow list` view of a workflow (docs/interface.md §5 keys, plus `version`).
pub fn workflow_json(w: &Workflow) -> Value {
    json!({
        "id": w.id,
        "title": w.title,
        "status": w.status.as_str(),
        "version": w.version,
        "patient_group": w.patient_group,
        "trigger": w.trigger,
        "steps": w.steps,
    })
}

/// The `workflow import` and `install-defaults` view of a stored workflow.
fn stored_json(w: &Workflow) -> Value {
    json!({"id": w.id, "title": w.title, "status": w.status.as_str(), "version": w.version})
}

/// The refusal for a workflow ID the org does not have.
fn no_workflow(org: &str, id: &str) -> CliError {
    format!("no workflow {id:?} in org {org:?}; see `tendon workflow list --org {org}`").into()
}

async fn require_org<S: ConfigStore>(store: &S, org: &str) -> CliResult<Vec<Workflow>> {
    Ok(require_config(store, org).await?.workflows)
}

pub async fn run<S: ConfigStore + WorkflowStore + StepSchedule + PatientStore>(
    store: &S,
    cmd: WorkflowCommand,
) -> CliResult {
    match cmd {
        WorkflowCommand::Import { org, file, out } => {
            require_org(store, &org).await?;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let wf = Workflow::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let stored = store.put_workflow(&org, &wf).await?;
            print(out.json, &stored_json(&stored))
        }
        WorkflowCommand::List(OrgArgs { org, out }) => {
            let all = require_org(store, &org).await?;
            print(out.json, &all.iter().map(workflow_json).collect::<Vec<_>>())
        }
        WorkflowCommand::Show(RecordArgs { org, id, out }) => {
            let all = require_org(store, &org).await?;
            let Some(wf) = all.iter().find(|w| w.id == id) else {
                return Err(no_workflow(&org, &id));
            };
            let steps = store.list_steps(&org, None).await?;
            let mut view = workflow_json(wf);
            view["step_counts"] = json!(step_counts(wf, &steps));
            print(out.json, &view)
        }
        WorkflowCommand::Activate(args) => set_status(store, args, WorkflowStatus::Active).await,
        WorkflowCommand::Deactivate(args) => {
            set_status(store, args, WorkflowStatus::Inactive).await
        }
        WorkflowCommand::InstallDefaults(OrgArgs { org, out }) => {
            require_org(store, &org).await?;
            let mut installed = Vec::new();
            for wf in defaults::all() {
                let stored = store.put_workflow(&org, &wf).await?;
                installed.push(stored_json(&stored));
            }
            print(out.json, &installed)
        }
        WorkflowCommand::Simulate { org, patient, out } => {
            let Some(config) = store.org_config(&org).await? else {
                return Err(format!("no org {org:?}").into());
            };
            let Some(record) = store.load_patient(&org, &patient).await? else {
                return Err(format!("no patient {patient:?} in org {org:?}").into());
            };
            let steps = store.list_steps(&org, Some(&patient)).await?;
            print(
                out.json,
                &tendon_core::workflow::simulate::timeline(&steps, &config, &record),
            )
        }
        WorkflowCommand::Steps { org, patient, out } => {
            require_org(store, &org).await?;
            let steps = store.list_steps(&org, patient.as_deref()).await?;
            let view: Vec<Value> = steps.iter().map(step_view).collect();
            print(out.json, &view)
        }
        WorkflowCommand::RetryStep {
            org,
            patient,
            id,
            out,
        } => {
            require_org(store, &org).await?;
            let step = tendon_core::workflow::retry::retry_failed_step(
                store,
                &org,
                &patient,
                &id,
                jiff::Timestamp::now(),
            )
            .await
            .map_err(|e| e.to_string())?;
            print(out.json, &step_view(&step))
        }
    }
}

/// A scheduled step as `workflow steps` and `retry-step` print it.
fn step_view(s: &tendon_core::workflow::steps::ScheduledStep) -> Value {
    json!({
        "id": s.id, "workflow_id": s.workflow_id, "step": s.step, "occurrence": s.occurrence,
        "patient_id": s.patient_id, "appointment_id": s.appointment_id, "kind": s.task.kind.as_str(),
        "due_at": s.due_at, "status": s.status.as_str(), "note": s.note, "resends": s.resends,
    })
}

/// Per step of `wf`: how many of its scheduled sends (any version) are
/// waiting, sent, skipped and failed.
fn step_counts(wf: &Workflow, steps: &[tendon_core::workflow::steps::ScheduledStep]) -> Vec<Value> {
    use tendon_core::workflow::steps::StepStatus;
    (0..wf.steps.len())
        .map(|i| {
            let count = |status: StepStatus| {
                steps
                    .iter()
                    .filter(|s| s.workflow_id == wf.id && s.step == i && s.status == status)
                    .count()
            };
            json!({
                "step": i,
                "scheduled": count(StepStatus::Scheduled),
                "sent": count(StepStatus::Sent),
                "skipped": count(StepStatus::Skipped),
                "failed": count(StepStatus::Failed),
            })
        })
        .collect()
}

async fn set_status<S: WorkflowStore>(
    store: &S,
    args: RecordArgs,
    status: WorkflowStatus,
) -> CliResult {
    let RecordArgs { org, id, out } = args;
    match store.set_workflow_status(&org, &id, status).await {
        Ok(wf) => print(out.json, &workflow_json(&wf)),
        Err(StoreError::NotFound(_)) => Err(no_workflow(&org, &id)),
        Err(e) => Err(e.into()),
    }
}

pub async fn assignment<S: DeliveryLog>(store: &S, cmd: AssignmentCommand) -> CliResult {
    let AssignmentCommand::Complete { org, delivery, out } = cmd;
    if !store.complete_assignment(&org, &delivery).await? {
        return Err(format!(
            "no open assignment {delivery:?} in org {org:?}: the delivery must be a sent survey or \
             exercise that is not complete yet (see `tendon outbox list --org {org}`)"
        )
        .into());
    }
    print(
        out.json,
        &json!({"org": org, "delivery": delivery, "completed": true}),
    )
}

pub async fn outbox<S: DeliveryLog>(store: &S, cmd: OutboxCommand) -> CliResult {
    let OutboxCommand::List(OrgArgs { org, out }) = cmd;
    let all = store.list_deliveries(&org).await?;
    let view: Vec<Value> = all
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "channel": d.channel.as_str(), "to": d.to, "subject": d.subject, "body": d.body,
                "workflow_id": d.workflow_id, "step": d.step, "patient_id": d.patient_id,
                "sent_at": d.sent_at, "status": d.status, "content_id": d.content_id,
            })
        })
        .collect();
    print(out.json, &view)
}
