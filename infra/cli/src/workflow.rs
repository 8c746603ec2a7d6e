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
use tendon_schematic::Format;

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
    /// the repeats to come, on the clinic's clock. Sends nothing. With
    /// `--format svg|html`, the timeline as a picture.
    Simulate {
        #[arg(long)]
        org: String,
        #[arg(long)]
        patient: String,
        #[command(flatten)]
        drawing: DrawingArgs,
        /// The instant drawn as "now" (RFC 3339; default: now).
        #[arg(long)]
        at: Option<jiff::Timestamp>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// The schematic of the org's workflows, the picture a clinic owner
    /// receives: every workflow on a time axis around its trigger, grouped
    /// as engagement or outcomes, with or without an EMR integration. One
    /// self-contained SVG or HTML file.
    Schematic {
        #[arg(long, required_unless_present = "defaults")]
        org: Option<String>,
        /// Draw the built-in default workflows instead of an org's (the
        /// picture in the README; needs no database).
        #[arg(long, conflicts_with = "org")]
        defaults: bool,
        #[command(flatten)]
        drawing: DrawingArgs,
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

/// Where a drawing goes, and as what.
#[derive(clap::Args)]
pub struct DrawingArgs {
    /// svg or html; default: the `--out` file's extension, else svg.
    #[arg(long, value_parser = ["svg", "html"])]
    pub format: Option<String>,
    /// The file to write (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl DrawingArgs {
    fn format(&self) -> Format {
        let by_extension = self
            .out
            .as_ref()
            .and_then(|p| p.extension())
            .and_then(|e| Format::parse(&e.to_string_lossy().to_ascii_lowercase()));
        self.format
            .as_deref()
            .and_then(Format::parse)
            .or(by_extension)
            .unwrap_or(Format::Svg)
    }

    /// Writes `svg` (titled `title`) where asked; `--json` then prints
    /// what was written instead of the document.
    fn emit(&self, json: bool, title: &str, svg: String, summary: Value) -> CliResult {
        let format = self.format();
        let document = format.render(title, svg);
        let mut view = summary;
        view["format"] = json!(if format == Format::Svg { "svg" } else { "html" });
        view["bytes"] = json!(document.len());
        match &self.out {
            Some(path) => {
                std::fs::write(path, &document)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                view["out"] = json!(path.display().to_string());
                if json {
                    print(true, &view)
                } else {
                    crate::output::line(&format!("wrote {}", path.display()))
                }
            }
            None if json => {
                view["document"] = json!(document);
                print(true, &view)
            }
            None => crate::output::write(&document),
        }
    }
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
            view["words"] = json!(tendon_core::workflow::describe::describe(wf));
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
        WorkflowCommand::Simulate {
            org,
            patient,
            drawing,
            at,
            out,
        } => {
            let config = require_config(store, &org).await?;
            let Some(record) = store.load_patient(&org, &patient).await? else {
                return Err(format!("no patient {patient:?} in org {org:?}").into());
            };
            let steps = store.list_steps(&org, Some(&patient)).await?;
            let entries = tendon_core::workflow::simulate::timeline(&steps, &config, &record);
            if drawing.format.is_none() && drawing.out.is_none() {
                return print(out.json, &entries);
            }
            let heading = tendon_schematic::PatientHeading {
                org_id: &org,
                org_name: &config.org.name,
                timezone: &config.org.timezone,
                patient_id: &patient,
                now: at.unwrap_or_else(jiff::Timestamp::now),
            };
            let svg = tendon_schematic::timeline(&heading, &entries);
            let title = format!("Workflow timeline of patient {patient}");
            drawing.emit(
                out.json,
                &title,
                svg,
                json!({"org": org, "patient": patient, "entries": entries.len()}),
            )
        }
        WorkflowCommand::Schematic {
            org,
            defaults: _,
            drawing,
            out,
        } => {
            let Some(org) = org else {
                return defaults_schematic(&drawing, out.json);
            };
            let config = require_config(store, &org).await?;
            let heading = tendon_schematic::OrgHeading {
                id: Some(&org),
                name: &config.org.name,
                timezone: Some(&config.org.timezone),
            };
            schematic(&heading, &config.workflows, &drawing, out.json)
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

impl WorkflowCommand {
    /// `schematic --defaults` draws built-in data only: no database is opened.
    pub fn needs_store(&self) -> bool {
        !matches!(self, WorkflowCommand::Schematic { org: None, .. })
    }
}

/// A workflow command that needs no store (see [`WorkflowCommand::needs_store`]).
pub fn run_without_store(cmd: WorkflowCommand) -> CliResult {
    match cmd {
        WorkflowCommand::Schematic { drawing, out, .. } => defaults_schematic(&drawing, out.json),
        _ => Err("this workflow command needs the database".into()),
    }
}

fn defaults_schematic(drawing: &DrawingArgs, json: bool) -> CliResult {
    let heading = tendon_schematic::OrgHeading::DEFAULTS;
    schematic(&heading, &defaults::all(), drawing, json)
}

fn schematic(
    heading: &tendon_schematic::OrgHeading,
    workflows: &[Workflow],
    drawing: &DrawingArgs,
    json: bool,
) -> CliResult {
    let svg = tendon_schematic::schematic(heading, workflows);
    let summary = json!({"org": heading.id, "workflows": workflows.len()});
    drawing.emit(json, &heading.title(), svg, summary)
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
