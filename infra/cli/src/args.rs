//! The arguments many commands share, defined once: `--json`, the org a
//! command works on (`--org`), one record of it (`--org` and `--id`), which
//! of its data (`--mode`), and the public URL's environment variable and default.
use clap::Args;
use tendon_core::mode::Mode;

#[derive(Args)]
pub struct JsonFlag {
    /// Print only JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

// A command on one org: `--org ORG [--json]`.
#[derive(Args)]
pub struct OrgArgs {
    #[arg(long)]
    pub org: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

// A command on one record of an org: `--org ORG --id ID [--json]`.
#[derive(Args)]
pub struct RecordArgs {
    #[arg(long)]
    pub org: String,
    #[arg(long)]
    pub id: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// The environment variable of `--public-url`: the base URL of the
/// deployment's public endpoints (unsubscribe links, the Cliniko "Open in" URL).
pub const PUBLIC_URL_ENV: &str = "TENDON_PUBLIC_URL";

/// `--public-url` where a command has no listening address to default to.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// Which of an org's data a command reads: its live data, or the data of its
/// test-mode keys (tendon_core::mode).
#[derive(Args)]
pub struct ModeArg {
    /// live, or test: the messages of the org's test-mode keys and what
    /// they would have done.
    #[arg(long, default_value_t = Mode::Live)]
    pub mode: Mode,
}

impl ModeArg {
    /// The org ID the data of this mode is stored under.
    pub fn partition(&self, org: &str) -> String {
        tendon_core::mode::partition(org, self.mode)
    }
}
