//! Tendon's AWS backend: the core's storage ports on ONE DynamoDB table, and
//! the work queues on SQS FIFO queues.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tendon_aws::AwsStore;
//! use tendon_core::ports::{QueueName, WorkItem, WorkQueue};
//!
//! // TENDON_TABLE, TENDON_PATIENTS_QUEUE_URL, TENDON_EPISODES_QUEUE_URL, plus the
//! // usual AWS_* settings (AWS_ENDPOINT_URL included) from the environment.
//! let store = AwsStore::from_env().await?;
//! let item = WorkItem { org: "ACME01".into(), message_id: "m1".into(), patient_id: None };
//! store.send(QueueName::Patients, "ACME01#P555", "m1", &item).await?;
//! for got in store.receive_batch(QueueName::Patients, 10, 20).await? {
//!     // ... handle got.item, then:
//!     store.delete(QueueName::Patients, &got.receipt).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! One [`AwsStore`] implements [`ConfigStore`](tendon_core::ports::ConfigStore),
//! [`MessageLog`](tendon_core::ports::MessageLog),
//! [`PatientStore`](tendon_core::ports::PatientStore),
//! the workflow ports ([`WorkflowStore`](tendon_core::ports::WorkflowStore),
//! [`StepSchedule`](tendon_core::ports::StepSchedule),
//! [`DeliveryLog`](tendon_core::ports::DeliveryLog),
//! [`Suppressions`](tendon_core::ports::Suppressions)) and
//! [`WorkQueue`](tendon_core::ports::WorkQueue) with the semantics their docs
//! give (the `tendon-contract` suites check them on moto).
//! [`AwsMailer`] implements [`Mailer`](tendon_core::ports::Mailer): email
//! through SES (`SendRawEmail`, MIME built here), texts through SNS.
//!
//! # Modules
//!
//! One module per port, on the helpers of `items` (keys, item encoding, the
//! counted requests every port sends):
//!
//! | module | what it holds |
//! |---|---|
//! | `config` | `ConfigStore` (orgs, keys, locations, practitioners; the org's configuration read in one Query) and the caches of those reads ([`INGEST_TTL`]) |
//! | `messages` | `MessageLog` and `Intake` (store, send, mark; the sweeper's claims) |
//! | `patients` | `PatientStore` (the commit's one transaction) and `StepStore` (a step's one read) |
//! | `workflows` | `WorkflowStore`: the workflow definitions |
//! | `schedule` | `StepSchedule`: the scheduled steps and their claims through the `due` GSI |
//! | `deliveries` | `DeliveryLog`: the outbox and the assignment markers |
//! | `suppressions` | `Suppressions`, and the secret that signs unsubscribe links |
//! | `cliniko` | `ClinikoStore` |
//! | `queue`, [`consumer`] | `WorkQueue` and `Consumer` on SQS FIFO |
//! | `mail` | [`AwsMailer`]: `Mailer` on SES and SNS, with the MIME it sends |
//! | `health` | `HealthCheck` (`GET /health`) |
//! | [`lambda`], `bootstrap`, [`sdk`], [`pace`] | the functions' shared code, the resources' creation (`tendon aws bootstrap`), the SDK configuration, the SES send pacer |
//!
//! # Item layout
//!
//! The table is keyed by `pk` (S) and `sk` (S); every key starts with the
//! tenant, so no read or write crosses orgs. Records are stored as DynamoDB
//! attributes (`serde_dynamo`), beside the key attributes.
//!
//! | item | `pk` | `sk` | notes |
//! |---|---|---|---|
//! | org | `ORG#<org>` | `ORG` | [`Org`](tendon_core::org::Org) |
//! | location | `ORG#<org>` | `LOC#<id>` | `org_config` is one Query of `ORG#<org>` |
//! | practitioner | `ORG#<org>` | `PRAC#<id>` | |
//! | ingest key | `KEY#<hash>` | `KEY` | attribute `org` |
//! | key listing | `ORG#<org>#KEYS` | `<hash>` | attribute `created_at`; written and deleted with the key in one transaction |
//! | message | `ORG#<org>#MSG#<id>` | `MSG` | the whole [`StoredMessage`](tendon_core::model::StoredMessage), `raw` as a Binary attribute |
//! | message listing | `ORG#<org>#MSGS` | `<received>#<seq>#<id>` | attribute `id` only; written with the message in one transaction |
//! | patient | `ORG#<org>#PAT#<id>` | `REC` | [`PatientRecord`](tendon_core::model::PatientRecord), `version` a Number |
//! | patient listing | `ORG#<org>#PATS` | `<id>` | attribute `id` only; written by the commit that creates the record |
//! | event | `ORG#<org>#EVT` | `<event id>` | [`DomainEvent`](tendon_core::model::DomainEvent) plus `seq` |
//! | workflow | `ORG#<org>` | `WF#<id>` | [`Workflow`](tendon_core::workflow::Workflow); in the org partition, so `org_config` reads it in its one Query |
//! | scheduled step | `ORG#<org>#PAT#<patient>` | `STEP#<id>` | [`ScheduledStep`](tendon_core::workflow::steps::ScheduledStep), its `due_at` stored as `step_due_at`; while `scheduled` also `due_pk` and `due_at` (the `due` GSI) and, while claimed, `claim_ms` |
//! | assignment marker | `ORG#<org>#PAT#<patient>` | `ASG#<delivery id>` | a sent survey or exercise: `delivery_id`, `kind`, `sent_at`, `content_id`; `completed_at` once done |
//! | delivery | `ORG#<org>#DLV#<id>` | `DLV` | [`Delivery`](tendon_core::workflow::steps::Delivery) (the outbox) |
//! | delivery listing | `ORG#<org>#DLVS` | `<created>#<seq>#<id>` | attribute `id` only; written with the delivery in one transaction |
//!
//! The `due` GSI (`due_pk` hash, `due_at` range, sparse) holds only
//! scheduled steps: `due_pk` is `DUE#<n>`, `n` a hash of the step ID modulo 4,
//! and `due_at` is `<13-digit Unix ms>#<step id>`, the instant from which the
//! step can be claimed (its due time, or its claim's end while claimed).
//!
//! - The message item is addressed directly by (org, id): `get_message` is one
//!   GetItem and the commit guard an Update on it. Its listing item holds only
//!   the ID: `list_messages` Queries the listing (ordered by `received_at` in
//!   zero-padded Unix nanoseconds, then insertion) and BatchGets the messages
//!   (status is filtered client side; the listing is an admin operation).
//! - `<seq>` is the writer's wall clock in nanoseconds, made strictly
//!   increasing within the process. Events are keyed by their ID (so a second
//!   write of one is refused by `attribute_not_exists`) and `list_events`
//!   sorts the org's events by `seq`: "in the order written" holds within a
//!   writer and, across Lambdas, up to clock skew.
//! - `commit` is ONE `TransactWriteItems`: an Update of the message item
//!   (condition: it exists and `steps_done` does not contain the step; sets
//!   status, errors, patient ID and appends the step), a Put per patient record
//!   (condition `attribute_not_exists(pk)` for a new one, `version = :expected`
//!   otherwise) with the listing item of each new patient, and a Put per event
//!   (`attribute_not_exists(pk)`). Cancellation reasons map to the outcome:
//!   the message guard → `AlreadyApplied` (or `NotFound` if the message does
//!   not exist); a record → `Conflict`; only events → those events exist
//!   already (the first write stays), so the transaction is sent again without
//!   them. The step guard makes a commit's events exactly-once. The steps a
//!   commit schedules (`Commit::scheduled`) are Puts in the same transaction
//!   (`attribute_not_exists(pk)`), and a step that exists is dropped and the
//!   transaction resent, as events are.
//! - Every workflow write is one transaction with a fresh `config_token` on
//!   the org item, so the steps' token-checked configuration cache never
//!   serves stale workflows.
//! - `claim_due` Queries each `due` shard for `due_at < <at + 1 ms>` (at once;
//!   only steps claimable at `at` are read), then claims oldest first with a
//!   conditional UpdateItem per step (`status = scheduled`, still claimable by
//!   the item's own `due_at` and `claim_ms`; the index is eventually
//!   consistent, the item is the truth) that sets `claimed_until` and moves
//!   `due_at` to the claim's end. A failed condition means another claimer
//!   has it. `finish_step` Puts the step without its claim, with the index
//!   attributes only if it is still scheduled (at its possibly new due time),
//!   and the next occurrence (`attribute_not_exists`) in the same transaction.
//!   A claim of `n` due steps costs 4 Queries and `n` UpdateItems.
//! - `begin_delivery` writes the delivery (`attribute_not_exists`) and its
//!   listing item in one transaction; `complete_delivery` updates it and, for
//!   a sent survey or exercise, writes its assignment marker in the same
//!   transaction, so `open_assignments` is one Query (`ASG#`, COUNT of those
//!   without `completed_at`). `list_steps` of a patient is one Query; of an
//!   org, the patient listing and that Query per patient.
//! - Org IDs are assumed to contain no `#` (they are EMR account IDs).
//! - An item is at most 400 KB: a raw message larger than that is stored in
//!   chunk items beside its message item (`messages.rs`); a patient record
//!   larger than that is refused by DynamoDB as a `Backend` error.
//!
//! Errors become [`StoreError::Backend`](tendon_core::ports::StoreError) with
//! the operation and the AWS error code (as data: `StoreError::code`), never
//! a stored value.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tendon_core::ports::{QueueName, StoreError};

mod bootstrap;
mod cliniko;
mod config;
pub mod consumer;
mod deliveries;
mod health;
mod items;
pub mod lambda;
mod mail;
mod messages;
mod overview;
pub mod pace;
mod patients;
mod queue;
mod schedule;
pub mod sdk;
mod suppressions;
mod test_data;
mod workflows;

pub use bootstrap::{BootstrapEnv, bootstrap, bootstrap_with};
pub use config::INGEST_TTL;
pub use mail::{AwsMailer, ENV_SES_CONFIGURATION_SET, ENV_SES_SENDER};
pub use queue::{Received, queue_safe_id};

/// Environment variable naming the table.
pub const ENV_TABLE: &str = "TENDON_TABLE";
/// Environment variable with the patients queue URL.
pub const ENV_PATIENTS_QUEUE_URL: &str = "TENDON_PATIENTS_QUEUE_URL";
/// Environment variable with the episodes queue URL.
pub const ENV_EPISODES_QUEUE_URL: &str = "TENDON_EPISODES_QUEUE_URL";

/// A service client built from its SDK configuration on first use.
#[derive(Debug)]
pub(crate) struct LazyClient<C> {
    sdk: aws_config::SdkConfig,
    client: std::sync::OnceLock<C>,
}

impl<C> LazyClient<C> {
    pub(crate) fn new(sdk: &aws_config::SdkConfig) -> LazyClient<C> {
        LazyClient {
            sdk: sdk.clone(),
            client: std::sync::OnceLock::new(),
        }
    }

    /// The client, built with `build` the first time.
    pub(crate) fn get(&self, build: impl FnOnce(&aws_config::SdkConfig) -> C) -> &C {
        self.client.get_or_init(|| build(&self.sdk))
    }

    #[cfg(test)]
    pub(crate) fn is_built(&self) -> bool {
        self.client.get().is_some()
    }
}

/// The AWS store. Cloning is cheap: clones share the clients and the request counter.
///
/// The SQS client is built on the first queue operation: four of the seven
/// functions never queue, and building a client is a fair share of a
/// function's init (docs/benchmarks.md, "Lambda init time").
#[derive(Clone, Debug)]
pub struct AwsStore {
    pub dynamo: aws_sdk_dynamodb::Client,
    sqs: Arc<LazyClient<aws_sdk_sqs::Client>>,
    pub table: String,
    pub patients_queue_url: String,
    pub episodes_queue_url: String,
    requests: Arc<AtomicU64>,
    item_writes: Arc<AtomicU64>,
    caches: Arc<config::Caches>,
}

impl AwsStore {
    /// A store on `table` and the two queues, with clients from `sdk`.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        table: impl Into<String>,
        patients_queue_url: impl Into<String>,
        episodes_queue_url: impl Into<String>,
    ) -> AwsStore {
        AwsStore {
            dynamo: aws_sdk_dynamodb::Client::new(sdk),
            sqs: Arc::new(LazyClient::new(sdk)),
            table: table.into(),
            patients_queue_url: patients_queue_url.into(),
            episodes_queue_url: episodes_queue_url.into(),
            requests: Arc::new(AtomicU64::new(0)),
            item_writes: Arc::new(AtomicU64::new(0)),
            caches: Arc::default(),
        }
    }

    /// The SQS client, built on first use.
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.sqs.get(aws_sdk_sqs::Client::new)
    }

    /// This store as ingest uses it: ingest keys and org configurations are
    /// cached for [`INGEST_TTL`] (see the `config` module), so a warm ingest
    /// function stores and queues a message in two requests.
    pub fn with_ingest_cache(self) -> AwsStore {
        AwsStore {
            caches: Arc::new(config::Caches::with_ingest_ttl(INGEST_TTL)),
            ..self
        }
    }

    /// Clients from an SDK config, on the resources `env` names.
    pub fn from_config(sdk: &aws_config::SdkConfig, env: &BootstrapEnv) -> AwsStore {
        AwsStore::new(
            sdk,
            env.table.clone(),
            env.patients_queue_url.clone(),
            env.episodes_queue_url.clone(),
        )
    }

    /// The AWS settings from the environment (aws-config's default chain,
    /// `AWS_ENDPOINT_URL` included) and the resources from `TENDON_TABLE`,
    /// `TENDON_PATIENTS_QUEUE_URL` and `TENDON_EPISODES_QUEUE_URL`.
    pub async fn from_env() -> Result<AwsStore, String> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("the environment variable {name} is not set"))
        };
        let (table, patients, episodes) = (
            var(ENV_TABLE)?,
            var(ENV_PATIENTS_QUEUE_URL)?,
            var(ENV_EPISODES_QUEUE_URL)?,
        );
        let sdk = crate::sdk::config().await;
        Ok(AwsStore::new(&sdk, table, patients, episodes))
    }

    /// How many AWS requests this store (and its clones) has sent.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts one request about to be sent.
    pub(crate) fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// How many DynamoDB items this store (and its clones) has written
    /// (each item of a transaction counts).
    pub fn item_write_count(&self) -> u64 {
        self.item_writes.load(Ordering::Relaxed)
    }

    pub(crate) fn count_writes(&self, items: usize) {
        self.item_writes.fetch_add(items as u64, Ordering::Relaxed);
    }

    pub(crate) fn queue_url(&self, queue: QueueName) -> &str {
        match queue {
            QueueName::Patients => &self.patients_queue_url,
            QueueName::Episodes => &self.episodes_queue_url,
        }
    }

    /// The environment that points a process at this store's resources.
    pub fn env_vars(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            (ENV_TABLE, self.table.clone()),
            (ENV_PATIENTS_QUEUE_URL, self.patients_queue_url.clone()),
            (ENV_EPISODES_QUEUE_URL, self.episodes_queue_url.clone()),
        ])
    }
}

/// JSON logs for a Lambda function (CloudWatch adds the time).
pub fn init_lambda_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
}

/// A failed AWS call as a [`StoreError::Backend`]: the operation and the
/// error code (service errors) or kind, never the request's values. The code
/// is kept as data ([`StoreError::code`]) and is also the text shown.
pub(crate) fn backend<E, R>(what: &str, err: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (code, detail) = match err {
        SdkError::ServiceError(s) => match s.err().code() {
            Some(code) => (Some(code), code.to_owned()),
            None => (None, "unknown error".to_owned()),
        },
        SdkError::TimeoutError(_) => (Some("timeout"), "timeout".to_owned()),
        // Connection-level failures (refused, DNS, TLS) carry no request data.
        SdkError::DispatchFailure(_) => (
            Some("dispatch failure"),
            format!("dispatch failure: {}", DisplayErrorContext(err)),
        ),
        SdkError::ResponseError(_) => (
            Some("response error"),
            "the response could not be read".to_owned(),
        ),
        SdkError::ConstructionFailure(_) => (
            Some("construction failure"),
            "the request could not be built".to_owned(),
        ),
        _ => (None, "unknown failure".to_owned()),
    };
    match code {
        Some(code) => StoreError::backend_code(what, code, detail),
        None => StoreError::backend(what, detail),
    }
}

/// A failed item conversion, without the value (serde's messages may quote it).
pub(crate) fn codec(what: &str) -> StoreError {
    StoreError::backend(what, "a stored item could not be read or written")
}

/// A request that could not be built (a missing required field: a bug).
pub(crate) fn build(what: &str) -> StoreError {
    StoreError::backend(what, "the request could not be built")
}

/// Strictly increasing wall-clock nanoseconds within this process.
pub(crate) fn next_seq() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqs_client_is_built_on_first_use_and_shared_by_clones() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let store = AwsStore::new(&sdk, "t", "q1", "q2");
        let clone = store.clone();
        assert!(!store.sqs.is_built());
        assert!(
            std::ptr::eq(clone.sqs(), store.sqs()),
            "one client for the clones"
        );
    }

    /// A service error as the SDK hands it over: the code in its metadata,
    /// a message that may quote the request's values.
    fn service_error(
        code: &str,
    ) -> SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, ()> {
        let meta = aws_sdk_dynamodb::error::ErrorMetadata::builder()
            .code(code)
            .message("Ana Rivera 1985-03-12 was not written")
            .build();
        SdkError::service_error(
            aws_sdk_dynamodb::operation::put_item::PutItemError::generic(meta),
            (),
        )
    }

    #[test]
    fn a_service_error_keeps_its_code_as_data() {
        for code in [
            "ConditionalCheckFailedException",
            "ProvisionedThroughputExceededException",
            "ResourceNotFoundException",
        ] {
            let e = backend("put_item", &service_error(code));
            assert_eq!(e.code(), Some(code));
            assert_eq!(
                e.to_string(),
                format!("storage backend failed: put_item: {code}")
            );
            let StoreError::Backend(b) = &e else {
                panic!("a backend error: {e:?}");
            };
            assert_eq!(b.operation(), Some("put_item"));
            assert!(!b.detail().contains("Ana"), "no message text: {e}");
        }
    }

    #[test]
    fn a_typed_service_error_keeps_its_code() {
        use aws_sdk_dynamodb::error::ErrorMetadata;
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
        let typed = ConditionalCheckFailedException::builder()
            .message("The conditional request failed")
            .meta(
                ErrorMetadata::builder()
                    .code("ConditionalCheckFailedException")
                    .build(),
            )
            .build();
        let err = SdkError::<_, ()>::service_error(
            PutItemError::ConditionalCheckFailedException(typed),
            (),
        );
        let e = backend("unsubscribe_secret", &err);
        assert_eq!(e.code(), Some("ConditionalCheckFailedException"));
        assert_eq!(
            e.to_string(),
            "storage backend failed: unsubscribe_secret: ConditionalCheckFailedException"
        );
    }

    #[test]
    fn an_sqs_service_error_keeps_its_code() {
        let meta = aws_sdk_sqs::error::ErrorMetadata::builder()
            .code("AWS.SimpleQueueService.NonExistentQueue")
            .build();
        let err = SdkError::<_, ()>::service_error(
            aws_sdk_sqs::operation::send_message::SendMessageError::generic(meta),
            (),
        );
        let e = backend("queue send", &err);
        assert_eq!(e.code(), Some("AWS.SimpleQueueService.NonExistentQueue"));
        assert_eq!(
            e.to_string(),
            "storage backend failed: queue send: AWS.SimpleQueueService.NonExistentQueue"
        );
    }

    #[test]
    fn a_service_error_without_a_code_has_none() {
        let meta = aws_sdk_dynamodb::error::ErrorMetadata::builder().build();
        let err = SdkError::<_, ()>::service_error(
            aws_sdk_dynamodb::operation::put_item::PutItemError::generic(meta),
            (),
        );
        let e = backend("put_item", &err);
        assert_eq!(e.code(), None);
        assert_eq!(
            e.to_string(),
            "storage backend failed: put_item: unknown error"
        );
    }

    #[test]
    fn sdk_failures_keep_their_kind_as_the_code() {
        type E = aws_sdk_dynamodb::operation::put_item::PutItemError;
        let timeout = SdkError::<E, ()>::timeout_error("too slow");
        let e = backend("get", &timeout);
        assert_eq!(e.code(), Some("timeout"));
        assert_eq!(e.to_string(), "storage backend failed: get: timeout");

        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let dispatch = SdkError::<E, ()>::dispatch_failure(
            aws_smithy_runtime_api::client::result::ConnectorError::io(refused.into()),
        );
        let e = backend("get", &dispatch);
        assert_eq!(e.code(), Some("dispatch failure"));
        assert!(
            e.to_string()
                .starts_with("storage backend failed: get: dispatch failure: "),
            "{e}"
        );

        let e = backend("get", &SdkError::<E, ()>::construction_failure("no table"));
        assert_eq!(e.code(), Some("construction failure"));
        assert_eq!(
            e.to_string(),
            "storage backend failed: get: the request could not be built"
        );

        let e = backend("get", &SdkError::<E, ()>::response_error("bad body", ()));
        assert_eq!(e.code(), Some("response error"));
        assert_eq!(
            e.to_string(),
            "storage backend failed: get: the response could not be read"
        );
    }

    #[test]
    fn tendon_s_own_failures_have_no_code() {
        assert_eq!(codec("get").code(), None);
        assert_eq!(
            codec("get").to_string(),
            "storage backend failed: get: a stored item could not be read or written"
        );
        assert_eq!(build("get").code(), None);
    }

    #[test]
    fn seq_is_strictly_increasing() {
        let mut prev = next_seq();
        for _ in 0..1000 {
            let n = next_seq();
            assert!(n > prev);
            prev = n;
        }
    }
}
