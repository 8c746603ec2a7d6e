//! Opting a patient out of (or back into) workflow messages on one channel,
//! for the unsubscribe link ([`unsubscribe`](super::unsubscribe)), an
//! email's bounce or complaint ([`feedback`](super::feedback)) and the
//! operator's `tendon patient opt-out` / `opt-in` (for texts, as an SMS STOP
//! reply). The rule is [`Channel::set_opt_out`] on the stored record, which is
//! committed under the version it was read at, like any change to a patient
//! record; the stores only read and write it.
use super::steps::Channel;
use crate::ports::{
    CommitOutcome, PatientStore, RecordCommit, RecordWrite, StoreError, StoreResult,
};

/// Reads of the record before giving up when another writer keeps changing it.
const MAX_ROUNDS: usize = 8;

/// Opts the patient `patient_id` of `org` out of (or back into, if
/// `opted_out` is false) workflow messages on `channel` (email: unsubscribed;
/// text: STOP). The record stored under the ID is read (a merge alias
/// included) and, if that changes it, written back under the version it was
/// read at; a concurrent change makes it read and decide again (8 times at
/// most, then a `Backend` error). Nothing is written when the patient has
/// that choice already. `false` if there is no such patient.
pub async fn set_opt_out<S: PatientStore>(
    store: &S,
    org: &str,
    patient_id: &str,
    channel: Channel,
    opted_out: bool,
) -> StoreResult<bool> {
    for _ in 0..MAX_ROUNDS {
        let Some(mut record) = store.load_patient(org, patient_id).await? else {
            return Ok(false);
        };
        if !channel.set_opt_out(&mut record.patient, opted_out) {
            return Ok(true);
        }
        let expected_version = Some(record.version);
        record.version += 1;
        let commit = RecordCommit {
            org: org.to_owned(),
            records: vec![RecordWrite {
                record,
                expected_version,
            }],
            ..RecordCommit::default()
        };
        match store.commit_records(&commit).await? {
            CommitOutcome::Applied | CommitOutcome::AlreadyApplied => return Ok(true),
            CommitOutcome::Conflict => {}
        }
    }
    Err(StoreError::backend(
        "set_opt_out",
        "the record kept changing",
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::model::{DomainEvent, Patient, PatientRecord};
    use crate::ports::Commit;

    /// One stored record, and how many of the next commits to refuse as if
    /// another writer had changed it first.
    struct OneRecord {
        record: Mutex<Option<PatientRecord>>,
        conflicts: Mutex<usize>,
        loads: Mutex<usize>,
    }

    impl OneRecord {
        fn new(record: Option<PatientRecord>, conflicts: usize) -> OneRecord {
            OneRecord {
                record: Mutex::new(record),
                conflicts: Mutex::new(conflicts),
                loads: Mutex::new(0),
            }
        }

        fn stored(&self) -> PatientRecord {
            self.record.lock().unwrap().clone().unwrap()
        }
    }

    impl PatientStore for OneRecord {
        async fn load_patient(&self, _: &str, id: &str) -> StoreResult<Option<PatientRecord>> {
            *self.loads.lock().unwrap() += 1;
            let record = self.record.lock().unwrap().clone();
            Ok(record.filter(|r| r.patient.id == id))
        }
        async fn list_patients(&self, _: &str) -> StoreResult<Vec<Patient>> {
            unreachable!("opt-outs do not list")
        }
        async fn commit(&self, _: &Commit) -> StoreResult<CommitOutcome> {
            unreachable!("opt-outs commit records only")
        }
        async fn commit_records(&self, commit: &RecordCommit) -> StoreResult<CommitOutcome> {
            let mut conflicts = self.conflicts.lock().unwrap();
            if *conflicts > 0 {
                *conflicts -= 1;
                return Ok(CommitOutcome::Conflict);
            }
            let [write] = commit.records.as_slice() else {
                panic!("one record: {commit:?}")
            };
            let mut stored = self.record.lock().unwrap();
            assert_eq!(
                stored.as_ref().map(|r| r.version),
                write.expected_version,
                "written under the version read"
            );
            assert!(commit.events.is_empty() && commit.scheduled.is_empty());
            *stored = Some(write.record.clone());
            Ok(CommitOutcome::Applied)
        }
        async fn list_events(&self, _: &str) -> StoreResult<Vec<DomainEvent>> {
            unreachable!("opt-outs do not read events")
        }
    }

    fn record() -> PatientRecord {
        PatientRecord {
            patient: serde_json::from_value(serde_json::json!({
                "id": "P1", "source": "emr", "first_name": "Ana", "last_name": "Lee",
                "created_at": "2026-01-01T00:00:00Z"
            }))
            .unwrap(),
            episodes: Vec::new(),
            appointments: Vec::new(),
            version: 4,
        }
    }

    /// A minimal executor: the fake's futures never wait.
    fn run<F: std::future::Future>(fut: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn an_opt_out_is_written_under_the_version_read() {
        let store = OneRecord::new(Some(record()), 0);
        assert_eq!(
            run(set_opt_out(&store, "ORG", "P1", Channel::Text, true)),
            Ok(true)
        );
        let stored = store.stored();
        assert!(stored.patient.text_opt_out && !stored.patient.unsubscribed);
        assert_eq!(stored.version, 5);
        // The same choice again writes nothing.
        assert_eq!(
            run(set_opt_out(&store, "ORG", "P1", Channel::Text, true)),
            Ok(true)
        );
        assert_eq!(store.stored().version, 5, "no change, no write");
        // Opting back in.
        run(set_opt_out(&store, "ORG", "P1", Channel::Text, false)).unwrap();
        assert!(!store.stored().patient.text_opt_out);
        assert_eq!(store.stored().version, 6);
    }

    #[test]
    fn no_such_patient_is_false() {
        let store = OneRecord::new(Some(record()), 0);
        assert_eq!(
            run(set_opt_out(&store, "ORG", "P2", Channel::Email, true)),
            Ok(false)
        );
        assert_eq!(store.stored(), record(), "nothing written");
    }

    #[test]
    fn a_concurrent_change_is_read_again_a_bounded_number_of_times() {
        let store = OneRecord::new(Some(record()), MAX_ROUNDS - 1);
        assert_eq!(
            run(set_opt_out(&store, "ORG", "P1", Channel::Email, true)),
            Ok(true)
        );
        assert_eq!(*store.loads.lock().unwrap(), MAX_ROUNDS);
        assert!(store.stored().patient.unsubscribed);

        let store = OneRecord::new(Some(record()), MAX_ROUNDS);
        assert_eq!(
            run(set_opt_out(&store, "ORG", "P1", Channel::Email, true)),
            Err(StoreError::backend(
                "set_opt_out",
                "the record kept changing"
            ))
        );
        assert_eq!(*store.loads.lock().unwrap(), MAX_ROUNDS);
        assert_eq!(store.stored(), record(), "nothing written");
    }
}
