//! Test mode: an org's second, separate set of data for a gateway that is
//! not live yet. A test-mode ingest key writes to the org's *test
//! partition*, an org ID of its own (`ACME01~test`) under which messages,
//! patients, episodes and events are stored exactly as live ones, so every
//! rule, ACK and doctor finding is the same; the partition reads the live
//! org's configuration (its locations, practitioners, IE types and field
//! map), schedules no workflow step and so sends nothing, and is deleted
//! with one command. Live data never names a partition, so the two never mix.
//!
//! A leaf module: it knows org IDs, nothing above them.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What separates an org ID from its partition's suffix; org IDs may not
/// contain it ([`check_org_id`]).
pub const SEPARATOR: char = '~';
const TEST_SUFFIX: &str = "~test";

/// Which data a key, a command or a record belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Live,
    Test,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s.trim() {
            "live" => Ok(Mode::Live),
            "test" => Ok(Mode::Test),
            other => Err(format!("mode {other:?} is not live or test")),
        }
    }
}

/// The org ID under which `org`'s data of this mode is stored.
pub fn partition(org: &str, mode: Mode) -> String {
    match mode {
        Mode::Live => org.to_owned(),
        Mode::Test => format!("{org}{TEST_SUFFIX}"),
    }
}

/// The org and the mode of a partition's ID (an org ID is its live partition).
pub fn split(partition: &str) -> (&str, Mode) {
    match partition.strip_suffix(TEST_SUFFIX) {
        Some(org) => (org, Mode::Test),
        None => (partition, Mode::Live),
    }
}

/// The org a partition belongs to: the Account ID its messages carry and
/// its configuration is stored under.
pub fn org_of(partition: &str) -> &str {
    split(partition).0
}

pub fn is_test(partition: &str) -> bool {
    split(partition).1 == Mode::Test
}

/// Refuses an org ID that could be mistaken for a partition.
pub fn check_org_id(id: &str) -> Result<(), String> {
    if id.contains(SEPARATOR) {
        return Err(format!(
            "an org ID may not contain {SEPARATOR:?} (it names an org's test-mode data)"
        ));
    }
    Ok(())
}

/// How a command names the partition on the command line: `--org ACME01`,
/// with ` --mode test` for the test partition (`org` already quoted for a shell).
pub fn cli_args(partition: &str, quoted_org: impl FnOnce(&str) -> String) -> String {
    match split(partition) {
        (org, Mode::Live) => format!("--org {}", quoted_org(org)),
        (org, Mode::Test) => format!("--org {} --mode test", quoted_org(org)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_splits_back_into_its_org_and_mode() {
        for mode in [Mode::Live, Mode::Test] {
            let p = partition("ACME01", mode);
            assert_eq!(split(&p), ("ACME01", mode));
            assert_eq!(org_of(&p), "ACME01");
            assert_eq!(is_test(&p), mode == Mode::Test);
        }
        assert_eq!(partition("ACME01", Mode::Test), "ACME01~test");
        assert!(check_org_id("ACME01~test").is_err());
        assert!(check_org_id("ACME-01_x").is_ok());
        assert_eq!("test".parse::<Mode>(), Ok(Mode::Test));
        assert!("Test mode".parse::<Mode>().is_err());
        assert_eq!(
            cli_args("A B~test", |o| format!("'{o}'")),
            "--org 'A B' --mode test"
        );
    }
}
