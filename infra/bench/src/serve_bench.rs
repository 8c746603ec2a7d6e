//! `serve-bench`: end-to-end benchmark of `tendon serve` (the local embedded
//! mode), from `POST /hl7` to the patient and its episodes persisted.
//!
//! It builds nothing: it drives an existing `tendon` binary. Each phase of
//! each run gets a fresh database and a fresh `tendon serve` on a free port:
//!
//! - **throughput**: `--clients` threads (keep-alive HTTP/1.1) post
//!   `--messages` distinct SIU^S12 messages as fast as they are acknowledged;
//!   the clock runs from the first POST to the last `episode_created` event
//!   (the episode-step commit of the last message), and the messages table is
//!   polled read-only until every message is `processed`.
//! - **latency**: an open-loop offered load of `--rate` messages/s for
//!   `--secs` seconds from `--senders` threads (each message is sent at its
//!   scheduled time whatever happened to earlier ones); per message, POST send
//!   time to its `episode_created` event's `at`.
//!
//! Every message is built from `examples/worked-example.hl7` with its own
//! control ID (MSH-10), patient IDs (PID-3), appointment ID (SCH-2) and case
//! ID (PV1-19), so each one creates a patient with its Default EOC and a Case
//! EOC. Every ACK must be `MSA|AA`, and afterwards the database must hold one
//! patient with two episodes, one `patient_created` and one `episode_created`
//! event per message.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tendon_bench::{parse_options, repo_root, target_dir};

// The modules live in serve_bench/ beside this file (a binary's root
// would look for them in src/).
#[path = "serve_bench/db.rs"]
mod db;
#[path = "serve_bench/measure.rs"]
mod measure;
#[path = "serve_bench/server.rs"]
mod server;

use db::{Stamps, read_stamps, wait_processed};
use measure::{CpuMark, Dist, median, ms, wall_ns};
use server::{Client, Msg, Sent, Server, make_messages, start_server};

const USAGE: &str = "\
usage: serve-bench [options]
  --tendon PATH      the tendon binary (default <target>/release/tendon)
  --example PATH     message template (default <repo>/examples/worked-example.hl7)
  --dir DIR          where the temporary databases go (default <target>/bench/serve)
  --mode M           throughput | latency | both (default both)
  --runs R           runs of each phase; figures are medians (default 3)
  --messages N       throughput: messages to post (default 5000)
  --clients C        throughput: concurrent client connections (default 8)
  --rate R           latency: offered load in messages/s (default 100)
  --secs S           latency: how long the load is offered (default 20)
  --senders T        latency: sender threads, one connection each (default 8)
  --poll-ms MS       status poll interval (default 50)
  --timeout S        give up waiting for processing after S seconds (default 300)
  --quick            smoke run: 1 run, 1000 messages, 5 s of latency load
  --keep             keep the databases and serve logs
The server inherits the environment (e.g. RUST_LOG=warn quiets its per-message logs).";

const ORG: &str = "ACME01";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Throughput,
    Latency,
    Both,
}

struct Options {
    tendon: PathBuf,
    example: PathBuf,
    dir: PathBuf,
    mode: Mode,
    runs: usize,
    messages: usize,
    clients: usize,
    rate: f64,
    secs: f64,
    senders: usize,
    poll: Duration,
    timeout: Duration,
    keep: bool,
}

fn parse_args() -> Result<Options, String> {
    let defaults = Options {
        tendon: target_dir().join("release/tendon"),
        example: repo_root().join("examples/worked-example.hl7"),
        dir: target_dir().join("bench/serve"),
        mode: Mode::Both,
        runs: 3,
        messages: 5000,
        clients: 8,
        rate: 100.0,
        secs: 20.0,
        senders: 8,
        poll: Duration::from_millis(50),
        timeout: Duration::from_secs(300),
        keep: false,
    };
    let o = parse_options(USAGE, defaults, |o, arg, args| {
        match arg {
            "--tendon" => o.tendon = PathBuf::from(args.value("--tendon")?),
            "--example" => o.example = PathBuf::from(args.value("--example")?),
            "--dir" => o.dir = PathBuf::from(args.value("--dir")?),
            "--mode" => {
                o.mode = match args.value("--mode")?.as_str() {
                    "throughput" => Mode::Throughput,
                    "latency" => Mode::Latency,
                    "both" => Mode::Both,
                    other => return Err(format!("--mode: unknown mode {other}")),
                }
            }
            "--runs" => o.runs = args.number("--runs")?,
            "--messages" => o.messages = args.number("--messages")?,
            "--clients" => o.clients = args.number("--clients")?,
            "--rate" => o.rate = args.number("--rate")?,
            "--secs" => o.secs = args.number("--secs")?,
            "--senders" => o.senders = args.number("--senders")?,
            "--poll-ms" => o.poll = Duration::from_millis(args.number("--poll-ms")?),
            "--timeout" => o.timeout = Duration::from_secs(args.number("--timeout")?),
            "--quick" => {
                o.runs = 1;
                o.messages = 1000;
                o.secs = 5.0;
            }
            "--keep" => o.keep = true,
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
        Ok(())
    })?;
    if o.runs == 0 || o.messages == 0 || o.clients == 0 || o.senders == 0 {
        return Err("--runs, --messages, --clients and --senders must be at least 1".into());
    }
    if !(o.rate > 0.0 && o.secs > 0.0) {
        return Err("--rate and --secs must be positive".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------- a phase

/// The POSTs of one sender thread: (message index, how it went).
type Sends = Vec<(usize, Sent)>;

/// One run of a phase: its messages, its own server, how many POSTs were
/// answered, and the CPU mark at its start.
struct Phase {
    msgs: Arc<Vec<Msg>>,
    server: Server,
    posted: Arc<AtomicUsize>,
    cpu: CpuMark,
}

/// A phase's load once processed: every POST by message index, what the
/// server recorded for each message, the processed counts polled, and the
/// CPU use (`CpuMark::since`).
struct Loaded {
    sent: Vec<Sent>,
    stamps: Vec<Stamps>,
    samples: Vec<(i64, usize)>,
    cpu: (f64, f64, f64),
}

impl Phase {
    /// `n` messages tagged `tag`, and a fresh server named `name`.
    fn start(
        o: &Options,
        template: &str,
        tag: &str,
        name: &str,
        n: usize,
    ) -> Result<Phase, String> {
        let msgs = Arc::new(make_messages(template, tag, n)?);
        let server = start_server(o, name)?;
        let posted = Arc::new(AtomicUsize::new(0));
        let cpu = CpuMark::now(server.child.id());
        Ok(Phase {
            msgs,
            server,
            posted,
            cpu,
        })
    }

    /// Starts `count` sender threads, each with a client of its own: thread
    /// `k` runs `send(k, client, messages, posted)`.
    fn spawn_senders<F>(&self, count: usize, send: F) -> Vec<thread::JoinHandle<Sends>>
    where
        F: Fn(usize, &mut Client, &[Msg], &AtomicUsize) -> Sends + Clone + Send + 'static,
    {
        (0..count)
            .map(|k| {
                let (msgs, posted) = (Arc::clone(&self.msgs), Arc::clone(&self.posted));
                let send = send.clone();
                let mut client = Client::new(&self.server);
                thread::spawn(move || send(k, &mut client, &msgs, &posted))
            })
            .collect()
    }

    /// Waits until the server processed the messages, then joins the
    /// `senders` (`panicked` is the error if one panicked), refuses any reply
    /// that was not `MSA|AA`, and reads the server's stamps.
    fn finish(
        &self,
        o: &Options,
        senders: Vec<thread::JoinHandle<Sends>>,
        panicked: &str,
    ) -> Result<Loaded, String> {
        let n = self.msgs.len();
        let waited = wait_processed(o, &self.server, n, &self.posted);
        let cpu = self.cpu.since(self.server.child.id());
        let mut sent = vec![Sent::default(); n];
        for h in senders {
            for (i, s) in h.join().map_err(|_| panicked.to_owned())? {
                sent[i] = s;
            }
        }
        report_errors(&sent)?;
        let samples = waited?;
        let stamps = read_stamps(&self.server.db, &self.msgs)?;
        Ok(Loaded {
            sent,
            stamps,
            samples,
            cpu,
        })
    }
}

// ---------------------------------------------------------------- throughput

struct Throughput {
    e2e_rate: f64,
    ingest_rate: f64,
    e2e_secs: f64,
    ingest_secs: f64,
    processed_at_ingest_end: usize,
    drain_rate: f64,
    ack: Dist,
    server_cores: f64,
    client_cores: f64,
    machine_busy: f64,
    poll_lag_ms: f64,
}

fn run_throughput(o: &Options, template: &str, run: usize) -> Result<Throughput, String> {
    let n = o.messages;
    let (tag, name) = (format!("T{run}"), format!("throughput-{run}"));
    let phase = Phase::start(o, template, &tag, &name, n)?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = wall_ns();
    let handles = phase.spawn_senders(o.clients, move |_, client, msgs, posted| {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= msgs.len() {
                break;
            }
            out.push((i, client.send(&msgs[i], Duration::ZERO, posted)));
        }
        out
    });
    let loaded = phase.finish(o, handles, "a client thread panicked")?;
    let (sent, stamps, samples) = (&loaded.sent, &loaded.stamps, &loaded.samples);
    let (server_cores, client_cores, machine_busy) = loaded.cpu;
    let first = sent.iter().map(|s| s.sent).min().unwrap_or(start);
    let last_ack = sent.iter().map(|s| s.acked).max().unwrap_or(start);
    let last_eoc = stamps.iter().map(|s| s.episode).max().unwrap_or(start);
    let seen_done = samples.last().map_or(last_eoc, |s| s.0);
    let processed_at_ingest_end = samples
        .iter()
        .rev()
        .find(|(t, _)| *t <= last_ack)
        .map_or(0, |s| s.1);
    let e2e_secs = (last_eoc - first) as f64 / 1e9;
    let ingest_secs = (last_ack - first) as f64 / 1e9;
    let drain_secs = (last_eoc - last_ack) as f64 / 1e9;
    Ok(Throughput {
        e2e_rate: n as f64 / e2e_secs,
        ingest_rate: n as f64 / ingest_secs,
        e2e_secs,
        ingest_secs,
        processed_at_ingest_end,
        drain_rate: if drain_secs > 0.0 {
            (n - processed_at_ingest_end) as f64 / drain_secs
        } else {
            f64::NAN
        },
        ack: Dist::of(sent.iter().map(|s| ms(s.acked - s.sent)).collect()),
        server_cores,
        client_cores,
        machine_busy,
        poll_lag_ms: ms(seen_done - last_eoc),
    })
}

fn report_errors(sent: &[Sent]) -> Result<(), String> {
    let bad: Vec<&Sent> = sent.iter().filter(|s| !s.error.is_empty()).collect();
    if bad.is_empty() {
        return Ok(());
    }
    for s in bad.iter().take(3) {
        eprintln!("serve-bench: bad reply: {}", s.error);
    }
    Err(format!(
        "{} of {} POSTs were not answered MSA|AA",
        bad.len(),
        sent.len()
    ))
}

// ---------------------------------------------------------------- latency

struct Latency {
    eoc: Dist,
    eoc_from_schedule: Dist,
    ack: Dist,
    to_received: Dist,
    received_to_patient: Dist,
    patient_to_episode: Dist,
    offered_rate: f64,
    late_sends: usize,
    server_cores: f64,
    client_cores: f64,
}

fn run_latency(o: &Options, template: &str, run: usize) -> Result<Latency, String> {
    let n = ((o.rate * o.secs).round() as usize).max(1);
    let (tag, name) = (format!("L{run}"), format!("latency-{run}"));
    let phase = Phase::start(o, template, &tag, &name, n)?;
    let period = Duration::from_secs_f64(1.0 / o.rate);
    // Connect (and warm) every sender before the clock starts.
    let t0 = Instant::now() + Duration::from_millis(200);
    let senders = o.senders;
    let handles = phase.spawn_senders(senders, move |k, client, msgs, posted| {
        let mut out = Vec::new();
        for i in (k..msgs.len()).step_by(senders) {
            let due = t0 + period.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            // The scheduled time on the wall clock.
            let late = Instant::now().saturating_duration_since(due);
            out.push((i, client.send(&msgs[i], late, posted)));
        }
        out
    });
    let loaded = phase.finish(o, handles, "a sender thread panicked")?;
    let (sent, stamps) = (&loaded.sent, &loaded.stamps);
    let (server_cores, client_cores, _) = loaded.cpu;
    let first = sent.iter().map(|s| s.sent).min().unwrap_or(0);
    let last = sent.iter().map(|s| s.sent).max().unwrap_or(0);
    let pairs = || sent.iter().zip(stamps.iter());
    Ok(Latency {
        eoc: Dist::of(pairs().map(|(s, st)| ms(st.episode - s.sent)).collect()),
        eoc_from_schedule: Dist::of(
            pairs()
                .map(|(s, st)| ms(st.episode - s.scheduled))
                .collect(),
        ),
        ack: Dist::of(sent.iter().map(|s| ms(s.acked - s.sent)).collect()),
        to_received: Dist::of(pairs().map(|(s, st)| ms(st.received - s.sent)).collect()),
        received_to_patient: Dist::of(
            stamps
                .iter()
                .map(|st| ms(st.patient - st.received))
                .collect(),
        ),
        patient_to_episode: Dist::of(
            stamps
                .iter()
                .map(|st| ms(st.episode - st.patient))
                .collect(),
        ),
        offered_rate: if last > first {
            (n - 1) as f64 / ((last - first) as f64 / 1e9)
        } else {
            f64::NAN
        },
        late_sends: sent
            .iter()
            .filter(|s| s.sent - s.scheduled > 5_000_000)
            .count(),
        server_cores,
        client_cores,
    })
}

// ---------------------------------------------------------------- main

fn main() {
    if let Err(e) = run() {
        eprintln!("serve-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let o = parse_args()?;
    if !o.tendon.is_file() {
        return Err(format!(
            "no tendon binary at {} (cargo build --release -p tendon-cli, or --tendon PATH)",
            o.tendon.display()
        ));
    }
    let template = fs::read_to_string(&o.example)
        .map_err(|e| format!("cannot read {}: {e}", o.example.display()))?;
    fs::create_dir_all(&o.dir).map_err(|e| format!("cannot create {}: {e}", o.dir.display()))?;
    println!(
        "serve-bench: {} | {} core(s) | runs {} | db under {} | RUST_LOG={}",
        o.tendon.display(),
        thread::available_parallelism().map_or(0, |n| n.get()),
        o.runs,
        o.dir.display(),
        std::env::var("RUST_LOG").unwrap_or_else(|_| "(unset: serve logs info)".into()),
    );
    let mut tputs = Vec::new();
    let mut lats = Vec::new();
    for run in 1..=o.runs {
        if o.mode != Mode::Latency {
            let t = run_throughput(&o, &template, run)?;
            println!(
                "\nrun {run} throughput: {} messages, {} clients",
                o.messages, o.clients
            );
            println!(
                "  end to end    {:>8.1} msg/s  ({:.2} s from first POST to last episode commit)",
                t.e2e_rate, t.e2e_secs
            );
            println!(
                "  ingest only   {:>8.1} msg/s  ({:.2} s from first POST to last ACK; all MSA|AA)",
                t.ingest_rate, t.ingest_secs
            );
            println!(
                "  processed by the last ACK: {} of {}; backlog drained at {:.1} msg/s afterwards",
                t.processed_at_ingest_end, o.messages, t.drain_rate
            );
            println!("  POST->ACK     {}", t.ack.line());
            println!(
                "  CPU: server {:.2} cores, bench client {:.2} cores, machine {:.0}% busy (poll saw completion {:.0} ms after the last commit)",
                t.server_cores,
                t.client_cores,
                t.machine_busy * 100.0,
                t.poll_lag_ms
            );
            tputs.push(t);
        }
        if o.mode != Mode::Throughput {
            let l = run_latency(&o, &template, run)?;
            println!(
                "\nrun {run} latency: offered {:.1} msg/s (target {}) for {} s, {} senders; {} sends more than 5 ms late",
                l.offered_rate, o.rate, o.secs, o.senders, l.late_sends
            );
            println!("  POST->EOC             {}", l.eoc.line());
            println!("  scheduled->EOC        {}", l.eoc_from_schedule.line());
            println!("  POST->ACK             {}", l.ack.line());
            println!("  POST->ingest stamp    {}", l.to_received.line());
            println!(
                "  ingest->patient_created  {}",
                l.received_to_patient.line()
            );
            println!("  patient->episode_created {}", l.patient_to_episode.line());
            println!(
                "  CPU: server {:.2} cores, bench client {:.2} cores",
                l.server_cores, l.client_cores
            );
            lats.push(l);
        }
    }
    let med = |f: &dyn Fn(&Throughput) -> f64| median(&tputs.iter().map(f).collect::<Vec<_>>());
    let medl = |f: &dyn Fn(&Latency) -> f64| median(&lats.iter().map(f).collect::<Vec<_>>());
    println!("\nmedians over {} run(s):", o.runs);
    if !tputs.is_empty() {
        println!(
            "  throughput: end to end {:.1} msg/s, ingest only {:.1} msg/s, backlog drain {:.1} msg/s, POST->ACK p50 {:.1} ms p99 {:.1} ms, server {:.2} cores",
            med(&|t| t.e2e_rate),
            med(&|t| t.ingest_rate),
            med(&|t| t.drain_rate),
            med(&|t| t.ack.p50),
            med(&|t| t.ack.p99),
            med(&|t| t.server_cores),
        );
    }
    if !lats.is_empty() {
        println!(
            "  latency at {} msg/s: POST->EOC p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; POST->ACK p50 {:.1} ms p99 {:.1} ms",
            o.rate,
            medl(&|l| l.eoc.p50),
            medl(&|l| l.eoc.p90),
            medl(&|l| l.eoc.p99),
            medl(&|l| l.eoc.max),
            medl(&|l| l.ack.p50),
            medl(&|l| l.ack.p99),
        );
    }
    let fmt = |v: f64, prec: usize| {
        if v.is_nan() {
            "n/a".to_owned()
        } else {
            format!("{v:.prec$}")
        }
    };
    println!(
        "serve: throughput = {} msg/s (target >= 500), POST->EOC p50 = {} ms, p99 = {} ms at {} msg/s",
        fmt(med(&|t| t.e2e_rate), 0),
        fmt(medl(&|l| l.eoc.p50), 1),
        fmt(medl(&|l| l.eoc.p99), 1),
        o.rate
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::measure::{pct, rfc3339_ns};
    use super::*;

    #[test]
    fn rfc3339_instants() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_ns("2026-11-20T17:30:00.5Z"),
            Some(1_795_195_800_500_000_000)
        );
        assert_eq!(
            rfc3339_ns("2026-11-20T09:30:00-08:00"),
            rfc3339_ns("2026-11-20T17:30:00Z")
        );
        assert_eq!(
            rfc3339_ns("2000-02-29T00:00:00.000000001Z"),
            Some(951_782_400_000_000_001)
        );
    }

    #[test]
    fn messages_are_distinct() {
        let template = "MSH|x|MSG00042\rSCH|A9001\rPID|X-991~P555\rPV1|C-42\r";
        let m = make_messages(template, "T", 2).expect("template");
        assert_eq!(m[1].control_id, "T0000001");
        assert_eq!(
            String::from_utf8_lossy(&m[1].body),
            "MSH|x|T0000001\rSCH|AT1\rPID|XT1~PT1\rPV1|CT1\r"
        );
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct(&v, 50.0), 50.0);
        assert_eq!(pct(&v, 99.0), 99.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
