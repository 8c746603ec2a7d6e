//! `tendon doctor`: what is wrong with an org's integration, most harmful
//! first, each with the command that fixes it (`tendon_core::doctor`).
use std::path::PathBuf;

use clap::Args;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tendon_core::cliniko::api::ClinikoApi;
use tendon_core::doctor::{
    Diagnosis, Plan, QueueDepths, apply, cliniko_unusable, diagnose, plan_of, queue_findings,
};
use tendon_core::mode::Mode;
use tendon_core::model::MessageStatus;
use tendon_core::ports::{MessageLog, PatientStore};

use crate::args::ModeArg;
use crate::backend::Backend;
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Args)]
pub struct DoctorArgs {
    #[arg(long)]
    org: String,
    /// Read only the messages received in this last stretch of time, such as
    /// `24h`, `7d`, `90m` or `1d 12h` (default: all of them).
    #[arg(long)]
    since: Option<String>,
    /// Write the fixes to FILE as a plan to review (locations, practitioners
    /// and IE types to add, the failed messages they unblock), instead of printing.
    #[arg(long, value_name = "FILE", conflicts_with = "apply")]
    plan: Option<PathBuf>,
    /// Apply the plan in FILE (after a person reviewed it), then replay its
    /// messages in order; prints what it did and the counts before and after.
    #[arg(long, value_name = "FILE")]
    apply: Option<PathBuf>,
    #[command(flatten)]
    mode: ModeArg,
    /// Print only JSON: {"org","mode","since","messages","findings":[..]},
    /// and in test mode "would_create":{"patients","episodes"}.
    #[arg(long)]
    json: bool,
}

pub async fn run<B: Backend>(backend: &B, args: DoctorArgs) -> CliResult {
    let partition = args.mode.partition(&args.org);
    if let Some(file) = &args.apply {
        return apply_plan(backend, &partition, file, args.json).await;
    }
    let store = backend.store();
    let now = Timestamp::now();
    let since = match args.since.as_deref() {
        Some(text) => Some(now - stretch(text)?),
        None => None,
    };
    let mut diagnosis = diagnose(store, &partition, since, now)
        .await?
        .ok_or_else(|| CliError::from(format!("no org {:?}", args.org)))?;
    // Whether Cliniko still takes the connection: the one check that calls out.
    if let Some(connection) = diagnosis.cliniko.take() {
        let refused = match crate::cliniko::client_for(&connection) {
            Err(why) => Some(why),
            Ok(client) => client.verify().await.err().map(|e| e.to_string()),
        };
        if let Some(why) = refused {
            diagnosis
                .findings
                .insert(0, cliniko_unusable(&args.org, &why));
        }
    }
    // The queues, every org's: what they hold that the messages may not show.
    diagnosis.queues = backend.queue().depths().await?;
    let queued = queue_findings(&diagnosis.queues, now);
    diagnosis.findings.splice(0..0, queued);
    if let Some(file) = &args.plan {
        let plan = plan_of(&diagnosis, now);
        let text = serde_json::to_string_pretty(&plan).map_err(|e| e.to_string())? + "\n";
        std::fs::write(file, text)
            .map_err(|e| CliError::from(format!("cannot write {}: {e}", file.display())))?;
        let summary = json!({
            "plan": file.display().to_string(),
            "locations": plan.locations.len(),
            "practitioners": plan.practitioners.len(),
            "ie_types": plan.ie_types.len(),
            "replay": plan.replay.len(),
        });
        return output::print(args.json, &summary);
    }
    if args.json {
        output::print(true, &diagnosis)
    } else {
        output::write(&render(&diagnosis))
    }
}

/// Failed messages and patients: what a plan is meant to move.
async fn counts<S: MessageLog + PatientStore>(
    store: &S,
    org: &str,
) -> CliResult<serde_json::Value> {
    let failed = store
        .list_messages(org, Some(MessageStatus::Failed))
        .await?
        .len();
    let patients = store.list_patients(org).await?.len();
    Ok(json!({ "failed": failed, "patients": patients }))
}

/// `partition`: the org, or its test partition (`--mode test`).
async fn apply_plan<B: Backend>(
    backend: &B,
    partition: &str,
    file: &PathBuf,
    json: bool,
) -> CliResult {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::from(format!("cannot read {}: {e}", file.display())))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        CliError::from(format!(
            "{} is not a plan (nothing was applied): {e}",
            file.display()
        ))
    })?;
    let store = backend.store();
    let before = counts(store, partition).await?;
    let applied = apply(store, backend.queue(), partition, &plan)
        .await?
        .map_err(|refused| CliError::from(format!("{refused}; nothing was applied")))?;
    // Process now, so the command works with or without a running `tendon serve`.
    backend.drain().await?;
    // A running `tendon serve` (or the Lambda functions) may hold some of the
    // replayed messages in flight, which the drain does not see: wait for
    // those, and only those, so the counts after are the plan's outcome.
    let ids: Vec<&str> = applied.replayed_ids.iter().map(String::as_str).collect();
    let in_flight = await_processed(store, partition, &ids, IN_FLIGHT_WAIT).await?;
    let after = counts(store, partition).await?;
    let mut view = json!({ "applied": applied, "before": before, "after": after });
    if in_flight > 0 {
        view["in_flight"] = json!(in_flight);
        if !json {
            eprintln!(
                "tendon: {in_flight} replayed message(s) were still being processed after {}s; \
                 `tendon messages list --org {partition}` shows how they end",
                IN_FLIGHT_WAIT.as_secs()
            );
        }
    }
    output::print(json, &view)
}

/// How long `--apply` waits for replayed messages someone else is processing.
const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until none of the messages `ids` is `accepted` (queued, not yet
/// processed), for at most `wait`; returns how many still are.
/// A message that stays queued (a worker stopped, a poison message) only
/// costs the wait, never a hang.
async fn await_processed<S: MessageLog>(
    store: &S,
    partition: &str,
    ids: &[&str],
    wait: std::time::Duration,
) -> CliResult<usize> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut waiting: Vec<&str> = ids.to_vec();
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        let mut still = Vec::new();
        for id in waiting {
            let message = store.get_message(partition, id).await?;
            if message.is_some_and(|m| m.status == MessageStatus::Accepted) {
                still.push(id);
            }
        }
        waiting = still;
        if waiting.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(waiting.len());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(1));
    }
}

/// A stretch of time as jiff reads one (`24h`, `7d`, `90m`, `2w`,
/// `1d 12h`, ISO 8601 `P7D`), days and weeks as 24 and 168 hours.
fn stretch(text: &str) -> CliResult<SignedDuration> {
    let refused = || {
        CliError::from(format!(
            "--since {text:?} is not a stretch of time; use e.g. 90m, 24h or 7d"
        ))
    };
    let span: jiff::Span = text.trim().parse().map_err(|_| refused())?;
    let duration = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| refused())?;
    if duration <= SignedDuration::ZERO {
        return Err(refused());
    }
    Ok(duration)
}

/// The findings as numbered blocks; one line when there is nothing to fix.
fn render(d: &Diagnosis) -> String {
    let since = d
        .since
        .map(|t| format!(" received since {t}"))
        .unwrap_or_default();
    let (org, would) = match (d.mode, d.would_create) {
        (Mode::Test, Some(w)) => (
            format!("{} (test mode)", d.org),
            format!(
                "; live, they would have created {} patient(s) and {} episode(s) of care",
                w.patients, w.episodes
            ),
        ),
        _ => (d.org.clone(), String::new()),
    };
    if d.findings.is_empty() {
        return format!(
            "{org}: nothing wrong in {} message(s){since}{would}.\n",
            d.messages
        );
    }
    let mut out = format!(
        "{org}: {} finding(s) in {} message(s){since}{would}, most harmful first.\n",
        d.findings.len(),
        d.messages
    );
    for (i, f) in d.findings.iter().enumerate() {
        let subject = f
            .subject
            .as_deref()
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        out += &format!("\n{}. {}{subject}: {}\n", i + 1, f.code, f.summary);
        out += &format!(
            "   seen {} to {}",
            second(f.first_seen),
            second(f.last_seen)
        );
        if !f.examples.is_empty() {
            out += &format!("; for example {}", f.examples.join(", "));
        }
        out += "\n";
        if !f.names.is_empty() {
            out += &format!("   named {}\n", f.names.join(", "));
        }
        if let Some(evidence) = &f.evidence {
            out += &format!("   because {evidence}\n");
        }
        out += &format!("   fix: {}\n", f.fix);
    }
    if d.findings
        .iter()
        .any(|f| f.blocked > 0 || is_configuration(f.code))
    {
        out += &format!(
            "\nAfter the configuration fixes, replay the failed messages in the order received:\n   tendon messages replay --org {}{} --failed\n",
            d.org,
            match d.mode {
                Mode::Live => "",
                Mode::Test => " --mode test",
            }
        );
    }
    out
}

/// An instant to the second, for people.
fn second(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn is_configuration(code: &str) -> bool {
    matches!(
        code,
        "unknown_location" | "unknown_practitioner" | "ie_type_not_configured"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretches_of_time() {
        assert_eq!(stretch("90m").unwrap(), SignedDuration::from_mins(90));
        assert_eq!(stretch("24h").unwrap(), SignedDuration::from_hours(24));
        assert_eq!(stretch("7d").unwrap(), SignedDuration::from_hours(168));
        assert_eq!(stretch("2w").unwrap(), SignedDuration::from_hours(336));
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "-1d",
            "-5m",
            "0h",
            "7é",
            "99999999999999999d",
        ] {
            assert!(stretch(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod wait_tests {
    use tendon_core::batch;
    use tendon_core::ports::{MessageLog, SystemClock};
    use tendon_local::{LocalQueue, SqliteStore};
    use tendon_testkit::acme;

    use super::await_processed;

    #[tokio::test]
    async fn apply_waits_for_replayed_messages_and_no_longer_than_its_wait() {
        let store = SqliteStore::open_in_memory().unwrap();
        let queue = LocalQueue::new(store.clone());
        acme::configure(&store, &acme::org(), acme::KEY).await;
        // Stored and queued; no worker has taken it yet.
        tendon_testkit::post(&store, &queue, acme::KEY, acme::WORKED).await;
        let id = store.list_messages(acme::ORG, None).await.unwrap()[0]
            .id
            .clone();
        let short = std::time::Duration::from_millis(50);
        assert_eq!(
            await_processed(&store, acme::ORG, &[&id], short)
                .await
                .unwrap(),
            1
        );
        batch::drain(&store, &queue, &queue, &SystemClock)
            .await
            .unwrap();
        assert_eq!(
            await_processed(&store, acme::ORG, &[&id], short)
                .await
                .unwrap(),
            0
        );
        // A message that is not there is not waited for.
        assert_eq!(
            await_processed(&store, acme::ORG, &["nope"], short)
                .await
                .unwrap(),
            0
        );
    }
}
