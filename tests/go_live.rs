//! Issue 18's acceptance, end to end on both backends through the real
//! binary: a new org receives a realistic day (over 500 messages from 3
//! locations and 6 practitioners; 1 location, 2 practitioners and 1 IE type
//! missing from the configuration; no email in 5 % of the SIU messages; a few
//! types Tendon ignores; the sender's clock 2 hours behind). The doctor names
//! every cause with the counts and commands a small model of the rules
//! predicts, and nothing else; the plan, reviewed, is applied; every message
//! ends as in a deployment configured completely from the start, with the
//! same patients, episodes and appointments; a second apply changes nothing.
//! The same day sent with a test-mode key gets the same ACKs and findings and
//! creates no live patient, episode, step or email.
mod common;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use common::{Backend, Hl7, Tendon};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value as Json, json};

#[test]
fn a_realistic_day_on_the_local_backend() {
    a_realistic_day(Backend::Local, 120);
}

/// The same day on moto (whose TransactWriteItems infra/moto_serial.py
/// rolls back item by item: moto's own copies the whole table each time).
#[test]
fn a_realistic_day_on_the_aws_backend() {
    a_realistic_day(Backend::Aws, 120);
}

const ORG: &str = "GOLIVE";
/// (Clinic ID, name): the last is missing from run A's configuration.
const LOCATIONS: [(&str, &str); 3] = [("12", "Salem"), ("20", "Keizer"), ("34", "Eastside")];
/// (staff ID, first, last, NPI without its check digit): the first three are
/// the harness's, the last two are missing from run A's configuration.
const THERAPISTS: [(&str, &str, &str, &str); 6] = [
    ("445566", "Chidi", "Okafor", "104729301"),
    ("990011", "Eleanor", "Shellstrop", "166220458"),
    ("778899", "Minh", "Nguyen", "123456789"),
    ("551122", "Tahani", "Al-Jamil", "193847562"),
    ("1235123", "Pat", "Smith", "150298743"),
    ("662200", "Janet", "O'Brien", "171630925"),
];
/// The IE types: the second is missing from run A's configuration.
const IE_TYPES: [&str; 2] = ["IE^Initial Eval", "EV^Eval - New"];
const IGNORED: [&str; 4] = ["ORU^R01", "ORU^R01", "MDM^T02", "ORU^R01"];

/// Run A (the configuration with gaps): the doctor, its plan applied twice.
/// Run B (complete from the start). A and B compared.
fn a_realistic_day(backend: Backend, n: usize) {
    let began = Instant::now();
    let lap = |what: &str| eprintln!("{backend:?}: {what} after {:.1?}", began.elapsed());
    let day = day(Timestamp::now(), n);
    let ((partial, before), (complete, after)) = (simulate(&day, false), simulate(&day, true));
    let charged = charge(&day, &partial);
    assert!(charged.len() == 5 && (n < 120 || day.messages.len() >= 500));
    let counts = |fates: &[Fate], patients: usize| {
        let failed = fates
            .iter()
            .filter(|f| matches!(f, Fate::Failed(_)))
            .count();
        json!({"failed": failed, "patients": patients})
    };
    let (before, after) = (counts(&partial, before), counts(&complete, after));

    let mut a = Tendon::new(backend, "golive-a");
    let key = deployment(&mut a, false);
    let acks = send_day(&a, &key, &day);
    assert_eq!(acks, expected_acks(&day));
    settle_as(&a, &day, &partial);
    lap("run A sent and settled");
    let (found, rows) = findings(&a);
    assert_eq!(found["messages"], day.messages.len());
    assert_eq!(rows, expected_findings(&day, &partial), "{found:#}");
    let skew = found["findings"][charged.len()]["summary"].to_string();
    let minutes = skew
        .split("about ")
        .nth(1)
        .and_then(|s| s.split(' ').next());
    let minutes: i64 = minutes.unwrap().parse().unwrap();
    assert!(
        (100..=140).contains(&minutes) && skew.contains("minute(s) behind"),
        "{skew}"
    );

    // The plan: the configuration fixes, and every failed message they
    // explain (directly or blocked behind), in the order received.
    let file = a.db().with_extension("plan.json");
    let path = file.to_str().unwrap();
    let fixes: Vec<&(Cause, Tally)> = charged.iter().filter(|(c, _)| *c != Cause::Email).collect();
    let mut replay: Vec<usize> = fixes.iter().flat_map(|(_, t)| t.failed.clone()).collect();
    replay.sort();
    let cid = |i: &usize| day.messages[*i].cid.clone();
    let (config, added) = planned(&fixes);
    let wrote = a.ok(&["doctor", "--org", ORG, "--plan", path]);
    let sizes = json!({"locations": 1, "practitioners": 2, "ie_types": 1, "replay": replay.len()});
    assert_eq!(wrote, merged(json!({"plan": path}), sizes));
    let plan: Json = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let keys = ["locations", "practitioners", "ie_types"];
    assert_eq!(json!(keys.map(|k| &plan[k])), config);
    let order = plan["replay"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["control_id"]);
    let order: Vec<&Json> = order.collect();
    assert_eq!(
        json!(order),
        json!(replay.iter().map(cid).collect::<Vec<_>>())
    );

    // Reviewed and kept whole (every fix is wanted), then applied: run A
    // ends as run B will, each follow-up processed after its IE.
    std::fs::write(&file, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    let applied = a.ok(&["doctor", "--org", ORG, "--apply", path]);
    let did = json!({"added": added, "unchanged": [], "skipped": [], "replayed": replay.len()});
    assert_eq!(
        applied,
        json!({"applied": did, "before": before, "after": after})
    );
    let msgs_a = settle_as(&a, &day, &complete);
    let people_a = patients(&a);
    lap("run A applied");

    // Again: nothing to add; what the fixes did not unblock (behind an IE
    // without an email) is replayed and fails as before; nothing changes.
    let (done, still): (Vec<usize>, Vec<usize>) = replay
        .iter()
        .partition(|&&i| complete[i] == Fate::Processed);
    let skipped = done
        .iter()
        .map(|i| format!("message {}: it is processed now, not failed", cid(i)));
    let skipped: Vec<String> = skipped.collect();
    let did = json!({"added": [], "unchanged": added, "skipped": skipped, "replayed": still.len()});
    let again = a.ok(&["doctor", "--org", ORG, "--apply", path]);
    assert_eq!(
        again,
        json!({"applied": did, "before": after, "after": after})
    );
    settle_as(&a, &day, &complete);
    assert_eq!(patients(&a), people_a, "the second apply changed nothing");
    let (_, rows_a) = findings(&a);
    std::fs::remove_file(&file).unwrap();
    a.stop_server();
    lap("run A applied again");

    let mut b = Tendon::new(backend, "golive-b");
    let key = deployment(&mut b, true);
    assert_eq!(send_day(&b, &key, &day), acks);
    let msgs_b = settle_as(&b, &day, &complete);
    lap("run B sent and settled");
    // The same outcome, errors included, and the same patients, episodes
    // and appointments, in run A as in run B.
    assert_eq!(common::outcomes(&msgs_a), common::outcomes(&msgs_b));
    let people_b = patients(&b);
    for (id, p) in &people_b {
        assert_eq!(people_a.get(id), Some(p), "patient {id}: run A, then run B");
    }
    assert!(people_a.len() == people_b.len() && after["patients"] == people_b.len());
    for p in day.patients.iter().filter(|p| p.new_email.is_some()) {
        let email = people_b.get(&p.id).map(|p| &p["email"]);
        assert!(
            email.is_none_or(|e| *e == json!(p.new_email)),
            "{}'s A08",
            p.id
        );
    }
    let (_, rows_b) = findings(&b);
    assert_eq!(rows_b, expected_findings(&day, &complete));
    assert_eq!(rows_a, rows_b, "after the plan, run A is as run B");
    b.stop_server();
    lap("run B checked");

    // Run T: the configuration of run A, the day sent with a test-mode key.
    let mut t = Tendon::new(backend, "golive-t");
    deployment(&mut t, false);
    let issued = t.ok(&["org", "add-key", "--org", ORG, "--test"]);
    let test_key = issued["ingest_key"].as_str().unwrap().to_owned();
    assert_eq!(send_day(&t, &test_key, &day), acks, "the same ACKs");
    let test = ["--mode", "test"];
    settle_in(&t, &day, &partial, &test);
    let (found, mut rows) = findings_in(&t, &test);
    for f in rows.iter_mut() {
        let fix = f["fix"].as_str().unwrap().replace(" --mode test", "");
        f["fix"] = json!(fix);
    }
    assert_eq!(rows, expected_findings(&day, &partial), "the same findings");
    assert_eq!(found["would_create"]["patients"], before["patients"]);
    assert_eq!(t.messages(ORG), Vec::<Json>::new(), "no live message");
    assert_eq!(patients(&t).len(), 0, "no live patient or episode");
    assert_eq!(
        t.ok(&["workflow", "steps", "--org", ORG]),
        json!([]),
        "no step"
    );
    assert_eq!(
        t.ok(&["outbox", "list", "--org", ORG]),
        json!([]),
        "no email"
    );
    let deleted = t.ok(&["org", "delete-test-data", "--org", ORG]);
    assert_eq!(
        deleted["deleted"],
        json!({"messages": day.messages.len(), "patients": before["patients"]})
    );
    lap("done");
}

// ---------------------------------------------------------------------------
// The day.

/// In this order: an SIU's, an A08, a type Tendon ignores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd)]
enum Kind {
    Ie,
    FollowUp,
    Reschedule,
    Cancel,
    Update,
    Ignored,
}

struct Patient {
    id: String,
    location: usize,
    therapist: usize,
    eval_new: bool,
    /// PID-5, PID-7 and PID-8; the email, and the one an A08 changes it to.
    pid: String,
    email: String,
    new_email: Option<String>,
    first_day: i64,
}

struct Msg {
    cid: String,
    hl7: Hl7,
    kind: Kind,
    patient: usize,
    /// 0 for the IE's appointment, then the follow-ups'.
    visit: usize,
    email: bool,
}

struct Day {
    patients: Vec<Patient>,
    messages: Vec<Msg>,
}

/// SplitMix64: the same day on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as usize % n
    }
}

/// A 10-digit NPI: `base` and its Luhn check digit over `80840` + `base`.
fn npi(base: &str) -> String {
    let digits = format!("80840{base}");
    let digits = digits.chars().rev().map(|c| c.to_digit(10).unwrap());
    let doubled = digits.enumerate().map(|(i, d)| d * (2 - i as u32 % 2));
    let sum: u32 = doubled.map(|d| d / 10 + d % 10).sum();
    format!("{base}{}", (10 - sum % 10) % 10)
}

/// The day of `n` patients, each with an Initial Evaluation, 2 to 4
/// follow-ups of its one case, some a reschedule, a cancel or an A08 that
/// changes the email (later SIUs carry the new one); the patients
/// interleaved, every 20th SIU without an email, four of a type Tendon
/// ignores, MSH-7 two hours behind `t0`.
fn day(t0: Timestamp, n: usize) -> Day {
    const GIVEN: [&str; 6] = ["Ana", "Ben", "Carla", "Dev", "Elena", "Farid"];
    const FAMILY: [&str; 7] = ["Rivera", "Chen", "Okoro", "Patel", "Novak", "Haddad", "Kim"];
    const REGION: [&str; 3] = ["M75.1^Right Shoulder", "M54.5^Low Back", "M17.11^Knee"];
    let mut rng = Rng(18);
    let (mut patients, mut queues) = (Vec::new(), Vec::new());
    for p in 0..n {
        let (location, therapist) = ([0, 0, 0, 1, 1, 2][rng.below(6)], rng.below(6));
        let (eval_new, visits) = (rng.below(8) == 0, 2 + rng.below(3));
        let mut evs: VecDeque<(Kind, usize)> = (1..=visits).map(|v| (Kind::FollowUp, v)).collect();
        evs.push_front((Kind::Ie, 0));
        if rng.below(5) == 0 {
            let v = rng.below(2);
            evs.insert(v + 1 + rng.below(evs.len() - v), (Kind::Reschedule, v));
        }
        if rng.below(6) == 0 {
            evs.push_back((Kind::Cancel, visits));
        }
        let updated = rng.below(4) == 0;
        if updated {
            evs.insert(1 + rng.below(evs.len()), (Kind::Update, 0));
        }
        let (given, family, id) = (GIVEN[p % 6], FAMILY[p % 7], format!("P{}", 1000 + p));
        let email = |v: &str| format!("{given}.{family}{v}{p}@example.com").to_lowercase();
        let dob = format!("19{:02}{:02}{:02}", 40 + p % 55, 1 + p % 12, 1 + p % 28);
        let pid = format!("{family}^{given}||{dob}|{}", ["F", "M"][p % 2]);
        let (new_email, first_day) = (updated.then(|| email(".new")), 1 + rng.below(5) as i64);
        let (email, eval) = (email(""), eval_new);
        patients.push(Patient {
            id,
            location,
            therapist,
            eval_new: eval,
            pid,
            email,
            new_email,
            first_day,
        });
        queues.push((p, evs));
    }
    let (mut messages, mut sius, mut moved) = (Vec::new(), 0, HashSet::new());
    while !queues.is_empty() {
        let seq = messages.len() + 1;
        let cid = format!("GL{seq:04}");
        let sent = t0 - SignedDuration::from_hours(2) + SignedDuration::from_secs(seq as i64);
        let msh7 = sent.strftime("%Y%m%d%H%M%S+0000").to_string();
        let msh = |kind: &str| {
            format!("MSH|^~\\&|EMRGATE|{ORG}|TENDON|TENDON|{msh7}||{kind}|{cid}|P|2.5.1\r")
        };
        // Four ignored types in the day, whatever its size.
        if seq % (n + n / 6) == n / 2 {
            let hl7 = Hl7::parse(&format!(
                "{}PID|1||P555^^^ACME^MR\rOBX|1|TX|NOTE||seen\r",
                msh(IGNORED[seq / (n + n / 6) % 4])
            ));
            let (kind, patient, visit, email) = (Kind::Ignored, usize::MAX, 0, true);
            messages.push(Msg {
                cid,
                hl7,
                kind,
                patient,
                visit,
                email,
            });
            continue;
        }
        let q = rng.below(queues.len());
        let (p, evs) = &mut queues[q];
        let (p, (kind, visit)) = (*p, evs.pop_front().unwrap());
        if evs.is_empty() {
            queues.swap_remove(q);
        }
        let t = &patients[p];
        if kind == Kind::Update {
            moved.insert(p);
        }
        let email = kind == Kind::Update || {
            sius += 1;
            sius % 20 != 13
        };
        let address = if moved.contains(&p) {
            t.new_email.as_ref().unwrap()
        } else {
            &t.email
        };
        let phone = format!("^PRN^PH^^1^503^555{p:04}");
        let contact = match email {
            true => format!("{phone}~^PRN^CP^^1^503^556{p:04}~^NET^Internet^{address}"),
            false => phone,
        };
        let pid = format!(
            "PID|1||{}^^^ACME^MR||{}|||12 Elm St^^Salem^OR^97301||{contact}\r",
            t.id, t.pid
        );
        let (loc, site) = LOCATIONS[t.location];
        let (staff, first, last, digits) = THERAPISTS[t.therapist];
        let aip = format!(
            "{staff}^{last}^{first}~{}^{last}^{first}^^^^^^^^^^NPI",
            npi(digits)
        );
        let (trigger, status) = match kind {
            Kind::Reschedule => ("S14", "Booked"),
            Kind::Cancel => ("S15", "Cancelled"),
            _ => ("S12", "Booked"),
        };
        let days = t.first_day + 7 * visit as i64 + i64::from(kind == Kind::Reschedule);
        let date = (t0 + SignedDuration::from_hours(24 * days)).strftime("%Y%m%d");
        let start = format!("{date}{:02}00", 8 + p % 9);
        let kind_name = if visit == 0 {
            IE_TYPES[usize::from(t.eval_new)]
        } else {
            "FU^Follow Up"
        };
        let (appointment, region, case) =
            (format!("A{}-{visit}", 1000 + p), REGION[p % 3], 1000 + p);
        let text = match kind {
            Kind::Update => format!("{}EVN|A08|{msh7}\r{pid}", msh("ADT^A08^ADT_A01")),
            _ => format!(
                "{}SCH|PL-{appointment}|{appointment}|||||EVAL^Evaluation|{kind_name}|45|min|^^45^{start}||||||||||||||{status}\r\
                 {pid}PV1|1|O|{loc}^^^^^^^^{site} Clinic||||778899^Nguyen^Minh||||||||||||C-{case}\r\
                 PV2|||{region}\rRGS|1\rAIS|1||{kind_name}|{start}\rAIL|1||{loc}^^^{site} Clinic|||{start}\r\
                 AIP|1||{aip}|PT^Physical Therapist||{start}\r",
                msh(&format!("SIU^{trigger}^SIU_S12"))
            ),
        };
        let hl7 = Hl7::parse(&text);
        messages.push(Msg {
            cid,
            hl7,
            kind,
            patient: p,
            visit,
            email,
        });
    }
    Day { patients, messages }
}

// ---------------------------------------------------------------------------
// The model: docs/interface.md §2 for this day, and the doctor's charging.

/// Why a message fails; for equal counts, the doctor's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Cause {
    Location,
    Practitioner(usize),
    IeType,
    Email,
    NoEpisode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Processed,
    Pending,
    Ignored,
    Failed(Cause),
}

/// What each message ends as, with run A's configuration or a `complete`
/// one, and how many patients there are then. A patient (with its one case) is created by its first SIU that has an
/// email and whose location, IE type and practitioner are configured, checked
/// in that order; an A08 waits for its patient.
fn simulate(day: &Day, complete: bool) -> (Vec<Fate>, usize) {
    let mut created = HashSet::new();
    let fate = |m: &Msg, created: &mut HashSet<usize>| {
        let Some(p) = day.patients.get(m.patient) else {
            return Fate::Ignored;
        };
        let known = created.contains(&m.patient);
        let ie = m.visit == 0 && m.kind != Kind::Update;
        let cause = match m.kind {
            Kind::Update if known => return Fate::Processed,
            Kind::Update => return Fate::Pending,
            _ if !m.email => Cause::Email,
            _ if known => return Fate::Processed,
            _ if !complete && p.location == 2 => Cause::Location,
            _ if !ie || (p.eval_new && !complete) => Cause::NoEpisode,
            _ if !complete && p.therapist >= 4 => Cause::Practitioner(p.therapist),
            _ => {
                created.insert(m.patient);
                return Fate::Processed;
            }
        };
        Fate::Failed(cause)
    };
    let fates: Vec<Fate> = day.messages.iter().map(|m| fate(m, &mut created)).collect();
    // A parked A08 is processed once its patient is created.
    let parked = |(f, m): (Fate, &Msg)| match f == Fate::Pending && created.contains(&m.patient) {
        true => Fate::Processed,
        false => f,
    };
    let fates = fates.into_iter().zip(&day.messages).map(parked).collect();
    (fates, created.len())
}

#[derive(Default)]
struct Tally {
    messages: usize,
    blocked: usize,
    examples: Vec<String>,
    /// The failed messages it explains, in the order received.
    failed: Vec<usize>,
}

/// The failures charged to their causes, most harmful first: a
/// no_episode_of_care behind an earlier failure of the same patient's case
/// is `blocked` under that failure's cause; the first one of a case (its IE
/// of an unconfigured type) is that type's.
fn charge(day: &Day, fates: &[Fate]) -> Vec<(Cause, Tally)> {
    let mut roots: HashMap<usize, Cause> = HashMap::new();
    let mut causes: BTreeMap<Cause, Tally> = BTreeMap::new();
    for (i, (m, fate)) in day.messages.iter().zip(fates).enumerate() {
        let Fate::Failed(cause) = *fate else { continue };
        let root = roots.get(&m.patient).copied();
        let cause = match cause {
            Cause::NoEpisode => root.unwrap_or(Cause::IeType),
            cause => cause,
        };
        let tally = causes.entry(cause).or_default();
        tally.failed.push(i);
        if Fate::Failed(Cause::NoEpisode) == *fate && root.is_some() {
            tally.blocked += 1;
            continue;
        }
        tally.messages += 1;
        if tally.examples.len() < 3 {
            tally.examples.push(m.cid.clone());
        }
        roots.entry(m.patient).or_insert(cause);
    }
    let mut found: Vec<_> = causes.into_iter().collect();
    found.sort_by_key(|(c, t)| (*c == Cause::Email, Reverse(t.messages + t.blocked), *c));
    found
}

/// The doctor's findings for the day (all but their summaries and times):
/// the causes of failure, the clock, the ignored types; nothing else.
fn expected_findings(day: &Day, fates: &[Fate]) -> Vec<Json> {
    let sius = day.messages.iter().filter(|m| m.kind < Kind::Update);
    let sius = sius.count() as f64;
    let finding = |(cause, t): (Cause, Tally)| {
        let counts = json!({"messages": t.messages, "blocked": t.blocked, "examples": t.examples});
        let more = match cause {
            Cause::Location => json!({
                "code": "unknown_location", "subject": "34", "names": ["Eastside Clinic"],
                "fix": format!("tendon location add --org {ORG} --id 34 --name 'Eastside Clinic'"),
            }),
            Cause::Practitioner(i) => {
                let (id, first, last, digits) = THERAPISTS[i];
                let quoted = match last.contains('\'') {
                    true => format!("'{}'", last.replace('\'', r"'\''")),
                    false => last.to_owned(),
                };
                let (npi, who) = (npi(digits), format!("--first {first} --last {quoted}"));
                json!({
                    "code": "unknown_practitioner", "subject": id, "names": [format!("{first} {last}")],
                    "npi": npi, "fix": format!("tendon practitioner add --org {ORG} --id {id} {who} --npi {npi}"),
                })
            }
            Cause::IeType => json!({
                "code": "ie_type_not_configured", "subject": "Eval - New",
                "evidence": format!("it was the first appointment of {} patient(s) who were never created; its name suggests an evaluation", t.messages),
                "fix": format!("tendon ie-type add --org {ORG} --type 'Eval - New'"),
            }),
            _ => json!({
                "code": "missing_field", "subject": "patient_email", "share": t.messages as f64 / sius,
                "fix": format!("ask the EMR side to fill patient_email (PID-13.4) in every message; then replay: tendon messages replay --org {ORG} --failed"),
            }),
        };
        merged(counts, more)
    };
    let mut found: Vec<Json> = charge(day, fates).into_iter().map(finding).collect();
    let ignored = day.messages.iter().filter(|m| m.kind == Kind::Ignored);
    let ignored: Vec<&Msg> = ignored.collect();
    let names: BTreeSet<String> = ignored.iter().map(|m| m.hl7.get("MSH-9")).collect();
    let examples: Vec<&str> = ignored.iter().take(3).map(|m| m.cid.as_str()).collect();
    found.push(json!({
        "code": "clock_skew", "subject": null, "messages": day.messages.len(), "blocked": 0,
        "examples": [],
        "evidence": "an older MSH-7 can make a newer message look stale and not update a patient",
        "fix": "set the sending system's clock from NTP, and send MSH-7 with its UTC offset",
    }));
    found.push(json!({
        "code": "ignored_types", "subject": null, "messages": ignored.len(), "blocked": 0,
        "examples": examples, "names": names,
        "fix": "nothing is lost; if the gateway can filter them, stop sending them (supported: ADT^A01/A04/A08/A28/A31/A40, SIU^S12-S15/S17/S26)",
    }));
    found
}

/// The plan's locations, practitioners and IE types for these fixes, and
/// what applying it adds, in that order.
fn planned(fixes: &[&(Cause, Tally)]) -> (Json, Vec<String>) {
    let (mut config, mut added) = (json!([[], [], []]), vec![vec![], vec![], vec![]]);
    for (cause, _) in fixes {
        let (i, entry) = match *cause {
            Cause::Location => (0, json!({"id": "34", "name": "Eastside Clinic"})),
            Cause::Practitioner(p) => {
                let (id, first_name, last_name, digits) = THERAPISTS[p];
                let npi = npi(digits);
                (
                    1,
                    json!({"id": id, "first_name": first_name, "last_name": last_name, "npi": npi}),
                )
            }
            _ => (2, json!("Eval - New")),
        };
        let what = entry.get("id").unwrap_or(&entry).as_str().unwrap();
        added[i].push(format!(
            "{} {what}",
            ["location", "practitioner", "ie_type"][i]
        ));
        config[i].as_array_mut().unwrap().push(entry);
    }
    (config, added.concat())
}

/// The ACK of each message: `AE` and the missing field for an SIU without
/// an email, else `AA` (an ignored type too).
fn expected_acks(day: &Day) -> BTreeMap<String, String> {
    let ack = |m: &Msg| match m.email {
        true => format!("AA {}", m.cid),
        false => format!("AE {} missing_field:patient_email", m.cid),
    };
    day.messages
        .iter()
        .map(|m| (m.cid.clone(), ack(m)))
        .collect()
}

/// Each message's status, and the first error of a failed one.
fn expected_outcomes(day: &Day, fates: &[Fate]) -> BTreeMap<String, String> {
    let outcome = |fate: &Fate| match fate {
        Fate::Processed => "processed",
        Fate::Pending => "pending",
        Fate::Ignored => "ignored",
        Fate::Failed(Cause::Location) => "failed unknown_location",
        Fate::Failed(Cause::Practitioner(_)) => "failed unknown_practitioner",
        Fate::Failed(Cause::Email) => "failed missing_field",
        Fate::Failed(_) => "failed no_episode_of_care",
    };
    let outcomes = day.messages.iter().zip(fates);
    outcomes
        .map(|(m, f)| (m.cid.clone(), outcome(f).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// Driving a deployment.

/// A fresh deployment of the org, serving: configured with run A's gaps, or
/// `complete`. Returns its ingest key.
fn deployment(t: &mut Tendon, complete: bool) -> String {
    let key = t.clinic(ORG).key;
    let add = |what: &str, args: &[&str]| t.ok(&[&[what, "add", "--org", ORG][..], args].concat());
    add("location", &["--id", "20", "--name", "Keizer Clinic"]);
    for (id, first, last, digits) in &THERAPISTS[3..if complete { 6 } else { 4 }] {
        let npi = npi(digits);
        add(
            "practitioner",
            &["--id", id, "--first", first, "--last", last, "--npi", &npi],
        );
    }
    if complete {
        add("location", &["--id", "34", "--name", "Eastside Clinic"]);
        add("ie-type", &["--type", "Eval - New"]);
    }
    t.ok(&["workflow", "install-defaults", "--org", ORG]);
    t.serve();
    key
}

/// Posts the day's messages in order with `key`: each ACK's summary
/// (`AE GL0013 missing_field:patient_email`) by control ID.
fn send_day(t: &Tendon, key: &str, day: &Day) -> BTreeMap<String, String> {
    let send = |m: &Msg| {
        let (status, reply) = t.post(Some(key), m.hl7.text().as_bytes());
        assert_eq!(status, 200, "{}: {reply}", m.cid);
        (m.cid.clone(), common::Ack::parse(&reply).summary())
    };
    day.messages.iter().map(send).collect()
}

/// `doctor --json` (with `mode`'s arguments), and its findings without
/// their summaries and times.
fn findings_in(t: &Tendon, mode: &[&str]) -> (Json, Vec<Json>) {
    let found = t.ok(&[&["doctor", "--org", ORG][..], mode].concat());
    let mut rows = found["findings"].as_array().expect("findings").clone();
    for f in rows.iter_mut().filter_map(Json::as_object_mut) {
        f.retain(|k, _| !["summary", "first_seen", "last_seen"].contains(&k.as_str()));
    }
    (found, rows)
}

fn findings(t: &Tendon) -> (Json, Vec<Json>) {
    findings_in(t, &[])
}

/// Waits until every message ended as `fates` says, or fails past the
/// deadline with those that did not.
fn settle_as(t: &Tendon, day: &Day, fates: &[Fate]) -> Vec<Json> {
    settle_in(t, day, fates, &[])
}

/// [`settle_as`] for the messages `messages list` shows with `mode`'s arguments.
fn settle_in(t: &Tendon, day: &Day, fates: &[Fate], mode: &[&str]) -> Vec<Json> {
    let (want, deadline) = (expected_outcomes(day, fates), Instant::now() + t.deadline());
    let outcome = |m: &Json| match (m["status"].as_str(), m["errors"][0]["code"].as_str()) {
        (Some("failed"), Some(code)) => format!("failed {code}"),
        (status, _) => status.unwrap_or("?").to_owned(),
    };
    loop {
        let msgs = t.ok(&[&["messages", "list", "--org", ORG][..], mode].concat());
        let msgs = msgs.as_array().cloned().unwrap_or_default();
        let got = |cid: &str| msgs.iter().find(|m| m["control_id"] == cid).map(outcome);
        let wrong = want.iter().filter(|(cid, w)| got(cid).as_ref() != Some(*w));
        let wrong: Vec<String> = wrong
            .map(|(cid, w)| format!("{cid}: {:?}, not {w}", got(cid)))
            .collect();
        if wrong.is_empty() && msgs.len() == want.len() {
            return msgs;
        }
        assert!(
            Instant::now() < deadline,
            "{} ended otherwise:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        t.pause();
    }
}

/// The org's patients by ID (`patient list` prints each as `patient show`
/// does), episodes and appointments in a stable order.
fn patients(t: &Tendon) -> BTreeMap<String, Json> {
    let list = t.ok(&["patient", "list", "--org", ORG]);
    let stable = |p: &Json| {
        let mut p = p.clone();
        p["episodes"] = json!(common::episodes(&p));
        let appointments = p["appointments"].as_array_mut().unwrap();
        appointments.sort_by_key(|a| a["id"].as_str().map(str::to_owned));
        (p["id"].as_str().unwrap().to_owned(), p)
    };
    list.as_array()
        .expect("patients")
        .iter()
        .map(stable)
        .collect()
}

/// `a` with `b`'s keys set.
fn merged(mut a: Json, b: Json) -> Json {
    for (k, v) in b.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}
