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

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tendon_bench::{repo_root, target_dir};

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
    let mut o = Options {
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
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{name}: not a valid number: {v}"))
        }
        match arg.as_str() {
            "--tendon" => o.tendon = PathBuf::from(value("--tendon")?),
            "--example" => o.example = PathBuf::from(value("--example")?),
            "--dir" => o.dir = PathBuf::from(value("--dir")?),
            "--mode" => {
                o.mode = match value("--mode")?.as_str() {
                    "throughput" => Mode::Throughput,
                    "latency" => Mode::Latency,
                    "both" => Mode::Both,
                    other => return Err(format!("--mode: unknown mode {other}")),
                }
            }
            "--runs" => o.runs = num("--runs", value("--runs")?)?,
            "--messages" => o.messages = num("--messages", value("--messages")?)?,
            "--clients" => o.clients = num("--clients", value("--clients")?)?,
            "--rate" => o.rate = num("--rate", value("--rate")?)?,
            "--secs" => o.secs = num("--secs", value("--secs")?)?,
            "--senders" => o.senders = num("--senders", value("--senders")?)?,
            "--poll-ms" => o.poll = Duration::from_millis(num("--poll-ms", value("--poll-ms")?)?),
            "--timeout" => o.timeout = Duration::from_secs(num("--timeout", value("--timeout")?)?),
            "--quick" => {
                o.runs = 1;
                o.messages = 1000;
                o.secs = 5.0;
            }
            "--keep" => o.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if o.runs == 0 || o.messages == 0 || o.clients == 0 || o.senders == 0 {
        return Err("--runs, --messages, --clients and --senders must be at least 1".into());
    }
    if !(o.rate > 0.0 && o.secs > 0.0) {
        return Err("--rate and --secs must be positive".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------- time

/// Wall clock in Unix nanoseconds: comparable with the server's timestamps
/// (same machine, same clock).
fn wall_ns() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 instant (`2026-11-20T17:30:00.123456789Z`, or with an offset)
/// as Unix nanoseconds.
fn rfc3339_ns(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (y, mo, da): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (clock, offset_s) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.splitn(3, ':');
    let (h, mi, se): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    let mut nanos = 0i64;
    for (i, c) in frac.chars().take(9).enumerate() {
        nanos += i64::from(c.to_digit(10)?) * 10i64.pow(8 - u32::try_from(i).ok()?);
    }
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    Some(secs * 1_000_000_000 + nanos)
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Dist {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
    n: usize,
}

impl Dist {
    fn of(mut v: Vec<f64>) -> Dist {
        v.sort_by(f64::total_cmp);
        let mean = if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        };
        Dist {
            p50: pct(&v, 50.0),
            p90: pct(&v, 90.0),
            p99: pct(&v, 99.0),
            max: v.last().copied().unwrap_or(f64::NAN),
            mean,
            n: v.len(),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:>8.1}  p90 {:>8.1}  p99 {:>8.1}  max {:>8.1}  mean {:>8.1} ms  (n={})",
            self.p50, self.p90, self.p99, self.max, self.mean, self.n
        )
    }
}

// ---------------------------------------------------------------- CPU

/// (user + system) CPU seconds of a process, from /proc (Linux; 100 ticks/s).
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Busy and total jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> Option<(f64, f64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

struct CpuMark {
    server: Option<f64>,
    client: Option<f64>,
    machine: Option<(f64, f64)>,
    at: Instant,
}

impl CpuMark {
    fn now(server_pid: u32) -> CpuMark {
        CpuMark {
            server: cpu_secs(&server_pid.to_string()),
            client: cpu_secs("self"),
            machine: machine_jiffies(),
            at: Instant::now(),
        }
    }

    /// Server cores, client cores, machine busy fraction since `self`.
    fn since(&self, server_pid: u32) -> (f64, f64, f64) {
        let end = CpuMark::now(server_pid);
        let secs = end.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let d = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (b - a) / secs,
            _ => f64::NAN,
        };
        let machine = match (self.machine, end.machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => (b1 - b0) / (t1 - t0),
            _ => f64::NAN,
        };
        (
            d(self.server, end.server),
            d(self.client, end.client),
            machine,
        )
    }
}

// ---------------------------------------------------------------- server

struct Server {
    child: Child,
    addr: SocketAddr,
    key: String,
    db: PathBuf,
    dir: PathBuf,
    keep: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.keep {
            eprintln!("serve-bench: kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn tendon_cli(o: &Options, db: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(&o.tendon)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("TENDON_BACKEND")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", o.tendon.display()))?;
    if !out.status.success() {
        return Err(format!(
            "tendon {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A fresh database with the walkthrough's org, location and practitioner,
/// and `tendon serve` on it, listening on a free port.
fn start_server(o: &Options, name: &str) -> Result<Server, String> {
    let dir = o.dir.join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let db = dir.join("tendon.db");
    let org = tendon_cli(
        o,
        &db,
        &[
            "org",
            "create",
            "--id",
            ORG,
            "--name",
            "Acme PT",
            "--timezone",
            "America/Los_Angeles",
            "--ie-type",
            "Initial Eval",
            "--json",
        ],
    )?;
    let org: Value =
        serde_json::from_str(&org).map_err(|e| format!("org create --json: not JSON: {e}"))?;
    let key = org["ingest_key"]
        .as_str()
        .ok_or("org create --json: no ingest_key")?
        .to_owned();
    tendon_cli(
        o,
        &db,
        &[
            "location",
            "add",
            "--org",
            ORG,
            "--id",
            "12",
            "--name",
            "Salem Clinic",
        ],
    )?;
    tendon_cli(
        o,
        &db,
        &[
            "practitioner",
            "add",
            "--org",
            ORG,
            "--id",
            "445566",
            "--first",
            "Chidi",
            "--last",
            "Okafor",
        ],
    )?;
    let log = File::create(dir.join("serve.log")).map_err(|e| format!("serve.log: {e}"))?;
    let mut child = Command::new(&o.tendon)
        .arg("--db")
        .arg(&db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("TENDON_BACKEND")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start {} serve: {e}", o.tendon.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout from tendon serve")?;
    let mut server = Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        key,
        db,
        dir,
        keep: o.keep,
    };
    let mut lines = BufReader::new(stdout);
    let mut first = String::new();
    lines
        .read_line(&mut first)
        .map_err(|e| format!("reading tendon serve's stdout: {e}"))?;
    let addr = first
        .trim()
        .strip_prefix("tendon serve listening on http://")
        .ok_or_else(|| format!("unexpected first line from tendon serve: {first:?}"))?;
    server.addr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    // Keep draining stdout so the server never blocks on a full pipe.
    thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = lines.read_to_end(&mut sink);
    });
    Ok(server)
}

// ---------------------------------------------------------------- messages

struct Msg {
    control_id: String,
    body: Vec<u8>,
}

/// `n` distinct messages from the template: new MSH-10, PID-3 (both
/// repetitions), SCH-2 and PV1-19, so each makes a new patient and case.
fn make_messages(template: &str, tag: &str, n: usize) -> Result<Vec<Msg>, String> {
    for token in ["MSG00042", "X-991", "P555", "A9001", "C-42"] {
        if template.matches(token).count() != 1 {
            return Err(format!(
                "the template must hold {token} exactly once (the worked example's IDs)"
            ));
        }
    }
    Ok((0..n)
        .map(|i| {
            let control_id = format!("{tag}{i:07}");
            let body = template
                .replace("MSG00042", &control_id)
                .replace("X-991", &format!("X{tag}{i}"))
                .replace("P555", &format!("P{tag}{i}"))
                .replace("A9001", &format!("A{tag}{i}"))
                .replace("C-42", &format!("C{tag}{i}"));
            Msg {
                control_id,
                body: body.into_bytes(),
            }
        })
        .collect())
}

// ---------------------------------------------------------------- HTTP client

/// One keep-alive HTTP/1.1 connection.
struct Client {
    addr: SocketAddr,
    head: String,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(server: &Server) -> Client {
        Client {
            addr: server.addr,
            head: format!(
                "POST /hl7 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/hl7-v2\r\n",
                server.addr, server.key
            ),
            conn: None,
        }
    }

    /// Posts one body; the status and the response body.
    fn post(&mut self, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        // A kept-alive connection the server closed fails on first use: retry once
        // on a fresh one (ingest is idempotent, so a duplicate is harmless).
        match self.try_post(body) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.conn = None;
                self.try_post(body)
            }
        }
    }

    fn try_post(&mut self, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().ok_or("no connection")?;
        let mut req = Vec::with_capacity(self.head.len() + body.len() + 32);
        req.extend_from_slice(self.head.as_bytes());
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
        conn.get_mut()
            .write_all(&req)
            .map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        if conn
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?
            == 0
        {
            return Err("connection closed".into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        let mut close = false;
        loop {
            line.clear();
            conn.read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?;
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err("chunked responses are not supported".into());
                }
            }
        }
        let length = length.ok_or("no Content-Length in the response")?;
        let mut out = vec![0; length];
        conn.read_exact(&mut out)
            .map_err(|e| format!("read body: {e}"))?;
        if close {
            self.conn = None;
        }
        Ok((status, out))
    }
}

/// An empty string if the reply is a 200 `MSA|AA` for `control_id`, else why not.
fn check_ack(control_id: &str, reply: &Result<(u16, Vec<u8>), String>) -> String {
    match reply {
        Err(e) => e.clone(),
        Ok((status, body)) => {
            let text = String::from_utf8_lossy(body);
            if *status == 200 && text.contains(&format!("MSA|AA|{control_id}")) {
                String::new()
            } else {
                format!("HTTP {status}: {}", text.replace('\r', " | "))
            }
        }
    }
}

/// One POST as the client saw it (wall clock, Unix ns).
#[derive(Clone, Default)]
struct Sent {
    scheduled: i64,
    sent: i64,
    acked: i64,
    error: String,
}

// ---------------------------------------------------------------- the database

fn open_ro(db: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {} read-only: {e}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

#[derive(Default, Clone, Copy)]
struct Counts {
    total: usize,
    processed: usize,
    accepted: usize,
    other: usize,
}

fn status_counts(conn: &Connection) -> Result<Counts, String> {
    let mut stmt = conn
        .prepare_cached("SELECT status, count(*) FROM messages GROUP BY status")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(|e| e.to_string())?;
    let mut c = Counts::default();
    for row in rows {
        let (status, n) = row.map_err(|e| e.to_string())?;
        let n = usize::try_from(n).unwrap_or(0);
        c.total += n;
        match status.as_str() {
            "processed" => c.processed += n,
            "accepted" => c.accepted += n,
            _ => c.other += n,
        }
    }
    Ok(c)
}

/// Polls until `n` messages are processed (or none is left to process once
/// `posting_done` says all were posted). Samples: (wall ns, processed).
fn wait_processed(
    o: &Options,
    server: &Server,
    n: usize,
    posted: &AtomicUsize,
) -> Result<Vec<(i64, usize)>, String> {
    let conn = open_ro(&server.db)?;
    let mut samples = Vec::new();
    let deadline = Instant::now() + o.timeout;
    loop {
        let c = status_counts(&conn)?;
        samples.push((wall_ns(), c.processed));
        let all_posted = posted.load(Ordering::Acquire) >= n;
        if c.processed >= n || (all_posted && c.total >= n && c.accepted == 0) {
            if c.processed < n {
                return Err(format!(
                    "only {} of {n} messages were processed ({} in another state)",
                    c.processed, c.other
                ));
            }
            return Ok(samples);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "timed out: {} stored, {} processed, {} still accepted, {} other",
                c.total, c.processed, c.accepted, c.other
            ));
        }
        thread::sleep(o.poll);
    }
}

/// What the server recorded for one message (Unix ns).
#[derive(Clone, Copy, Default)]
struct Stamps {
    received: i64,
    patient: i64,
    episode: i64,
}

/// Per control ID, the server's stamps; also checks that every message made a
/// patient with a Default and a Case episode.
fn read_stamps(db: &Path, msgs: &[Msg]) -> Result<Vec<Stamps>, String> {
    let conn = open_ro(db)?;
    let sql = |e: rusqlite::Error| e.to_string();
    let mut by_message: std::collections::HashMap<String, (usize, Stamps)> =
        std::collections::HashMap::new();
    let index: std::collections::HashMap<&str, usize> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (m.control_id.as_str(), i))
        .collect();
    {
        let mut stmt = conn
            .prepare("SELECT control_id, id, received_at FROM messages WHERE org = ?1")
            .map_err(sql)?;
        let rows = stmt
            .query_map([ORG], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .map_err(sql)?;
        for row in rows {
            let (cid, id, received) = row.map_err(sql)?;
            if let Some(&i) = cid.as_deref().and_then(|c| index.get(c)) {
                let st = Stamps {
                    received: received.unwrap_or(0),
                    ..Stamps::default()
                };
                by_message.insert(id, (i, st));
            }
        }
    }
    {
        let mut stmt = conn
            .prepare("SELECT json FROM events WHERE org = ?1 ORDER BY seq")
            .map_err(sql)?;
        let rows = stmt
            .query_map([ORG], |r| r.get::<_, String>(0))
            .map_err(sql)?;
        for row in rows {
            let ev: Value = serde_json::from_str(&row.map_err(sql)?).map_err(|e| e.to_string())?;
            let Some((_, st)) = ev["message_id"]
                .as_str()
                .and_then(|m| by_message.get_mut(m))
            else {
                continue;
            };
            let at = ev["at"].as_str().and_then(rfc3339_ns).unwrap_or(0);
            match ev["kind"].as_str() {
                Some("patient_created") => st.patient = at,
                Some("episode_created") => st.episode = at,
                _ => {}
            }
        }
    }
    let mut out = vec![Stamps::default(); msgs.len()];
    for (i, st) in by_message.into_values() {
        out[i] = st;
    }
    let missing = out
        .iter()
        .filter(|s| s.received == 0 || s.patient == 0 || s.episode == 0)
        .count();
    if missing > 0 {
        return Err(format!(
            "{missing} of {} messages lack a stored message, a patient_created or an episode_created event",
            msgs.len()
        ));
    }
    // Each patient: a Default and a Case episode.
    let mut stmt = conn
        .prepare("SELECT json FROM patients WHERE org = ?1")
        .map_err(sql)?;
    let rows = stmt
        .query_map([ORG], |r| r.get::<_, String>(0))
        .map_err(sql)?;
    let (mut patients, mut good) = (0usize, 0usize);
    for row in rows {
        let rec: Value = serde_json::from_str(&row.map_err(sql)?).map_err(|e| e.to_string())?;
        patients += 1;
        let eps = rec["episodes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let defaults = eps
            .iter()
            .filter(|e| e["default"] == Value::Bool(true))
            .count();
        if eps.len() == 2 && defaults == 1 {
            good += 1;
        }
    }
    if patients != msgs.len() || good != patients {
        return Err(format!(
            "expected {} patients each with a Default and a Case episode; found {patients} patients, {good} of them so",
            msgs.len()
        ));
    }
    Ok(out)
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
    let msgs = Arc::new(make_messages(template, &format!("T{run}"), n)?);
    let server = start_server(o, &format!("throughput-{run}"))?;
    let next = Arc::new(AtomicUsize::new(0));
    let posted = Arc::new(AtomicUsize::new(0));
    let cpu = CpuMark::now(server.child.id());
    let start = wall_ns();
    let handles: Vec<_> = (0..o.clients)
        .map(|_| {
            let (msgs, next, posted) = (Arc::clone(&msgs), Arc::clone(&next), Arc::clone(&posted));
            let mut client = Client::new(&server);
            thread::spawn(move || {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= msgs.len() {
                        break;
                    }
                    let sent = wall_ns();
                    let reply = client.post(&msgs[i].body);
                    let acked = wall_ns();
                    let error = check_ack(&msgs[i].control_id, &reply);
                    posted.fetch_add(1, Ordering::Release);
                    out.push((
                        i,
                        Sent {
                            scheduled: sent,
                            sent,
                            acked,
                            error,
                        },
                    ));
                }
                out
            })
        })
        .collect();
    let waited = wait_processed(o, &server, n, &posted);
    let (server_cores, client_cores, machine_busy) = cpu.since(server.child.id());
    let mut sent = vec![Sent::default(); n];
    for h in handles {
        for (i, s) in h.join().map_err(|_| "a client thread panicked")? {
            sent[i] = s;
        }
    }
    report_errors(&sent)?;
    let samples = waited?;
    let stamps = read_stamps(&server.db, &msgs)?;
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
    let msgs = Arc::new(make_messages(template, &format!("L{run}"), n)?);
    let server = start_server(o, &format!("latency-{run}"))?;
    let posted = Arc::new(AtomicUsize::new(0));
    let cpu = CpuMark::now(server.child.id());
    let period = Duration::from_secs_f64(1.0 / o.rate);
    // Connect (and warm) every sender before the clock starts.
    let t0 = Instant::now() + Duration::from_millis(200);
    let handles: Vec<_> = (0..o.senders)
        .map(|k| {
            let (msgs, posted) = (Arc::clone(&msgs), Arc::clone(&posted));
            let mut client = Client::new(&server);
            let senders = o.senders;
            thread::spawn(move || {
                let mut out = Vec::new();
                for i in (k..msgs.len()).step_by(senders) {
                    let due = t0 + period.mul_f64(i as f64);
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                    }
                    // The scheduled time on the wall clock.
                    let late = Instant::now().saturating_duration_since(due);
                    let sent = wall_ns();
                    let scheduled = sent - i64::try_from(late.as_nanos()).unwrap_or(0);
                    let reply = client.post(&msgs[i].body);
                    let acked = wall_ns();
                    let error = check_ack(&msgs[i].control_id, &reply);
                    posted.fetch_add(1, Ordering::Release);
                    out.push((
                        i,
                        Sent {
                            scheduled,
                            sent,
                            acked,
                            error,
                        },
                    ));
                }
                out
            })
        })
        .collect();
    let waited = wait_processed(o, &server, n, &posted);
    let (server_cores, client_cores, _) = cpu.since(server.child.id());
    let mut sent = vec![Sent::default(); n];
    for h in handles {
        for (i, s) in h.join().map_err(|_| "a sender thread panicked")? {
            sent[i] = s;
        }
    }
    report_errors(&sent)?;
    waited?;
    let stamps = read_stamps(&server.db, &msgs)?;
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
