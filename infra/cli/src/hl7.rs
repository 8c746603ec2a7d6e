//! `tendon hl7 ...`
use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use jiff::civil::Date;
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
    /// Print the worked example (docs/interface.md §8) dated from today, ready to post.
    ///
    /// MSH-7 is now; the Initial Evaluation is at 10:00 clinic time on a day
    /// ahead, so the workflows it starts have steps still to come: the
    /// welcome email goes out on the dispatcher's next pass, the reminder the
    /// day before. The message file `examples/worked-example.hl7` is the
    /// same message with fixed dates.
    Example {
        /// The appointment's day, as days after today (UTC).
        #[arg(long, default_value_t = 3, conflicts_with = "date")]
        days_ahead: u16,
        /// The appointment's day instead, YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
    },
}

impl Hl7Command {
    /// Only `--org` reads the store, so inspecting a file needs no database.
    pub fn needs_store(&self) -> bool {
        matches!(self, Hl7Command::Inspect { org: Some(_), .. })
    }
}

pub async fn run(cmd: Hl7Command, store: Option<&impl ConfigStore>) -> CliResult {
    let (file, org, timezone, json) = match cmd {
        Hl7Command::Inspect {
            file,
            org,
            timezone,
            json,
        } => (file, org, timezone, json),
        Hl7Command::Example { days_ahead, date } => {
            let now = jiff::Timestamp::now();
            let day = match date {
                Some(text) => text.parse::<Date>().map_err(|_| {
                    CliError::from(format!("--date {text:?} is not a date; use YYYY-MM-DD"))
                })?,
                None => now
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .date()
                    .checked_add(jiff::Span::new().days(i64::from(days_ahead)))
                    .map_err(|_| CliError::from("--days-ahead is past the last date".to_owned()))?,
            };
            return crate::output::write(&worked_example(now, day));
        }
    };
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

/// The worked example as `examples/worked-example.hl7` holds it.
const WORKED_EXAMPLE: &str = include_str!("../../../examples/worked-example.hl7");
/// Its MSH-7, and the appointment start its SCH, AIS, AIL and AIP segments carry.
const WORKED_SENT: &str = "20261120093000-0800";
const WORKED_START: &str = "202612011000";

/// The worked example sent at `now` (MSH-7 in UTC), its appointment at 10:00
/// on `day` in the clinic's time (no offset, as the file has it).
fn worked_example(now: jiff::Timestamp, day: Date) -> String {
    let sent = now.strftime("%Y%m%d%H%M%S+0000").to_string();
    let start = format!("{}1000", day.strftime("%Y%m%d"));
    WORKED_EXAMPLE
        .replace(WORKED_SENT, &sent)
        .replace(WORKED_START, &start)
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
    let show = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), crate::output::printable);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_the_worked_example_with_its_dates_moved() {
        let now: jiff::Timestamp = "2027-03-04T05:06:07Z".parse().unwrap();
        let day: Date = "2027-03-09".parse().unwrap();
        let text = worked_example(now, day);
        assert_eq!(text.matches(WORKED_START).count(), 0);
        assert_eq!(
            text.matches("202703091000").count(),
            4,
            "SCH-11, AIS-4, AIL-6, AIP-6"
        );
        assert!(
            text.starts_with("MSH|^~\\&|EMRGATE|ACME01|TENDON|TENDON|20270304050607+0000||SIU^S12")
        );
        // Everything else is the file as it is.
        let back = text
            .replace("20270304050607+0000", WORKED_SENT)
            .replace("202703091000", WORKED_START);
        assert_eq!(back, WORKED_EXAMPLE);
    }
}
