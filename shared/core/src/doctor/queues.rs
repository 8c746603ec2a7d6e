//! Queue health: the findings (pure) of what the queues themselves say
//! ([`crate::batch::QueueDepths`], shared by every org):
//! records in a dead-letter queue, and a queue whose oldest record has
//! waited for minutes. The stored messages tell the same story per org
//! (`stuck_messages`, `failed` with `dead_letter`); the queues tell it when
//! the messages cannot (a record of a deleted message, a pointer that never
//! reached its step).
use jiff::{SignedDuration, Timestamp};

use super::findings::{Finding, Tally};
use crate::batch::QueueDepth;

/// A record waiting this long means the workers are behind or stopped:
/// normally a record waits milliseconds.
const BACKLOG_AFTER: SignedDuration = SignedDuration::from_mins(5);

/// The findings of the queues' depths at `now`.
pub fn queue_findings(depths: &[QueueDepth], now: Timestamp) -> Vec<Finding> {
    let mut found = Vec::new();
    for d in depths {
        let queue = d.queue.as_str();
        if d.dead_lettered > 0 {
            found.push(Finding {
                subject: Some(queue.to_owned()),
                summary: format!(
                    "the {queue} queue's dead-letter queue holds {} record(s) (of every org): their steps failed 5 times",
                    d.dead_lettered
                ),
                messages: d.dead_lettered as usize,
                fix: "their messages are failed with dead_letter: fix the cause (the logs' \"step failed\" lines), then tendon messages replay --org ORG --failed, and empty the dead-letter queue (docs/operations.md, DLQ redrive)".to_owned(),
                ..Finding::of("dead_letters", &Tally::default())
            });
        }
        if let Some(oldest) = d.oldest.filter(|t| now.duration_since(*t) > BACKLOG_AFTER) {
            let minutes = now.duration_since(oldest).as_secs() / 60;
            found.push(Finding {
                subject: Some(queue.to_owned()),
                summary: format!(
                    "the {queue} queue's oldest record has waited {minutes} minute(s) ({} waiting, {} in flight): the workers are behind, stopped or retrying",
                    d.waiting, d.in_flight
                ),
                messages: (d.waiting + d.in_flight) as usize,
                first_seen: oldest,
                last_seen: now,
                fix: "check that the workers run (tendon serve locally; on AWS the function's errors, throttles and event source mapping: docs/operations.md, queue-age alarms)".to_owned(),
                ..Finding::of("queue_backlog", &Tally::default())
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::QueueName;

    fn at(minute: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_mins(minute)
    }

    #[test]
    fn dead_letters_and_an_old_record_are_named_and_a_healthy_queue_is_not() {
        let depth = |queue, dead_lettered, oldest| QueueDepth {
            queue,
            waiting: 3,
            in_flight: 1,
            dead_lettered,
            oldest,
        };
        let depths = [
            depth(QueueName::Patients, 2, Some(at(0))),
            depth(QueueName::Episodes, 0, Some(at(58))),
        ];
        let found = queue_findings(&depths, at(60));
        let named: Vec<(&str, Option<&str>, usize)> = found
            .iter()
            .map(|f| (f.code, f.subject.as_deref(), f.messages))
            .collect();
        assert_eq!(
            named,
            [
                ("dead_letters", Some("patients"), 2),
                ("queue_backlog", Some("patients"), 4),
            ]
        );
        assert!(found[1].summary.contains("waited 60 minute(s)"));
        let quiet = [depth(QueueName::Patients, 0, None)];
        assert_eq!(queue_findings(&quiet, at(60)), Vec::new());
    }
}
