//! `parse-bench`: Tendon vs the `hl7-parser` crate vs Medplum's `Hl7Message`,
//! side by side on the same workload and the same field reads.
//!
//! Every peer runs several time-boxed rounds over the whole workload; the
//! peers take turns inside each round (the order rotates), so machine noise
//! hits all of them. Reported figures are the median round. Medplum runs in a
//! node child process (`medplum/bench.mjs --serve`) driven round by round
//! over stdin/stdout, and times its own loop.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tendon_bench::{
    BIG_NAME, Hl7ParserPeer, READ_PATHS, big_message, default_corpus_dir, load_corpus, median,
    options_or_exit, parse_options, repo_root, target_dir, tendon_peer,
};

const USAGE: &str = "\
usage: parse-bench [options]
  --corpus DIR          HL7 corpus (*.hl7); default $TENDON_SAMPLES or <repo>/tests/fixtures/hl7/conformance
  --peer P              tendon | hl7-parser | medplum | all (default: all; medplum is
                        skipped with a warning when its node deps are not installed)
  --json                print one JSON document instead of the table
  --verbose, -v         also print per-peer read statistics
  --quick               3 rounds of 0.1 s (smoke run)
  --rounds N            rounds per peer (default 7)
  --round-secs S        length of one round per peer in seconds (default 0.5)
  --big-out PATH        where the synthetic message is written (default <target>/bench/big.hl7)
  --node-dir DIR        npm prefix holding @medplum/core (default <target>/bench-node)
  --medplum-script F    default <repo>/infra/bench/medplum/bench.mjs
  --node BIN            node executable (default: node)
  --list-files          print the workload file list and exit";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Tendon,
    Hl7Parser,
    Medplum,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Tendon => "tendon",
            Peer::Hl7Parser => "hl7-parser",
            Peer::Medplum => "medplum",
        }
    }
}

struct Options {
    corpus: PathBuf,
    peers: Vec<Peer>,
    peer_all: bool,
    json: bool,
    verbose: bool,
    rounds: usize,
    round_secs: f64,
    big_out: PathBuf,
    node_dir: PathBuf,
    medplum_script: PathBuf,
    node: String,
    list_files: bool,
}

fn parse_args() -> Result<Options, String> {
    let defaults = Options {
        corpus: default_corpus_dir(),
        peers: vec![Peer::Tendon, Peer::Hl7Parser, Peer::Medplum],
        peer_all: true,
        json: false,
        verbose: false,
        rounds: 7,
        round_secs: 0.5,
        big_out: target_dir().join("bench").join("big.hl7"),
        node_dir: target_dir().join("bench-node"),
        medplum_script: repo_root().join("infra/bench/medplum/bench.mjs"),
        node: "node".to_owned(),
        list_files: false,
    };
    parse_options(USAGE, defaults, |o, arg, args| {
        match arg {
            "--corpus" => o.corpus = args.value("--corpus")?.into(),
            "--peer" => {
                let p = args.value("--peer")?;
                o.peer_all = p == "all";
                o.peers = match p.as_str() {
                    "all" => vec![Peer::Tendon, Peer::Hl7Parser, Peer::Medplum],
                    "tendon" => vec![Peer::Tendon],
                    "hl7-parser" => vec![Peer::Hl7Parser],
                    "medplum" => vec![Peer::Medplum],
                    other => return Err(format!("unknown peer {other:?}")),
                };
            }
            "--json" => o.json = true,
            "--verbose" | "-v" => o.verbose = true,
            "--quick" => {
                o.rounds = 3;
                o.round_secs = 0.1;
            }
            "--rounds" => {
                o.rounds = args
                    .value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?;
                if o.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--round-secs" => {
                o.round_secs = args
                    .value("--round-secs")?
                    .parse()
                    .map_err(|e| format!("--round-secs: {e}"))?;
                if o.round_secs.is_nan() || o.round_secs <= 0.0 {
                    return Err("--round-secs must be positive".into());
                }
            }
            "--big-out" => o.big_out = args.value("--big-out")?.into(),
            "--node-dir" => o.node_dir = args.value("--node-dir")?.into(),
            "--medplum-script" => o.medplum_script = args.value("--medplum-script")?.into(),
            "--node" => o.node = args.value("--node")?,
            "--list-files" => o.list_files = true,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
        Ok(())
    })
}

/// One workload entry.
struct Msg {
    name: String,
    bytes: Vec<u8>,
}

/// One timed round of one peer.
#[derive(Debug, Clone, Copy)]
struct Round {
    passes: u64,
    secs: f64,
}

/// Everything known about one peer after the run.
struct PeerResult {
    peer: Peer,
    rounds: Vec<Round>,
    checksum: u64,
    values: Option<u64>,
    failures: Vec<(String, String)>,
    notes: Vec<String>,
}

/// Run `f` over the whole workload until `secs` have elapsed (whole passes).
fn time_round(workload: &[&[u8]], secs: f64, mut f: impl FnMut(&[u8]) -> usize) -> Round {
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut passes = 0u64;
    let mut acc = 0usize;
    loop {
        for msg in workload {
            acc = acc.wrapping_add(f(black_box(*msg)));
        }
        passes += 1;
        if start.elapsed() >= budget {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    black_box(acc);
    Round { passes, secs }
}

/// The strings of a JSON array (none if `v` is not one).
fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The Medplum peer: a node child process answering one request per round.
struct NodePeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl NodePeer {
    fn start(
        o: &Options,
        corpus_files: &[String],
        workload_bytes: usize,
    ) -> Result<(Self, Value), String> {
        let mut child = Command::new(&o.node)
            .arg(&o.medplum_script)
            .arg("--serve")
            .arg("--corpus")
            .arg(&o.corpus)
            .arg("--big")
            .arg(&o.big_out)
            .arg("--node-dir")
            .arg(&o.node_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", o.node))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut peer = NodePeer {
            child,
            stdin,
            stdout,
        };
        let ready = peer.read_reply()?;
        // Refuse to compare unless node measures exactly the same thing.
        let reads = strings(&ready["reads"]);
        if reads != READ_PATHS {
            return Err(format!(
                "bench.mjs reads {reads:?}, parse-bench reads {READ_PATHS:?}"
            ));
        }
        let files = strings(&ready["files"]);
        if files != corpus_files {
            return Err(format!(
                "bench.mjs found files {files:?}, parse-bench {corpus_files:?}"
            ));
        }
        if ready["bytes"].as_u64() != Some(workload_bytes as u64) {
            return Err(format!(
                "bench.mjs workload is {} bytes, parse-bench {workload_bytes}",
                ready["bytes"]
            ));
        }
        Ok((peer, ready))
    }

    fn read_reply(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| format!("reading from bench.mjs: {e}"))?;
        if n == 0 {
            return Err("bench.mjs exited early".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("bad reply from bench.mjs ({e}): {line}"))
    }

    fn round(&mut self, secs: f64) -> Result<Round, String> {
        writeln!(self.stdin, "round {secs}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("writing to bench.mjs: {e}"))?;
        let reply = self.read_reply()?;
        match (reply["passes"].as_u64(), reply["secs"].as_f64()) {
            (Some(passes), Some(secs)) => Ok(Round { passes, secs }),
            _ => Err(format!("bad round reply from bench.mjs: {reply}")),
        }
    }

    fn quit(self) {
        let NodePeer {
            mut child,
            mut stdin,
            ..
        } = self;
        let _ = writeln!(stdin, "quit");
        let _ = stdin.flush();
        drop(stdin);
        let _ = child.wait();
    }
}

fn medplum_installed(o: &Options) -> bool {
    o.node_dir
        .join("node_modules/@medplum/core/package.json")
        .is_file()
}

fn group_thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn main() {
    let o = options_or_exit("parse-bench", parse_args());
    if let Err(e) = run(o) {
        eprintln!("parse-bench: {e}");
        std::process::exit(1);
    }
}

fn run(o: Options) -> Result<(), String> {
    // Workload: the corpus, then the synthetic message (also written to disk
    // so the node peer reads identical bytes).
    let corpus = load_corpus(&o.corpus)
        .map_err(|e| format!("cannot read corpus {}: {e}", o.corpus.display()))?;
    if corpus.is_empty() {
        return Err(format!("no *.hl7 files in {}", o.corpus.display()));
    }
    let big = big_message();
    if let Some(dir) = o.big_out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&o.big_out, &big).map_err(|e| format!("{}: {e}", o.big_out.display()))?;

    let corpus_names: Vec<String> = corpus.iter().map(|(n, _)| n.clone()).collect();
    let mut msgs: Vec<Msg> = corpus
        .into_iter()
        .map(|(name, bytes)| Msg { name, bytes })
        .collect();
    msgs.push(Msg {
        name: BIG_NAME.to_owned(),
        bytes: big,
    });
    if o.list_files {
        for name in &corpus_names {
            println!("{}", o.corpus.join(name).display());
        }
        println!("{}", o.big_out.display());
        return Ok(());
    }
    let workload: Vec<&[u8]> = msgs.iter().map(|m| m.bytes.as_slice()).collect();
    let pass_bytes: usize = workload.iter().map(|m| m.len()).sum();
    let pass_msgs = workload.len() as u64;

    let mut warnings = Vec::new();
    let mut peers = o.peers.clone();
    if o.peer_all && !medplum_installed(&o) {
        warnings.push(format!(
            "medplum skipped: no @medplum/core under {} (infra/bench/parse installs it)",
            o.node_dir.display()
        ));
        peers.retain(|p| *p != Peer::Medplum);
    }

    // Correctness pass (untimed): checksums, failures, and a warm-up.
    let mut results: Vec<PeerResult> = Vec::new();
    let mut node: Option<NodePeer> = None;
    let mut hl7p = Hl7ParserPeer::new();
    for &peer in &peers {
        let mut r = PeerResult {
            peer,
            rounds: Vec::new(),
            checksum: 0,
            values: None,
            failures: Vec::new(),
            notes: Vec::new(),
        };
        match peer {
            Peer::Tendon => {
                r.checksum = workload.iter().map(|m| tendon_peer(m) as u64).sum();
            }
            Peer::Hl7Parser => {
                let mut values = 0u64;
                for m in &msgs {
                    match hl7p.check(&m.bytes) {
                        Ok((tally, stopped_at)) => {
                            r.checksum += tally.bytes as u64;
                            values += tally.values as u64;
                            if let Some(at) = stopped_at {
                                r.notes.push(format!(
                                    "{}: parse returned Ok but stopped at byte {at} of {}",
                                    m.name,
                                    m.bytes.len()
                                ));
                            }
                        }
                        Err(e) => r.failures.push((m.name.clone(), e)),
                    }
                }
                r.values = Some(values);
            }
            Peer::Medplum => {
                let (peer, ready) = NodePeer::start(&o, &corpus_names, pass_bytes)?;
                node = Some(peer);
                r.checksum = ready["checksum"].as_u64().unwrap_or(0);
                r.values = ready["values"].as_u64();
                if let Some(v) = ready["version"].as_str() {
                    r.notes.push(format!(
                        "@medplum/core {v} on node {}",
                        ready["node"].as_str().unwrap_or("?")
                    ));
                }
                for f in ready["failures"].as_array().into_iter().flatten() {
                    r.failures.push((
                        f["file"].as_str().unwrap_or("?").to_owned(),
                        f["error"].as_str().unwrap_or("?").to_owned(),
                    ));
                }
            }
        }
        results.push(r);
    }

    // Warm-up round (discarded), then the measured rounds, interleaved.
    for round in 0..=o.rounds {
        let secs = if round == 0 {
            (o.round_secs / 2.0).max(0.05)
        } else {
            o.round_secs
        };
        let n = results.len();
        for k in 0..n {
            let idx = (k + round) % n;
            let measured = match results[idx].peer {
                Peer::Tendon => time_round(&workload, secs, tendon_peer),
                Peer::Hl7Parser => time_round(&workload, secs, |m| match hl7p.run(m) {
                    Ok(t) => t.bytes,
                    Err(_) => 1,
                }),
                Peer::Medplum => node.as_mut().expect("node started").round(secs)?,
            };
            if round > 0 {
                results[idx].rounds.push(measured);
            }
        }
    }
    if let Some(node) = node {
        node.quit();
    }

    // Report.
    let rate = |r: &Round| (r.passes * pass_msgs) as f64 / r.secs;
    let mb_per_msg = pass_bytes as f64 / pass_msgs as f64 / 1e6;
    let med = |p: Peer| {
        results
            .iter()
            .find(|r| r.peer == p)
            .map(|r| median(r.rounds.iter().map(rate).collect()))
    };
    let ratio = |other: Peer| match (med(Peer::Tendon), med(other)) {
        (Some(t), Some(x)) if x > 0.0 => format!("{:.1}x", t / x),
        _ => "n/a".to_owned(),
    };
    let ratio_line = format!(
        "tendon/hl7-parser = {}, tendon/medplum = {}",
        ratio(Peer::Hl7Parser),
        ratio(Peer::Medplum)
    );

    if o.json {
        let mut peers_json = serde_json::Map::new();
        for r in &results {
            let rates: Vec<f64> = r.rounds.iter().map(rate).collect();
            let m = median(rates.clone());
            peers_json.insert(
                r.peer.name().to_owned(),
                json!({
                    "msgs_per_s": m,
                    "mb_per_s": m * mb_per_msg,
                    "rounds_msgs_per_s": rates,
                    "checksum": r.checksum,
                    "values": r.values,
                    "failures": r.failures.iter().map(|(f, e)| json!({"file": f, "error": e})).collect::<Vec<_>>(),
                    "notes": r.notes,
                }),
            );
        }
        let doc = json!({
            "workload": {
                "corpus": o.corpus.display().to_string(),
                "big": o.big_out.display().to_string(),
                "messages": pass_msgs,
                "bytes": pass_bytes,
                "files": msgs.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            },
            "reads": READ_PATHS,
            "rounds": o.rounds,
            "round_secs": o.round_secs,
            "statistic": "median round",
            "peers": peers_json,
            "warnings": warnings,
            "ratio_line": ratio_line,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        return Ok(());
    }

    for w in &warnings {
        println!("warning: {w}");
    }
    println!(
        "workload: {} messages per pass ({} corpus files from {} + 1 synthetic SIU^S12 of {} bytes), {:.3} MB per pass",
        pass_msgs,
        pass_msgs - 1,
        o.corpus.display(),
        msgs.last().map_or(0, |m| m.bytes.len()),
        pass_bytes as f64 / 1e6
    );
    println!(
        "method: parse + {} escape-decoded field reads per message; {} rounds x {}s per peer, interleaved; median round (MB = 10^6 bytes)",
        READ_PATHS.len(),
        o.rounds,
        o.round_secs
    );
    println!();
    println!(
        "{:<11} {:>12} {:>9}  {:>25}  {:>9}  {:>8}",
        "peer", "msgs/s", "MB/s", "msgs/s range (min..max)", "checksum", "failures"
    );
    for r in &results {
        let rates: Vec<f64> = r.rounds.iter().map(rate).collect();
        let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rates.iter().copied().fold(0.0, f64::max);
        let m = median(rates);
        println!(
            "{:<11} {:>12} {:>9.1}  {:>25}  {:>9}  {:>8}",
            r.peer.name(),
            group_thousands(m),
            m * mb_per_msg,
            format!("{}..{}", group_thousands(lo), group_thousands(hi)),
            r.checksum,
            r.failures.len()
        );
    }
    println!();
    for r in &results {
        for (file, err) in &r.failures {
            println!("{} failed on {file}: {err}", r.peer.name());
        }
        for note in &r.notes {
            println!("{}: {note}", r.peer.name());
        }
        if o.verbose {
            let values = r.values.map_or("n/a".to_owned(), |v| v.to_string());
            println!(
                "{}: checksum {} (tendon: fields present; others: decoded bytes), {} non-empty values per pass",
                r.peer.name(),
                r.checksum,
                values
            );
        }
    }
    println!("{ratio_line}");
    Ok(())
}
