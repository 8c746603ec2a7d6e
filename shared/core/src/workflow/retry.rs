//! An operator sends a failed workflow step again (`tendon workflow
//! retry-step`), after fixing what made it fail: the provider's outage, a
//! suppressed address lifted, the patient's address corrected in the EMR.
use jiff::Timestamp;

use crate::ports::{StepSchedule, StoreError};
use crate::workflow::steps::{ScheduledStep, StepStatus};

/// Why a step could not be made due again.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetryError {
    #[error("patient {patient_id:?} of org {org:?} has no step {step_id:?}")]
    NotFound {
        org: String,
        patient_id: String,
        step_id: String,
    },
    #[error("step {0:?} is {1}, not failed; only a failed step is retried")]
    NotFailed(String, &'static str),
    #[error("step {0:?} changed while it was being retried; look at it again")]
    Changed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes the failed step `step_id` of the patient due at `now`, as a new send:
/// its attempts start again from nothing, and its delivery is a new one (the
/// failed delivery stays in the outbox as it was). The next dispatch pass
/// decides on it as on any due step, from the patient's and the workflow's
/// state then: an opted-out patient or an inactive workflow still skips it.
pub async fn retry_failed_step<S: StepSchedule>(
    store: &S,
    org: &str,
    patient_id: &str,
    step_id: &str,
    now: Timestamp,
) -> Result<ScheduledStep, RetryError> {
    let mut step = store
        .list_steps(org, Some(patient_id))
        .await?
        .into_iter()
        .find(|s| s.id == step_id)
        .ok_or_else(|| RetryError::NotFound {
            org: org.to_owned(),
            patient_id: patient_id.to_owned(),
            step_id: step_id.to_owned(),
        })?;
    if step.status != StepStatus::Failed {
        return Err(RetryError::NotFailed(step.id, step.status.as_str()));
    }
    step.status = StepStatus::Scheduled;
    step.due_at = now;
    step.attempts = 0;
    step.claimed_until = None;
    step.resends += 1;
    step.note = Some("retried".into());
    if !store.reschedule_failed_step(&step).await? {
        return Err(RetryError::Changed(step.id));
    }
    Ok(step)
}
