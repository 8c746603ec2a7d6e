//! The port contract suite: the documented semantics of the storage ports
//! ([`ConfigStore`](tendon_core::ports::ConfigStore),
//! [`MessageLog`](tendon_core::ports::MessageLog),
//! [`PatientStore`](tendon_core::ports::PatientStore),
//! [`StepStore`](tendon_core::ports::StepStore),
//! [`WorkQueue`](tendon_core::ports::WorkQueue),
//! [`Intake`](tendon_core::ports::Intake), the workflow ports
//! ([`WorkflowStore`], [`StepSchedule`](tendon_core::ports::StepSchedule),
//! [`DeliveryLog`], [`Suppressions`]) and
//! [`ClinikoStore`](tendon_core::ports::ClinikoStore)) as executable checks.
//! A dev-only crate: adapters take it as a dev-dependency.
//!
//! Every adapter runs the same suite, so the backends cannot drift. The
//! checks are split by port, one module each ([`config`], [`messages`],
//! [`patients`], [`queue`], [`intake`], [`workflows`], [`schedule`],
//! [`deliveries`], [`suppressions`], [`cliniko`], [`test_mode`], [`overview`]), and grouped in three
//! suites: `port` (every adapter), `workflows` (once it implements the
//! workflow ports) and `cliniko` (once it implements `ClinikoStore`).
//! [`contract_tests!`] makes one test per check:
//!
//! ```text
//! tendon_contract::contract_tests! {
//!     #[tokio::test]
//!     mod in_memory: port, workflows, cliniko =
//!         || SqliteStore::open_in_memory().expect("in-memory store");
//! }
//! ```
//!
//! and [`run_all`], [`run_workflows`] and [`run_cliniko`] run a suite's
//! checks in order, in one test.
//!
//! The suite assumes nothing about the backend beyond the trait docs. Each
//! check works in orgs, keys and messages of its own, with a tag unique to the
//! run ([`unique`]), so `make` may hand out fresh stores or clones of one
//! shared store (a DynamoDB table that outlives the test). A failed check
//! panics with a message that says which rule broke.

pub mod cliniko;
pub mod config;
pub mod deliveries;
pub mod fixtures;
pub mod intake;
pub mod messages;
pub mod overview;
pub mod patients;
pub mod queue;
pub mod schedule;
pub mod suppressions;
pub mod test_mode;
pub mod workflows;

pub use fixtures::{
    cliniko_connection, event, location, message, org, patient_record, practitioner,
    scheduled_step, unique, workflow_def,
};

use tendon_core::ports::{
    DeliveryLog, DispatchLog, Intake, OrgOverview, StepStore, Suppressions, TestData, WorkQueue,
    WorkflowStore,
};

/// Everything an adapter of the storage ports implements.
pub trait Stores: StepStore + WorkQueue + Intake + TestData + OrgOverview + DispatchLog {}

impl<S: StepStore + WorkQueue + Intake + TestData + OrgOverview + DispatchLog> Stores for S {}

/// The checks of a suite (`port`, `workflows` or `cliniko`), in the order the
/// runners run them, handed to `$crate::$then!` after `$args`: the one list
/// that [`run_all`], [`run_workflows`], [`run_cliniko`] and
/// [`contract_tests!`] read.
#[doc(hidden)]
#[macro_export]
macro_rules! __checks {
    (port, $then:ident ! $args:tt) => {
        $crate::$then! { $args
            config::orgs
            config::ingest_keys
            config::locations_and_practitioners
            messages::messages
            messages::message_listing
            messages::message_reset
            patients::commit_applies_once
            patients::commit_conflicts
            patients::events
            patients::patients
            patients::parked_messages
            patients::read_step
            queue::queue_send
            intake::intake
            test_mode::test_partitions
            overview::org_overview
        }
    };
    (workflows, $then:ident ! $args:tt) => {
        $crate::$then! { $args
            workflows::workflow_definitions
            schedule::scheduled_steps
            schedule::step_updates
            deliveries::deliveries
            suppressions::suppressed_addresses
            schedule::failed_steps_are_made_due_again
            schedule::dispatch_passes
        }
    };
    (cliniko, $then:ident ! $args:tt) => {
        $crate::$then! { $args
            cliniko::cliniko_connections
            cliniko::cliniko_failures
            cliniko::record_commits
        }
    };
}

/// Runs the listed checks in order, each on a store from `$make()`.
#[doc(hidden)]
#[macro_export]
macro_rules! __run {
    (($make:ident) $($module:ident :: $check:ident)*) => {
        $( $crate::$module::$check(&$make()).await; )*
    };
}

/// One test per listed check, named after it, on a store from `$make`'s
/// closure (one check a step, so the attributes repeat once per check).
#[doc(hidden)]
#[macro_export]
macro_rules! __tests {
    (($attrs:tt $make:expr)) => {};
    (([$($attr:tt)*] $make:expr) $module:ident :: $check:ident $($rest:tt)*) => {
        $($attr)*
        async fn $check() {
            let make = $make;
            $crate::$module::$check(&make()).await;
        }
        $crate::__tests! { ([$($attr)*] $make) $($rest)* }
    };
}

/// A module of tests, one per check of the named suites (`port`,
/// `workflows`, `cliniko`), each test named after its check and marked with
/// the given attributes (an async test attribute, such as `#[tokio::test]`).
///
/// `make` is evaluated in each test (it may `.await`) and gives a closure
/// that returns the store for the check (`|| store.clone()` for a shared
/// one). The module sees its parent's items (`use super::*`).
///
/// ```text
/// tendon_contract::contract_tests! {
///     #[tokio::test]
///     mod on_moto: port, workflows, cliniko = {
///         let (store, _) = tendon_testkit::moto::fresh_store("contract").await;
///         move || store.clone()
///     };
/// }
/// ```
#[macro_export]
macro_rules! contract_tests {
    (@mod $name:ident $attrs:tt $make:expr; $($suite:ident)+) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $( $crate::__checks!($suite, __tests!($attrs $make)); )+
        }
    };
    ($(#[$attr:meta])* mod $name:ident: $($suite:ident),+ = $make:expr;) => {
        $crate::contract_tests!(@mod $name [$(#[$attr])*] $make; $($suite)+);
    };
}

/// Runs every check of the `port` suite in order, each on a store from `make`.
pub async fn run_all<S: Stores>(make: impl Fn() -> S) {
    __checks!(port, __run!(make));
}

/// Runs the workflow checks in order, each on a store from `make`. (An adapter
/// joins here once it implements the workflow ports: [`WorkflowStore`],
/// [`StepSchedule`](tendon_core::ports::StepSchedule) (a [`Stores`] has it),
/// [`DeliveryLog`] and [`Suppressions`].)
pub async fn run_workflows<S>(make: impl Fn() -> S)
where
    S: Stores + WorkflowStore + DeliveryLog + Suppressions,
{
    __checks!(workflows, __run!(make));
}

/// Runs the Cliniko checks in order, each on a store from `make`.
pub async fn run_cliniko<S: Stores + tendon_core::ports::ClinikoStore>(make: impl Fn() -> S) {
    __checks!(cliniko, __run!(make));
}
