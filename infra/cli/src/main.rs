//! `tendon`: the operator's command line. Each subcommand is a thin adapter
//! over `tendon-core`; see `tendon --help`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod hl7;

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
    /// Work with HL7 v2 messages.
    #[command(subcommand)]
    Hl7(hl7::Hl7Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = (&cli.db, cli.backend);
    let result = match cli.command {
        Command::Hl7(cmd) => hl7::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tendon: {e}");
            ExitCode::FAILURE
        }
    }
}
