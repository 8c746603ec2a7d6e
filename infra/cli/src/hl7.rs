//! `tendon hl7 ...`
use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use tendon_core::ports::ConfigStore;
use tendon_core::{FieldName, MapContext, Report, inspect};

use crate::error::{CliError, CliResult};

#[derive(Subcommand)]
pub enum Hl7Command {
    /// Show what a message maps to and what is wrong with it. Nothing is stored.
    ///
    /// Exits 0 whenever it could read the file, whatever the message holds: the
    /// findings are in the output (`errors`), and `ack` tells what ingest would answer.
    Inspect {
        /// The message file, or `-` for standard input.
        file: PathBuf,
        /// The org (Account ID) the message is checked against: MSH-4.1 must match
        /// it, and a configured org's field map and time zones apply.
        #[arg(long)]
        org: Option<String>,
        /// The IANA time zone for appointment times sent without an offset
        /// (default: the org's, else America/New_York).
        #[arg(long)]
        timezone: Option<String>,
        /// Print only JSON: {"type","control_id","fields","errors","warnings"}.
        #[arg(long)]
        json: bool,
    },
}

impl Hl7Command {
    /// Only `--org` reads the store, so inspecting a file needs no database.
    pub fn needs_store(&self) -> bool {
        let Hl7Command::Inspect { org, .. } = self;
        org.is_some()
    }
}

pub async fn run(cmd: Hl7Command, store: Option<&impl ConfigStore>) -> CliResult {
    let Hl7Command::Inspect {
        file,
        org,
        timezone,
        json,
    } = cmd;
    let input = read_input(&file)?;
    let configured = match (&org, store) {
        (Some(org), Some(store)) => store.org_config(org).await?,
        _ => None,
    };
    // A configured org brings its field map, time zones and account ID.
    let mut ctx = match configured {
        Some(config) => config.map_context(),
        None => MapContext {
            account_id: org,
            ..MapContext::default()
        },
    };
    if let Some(tz) = timezone.as_deref() {
        ctx.time_zone = zone(tz)?;
    }
    let report = inspect(&input, &ctx);
    let out = if json {
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n"
    } else {
        render(&report)
    };
    crate::output::write(&out)
}

fn zone(name: &str) -> CliResult<jiff::tz::TimeZone> {
    jiff::tz::TimeZone::get(name).map_err(|_| {
        CliError::from(format!(
            "unknown time zone {name:?}; use an IANA name such as America/New_York"
        ))
    })
}

fn read_input(file: &PathBuf) -> CliResult<Vec<u8>> {
    let mut buf = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_end(&mut buf).map(|_| ()))
    };
    read.map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok(buf)
}

/// A table a person can check by eye; control characters are shown escaped.
fn render(r: &Report) -> String {
    let show = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), |s| s.escape_debug().to_string());
    let mut out = format!(
        "message type  {}\ncontrol ID    {}\nack           {}\n\n",
        show(r.message_type.as_deref()),
        show(r.control_id.as_deref()),
        r.ack_code().as_str()
    );
    let width = FieldName::ALL
        .iter()
        .map(|f| f.as_str().len())
        .max()
        .unwrap_or(0);
    for name in FieldName::ALL {
        out += &format!(
            "{:width$}  {}\n",
            name.as_str(),
            show(r.fields.get(*name).as_deref())
        );
    }
    if r.errors.is_empty() {
        out += "\nno errors\n";
    } else {
        out += &format!("\n{} error(s):\n", r.errors.len());
        for e in &r.errors {
            let field = e.field.map_or("-", |f| f.as_str());
            out += &format!("  {:<24} {:<28} {}\n", e.code.as_str(), field, e.message);
        }
    }
    if !r.warnings.is_empty() {
        out += &format!(
            "\n{} warning(s) on how the message was read:\n",
            r.warnings.len()
        );
        for w in &r.warnings {
            let field = w.field.map_or("-", |f| f.as_str());
            out += &format!("  {:<24} {:<28} {}\n", w.code, field, w.message);
        }
    }
    out
}
