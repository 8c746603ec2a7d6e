//! `tendon`: the local embedded mode (`serve`) and the operator commands. Each
//! subcommand is a thin adapter over `tendon-core`; see `tendon --help`.
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backend::Backend;
use clap::{Parser, Subcommand, ValueEnum};
use error::{CliError, CliResult};
use tendon_aws::AwsStore;
use tendon_http::App;
use tendon_local::LocalQueue;
use tendon_local::SqliteStore;

mod admin;
mod args;
mod aws;
mod backend;
mod cliniko;
mod doctor;
mod error;
mod hl7;
mod output;
mod serve;
mod workflow;

#[derive(Parser)]
#[command(
    name = "tendon",
    version,
    about = "Tendon: EMR (HL7 v2) and Cliniko integration for patient engagement"
)]
struct Cli {
    /// The embedded SQLite database of the local backend.
    #[arg(long, global = true, env = "TENDON_DB", default_value = "./tendon.db")]
    db: PathBuf,
    /// Where state lives: the embedded database, or AWS (DynamoDB, SQS, SES).
    #[arg(long, global = true, env = "TENDON_BACKEND", value_enum, default_value_t = BackendKind::Local)]
    backend: BackendKind,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    Local,
    Aws,
}

#[derive(Subcommand)]
enum Command {
    /// Run Tendon locally: HTTP endpoints and queue workers on the embedded database.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Base URL of the public endpoints, for unsubscribe links (default: the listening address).
        #[arg(long, env = args::PUBLIC_URL_ENV)]
        public_url: Option<String>,
        /// Minutes between re-syncs of every Cliniko-connected org (0: none).
        #[arg(long, env = "TENDON_CLINIKO_RESYNC_MINUTES", default_value_t = 15)]
        cliniko_resync_minutes: u64,
    },
    /// The AWS backend's resources.
    #[command(subcommand)]
    Aws(aws::AwsCommand),
    /// Work with HL7 v2 messages.
    #[command(subcommand)]
    Hl7(hl7::Hl7Command),
    /// Orgs (clinic businesses).
    #[command(subcommand)]
    Org(admin::OrgCommand),
    /// Clinic locations.
    #[command(subcommand)]
    Location(admin::LocationCommand),
    /// Practitioners (therapists).
    #[command(subcommand)]
    Practitioner(admin::PractitionerCommand),
    /// Initial Evaluation appointment types.
    #[command(subcommand, name = "ie-type")]
    IeType(admin::IeTypeCommand),
    /// Patients with their episodes of care and appointments.
    #[command(subcommand)]
    Patient(admin::PatientCommand),
    /// Stored HL7 messages: list and replay.
    #[command(subcommand)]
    Messages(admin::MessagesCommand),
    /// Workflows: import, list, activate, deactivate, install the defaults.
    #[command(subcommand)]
    Workflow(workflow::WorkflowCommand),
    /// Run one dispatcher pass, as EventBridge's minute schedule does.
    Dispatch {
        /// The pass's instant (the EventBridge event's `time`), RFC 3339.
        #[arg(long)]
        at: String,
        /// Base URL of this deployment's public endpoints (unsubscribe links).
        #[arg(long, env = args::PUBLIC_URL_ENV, default_value = args::DEFAULT_PUBLIC_URL)]
        public_url: String,
        #[command(flatten)]
        out: args::JsonFlag,
    },
    /// Messages sent to patients.
    #[command(subcommand)]
    Outbox(workflow::OutboxCommand),
    /// Surveys and exercises assigned to patients.
    #[command(subcommand)]
    Assignment(workflow::AssignmentCommand),
    /// Cliniko: connect an org, import its patients, list the profiles that failed.
    #[command(subcommand)]
    Cliniko(cliniko::ClinikoCommand),
    /// What is wrong with an org's integration, and the command that fixes each. Read-only.
    Doctor(doctor::DoctorArgs),
}

/// The opened backend: the embedded store with its local queues, or AWS.
enum Opened {
    Local(LocalQueue),
    Aws(AwsStore),
}

/// Opens the backend. Only a command that starts a deployment (`creates`:
/// `serve`, `org create`) may create the local database file; any other
/// says that it does not exist, rather than reading a new, empty one (and
/// answering "no org"), and creates nothing.
async fn open(db: &Path, backend: BackendKind, creates: bool) -> CliResult<Opened> {
    match backend {
        BackendKind::Local if !creates && missing(db) => Err(format!(
            "the database file {} does not exist: check --db (env TENDON_DB); \
             `tendon org create` or `tendon serve` starts a new one",
            db.display()
        )
        .into()),
        BackendKind::Local => SqliteStore::open(db)
            .map(|s| Opened::Local(LocalQueue::new(s)))
            .map_err(|e| CliError::from(format!("cannot open database {}: {e}", db.display()))),
        BackendKind::Aws => Ok(Opened::Aws(AwsStore::from_env().await?)),
    }
}

/// Whether there is no file at `db` (a path in a missing folder included);
/// any other trouble is left for SQLite to report.
fn missing(db: &Path) -> bool {
    std::fs::metadata(db).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Whether the command starts a deployment, and so may create the database.
fn creates_database(command: &Command) -> bool {
    matches!(
        command,
        Command::Serve { .. } | Command::Org(admin::OrgCommand::Create { .. })
    )
}

/// Runs `$body` with `$b` bound to whichever backend was opened.
macro_rules! on_backend {
    ($opened:expr, |$b:ident| $body:expr) => {
        match $opened {
            Opened::Local(q) => {
                let $b = &q;
                $body
            }
            Opened::Aws(a) => {
                let $b = &a;
                $body
            }
        }
    };
}

async fn run(cli: Cli) -> CliResult {
    let (db, kind) = (cli.db.clone(), cli.backend);
    let creates = creates_database(&cli.command);
    let opened = || open(&db, kind, creates);
    match cli.command {
        // `hl7 inspect --org` applies the org's configuration if it has one,
        // and stores nothing: without a database it checks MSH-4 alone.
        Command::Hl7(cmd) if cmd.needs_store() && kind == BackendKind::Local && missing(&db) => {
            let _ = writeln!(
                std::io::stderr(),
                "tendon: no database file {}: the org's configuration (field map, time zones) is not applied",
                db.display()
            );
            hl7::run(cmd, None::<&SqliteStore>).await
        }
        Command::Hl7(cmd) if cmd.needs_store() => {
            on_backend!(opened().await?, |b| hl7::run(cmd, Some(b.store())).await)
        }
        Command::Hl7(cmd) => hl7::run(cmd, None::<&SqliteStore>).await,
        Command::Serve {
            addr,
            public_url,
            cliniko_resync_minutes: resync,
        } => {
            match opened().await? {
                Opened::Local(q) => serve::serve(q, addr, public_url, resync).await,
                // As the ingest function runs (see AwsStore::with_ingest_cache).
                Opened::Aws(a) => {
                    serve::serve(a.with_ingest_cache(), addr, public_url, resync).await
                }
            }
        }
        Command::Aws(aws::AwsCommand::Bootstrap { prefix, yes, out }) => {
            aws::bootstrap(&prefix, yes, out.json).await
        }
        Command::Org(cmd) => on_backend!(opened().await?, |b| admin::org(b.store(), cmd).await),
        Command::Location(cmd) => {
            on_backend!(opened().await?, |b| admin::location(b.store(), cmd).await)
        }
        Command::Practitioner(cmd) => {
            on_backend!(opened().await?, |b| admin::practitioner(b.store(), cmd)
                .await)
        }
        Command::IeType(cmd) => {
            on_backend!(opened().await?, |b| admin::ie_type(b.store(), cmd).await)
        }
        Command::Patient(cmd) => {
            on_backend!(opened().await?, |b| admin::patient(b.store(), cmd).await)
        }
        Command::Messages(cmd) => on_backend!(opened().await?, |b| admin::messages(b, cmd).await),
        Command::Cliniko(cmd) => {
            on_backend!(opened().await?, |b| cliniko::run(b.store(), cmd).await)
        }
        Command::Workflow(cmd) if !cmd.needs_store() => workflow::run_without_store(cmd),
        Command::Workflow(cmd) => {
            on_backend!(opened().await?, |b| workflow::run(b.store(), cmd).await)
        }
        Command::Outbox(cmd) => {
            on_backend!(opened().await?, |b| workflow::outbox(b.store(), cmd).await)
        }
        Command::Assignment(cmd) => {
            on_backend!(opened().await?, |b| workflow::assignment(b.store(), cmd)
                .await)
        }
        Command::Doctor(args) => {
            on_backend!(opened().await?, |b| doctor::run(b, args).await)
        }
        Command::Dispatch {
            at,
            public_url,
            out,
        } => {
            let at: jiff::Timestamp = at.parse().map_err(|_| {
                format!("--at {at:?} is not an RFC 3339 instant (e.g. 2026-12-01T09:00:00Z)")
            })?;
            let report = on_backend!(opened().await?, |b| b.dispatch(&public_url, at).await)?;
            output::print(out.json, &report)
        }
    }
}

/// JSON logs on stderr (IDs only, never patient data). `RUST_LOG` filters them;
/// commands other than `serve` log only warnings unless asked.
fn init_logs(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Once, before anything logs: `serve` at info, the other commands at warn.
    init_logs(matches!(cli.command, Command::Serve { .. }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "tendon: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output went away (`tendon messages list | head
        // -3`): the command ends quietly, as Unix tools do.
        Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "tendon: {e}");
            ExitCode::FAILURE
        }
    }
}
