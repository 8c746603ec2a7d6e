//! `tendon aws bootstrap`: the template's table and queues, for moto or a sandbox.
use clap::Subcommand;
use serde_json::json;

use crate::args::JsonFlag;
use crate::output::print;

use crate::error::CliResult;

#[derive(Subcommand)]
pub enum AwsCommand {
    /// Create the table and queues template.yaml defines, in the account
    /// AWS_ENDPOINT_URL points at, and print the variables the functions and the
    /// CLI read. Refuses without AWS_ENDPOINT_URL unless given --yes.
    Bootstrap {
        #[arg(long, default_value = "tendon")]
        prefix: String,
        /// Create the resources in the real account of the current credentials.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
}

pub async fn bootstrap(prefix: &str, yes: bool, json_out: bool) -> CliResult {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() && !yes {
        return Err(
            "AWS_ENDPOINT_URL is not set, so this would create resources in a real AWS account; \
                    set it (e.g. to a moto server) or pass --yes"
                .into(),
        );
    }
    let env = tendon_aws::bootstrap(prefix).await?;
    print(json_out, &json!({ "env": env.vars() }))
}
