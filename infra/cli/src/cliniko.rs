//! `tendon cliniko connect|sync|failures`: the Cliniko sync's operator
//! commands, over `tendon_core::cliniko`.
use std::io::IsTerminal;

use clap::Subcommand;
use serde_json::json;
use tendon_core::cliniko::sync::{self, SyncReport};
use tendon_core::cliniko::{ClinikoConnection, open_url};
use tendon_core::ports::SyncStore;

use crate::args::{DEFAULT_PUBLIC_URL, JsonFlag, OrgArgs, PUBLIC_URL_ENV};
use crate::output::{line, print};

use crate::error::CliResult;

#[derive(Subcommand)]
pub enum ClinikoCommand {
    /// Connect an org to its Cliniko account: the key is checked with one
    /// call, stored, and never printed back. Prints the "Open in" URL to
    /// register in Cliniko (Settings > Integrations > Connected patient apps).
    Connect {
        #[arg(long)]
        org: String,
        /// A Cliniko API key (My info > Manage API keys); its suffix names the shard.
        #[arg(long, env = "TENDON_CLINIKO_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Overrides the shard's base URL (a test server, a proxy).
        #[arg(long)]
        base_url: Option<String>,
        /// Base URL of this deployment's public endpoints.
        #[arg(long, env = PUBLIC_URL_ENV, default_value = DEFAULT_PUBLIC_URL)]
        public_url: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Import new or updated Cliniko patients (all of them the first time).
    Sync {
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        org: Option<String>,
        /// Every connected org, one after another, as the scheduled
        /// re-sync does: `[{"org", ...report}|{"org","error"}]`.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Profiles that failed to import, with the fields they lack; fix them in
    /// Cliniko, and the next sync imports them.
    Failures(OrgArgs),
}

/// The Cliniko client of a stored connection.
pub fn client_for(connection: &ClinikoConnection) -> Result<tendon_cliniko::Client, String> {
    tendon_cliniko::Client::for_connection(connection).map_err(|e| e.to_string())
}

pub async fn run<S: SyncStore>(store: &S, cmd: ClinikoCommand) -> CliResult {
    match cmd {
        ClinikoCommand::Connect {
            org,
            api_key,
            base_url,
            public_url,
            out,
        } => {
            let api_key = api_key.trim().to_owned();
            let shard = tendon_cliniko::shard_of(&api_key).map_err(|e| e.to_string())?;
            // The client a stored connection gets, before it is stored.
            let probe = ClinikoConnection {
                org: org.clone(),
                api_key: api_key.clone(),
                shard: shard.clone(),
                base_url: base_url.clone(),
                token: String::new(),
                watermark: None,
                connected_at: jiff::Timestamp::UNIX_EPOCH,
                last_sync_at: None,
            };
            let client = client_for(&probe)?;
            let connection = sync::connect(
                store,
                &client,
                &org,
                &api_key,
                &shard,
                base_url.as_deref(),
                jiff::Timestamp::now(),
            )
            .await
            .map_err(|e| e.to_string())?;
            print(
                out.json,
                &json!({
                    "org": connection.org,
                    "shard": connection.shard,
                    "open_url": open_url(&public_url, &connection.token),
                    "api_key": connection.masked_key(),
                }),
            )
        }
        ClinikoCommand::Sync { org: None, out, .. } => {
            let results = sync::sync_all(store, tendon_cliniko::client_for, jiff::Timestamp::now())
                .await
                .map_err(|e| e.to_string())?;
            let mut failed = false;
            let rows: Vec<serde_json::Value> = results
                .into_iter()
                .map(|r| match r.result {
                    Ok(report) => {
                        let mut v = serde_json::to_value(&report).unwrap_or_default();
                        v["org"] = json!(r.org);
                        v
                    }
                    Err(e) => {
                        failed = true;
                        json!({"org": r.org, "error": e.to_string()})
                    }
                })
                .collect();
            print(out.json, &rows)?;
            if failed {
                return Err("some orgs did not sync; see their errors".into());
            }
            Ok(())
        }
        ClinikoCommand::Sync {
            org: Some(org),
            out,
            ..
        } => {
            let connection = store
                .connection(&org)
                .await?
                .ok_or_else(|| sync::SyncError::NotConnected(org.clone()).to_string())?;
            let client = client_for(&connection)?;
            let bar = (!out.json && std::io::stderr().is_terminal()).then(progress_bar);
            let report = sync::sync_org(store, &client, &org, jiff::Timestamp::now(), |r| {
                if let Some(bar) = &bar {
                    bar.set_position(r.read as u64);
                    bar.set_message(format!("{} synced, {} failed", r.synced, r.failed));
                }
            })
            .await
            .map_err(|e| e.to_string())?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            print_report(out.json, &report)
        }
        ClinikoCommand::Failures(OrgArgs { org, out }) => {
            let failures = store.failures(&org).await?;
            print(out.json, &failures)
        }
    }
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} profiles read: {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// The results, failed profiles first (as a sync results page lists them).
fn print_report(json_out: bool, report: &SyncReport) -> CliResult {
    if json_out {
        return print(true, report);
    }
    for f in &report.failures {
        line(&format!(
            "failed  Cliniko patient {}: missing {}",
            f.cliniko_id,
            f.missing.join(", ")
        ))?;
    }
    line(&format!(
        "synced {}, failed {} ({} unchanged, {} made inactive)",
        report.synced, report.failed, report.unchanged, report.deactivated
    ))?;
    if report.failed > 0 {
        line(
            "Fix the failed profiles in Cliniko, then sync again: `tendon cliniko failures` lists them.",
        )?;
    }
    Ok(())
}
