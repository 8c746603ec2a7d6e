//! The SQLite work queues: SQS-FIFO-like order, groups, visibility, dedupe and
//! dead letters, with the clock passed in (no sleeping).
use std::collections::HashSet;
use std::time::Duration;

use tendon_core::doctor::{QueueDepth, QueueDepths};
use tendon_core::ports::{QueueName, WorkItem, WorkQueue};
use tendon_local::{DEDUPE_WINDOW, LocalQueue, Received, SqliteStore};

const P: QueueName = QueueName::Patients;
const VIS: Duration = Duration::from_secs(30);
const T0: i64 = 1_000_000;

fn store() -> SqliteStore {
    SqliteStore::open_in_memory().expect("in-memory store")
}

fn item(id: &str) -> WorkItem {
    WorkItem {
        org: "ACME01".to_owned(),
        message_id: id.to_owned(),
        patient_id: None,
    }
}

/// Sends `id` to `group` with `id` as the dedupe ID.
async fn send(store: &SqliteStore, group: &str, id: &str) {
    assert!(
        store
            .send_at(P, group, id, &item(id), T0)
            .await
            .expect("send"),
        "{id} is queued"
    );
}

async fn receive(store: &SqliteStore, max: usize, now: i64) -> Vec<Received> {
    store.receive(P, max, VIS, now).await.expect("receive")
}

fn ids(got: &[Received]) -> Vec<&str> {
    got.iter().map(|r| r.item.message_id.as_str()).collect()
}

#[tokio::test]
async fn a_group_is_delivered_in_order_one_at_a_time() {
    let s = store();
    for id in ["a1", "a2", "a3"] {
        send(&s, "ACME01#A", id).await;
    }
    let mut order = Vec::new();
    for _ in 0..3 {
        let got = receive(&s, 10, T0).await;
        assert_eq!(got.len(), 1, "one message per group per receive");
        assert_eq!(got[0].group, "ACME01#A");
        assert_eq!(got[0].receive_count, 1);
        assert!(
            receive(&s, 10, T0).await.is_empty(),
            "the group is blocked while its message is in flight"
        );
        assert!(
            s.delete(&got[0].receipt).await.expect("delete"),
            "the current receipt deletes"
        );
        order.push(got[0].item.message_id.clone());
    }
    assert_eq!(order, ["a1", "a2", "a3"]);
    assert!(receive(&s, 10, T0).await.is_empty());
    assert_eq!(s.queue_len(P).await.expect("queue_len"), 0);
}

#[tokio::test]
async fn groups_do_not_block_each_other() {
    let s = store();
    send(&s, "A", "a1").await;
    send(&s, "A", "a2").await;
    send(&s, "B", "b1").await;
    send(&s, "C", "c1").await;
    send(&s, "B", "b2").await;

    let first = receive(&s, 10, T0).await;
    assert_eq!(
        ids(&first),
        ["a1", "b1", "c1"],
        "the head of each group, oldest first"
    );
    let a1 = &first[0];
    assert!(s.delete(&first[1].receipt).await.expect("delete b1"));
    assert_eq!(
        ids(&receive(&s, 10, T0).await),
        ["b2"],
        "B moves on while A and C are in flight"
    );
    assert!(s.delete(&a1.receipt).await.expect("delete a1"));
    assert_eq!(ids(&receive(&s, 10, T0).await), ["a2"]);
}

#[tokio::test]
async fn receive_hands_out_at_most_max() {
    let s = store();
    for g in ["A", "B", "C"] {
        send(&s, g, &format!("{g}1")).await;
    }
    assert_eq!(ids(&receive(&s, 2, T0).await), ["A1", "B1"]);
    assert_eq!(ids(&receive(&s, 2, T0).await), ["C1"]);
    assert!(receive(&s, 0, T0).await.is_empty());
}

#[tokio::test]
async fn an_expired_visibility_timeout_delivers_again_with_a_new_receipt() {
    let s = store();
    send(&s, "A", "a1").await;
    send(&s, "A", "a2").await;
    let first = receive(&s, 10, T0).await;
    assert_eq!(ids(&first), ["a1"]);

    let just_before = T0 + 30_000 - 1;
    assert!(
        receive(&s, 10, just_before).await.is_empty(),
        "still in flight, and a2 waits behind it"
    );

    let again = receive(&s, 10, T0 + 30_000).await;
    assert_eq!(
        ids(&again),
        ["a1"],
        "visible again when the timeout is over, still ahead of a2"
    );
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt, first[0].receipt);
    assert!(
        !s.delete(&first[0].receipt).await.expect("delete"),
        "a stale receipt deletes nothing"
    );
    assert!(
        !s.release(&first[0].receipt).await.expect("release"),
        "a stale receipt releases nothing"
    );
    assert!(s.delete(&again[0].receipt).await.expect("delete"));
    assert!(
        !s.delete(&again[0].receipt).await.expect("delete"),
        "a receipt deletes once"
    );
    assert_eq!(ids(&receive(&s, 10, T0 + 30_000).await), ["a2"]);
}

#[tokio::test]
async fn release_makes_a_message_visible_at_once() {
    let s = store();
    send(&s, "A", "a1").await;
    send(&s, "A", "a2").await;
    let first = receive(&s, 10, T0).await;
    assert!(s.release(&first[0].receipt).await.expect("release"));
    let again = receive(&s, 10, T0).await;
    assert_eq!(
        ids(&again),
        ["a1"],
        "released: first in its group again, without waiting"
    );
    assert_eq!(
        again[0].receive_count, 2,
        "a released delivery still counts"
    );
    assert!(
        !s.delete(&first[0].receipt).await.expect("delete"),
        "the released receipt is spent"
    );
}

#[tokio::test]
async fn zero_visibility_still_hands_out_one_message_per_group() {
    let s = store();
    send(&s, "A", "a1").await;
    send(&s, "A", "a2").await;
    let got = s.receive(P, 10, Duration::ZERO, T0).await.expect("receive");
    assert_eq!(ids(&got), ["a1"]);
}

#[tokio::test]
async fn a_message_received_too_often_moves_to_the_dead_letters_and_redrives() {
    let s = store().with_max_receive_count(2);
    send(&s, "A", "poison").await;
    send(&s, "A", "next").await;
    send(&s, "B", "b1").await;
    for round in 1..=2 {
        let got = receive(&s, 1, T0).await;
        assert_eq!(ids(&got), ["poison"]);
        assert_eq!(got[0].receive_count, round);
        assert!(s.release(&got[0].receipt).await.expect("release"));
    }
    let got = receive(&s, 10, T0).await;
    assert_eq!(
        ids(&got),
        ["next", "b1"],
        "the poison message is dead-lettered and its group moves on"
    );
    assert_eq!(
        s.dead_letters(P).await.expect("dead_letters"),
        vec![(item("poison"), 2)]
    );
    assert!(
        s.dead_letters(QueueName::Episodes)
            .await
            .expect("dead_letters")
            .is_empty(),
        "dead letters are per queue"
    );
    assert_eq!(s.queue_len(P).await.expect("queue_len"), 2);
    let depths = LocalQueue::new(s.clone()).depths().await.expect("depths");
    assert_eq!(
        depths[0],
        QueueDepth {
            queue: P,
            waiting: 0,
            in_flight: 2,
            dead_lettered: 1,
            oldest: jiff::Timestamp::from_millisecond(T0).ok(),
        },
        "the doctor's view of the queue"
    );
    assert_eq!(
        (depths[1].queue, depths[1].dead_lettered, depths[1].oldest),
        (QueueName::Episodes, 0, None)
    );
    for r in &got {
        assert!(s.delete(&r.receipt).await.expect("delete"));
    }

    assert_eq!(s.redrive(P).await.expect("redrive"), 1);
    assert!(s.dead_letters(P).await.expect("dead_letters").is_empty());
    let got = receive(&s, 10, T0).await;
    assert_eq!(ids(&got), ["poison"], "redriven to the queue");
    assert_eq!(
        got[0].receive_count, 1,
        "a redriven message starts counting anew"
    );
    assert_eq!(got[0].group, "A", "and keeps its group");
    assert_eq!(s.redrive(P).await.expect("redrive"), 0);
}

#[tokio::test]
async fn dead_letters_follow_the_visibility_timeout_too() {
    let s = store().with_max_receive_count(1);
    send(&s, "A", "a1").await;
    assert_eq!(ids(&receive(&s, 10, T0).await), ["a1"]);
    assert!(
        receive(&s, 10, T0 + 1).await.is_empty(),
        "in flight: not dead yet"
    );
    assert!(s.dead_letters(P).await.expect("dead_letters").is_empty());
    assert!(
        receive(&s, 10, T0 + 30_000).await.is_empty(),
        "timed out once too often: dead-lettered"
    );
    assert_eq!(
        s.dead_letters(P).await.expect("dead_letters"),
        vec![(item("a1"), 1)]
    );
}

#[tokio::test]
async fn send_is_idempotent_by_dedupe_id_within_the_window() {
    let s = store();
    let window = i64::try_from(DEDUPE_WINDOW.as_millis()).expect("window");
    assert!(
        s.send_at(P, "A", "d1", &item("m1"), T0)
            .await
            .expect("send")
    );
    assert!(
        !s.send_at(P, "A", "d1", &item("m1"), T0 + 1)
            .await
            .expect("send"),
        "a repeated dedupe ID is dropped"
    );
    assert!(
        !s.send_at(P, "B", "d1", &item("other"), T0 + 2)
            .await
            .expect("send"),
        "whatever the group or body"
    );
    assert!(
        s.send_at(QueueName::Episodes, "A", "d1", &item("m1"), T0)
            .await
            .expect("send"),
        "dedupe is per queue"
    );
    assert_eq!(s.queue_len(P).await.expect("queue_len"), 1);

    let got = receive(&s, 10, T0).await;
    assert!(s.delete(&got[0].receipt).await.expect("delete"));
    assert!(
        !s.send_at(P, "A", "d1", &item("m1"), T0 + window - 1)
            .await
            .expect("send"),
        "handled or not, the window holds"
    );
    assert_eq!(s.queue_len(P).await.expect("queue_len"), 0);
    assert!(
        s.send_at(P, "A", "d1", &item("m1"), T0 + window)
            .await
            .expect("send"),
        "after the window the ID is new again"
    );
    assert_eq!(s.queue_len(P).await.expect("queue_len"), 1);
}

#[tokio::test]
async fn the_port_send_dedupes_on_the_wall_clock() {
    let s = store();
    let w = item("m1");
    s.send(P, "ACME01#P555", "m1", &w).await.expect("send");
    s.send(P, "ACME01#P555", "m1", &w).await.expect("send");
    assert_eq!(s.queue_len(P).await.expect("queue_len"), 1);
    let got = s
        .receive(P, 10, VIS, tendon_local::now_ms())
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].item, w);
    assert_eq!(got[0].group, "ACME01#P555");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumers_never_share_a_message() {
    let s = store();
    for i in 0..40 {
        send(&s, &format!("G{}", i % 8), &format!("m{i:02}")).await;
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let got = s.receive(P, 3, VIS, T0).await.expect("receive");
                if got.is_empty() {
                    if s.queue_len(P).await.expect("queue_len") == 0 {
                        return seen;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                for r in got {
                    assert!(s.delete(&r.receipt).await.expect("delete"));
                    seen.push((r.group, r.item.message_id));
                }
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    assert_eq!(all.len(), 40, "every message once");
    let unique: HashSet<_> = all.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(unique.len(), 40, "no message twice");
}
