//! The arguments many commands share, defined once: `--json`, the org a
//! command works on (`--org`), one record of it (`--org` and `--id`), and
//! the public URL's environment variable and default.
use clap::Args;

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
