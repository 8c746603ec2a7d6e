//! Workflows on the local backend, through the real handlers: enrolment in the
//! event's commit, dispatch passes at chosen instants, the outbox.
use jiff::Timestamp;
use tendon_core::ports::{DeliveryLog, FixedClock, StepSchedule, Suppressions, WorkflowStore};
use tendon_core::workflow::Workflow;
use tendon_core::workflow::dispatch::{Dispatcher, PassReport};
use tendon_core::workflow::opt_out::set_opt_out;
use tendon_core::workflow::steps::{Channel, StepStatus};
use tendon_local::{LocalOutbox, SqliteStore};
use tendon_local::{LocalQueue, drain};
use tendon_testkit::acme::{self, KEY, WORKED};
use tendon_testkit::post;

/// How far ahead of today the tests' IE is: the schedule depends on the real
/// clock (a step already past at enrolment is skipped), so no date is fixed.
const IE_IN_DAYS: i32 = 10;

/// The day of the IE, `offset` days moved, in Los Angeles (the org's zone).
fn ie_day(offset: i32) -> jiff::civil::Date {
    let today = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("America/Los_Angeles").unwrap())
        .date();
    today
        .checked_add(jiff::Span::new().days(IE_IN_DAYS + offset))
        .unwrap()
}

/// 10:00 (the IE's time of day) Los Angeles time, `offset` days from the IE
/// day, as an RFC 3339 instant; `seconds` are added.
fn ie_day_at_ten(offset: i32, seconds: i64) -> String {
    ie_day(offset)
        .at(10, 0, 0, 0)
        .in_tz("America/Los_Angeles")
        .unwrap()
        .timestamp()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap()
        .to_string()
}

/// An HL7 start (`YYYYMMDDHHMM`) at 10:00, `offset` days from the IE day.
fn hl7_start(offset: i32) -> String {
    ie_day(offset).strftime("%Y%m%d1000").to_string()
}

/// The worked example with its IE [`IE_IN_DAYS`] days from today.
fn worked() -> String {
    WORKED.replace("202612011000", &hl7_start(0))
}

async fn setup() -> LocalQueue {
    let store = SqliteStore::open_in_memory().unwrap();
    acme::setup(&store).await;
    LocalQueue::new(store)
}

/// [`setup`], with the workflow `json` (or YAML) imported for ACME01.
async fn setup_with_workflow(json: &str) -> LocalQueue {
    let q = setup().await;
    q.store()
        .put_workflow("ACME01", &workflow(json))
        .await
        .unwrap();
    q
}

/// The message through ingest (accepted), then the queues drained.
async fn post_and_drain(q: &LocalQueue, body: &str) {
    assert!(post(q.store(), q, KEY, body).await.contains("MSA|AA"));
    drain(q).await.unwrap();
}

/// `count` copies of the worked example through ingest and the queues, each a
/// new patient with an appointment of its own: control IDs `MSG{series}0000`
/// on, patients `P{series}000` on and appointments `A{series}0000` on.
async fn post_new_patients(q: &LocalQueue, series: u32, count: u32) {
    for n in 0..count {
        let body = worked()
            .replace("MSG00042", &format!("MSG{series}{n:04}"))
            .replace("P555", &format!("P{}", series * 1000 + n))
            .replace("A9001", &format!("A{}", series * 10000 + n));
        post_and_drain(q, &body).await;
    }
}

async fn pass(q: &LocalQueue, at: &str) -> PassReport {
    let d = Dispatcher {
        store: q.store(),
        mailer: &LocalOutbox,
        public_url: "https://tendon.example",
        unsubscribe_secret: "s3cret",
        // The real time is the pass's: these passes stand for the minutes
        // passing.
        clock: &FixedClock(at.parse().unwrap()),
        budget: None,
    };
    d.pass(at.parse::<Timestamp>().unwrap()).await.unwrap()
}

fn workflow(json: &str) -> Workflow {
    Workflow::parse(json).unwrap()
}

#[tokio::test]
async fn the_contract_example_workflow_sends_once_escaped_and_on_time() {
    let q = setup_with_workflow(
        r#"{"title": "Welcome email", "status": "active", "patient_group": {"source": "any"},
            "trigger": {"event": "initial_evaluation_scheduled"},
            "steps": [
              {"schedule": {"direction": "after", "amount": 0, "unit": "hours"},
               "task": {"kind": "email", "subject": "Welcome, {{ patient.first_name }}", "body": "Hi {{ patient.first_name }}, see you on {{ appointment.start_local }}."}},
              {"schedule": {"direction": "before", "amount": 1, "unit": "days"},
               "task": {"kind": "email", "subject": "Tomorrow at {{ clinic.location }}", "body": "Reminder for {{ patient.first_name }}."}}
            ]}"#,
    )
    .await;
    // A name with markup and a header-injection attempt.
    let hostile = worked().replace(
        "Rivera^Ana^M",
        "Rivera^<b>Ana</b>\\X0D0A\\Bcc: evil@example.com^M",
    );
    post_and_drain(&q, &hostile).await;
    let steps = q.store().list_steps("ACME01", Some("P555")).await.unwrap();
    assert_eq!(steps.len(), 2, "{steps:#?}");

    // The IE is at 10:00 Los Angeles time; the reminder is due a day before.
    let now = Timestamp::now().to_string();
    let first = pass(&q, &now).await;
    assert_eq!(
        first,
        PassReport {
            sent: 1,
            skipped: 0,
            failed: 0
        }
    );
    assert_eq!(
        pass(&q, &now).await,
        PassReport::default(),
        "a second pass sends nothing"
    );
    assert_eq!(
        pass(&q, &ie_day_at_ten(-1, -1)).await,
        PassReport::default(),
        "not yet due"
    );
    assert_eq!(pass(&q, &ie_day_at_ten(-1, 0)).await.sent, 1);

    let outbox = q.store().list_deliveries("ACME01").await.unwrap();
    assert_eq!(outbox.len(), 2);
    let welcome = &outbox[0];
    let subject = welcome.subject.as_deref().unwrap();
    assert!(
        !subject.contains('\r') && !subject.contains('\n'),
        "{subject:?}"
    );
    let html = welcome.html.as_deref().unwrap();
    assert!(html.contains("Hi &lt;b&gt;Ana&lt;&#x2f;b&gt;"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        subject.starts_with("Welcome, <b>Ana</b> Bcc:"),
        "{subject:?}"
    );
    let local_start = ie_day(0).strftime("%A, %B %-d at 10:00 AM").to_string();
    assert!(
        welcome.body.contains(&local_start),
        "{local_start:?} in {}",
        welcome.body
    );
    assert!(html.contains("/unsubscribe/ACME01/P555/"), "{html}");
    assert_eq!(
        outbox[1].subject.as_deref(),
        Some("Tomorrow at Salem Clinic")
    );
}

#[tokio::test]
async fn a_canceled_appointment_skips_and_a_rescheduled_one_moves_its_reminder() {
    let q = setup_with_workflow(
        r#"{"title": "Reminder", "status": "active",
            "trigger": {"event": "appointment_scheduled"},
            "steps": [{"schedule": {"direction": "before", "amount": 1, "unit": "days"},
                       "task": {"kind": "email", "subject": "Tomorrow", "body": "See you."}}]}"#,
    )
    .await;
    post_and_drain(&q, &worked()).await;
    // S13: moved two days later.
    let moved = worked()
        .replace("SIU^S12^SIU_S12|MSG00042", "SIU^S13^SIU_S12|MSG00043")
        .replace("20261120093000-0800", "20261120094000-0800")
        .replace(&hl7_start(0), &hl7_start(2));
    post_and_drain(&q, &moved).await;
    // The move's commit moves the reminder.
    let steps = q.store().list_steps("ACME01", Some("P555")).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        steps[0].due_at,
        ie_day_at_ten(1, 0).parse::<Timestamp>().unwrap()
    );
    // At the old reminder time nothing goes out: the appointment moved.
    assert_eq!(pass(&q, &ie_day_at_ten(-1, 0)).await.sent, 0);
    assert_eq!(
        pass(&q, &ie_day_at_ten(1, 0)).await.sent,
        1,
        "sent 1 day before the new time"
    );
    assert_eq!(q.store().list_deliveries("ACME01").await.unwrap().len(), 1);

    // A second appointment, canceled before its reminder: skipped.
    let second = worked()
        .replace("MSG00042", "MSG00050")
        .replace("A9001", "A9002")
        .replace(&hl7_start(0), &hl7_start(7));
    post_and_drain(&q, &second).await;
    let cancel = second
        .replace("SIU^S12^SIU_S12|MSG00050", "SIU^S15^SIU_S12|MSG00051")
        .replace("20261120093000-0800", "20261120095000-0800");
    post_and_drain(&q, &cancel).await;
    // The cancel's commit skips it at once, not at its due time.
    let steps = q.store().list_steps("ACME01", Some("P555")).await.unwrap();
    let canceled = steps
        .iter()
        .find(|s| s.appointment_id.as_deref() == Some("A9002"))
        .unwrap();
    assert_eq!(
        (canceled.status, canceled.note.as_deref()),
        (StepStatus::Skipped, Some("appointment_canceled"))
    );
    let r = pass(&q, &ie_day_at_ten(6, 0)).await;
    assert_eq!((r.sent, r.skipped), (0, 0));
    assert_eq!(q.store().list_deliveries("ACME01").await.unwrap().len(), 1);
}

#[tokio::test]
async fn inactive_workflows_and_unmatched_groups_schedule_nothing() {
    let q = setup().await;
    for json in [
        r#"{"title": "Off", "status": "inactive", "trigger": {"event": "patient_created"},
            "steps": [{"schedule": {"direction": "after", "amount": 0, "unit": "hours"},
                       "task": {"kind": "email", "subject": "x", "body": "y"}}]}"#,
        r#"{"title": "Men over 70", "status": "active", "patient_group": {"gender": "male", "min_age": 70},
            "trigger": {"event": "patient_created"},
            "steps": [{"schedule": {"direction": "after", "amount": 0, "unit": "hours"},
                       "task": {"kind": "email", "subject": "x", "body": "y"}}]}"#,
        r#"{"title": "Shoulders", "status": "active", "patient_group": {"body_regions": ["shoulder"], "locations": ["12"]},
            "trigger": {"event": "initial_evaluation_scheduled"},
            "steps": [{"schedule": {"direction": "after", "amount": 0, "unit": "hours"},
                       "task": {"kind": "survey", "content": "mips:auto"}}]}"#,
    ] {
        q.store()
            .put_workflow("ACME01", &workflow(json))
            .await
            .unwrap();
    }
    post_and_drain(&q, &worked()).await;
    let steps = q.store().list_steps("ACME01", None).await.unwrap();
    assert_eq!(steps.len(), 1, "only the shoulder survey: {steps:#?}");
    assert_eq!(steps[0].workflow_id, "shoulders");
    assert_eq!(pass(&q, &Timestamp::now().to_string()).await.sent, 1);
    let outbox = q.store().list_deliveries("ACME01").await.unwrap();
    assert_eq!(outbox[0].content_id.as_deref(), Some("quickdash"));
}

/// A provider that counts what it was asked to send, and can fail after
/// "sending" (the process dies between the send and its record).
#[derive(Default)]
struct CountingMailer {
    sent: std::sync::Mutex<Vec<String>>,
    die_after_send: std::sync::atomic::AtomicBool,
}

impl tendon_core::ports::Mailer for CountingMailer {
    async fn send(
        &self,
        delivery: &tendon_core::workflow::steps::Delivery,
    ) -> Result<String, tendon_core::ports::SendError> {
        self.sent.lock().unwrap().push(delivery.id.clone());
        if self
            .die_after_send
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(tendon_core::ports::SendError::Unavailable(
                "process died".into(),
            ));
        }
        Ok("provider-1".into())
    }
}

async fn pass_with(
    q: &LocalQueue,
    mailer: &impl tendon_core::ports::Mailer,
    at: &str,
) -> PassReport {
    let d = Dispatcher {
        store: q.store(),
        mailer,
        public_url: "https://tendon.example",
        unsubscribe_secret: "s3cret",
        // The real time is the pass's: these passes stand for the minutes
        // passing.
        clock: &FixedClock(at.parse().unwrap()),
        budget: None,
    };
    d.pass(at.parse::<Timestamp>().unwrap()).await.unwrap()
}

const WELCOME: &str = r#"{"title": "Welcome", "status": "active", "trigger": {"event": "patient_created"},
    "steps": [{"schedule": {"direction": "after", "amount": 0, "unit": "hours"},
               "task": {"kind": "email", "subject": "Hi", "body": "Hello {{ patient.first_name }}"}}]}"#;

#[tokio::test]
async fn crashes_around_the_send_cost_at_most_one_duplicate_and_lose_nothing() {
    let q = setup_with_workflow(WELCOME).await;
    post_and_drain(&q, &worked()).await;
    let mailer = CountingMailer::default();
    let t0 = Timestamp::now();

    // 1. A dispatcher claims the step and dies before sending: nothing is sent,
    //    and the step is taken again once the claim expires.
    let claimed = q
        .store()
        .claim_due(t0, t0, t0 + jiff::SignedDuration::from_mins(5), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        pass_with(&q, &mailer, &t0.to_string()).await,
        PassReport::default()
    );
    let t1 = (t0 + jiff::SignedDuration::from_mins(6)).to_string();

    // 2. The next dispatcher sends, then dies before recording the send.
    mailer
        .die_after_send
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(pass_with(&q, &mailer, &t1).await.sent, 0);
    assert_eq!(mailer.sent.lock().unwrap().len(), 1);

    // 3. After the retry backoff it is sent again: one duplicate for that crash.
    let t2 = (t0 + jiff::SignedDuration::from_mins(9)).to_string();
    assert_eq!(pass_with(&q, &mailer, &t2).await.sent, 1);
    let sent = mailer.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "at most one duplicate per crash");
    assert_eq!(sent[0], sent[1], "the same delivery");
    // ...and never again.
    let t3 = (t0 + jiff::SignedDuration::from_hours(2)).to_string();
    assert_eq!(pass_with(&q, &mailer, &t3).await, PassReport::default());
    assert_eq!(mailer.sent.lock().unwrap().len(), 2);
    let outbox = q.store().list_deliveries("ACME01").await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        outbox[0].status,
        tendon_core::workflow::steps::DeliveryStatus::Sent
    );
}

/// A provider that refuses every message for good.
struct RejectingMailer;

impl tendon_core::ports::Mailer for RejectingMailer {
    async fn send(
        &self,
        _: &tendon_core::workflow::steps::Delivery,
    ) -> Result<String, tendon_core::ports::SendError> {
        Err(tendon_core::ports::SendError::Rejected(
            "invalid_address".into(),
        ))
    }
}

#[tokio::test]
async fn an_operator_retries_a_failed_step_and_it_is_sent_once() {
    use tendon_core::workflow::retry::{RetryError, retry_failed_step};
    use tendon_core::workflow::steps::DeliveryStatus;
    let q = setup_with_workflow(WELCOME).await;
    post_and_drain(&q, &worked()).await;
    let t0 = Timestamp::now();
    let refused = pass_with(&q, &RejectingMailer, &t0.to_string()).await;
    assert_eq!(refused.failed, 1);
    let step = q.store().list_steps("ACME01", Some("P555")).await.unwrap()[0].clone();
    assert_eq!(
        (step.status, step.note.as_deref()),
        (StepStatus::Failed, Some("rejected: invalid_address"))
    );

    // The address fixed, the operator retries it: the next pass sends it.
    let t1 = t0 + jiff::SignedDuration::from_mins(10);
    retry_failed_step(q.store(), "ACME01", "P555", &step.id, t1)
        .await
        .unwrap();
    assert_eq!(
        retry_failed_step(q.store(), "ACME01", "P555", &step.id, t1).await,
        Err(RetryError::NotFailed(step.id.clone(), "scheduled"))
    );
    assert_eq!(pass(&q, &t1.to_string()).await.sent, 1);
    let later = (t1 + jiff::SignedDuration::from_hours(1)).to_string();
    assert_eq!(pass(&q, &later).await, PassReport::default(), "once");
    let outbox = q.store().list_deliveries("ACME01").await.unwrap();
    assert_eq!(
        outbox.iter().map(|d| d.status).collect::<Vec<_>>(),
        [DeliveryStatus::Failed, DeliveryStatus::Sent],
        "the failed delivery stays as it was; the resend is a delivery of its own"
    );
    assert_ne!(outbox[0].id, outbox[1].id);
    let step = q.store().list_steps("ACME01", Some("P555")).await.unwrap()[0].clone();
    assert_eq!((step.status, step.resends), (StepStatus::Sent, 1));
}

#[tokio::test]
async fn concurrent_passes_never_send_a_step_twice() {
    let q = setup_with_workflow(WELCOME).await;
    post_new_patients(&q, 2, 40).await;
    let mailer = CountingMailer::default();
    let now = Timestamp::now().to_string();
    let (a, b) = tokio::join!(pass_with(&q, &mailer, &now), pass_with(&q, &mailer, &now));
    assert_eq!(a.sent + b.sent, 40, "{a:?} {b:?}");
    let mut sent = mailer.sent.lock().unwrap().clone();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 40, "no delivery sent twice");
    assert_eq!(mailer.sent.lock().unwrap().len(), 40);
}

#[test]
fn a_yaml_definition_reads_like_the_json_one() {
    let yaml = "title: Welcome\nstatus: active\ntrigger:\n  event: patient_created\nsteps:\n  - schedule: {direction: after, amount: 0, unit: hours}\n    task: {kind: email, subject: Hi, body: \"Hello {{ patient.first_name }}\"}\n";
    assert_eq!(workflow(yaml), workflow(WELCOME));
    let bad = Workflow::parse(
        "title: X\nstatus: active\ntrigger: {event: patient_created}\nsteps:\n  - schedule: {direction: before, amount: 1, unit: days}\n    task: {kind: email, subject: a, body: b}\n",
    );
    assert!(
        bad.unwrap_err().contains("before"),
        "a 'before' step needs an appointment trigger"
    );
}

#[tokio::test]
async fn opted_out_channels_are_skipped_and_the_other_channel_still_sends() {
    let q = setup_with_workflow(
        r#"{"title": "Both", "status": "active", "trigger": {"event": "patient_created"},
            "steps": [
              {"schedule": {"direction": "after", "amount": 1, "unit": "days"},
               "task": {"kind": "text", "body": "Hi {{ patient.first_name }}"}},
              {"schedule": {"direction": "after", "amount": 1, "unit": "days"},
               "task": {"kind": "email", "subject": "Hi", "body": "Hello."}}
            ]}"#,
    )
    .await;
    post_and_drain(&q, &worked()).await;
    assert!(
        set_opt_out(q.store(), "ACME01", "P555", Channel::Text, true)
            .await
            .unwrap()
    );
    assert!(
        !set_opt_out(q.store(), "ACME01", "P404", Channel::Text, true)
            .await
            .unwrap(),
        "no such patient"
    );
    // Two days on, at 10:00 Los Angeles time: inside the text window.
    let r = pass(&q, &ie_day_at_ten(-8, 0)).await;
    assert_eq!((r.sent, r.skipped), (1, 1));
    let steps = q.store().list_steps("ACME01", Some("P555")).await.unwrap();
    let text = steps
        .iter()
        .find(|s| s.task.kind.as_str() == "text")
        .unwrap();
    assert_eq!(text.note.as_deref(), Some("text_opt_out"));
    let outbox = q.store().list_deliveries("ACME01").await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].channel, Channel::Email);
    // Opting back in is recorded on the patient.
    set_opt_out(q.store(), "ACME01", "P555", Channel::Text, false)
        .await
        .unwrap();
    let rec = acme::patient(q.store(), "P555").await;
    assert!(!rec.patient.text_opt_out && !rec.patient.unsubscribed);
}

#[tokio::test]
async fn a_suppressed_address_gets_no_email_whichever_patient_has_it() {
    let q = setup_with_workflow(WELCOME).await;
    // As the feedback function records a bounce of the worked example's address.
    q.store()
        .suppress_address("ACME01", "Ana.Rivera@example.com", "bounce")
        .await
        .unwrap();
    post_and_drain(&q, &worked()).await;
    let r = pass(&q, &Timestamp::now().to_string()).await;
    assert_eq!((r.sent, r.skipped), (0, 1));
    let steps = q.store().list_steps("ACME01", Some("P555")).await.unwrap();
    assert_eq!(steps[0].note.as_deref(), Some("address_suppressed"));
    assert!(
        q.store()
            .list_deliveries("ACME01")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A clock that moves 30 s each time it is read: a pass that runs long.
struct SlowClock(std::sync::Mutex<Timestamp>);

impl tendon_core::ports::Clock for SlowClock {
    fn now(&self) -> Timestamp {
        let mut t = self.0.lock().unwrap();
        *t += jiff::SignedDuration::from_secs(30);
        *t
    }
}

#[tokio::test]
async fn a_pass_out_of_time_stops_claiming_and_the_next_sends_the_rest() {
    let q = setup_with_workflow(WELCOME).await;
    post_new_patients(&q, 3, 150).await;
    let now = Timestamp::now();
    let q = &q;
    let pass = |budget| {
        let clock = SlowClock(std::sync::Mutex::new(now));
        async move {
            Dispatcher {
                store: q.store(),
                mailer: &LocalOutbox,
                public_url: "https://tendon.example",
                unsubscribe_secret: "s3cret",
                clock: &clock,
                budget,
            }
            .pass(now)
            .await
            .unwrap()
        }
    };
    // The clock reads 30 s at the start, 60 s before the first claim, 90 s
    // before the second: a 40 s budget takes one claim of 100.
    let first = pass(Some(jiff::SignedDuration::from_secs(40))).await;
    assert_eq!(first.sent, 100, "one claim, then out of time");
    let rest = pass(None).await;
    assert_eq!(rest.sent, 50, "the next pass sends what was left");
    assert_eq!(
        q.store().list_deliveries("ACME01").await.unwrap().len(),
        150
    );
}
