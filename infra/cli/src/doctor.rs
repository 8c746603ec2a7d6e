//! `tendon doctor`: what is wrong with an org's integration, most harmful
//! first, each with the command that fixes it (`tendon_core::doctor`).
use clap::Args;
use jiff::{SignedDuration, Timestamp};
use tendon_core::doctor::{Diagnosis, diagnose};
use tendon_core::ports::{ConfigStore, MessageLog, PatientStore};

use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Args)]
pub struct DoctorArgs {
    #[arg(long)]
    org: String,
    /// Read only the messages received in this last stretch of time, such as
    /// `24h`, `7d` or `90m` (default: all of them).
    #[arg(long)]
    since: Option<String>,
    /// Print only JSON: {"org","since","messages","findings":[..]}.
    #[arg(long)]
    json: bool,
}

pub async fn run<S>(store: &S, args: DoctorArgs) -> CliResult
where
    S: ConfigStore + MessageLog + PatientStore,
{
    let now = Timestamp::now();
    let since = match args.since.as_deref() {
        Some(text) => Some(now - stretch(text)?),
        None => None,
    };
    let diagnosis = diagnose(store, &args.org, since, now)
        .await?
        .ok_or_else(|| CliError::from(format!("no org {:?}", args.org)))?;
    if args.json {
        output::print(true, &diagnosis)
    } else {
        output::write(&render(&diagnosis))
    }
}

/// `24h`, `7d`, `90m`, `1w` (days as 24 hours).
fn stretch(text: &str) -> CliResult<SignedDuration> {
    let refused = || {
        CliError::from(format!(
            "--since {text:?} is not a stretch of time; use e.g. 90m, 24h or 7d"
        ))
    };
    let text = text.trim();
    let Some((cut, _)) = text.char_indices().last() else {
        return Err(refused());
    };
    let (number, unit) = text.split_at(cut);
    let n: i64 = number.parse().map_err(|_| refused())?;
    if n <= 0 {
        return Err(refused());
    }
    let hours = match unit {
        "m" => return SignedDuration::try_from_mins(n).ok_or_else(refused),
        "h" => n,
        "d" => n.checked_mul(24).ok_or_else(refused)?,
        "w" => n.checked_mul(24 * 7).ok_or_else(refused)?,
        _ => return Err(refused()),
    };
    SignedDuration::try_from_hours(hours).ok_or_else(refused)
}

/// The findings as numbered blocks; one line when there is nothing to fix.
fn render(d: &Diagnosis) -> String {
    let since = d
        .since
        .map(|t| format!(" received since {t}"))
        .unwrap_or_default();
    if d.findings.is_empty() {
        return format!(
            "{}: nothing wrong in {} message(s){since}.\n",
            d.org, d.messages
        );
    }
    let mut out = format!(
        "{}: {} finding(s) in {} message(s){since}, most harmful first.\n",
        d.org,
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
            "\nAfter the configuration fixes, replay the failed messages in the order received:\n   tendon messages replay --org {} --failed\n",
            d.org
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
