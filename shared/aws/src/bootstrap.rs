//! `tendon aws bootstrap`: the resources of template.yaml (the table with its
//! `due` GSI, the two FIFO queues with their FIFO DLQs) and the mail setup
//! (an SES verified domain identity for the sender and an SES configuration
//! set), created directly through the APIs, for moto, a sandbox account or a
//! first deploy check. Idempotent: existing resources with the same settings
//! are kept.
//!
//! The sender is `no-reply@<prefix>.example.com`, its domain verified as an
//! SES identity: on moto that is all a send needs; on a real account the
//! domain cannot be verified, so set `TENDON_SES_SENDER` to an identity of
//! your own there.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, SseSpecification, TableStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::items::{BY_ORG_INDEX, BY_ORG_PK, BY_ORG_PROJECTED, BY_ORG_SK};
use crate::mail::{ENV_SES_CONFIGURATION_SET, ENV_SES_SENDER};
use crate::{ENV_EPISODES_QUEUE_URL, ENV_PATIENTS_QUEUE_URL, ENV_TABLE};

/// Environment variable with the patients DLQ URL.
pub const ENV_PATIENTS_DLQ_URL: &str = "TENDON_PATIENTS_DLQ_URL";
/// Environment variable with the episodes DLQ URL.
pub const ENV_EPISODES_DLQ_URL: &str = "TENDON_EPISODES_DLQ_URL";

/// As in template.yaml.
const VISIBILITY_TIMEOUT: &str = "180";
const MAX_RECEIVE_COUNT: u32 = 5;
const QUEUE_RETENTION: &str = "345600";
const DLQ_RETENTION: &str = "1209600";
/// How long bootstrap waits for the table to become active.
const TABLE_DEADLINE: Duration = Duration::from_secs(300);

/// What bootstrap created: the names and URLs a process needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapEnv {
    pub table: String,
    pub patients_queue_url: String,
    pub episodes_queue_url: String,
    pub patients_dlq_url: String,
    pub episodes_dlq_url: String,
    /// The `From` of workflow email (an SES verified identity's address).
    pub ses_sender: String,
    /// The SES configuration set workflow email is sent with.
    pub ses_configuration_set: String,
}

impl BootstrapEnv {
    /// The environment variables that point [`AwsStore::from_env`](crate::AwsStore::from_env) at these resources.
    pub fn vars(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            (ENV_TABLE, self.table.clone()),
            (ENV_PATIENTS_QUEUE_URL, self.patients_queue_url.clone()),
            (ENV_EPISODES_QUEUE_URL, self.episodes_queue_url.clone()),
            (ENV_PATIENTS_DLQ_URL, self.patients_dlq_url.clone()),
            (ENV_EPISODES_DLQ_URL, self.episodes_dlq_url.clone()),
            (ENV_SES_SENDER, self.ses_sender.clone()),
            (
                ENV_SES_CONFIGURATION_SET,
                self.ses_configuration_set.clone(),
            ),
        ])
    }
}

/// [`bootstrap_with`] on the AWS settings of the environment (aws-config's
/// default chain, `AWS_ENDPOINT_URL` included).
pub async fn bootstrap(prefix: &str) -> Result<BootstrapEnv, String> {
    let sdk = crate::sdk::config().await;
    bootstrap_with(&sdk, prefix).await
}

/// Creates `<prefix>-table`, `<prefix>-patients.fifo`, `<prefix>-episodes.fifo`
/// and their DLQs `<prefix>-patients-dlq.fifo`, `<prefix>-episodes-dlq.fifo`,
/// the SES identity `<prefix>.example.com` and the SES configuration set
/// `<prefix>-mail`, and waits for the table to be active. `prefix` follows the template's
/// `Prefix` parameter: lower-case letters, digits and hyphens, starting with a
/// letter, at most 32 characters.
pub async fn bootstrap_with(
    sdk: &aws_config::SdkConfig,
    prefix: &str,
) -> Result<BootstrapEnv, String> {
    let valid = (1..=32).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "invalid prefix '{prefix}': use 1 to 32 lower-case letters, digits and hyphens, starting with a letter"
        ));
    }
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let table = format!("{prefix}-table");
    create_table(&dynamo, &table).await?;
    let (patients_queue_url, patients_dlq_url) =
        create_queue_pair(&sqs, prefix, "patients").await?;
    let (episodes_queue_url, episodes_dlq_url) =
        create_queue_pair(&sqs, prefix, "episodes").await?;
    let (ses_sender, ses_configuration_set) = create_mail(sdk, prefix).await?;
    wait_for_table(&dynamo, &table).await?;
    Ok(BootstrapEnv {
        table,
        patients_queue_url,
        episodes_queue_url,
        patients_dlq_url,
        episodes_dlq_url,
        ses_sender,
        ses_configuration_set,
    })
}

/// The sender's domain as an SES identity and the configuration set; returns
/// (sender, configuration set name).
async fn create_mail(
    sdk: &aws_config::SdkConfig,
    prefix: &str,
) -> Result<(String, String), String> {
    let ses = aws_sdk_ses::Client::new(sdk);
    let domain = format!("{prefix}.example.com");
    ses.verify_domain_identity()
        .domain(&domain)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot create the SES identity {domain}: {}",
                aws_sdk_ses::error::DisplayErrorContext(&e)
            )
        })?;
    let name = format!("{prefix}-mail");
    let set = aws_sdk_ses::types::ConfigurationSet::builder()
        .name(&name)
        .build()
        .map_err(|e| format!("create configuration set: {e}"))?;
    match ses
        .create_configuration_set()
        .configuration_set(set)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_configuration_set_already_exists_exception()) => {}
        Err(e) => {
            return Err(format!(
                "cannot create the SES configuration set {name}: {}",
                aws_sdk_ses::error::DisplayErrorContext(&e)
            ));
        }
    }
    Ok((format!("no-reply@{domain}"), name))
}

fn key_element(name: &str, key_type: KeyType) -> Result<KeySchemaElement, String> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| format!("create table: {e}"))
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, String> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| format!("create table: {e}"))
}

async fn create_table(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), String> {
    let due = GlobalSecondaryIndex::builder()
        .index_name("due")
        .key_schema(key_element("due_pk", KeyType::Hash)?)
        .key_schema(key_element("due_at", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| format!("create table: {e}"))?;
    let mut projection = Projection::builder().projection_type(ProjectionType::Include);
    for attr in BY_ORG_PROJECTED {
        projection = projection.non_key_attributes(*attr);
    }
    let by_org = GlobalSecondaryIndex::builder()
        .index_name(BY_ORG_INDEX)
        .key_schema(key_element(BY_ORG_PK, KeyType::Hash)?)
        .key_schema(key_element(BY_ORG_SK, KeyType::Range)?)
        .projection(projection.build())
        .build()
        .map_err(|e| format!("create table: {e}"))?;
    let created = dynamo
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("pk")?)
        .attribute_definitions(string_attribute("sk")?)
        .attribute_definitions(string_attribute("due_pk")?)
        .attribute_definitions(string_attribute("due_at")?)
        .attribute_definitions(string_attribute(BY_ORG_PK)?)
        .attribute_definitions(string_attribute(BY_ORG_SK)?)
        .key_schema(key_element("pk", KeyType::Hash)?)
        .key_schema(key_element("sk", KeyType::Range)?)
        .global_secondary_indexes(due)
        .global_secondary_indexes(by_org)
        .sse_specification(SseSpecification::builder().enabled(true).build())
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(()) // exists already
        }
        Err(e) => Err(format!(
            "cannot create the table {table}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
        )),
    }
}

async fn wait_for_table(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), String> {
    let deadline = Instant::now() + TABLE_DEADLINE;
    loop {
        let described = dynamo
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot describe the table {table}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )
            })?;
        let ready = described.table().is_some_and(|t| {
            t.table_status() == Some(&TableStatus::Active)
                && t.global_secondary_indexes()
                    .iter()
                    .all(|g| g.index_status().is_none_or(|s| *s == IndexStatus::Active))
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the table {table} did not become active in {} s",
                TABLE_DEADLINE.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn create_fifo(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    extra: &[(QueueAttributeName, String)],
) -> Result<String, String> {
    let mut request = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(QueueAttributeName::VisibilityTimeout, VISIBILITY_TIMEOUT)
        .attributes(QueueAttributeName::SqsManagedSseEnabled, "true");
    for (k, v) in extra {
        request = request.attributes(k.clone(), v.clone());
    }
    let created = request.send().await.map_err(|e| {
        format!(
            "cannot create the queue {name}: {}",
            aws_sdk_sqs::error::DisplayErrorContext(&e)
        )
    })?;
    created
        .queue_url
        .ok_or_else(|| format!("cannot create the queue {name}: no URL returned"))
}

/// The queue `<prefix>-<name>.fifo` and its DLQ; returns (queue URL, DLQ URL).
async fn create_queue_pair(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    name: &str,
) -> Result<(String, String), String> {
    let dlq_name = format!("{prefix}-{name}-dlq.fifo");
    let dlq_url = create_fifo(
        sqs,
        &dlq_name,
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION.to_owned(),
        )],
    )
    .await?;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read the queue {dlq_name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            )
        })?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or_else(|| format!("cannot read the ARN of the queue {dlq_name}"))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    })
    .to_string();
    let url = create_fifo(
        sqs,
        &format!("{prefix}-{name}.fifo"),
        &[
            (
                QueueAttributeName::MessageRetentionPeriod,
                QUEUE_RETENTION.to_owned(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive),
        ],
    )
    .await?;
    Ok((url, dlq_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names and settings that bootstrap, the CLI and the functions use
    /// must be the ones template.yaml deploys.
    #[test]
    fn template_yaml_agrees_with_the_code() {
        let template = include_str!("../../../template.yaml");
        let in_template: std::collections::BTreeSet<&str> = template
            .lines()
            .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
            .filter(|k| k.starts_with("TENDON_"))
            .collect();
        let env = BootstrapEnv {
            table: String::new(),
            patients_queue_url: String::new(),
            episodes_queue_url: String::new(),
            patients_dlq_url: String::new(),
            episodes_dlq_url: String::new(),
            ses_sender: String::new(),
            ses_configuration_set: String::new(),
        };
        let mut known: std::collections::BTreeSet<&str> = env.vars().into_keys().collect();
        known.extend([
            crate::lambda::ENV_MAX_RECEIVE_COUNT,
            crate::lambda::ENV_PUBLIC_URL,
            crate::lambda::ENV_PROFILE_URL,
            tendon_core::cliniko::ENV_USER_AGENT,
            crate::pace::ENV_SES_MAX_SEND_RATE,
        ]);
        for name in &in_template {
            assert!(
                known.contains(name),
                "template.yaml sets {name}, which no code reads"
            );
        }
        for name in [
            ENV_TABLE,
            ENV_PATIENTS_QUEUE_URL,
            ENV_EPISODES_QUEUE_URL,
            ENV_SES_SENDER,
            ENV_SES_CONFIGURATION_SET,
            crate::lambda::ENV_MAX_RECEIVE_COUNT,
            crate::lambda::ENV_PUBLIC_URL,
            crate::lambda::ENV_PROFILE_URL,
        ] {
            assert!(
                in_template.contains(name),
                "template.yaml never sets {name}"
            );
        }
        let settings = [
            format!("VisibilityTimeout: {VISIBILITY_TIMEOUT}"),
            format!("maxReceiveCount: {MAX_RECEIVE_COUNT}"),
            format!("TENDON_MAX_RECEIVE_COUNT: \"{MAX_RECEIVE_COUNT}\""),
            format!("MessageRetentionPeriod: {QUEUE_RETENTION}"),
            format!("MessageRetentionPeriod: {DLQ_RETENTION}"),
        ];
        for setting in settings {
            assert!(
                template.contains(&setting),
                "template.yaml lacks `{setting}`"
            );
        }
    }
}
