//! `tendon`: the local embedded mode (`serve`) and the operator commands. Each
//! subcommand is a thin adapter over `tendon-core`; see `tendon --help`.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tendon_local::SqliteStore;

mod admin;
mod hl7;
mod output;
mod serve;

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
    #[arg(long, global = true, env = "TENDON_BACKEND", value_enum, default_value_t = Backend::Local)]
    backend: Backend,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Local,
    Aws,
}

#[derive(Subcommand)]
enum Command {
    /// Run Tendon locally: HTTP endpoints and queue workers on the embedded database.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
    },
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
}

fn open(db: &Path, backend: Backend) -> Result<SqliteStore, String> {
    match backend {
        Backend::Local => {
            SqliteStore::open(db).map_err(|e| format!("cannot open database {}: {e}", db.display()))
        }
        Backend::Aws => {
            Err("the aws backend is not available in this build yet; use --backend local".into())
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let store = || open(&cli.db, cli.backend);
    match cli.command {
        Command::Hl7(cmd) => hl7::run(cmd, &store).await,
        Command::Serve { addr } => {
            init_logs(true);
            serve::serve(store()?, addr).await
        }
        Command::Org(cmd) => admin::org(&store()?, cmd).await,
        Command::Location(cmd) => admin::location(&store()?, cmd).await,
        Command::Practitioner(cmd) => admin::practitioner(&store()?, cmd).await,
        Command::IeType(cmd) => admin::ie_type(&store()?, cmd).await,
        Command::Patient(cmd) => admin::patient(&store()?, cmd).await,
        Command::Messages(cmd) => admin::messages(&store()?, cmd).await,
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
    init_logs(false);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tendon: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tendon: {e}");
            ExitCode::FAILURE
        }
    }
}
