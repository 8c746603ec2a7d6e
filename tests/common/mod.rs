//! The one end-to-end harness for both backends: the real `tendon` binary,
//! `tendon serve` over HTTP and the operator commands with `--json`.
//!
//! - [`Tendon`] is one deployment: a fresh SQLite file (local) or freshly
//!   bootstrapped tables and queues on moto (aws), the CLI on it, and
//!   optionally one running `tendon serve`. It waits for outcomes by polling
//!   `messages list` against a deadline, never by sleeping.
//! - [`Clinic`] is one org configured like docs/interface.md §8 (time zone
//!   America/Los_Angeles, IE type `Initial Eval`, location 12, practitioners
//!   445566, 990011 and 778899) with its ingest key.
//! - [`Hl7`] builds SIU and ADT messages from a base (the worked example) with
//!   per-test field overrides; [`Ack`] reads the reply.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub use tendon_testkit::moto;

/// The User-Agent every test deployment sends to Cliniko.
pub const CLINIKO_USER_AGENT: &str = "Tendon e2e (ci@tendon-health.dev)";

/// docs/interface.md §8's worked example, segments ending in CR.
pub use tendon_testkit::acme::WORKED;

/// How long the local workers may take to settle the messages of one org.
pub const LOCAL_DEADLINE: Duration = Duration::from_secs(60);

/// The same on the AWS backend: generous, because moto on 2 busy cores is
/// slow, and a record that fails for a transient reason is rightly left on
/// the queue for redelivery after the visibility timeout (180 s,
/// `template.yaml`).
pub const AWS_DEADLINE: Duration = Duration::from_secs(240);

/// How long one HTTP exchange with `tendon serve` may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The practitioners every [`Clinic`] has: the worked example's treating
/// therapist, a second therapist, and the worked example's supervising one.
pub const PRACTITIONERS: [(&str, &str, &str); 3] = [
    ("445566", "Chidi", "Okafor"),
    ("990011", "Eleanor", "Shellstrop"),
    ("778899", "Minh", "Nguyen"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    Aws,
}

struct Server {
    child: Child,
    /// Held so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    addr: String,
}

/// One deployment of Tendon on one backend, driven through the real binary.
pub struct Tendon {
    pub backend: Backend,
    /// Local: the SQLite file. Both: its `.log` sibling is the server's stderr.
    db: PathBuf,
    /// Aws: the moto endpoint, credentials and the bootstrap's resource names.
    env: Vec<(String, String)>,
    server: Mutex<Option<Server>>,
}

impl Drop for Tendon {
    fn drop(&mut self) {
        if let Ok(Some(server)) = self.server.get_mut() {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db.display()));
        }
        let _ = std::fs::remove_file(self.log_path());
    }
}

impl Tendon {
    /// A fresh deployment on `backend`; `name` tells its files and resources apart.
    pub fn new(backend: Backend, name: &str) -> Tendon {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let db =
            std::env::temp_dir().join(format!("tendon-e2e-{name}-{}-{n}.db", std::process::id()));
        let mut t = Tendon {
            backend,
            db,
            env: Vec::new(),
            server: Mutex::new(None),
        };
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", t.db.display()));
        }
        if backend == Backend::Aws {
            t.env = vec![
                ("AWS_ENDPOINT_URL".into(), moto::moto().endpoint.clone()),
                ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
                ("AWS_REGION".into(), "us-east-1".into()),
                ("TENDON_BACKEND".into(), "aws".into()),
                // moto's SES quota is 1 email/s, which the mailer would pace to.
                ("TENDON_SES_MAX_SEND_RATE".into(), "50".into()),
            ];
            let out = t.ok(&["aws", "bootstrap", "--prefix", &moto::unique_prefix(name)]);
            let vars = out["env"]
                .as_object()
                .expect("bootstrap prints {\"env\":{..}}");
            for (k, v) in vars {
                t.env
                    .push((k.clone(), v.as_str().expect("string values").to_owned()));
            }
        }
        t
    }

    pub fn local(name: &str) -> Tendon {
        Tendon::new(Backend::Local, name)
    }

    pub fn aws(name: &str) -> Tendon {
        Tendon::new(Backend::Aws, name)
    }

    /// Local: the SQLite file (the deliveries table is the outbox).
    pub fn db(&self) -> &std::path::Path {
        &self.db
    }

    fn log_path(&self) -> PathBuf {
        self.db.with_extension("log")
    }

    /// The `tendon` command, pointed at this deployment.
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tendon"));
        c.env_remove("TENDON_DB")
            .env_remove("TENDON_BACKEND")
            // A deployment names itself and its contact to Cliniko.
            .env("TENDON_CLINIKO_USER_AGENT", CLINIKO_USER_AGENT);
        match self.backend {
            Backend::Local => {
                c.arg("--db").arg(&self.db);
            }
            Backend::Aws => {
                c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
        }
        c
    }

    /// Runs a CLI command with `--json`: (success, stdout JSON or Null, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, Json, String) {
        let out = self
            .command()
            .args(args)
            .arg("--json")
            .output()
            .expect("tendon runs");
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
        (
            out.status.success(),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs a CLI command that must succeed and returns its JSON.
    pub fn ok(&self, args: &[&str]) -> Json {
        let (ok, json, err) = self.cli(args);
        assert!(ok, "tendon {args:?} failed: {err}");
        json
    }

    /// Starts `tendon serve` on a free port; returns its address.
    pub fn serve(&mut self) -> String {
        self.serve_with(&[])
    }

    /// Starts `tendon serve` with extra environment variables (the HTTP
    /// timeouts, a broken resource name); returns its address.
    pub fn serve_with(&mut self, env: &[(&str, &str)]) -> String {
        let mut command = self.command();
        command
            .envs(env.iter().copied())
            .args(["serve", "--addr", "127.0.0.1:0"]);
        self.start_server(command)
    }

    /// Starts `tendon serve` through `bash -c '<setup>; exec tendon serve ..'`,
    /// so that the setup (a `ulimit`, a `trap`) applies to the server alone.
    pub fn serve_after(&mut self, setup: &str) -> String {
        let mut serve = self.command();
        serve.args(["serve", "--addr", "127.0.0.1:0"]);
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("{setup}; exec \"$0\" \"$@\""))
            .arg(serve.get_program())
            .args(serve.get_args());
        for (k, v) in serve.get_envs() {
            match v {
                Some(v) => command.env(k, v),
                None => command.env_remove(k),
            };
        }
        self.start_server(command)
    }

    fn start_server(&mut self, mut command: Command) -> String {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.log_path()).expect("a server log file"))
            .spawn()
            .expect("tendon serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("serve prints its URL");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .trim_start_matches("http://")
            .to_owned();
        let server = Server {
            child,
            _stdout: stdout,
            addr: addr.clone(),
        };
        // Stored before the check, so Drop stops the server either way.
        *self.server.lock().unwrap() = Some(server);
        assert!(
            addr.starts_with("127.0.0.1:"),
            "unexpected first line {line:?}; server log:\n{}",
            self.server_log()
        );
        addr
    }

    /// Stops `tendon serve` (and its once-a-minute dispatcher), so that only
    /// the test's own passes send from here on.
    pub fn stop_server(&self) {
        if let Some(mut server) = self.server.lock().unwrap().take() {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
    }

    /// The running server's stderr so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Panics (with the server's log) when the server has exited.
    fn check_server(&self) {
        let mut guard = self.server.lock().unwrap();
        if let Some(server) = guard.as_mut()
            && let Ok(Some(status)) = server.child.try_wait()
        {
            panic!(
                "tendon serve exited ({status}); its log:\n{}",
                self.server_log()
            );
        }
    }

    /// The running server's address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> String {
        self.server
            .lock()
            .unwrap()
            .as_ref()
            .expect("serve() first")
            .addr
            .clone()
    }

    /// POSTs `body` to /hl7 with an optional bearer key: (HTTP status, body).
    pub fn post(&self, key: Option<&str>, body: &[u8]) -> (u16, String) {
        let auth = key
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        self.request("POST", "/hl7", &auth, body)
    }

    /// One HTTP/1.1 exchange with the server: `method path`, extra header
    /// lines (each ending in CRLF) and a body; (HTTP status, body).
    pub fn request(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
        http(&self.addr(), method, path, headers, body)
    }

    /// `messages list --org ORG`, oldest first.
    pub fn messages(&self, org: &str) -> Vec<Json> {
        self.ok(&["messages", "list", "--org", org])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// How long the workers may take to settle an org's messages.
    pub fn deadline(&self) -> Duration {
        match self.backend {
            Backend::Local => LOCAL_DEADLINE,
            Backend::Aws => AWS_DEADLINE,
        }
    }

    /// `messages list --org ORG --mode test`: the org's test-mode messages.
    pub fn test_messages(&self, org: &str) -> Vec<Json> {
        self.ok(&["messages", "list", "--org", org, "--mode", "test"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `messages list --org ORG` until `done` holds, or fails after
    /// [`Tendon::deadline`] saying `what` it waited for.
    pub fn wait_until(&self, org: &str, what: &str, done: impl Fn(&[Json]) -> bool) -> Vec<Json> {
        self.wait_for(org, what, || self.messages(org), done)
    }

    /// Waits until no test-mode message of `org` is still `accepted`.
    pub fn settle_test(&self, org: &str) -> Vec<Json> {
        self.wait_for(
            org,
            "no test-mode message accepted",
            || self.test_messages(org),
            |msgs| msgs.iter().all(|m| m["status"] != "accepted"),
        )
    }

    fn wait_for(
        &self,
        org: &str,
        what: &str,
        list: impl Fn() -> Vec<Json>,
        done: impl Fn(&[Json]) -> bool,
    ) -> Vec<Json> {
        let deadline = Instant::now() + self.deadline();
        loop {
            let msgs = list();
            if done(&msgs) {
                return msgs;
            }
            self.check_server();
            assert!(
                Instant::now() < deadline,
                "org {org}: {what} not reached within {} s: {:#?}",
                self.deadline().as_secs(),
                outcomes(&msgs)
            );
            self.pause();
        }
    }

    /// Between two polls: none locally; on AWS a moment, because every poll
    /// is a process querying moto, which is one busy Python process that the
    /// workers need too.
    pub fn pause(&self) {
        match self.backend {
            Backend::Local => std::thread::yield_now(),
            Backend::Aws => std::thread::sleep(Duration::from_millis(100)),
        }
    }

    /// Waits until no message of `org` is still `accepted` (the workers are done).
    pub fn settle(&self, org: &str) -> Vec<Json> {
        self.wait_until(org, "no message accepted", |msgs| {
            msgs.iter().all(|m| m["status"] != "accepted")
        })
    }

    /// Creates `org` configured like docs/interface.md §8 (see [`Clinic`]).
    pub fn clinic(&self, org: &str) -> Clinic<'_> {
        let created = self.ok(&[
            "org",
            "create",
            "--id",
            org,
            "--name",
            &format!("{org} PT"),
            "--timezone",
            "America/Los_Angeles",
            "--ie-type",
            "Initial Eval",
        ]);
        self.ok(&[
            "location",
            "add",
            "--org",
            org,
            "--id",
            "12",
            "--name",
            "Salem Clinic",
        ]);
        for (id, first, last) in PRACTITIONERS {
            self.ok(&[
                "practitioner",
                "add",
                "--org",
                org,
                "--id",
                id,
                "--first",
                first,
                "--last",
                last,
            ]);
        }
        Clinic {
            t: self,
            org: org.to_owned(),
            key: created["ingest_key"]
                .as_str()
                .expect("org create prints the ingest key")
                .to_owned(),
        }
    }
}

/// One org of a [`Tendon`], with its ingest key.
pub struct Clinic<'t> {
    pub t: &'t Tendon,
    pub org: String,
    pub key: String,
}

impl Clinic<'_> {
    /// The worked example as an S12 from this org, with this control ID.
    pub fn siu(&self, control_id: &str) -> Hl7 {
        Hl7::siu(&self.org, control_id)
    }

    /// A minimal ADT (patient P555, Rivera^Ana) from this org.
    pub fn adt(&self, trigger: &str, control_id: &str) -> Hl7 {
        Hl7::adt(&self.org, trigger, control_id)
    }

    /// POSTs a message with the org's key; it must get a 200 with an ACK.
    pub fn send(&self, msg: &Hl7) -> Ack {
        self.send_raw(msg.text().as_bytes())
    }

    /// POSTs each message in turn; each must be acknowledged `AA` with its
    /// own control ID (MSH-10) and no ERR.
    pub fn send_accepted<'m>(&self, msgs: impl IntoIterator<Item = &'m Hl7>) {
        for msg in msgs {
            let cid = msg.get("MSH-10");
            assert_eq!(self.send(msg).summary(), format!("AA {cid}"));
        }
    }

    pub fn send_raw(&self, body: &[u8]) -> Ack {
        let (status, reply) = self.t.post(Some(&self.key), body);
        assert_eq!(status, 200, "POST /hl7 answered {status}: {reply}");
        Ack::parse(&reply)
    }

    /// Runs a CLI command with `--json` that must succeed.
    pub fn ok(&self, args: &[&str]) -> Json {
        self.t.ok(args)
    }

    pub fn messages(&self) -> Vec<Json> {
        self.t.messages(&self.org)
    }

    pub fn settle(&self) -> Vec<Json> {
        self.t.settle(&self.org)
    }

    /// Settles, then asserts the outcome of every stored message of the org,
    /// in any order (see [`outcomes`]).
    pub fn expect_messages(&self, expected: &[&str]) -> Vec<Json> {
        let msgs = self.settle();
        assert_outcomes(&msgs, expected);
        msgs
    }

    /// `patient show`; the patient must exist.
    pub fn patient(&self, id: &str) -> Json {
        self.t
            .ok(&["patient", "show", "--org", &self.org, "--id", id])
    }

    /// Asserts `patient show` fails because there is no such patient.
    pub fn no_patient(&self, id: &str) {
        let (ok, json, err) = self
            .t
            .cli(&["patient", "show", "--org", &self.org, "--id", id]);
        assert!(
            !ok && err.contains("no patient"),
            "patient {id} should not exist: {json:#} {err}"
        );
    }

    /// `patient list`.
    pub fn patients(&self) -> Vec<Json> {
        self.t
            .ok(&["patient", "list", "--org", &self.org])
            .as_array()
            .cloned()
            .expect("patient list prints an array")
    }

    /// `hl7 inspect FILE --org ORG`: what ingest would map the message to, and
    /// its errors as `code:field` (nothing is stored).
    pub fn inspect(&self, msg: &Hl7) -> (Json, Vec<String>) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let file = std::env::temp_dir().join(format!(
            "tendon-e2e-inspect-{}-{}.hl7",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&file, msg.text()).expect("a temporary message file");
        let path = file.to_string_lossy().into_owned();
        let result = self.t.cli(&["hl7", "inspect", &path, "--org", &self.org]);
        let _ = std::fs::remove_file(&file);
        let (ok, report, err) = result;
        assert!(ok, "hl7 inspect failed: {err}");
        let errors = report["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                issue(
                    e["code"].as_str().unwrap_or("?"),
                    e["field"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        (report, errors)
    }

    /// `messages replay --org ORG` plus `args`; returns `replayed`.
    pub fn replay(&self, args: &[&str]) -> u64 {
        let mut all = vec!["messages", "replay", "--org", &self.org];
        all.extend_from_slice(args);
        let out = self.t.ok(&all);
        out["replayed"]
            .as_u64()
            .unwrap_or_else(|| panic!("replay prints {{\"replayed\":N}}: {out}"))
    }
}

// ---------------------------------------------------------------------------
// Running scenarios.

/// One end-to-end scenario: it gets a deployment and an org of its own name,
/// and asserts the final state it leaves.
pub type Scenario = fn(&Tendon, &str);

/// `(name, scenario)` for each scenario function.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), $name as $crate::common::Scenario)),*]
    };
}

/// Which deployment each scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployments {
    /// One deployment and server for all (scenarios that touch only their org).
    Shared,
    /// A deployment and server each: for scenarios that drive something
    /// global, such as `tendon dispatch --at`, which passes over every org.
    PerScenario,
}

/// Scenarios running at once (each is mostly waiting on the binary and the
/// workers); `TENDON_SCENARIO_THREADS` overrides it.
pub const PARALLEL: usize = 4;

/// Runs the `scenarios` whose name contains `TENDON_SCENARIO` (all when it is
/// unset), `TENDON_SCENARIO_THREADS` at a time, each with the org `ORGnn`
/// (its index), and fails with every failure at the end.
pub fn run_scenarios(
    backend: Backend,
    name: &str,
    scenarios: &[(&str, Scenario)],
    deployments: Deployments,
) {
    let filter = std::env::var("TENDON_SCENARIO").unwrap_or_default();
    let threads = std::env::var("TENDON_SCENARIO_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(PARALLEL);
    let chosen: Vec<(usize, &(&str, Scenario))> = scenarios
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| name.contains(filter.as_str()))
        .collect();
    let started = Instant::now();
    let shared = (deployments == Deployments::Shared).then(|| {
        let mut t = Tendon::new(backend, name);
        t.serve();
        eprintln!("{backend:?}: server up in {:.1?}", started.elapsed());
        t
    });
    let next = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for worker in 0..threads {
            let (shared, chosen, next, failures) = (&shared, &chosen, &next, &failures);
            std::thread::Builder::new()
                .name(format!("{backend:?}-{worker}"))
                .spawn_scoped(s, move || {
                    while let Some((i, (scenario_name, scenario))) =
                        usize::try_from(next.fetch_add(1, Ordering::Relaxed))
                            .ok()
                            .and_then(|n| chosen.get(n))
                    {
                        let org = format!("ORG{i:02}");
                        let began = Instant::now();
                        let deployment = format!("{name}{i}");
                        let result =
                            run_one(backend, &deployment, shared.as_ref(), *scenario, &org);
                        let line = match result {
                            Ok(()) => format!("ok in {:.1?}", began.elapsed()),
                            Err(why) => {
                                let line = format!("FAILED in {:.1?}", began.elapsed());
                                let failure = format!("{scenario_name} ({org}): {why}");
                                failures.lock().unwrap().push(failure);
                                line
                            }
                        };
                        eprintln!("{backend:?} {scenario_name} ({org}): {line}");
                    }
                })
                .expect("a scenario thread");
        }
    });
    let failures = failures.into_inner().unwrap();
    if let Some(t) = &shared
        && !failures.is_empty()
    {
        eprintln!("{backend:?}:{}", server_problems(t));
    }
    let (n, failed) = (chosen.len(), failures.len());
    eprintln!(
        "{backend:?}: {failed} of {n} scenarios failed, in {:.1?}",
        started.elapsed()
    );
    if failed > 0 {
        let all = failures.join("\n\n");
        panic!("{failed} of {n} scenarios failed on the {backend:?} backend:\n\n{all}");
    }
}

/// Runs one scenario on `shared`, or on a deployment of its own named
/// `deployment`; a panic is the failure, with the server's problems when
/// the deployment was its own.
fn run_one(
    backend: Backend,
    deployment: &str,
    shared: Option<&Tendon>,
    scenario: Scenario,
    org: &str,
) -> Result<(), String> {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let own = match shared {
        Some(_) => None,
        None => Some(
            catch_unwind(|| {
                let started = Instant::now();
                let mut t = Tendon::new(backend, deployment);
                t.serve();
                eprintln!(
                    "{backend:?} {deployment}: server up in {:.1?}",
                    started.elapsed()
                );
                t
            })
            .map_err(|panic| format!("no deployment: {}", panic_message(&*panic)))?,
        ),
    };
    let t = shared.or(own.as_ref()).expect("a deployment");
    catch_unwind(AssertUnwindSafe(|| scenario(t, org))).map_err(|panic| {
        let why = panic_message(&*panic);
        match own {
            Some(_) => format!("{why}{}", server_problems(t)),
            None => why,
        }
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// The last warnings and errors of a deployment's server log.
fn server_problems(t: &Tendon) -> String {
    let log = t.server_log();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    format!(
        "\nthe server logged {} warnings and errors; the last ones:\n{}",
        problems.len(),
        problems[problems.len().saturating_sub(20)..].join("\n")
    )
}

/// One HTTP/1.1 exchange with `addr` (`host:port`): `method path`, extra
/// header lines (each ending in CRLF) and a body; (HTTP status, body).
pub fn http(addr: &str, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("the server accepts connections");
    s.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// moto's whole state (`/moto-api/data.json`): what went out through SES
/// (`ses.RawMessage`) and SNS (`sns.SMS`), among the rest.
pub fn moto_state() -> Json {
    let addr = moto::moto().endpoint.trim_start_matches("http://");
    let (status, body) = http(addr, "GET", "/moto-api/data.json", "", b"");
    assert_eq!(status, 200, "moto-api/data.json: {body}");
    serde_json::from_str(&body).expect("data.json is JSON")
}

// ---------------------------------------------------------------------------
// Reading replies and records.

/// An HL7 ACK: MSA-1, MSA-2 and each ERR's code and field (ERR-5.1, ERR-5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub code: String,
    pub control_id: String,
    pub errors: Vec<(String, String)>,
    pub raw: String,
}

impl Ack {
    pub fn parse(reply: &str) -> Ack {
        let segments: Vec<&str> = reply
            .split(['\r', '\n'])
            .filter(|s| !s.is_empty())
            .collect();
        let msh = segments
            .iter()
            .find(|s| s.starts_with("MSH"))
            .unwrap_or_else(|| panic!("no MSH in the reply {reply:?}"));
        let fs = msh.chars().nth(3).unwrap_or('|');
        let cs = msh.chars().nth(4).unwrap_or('^');
        let msa: Vec<&str> = segments
            .iter()
            .find(|s| s.starts_with("MSA"))
            .unwrap_or_else(|| panic!("no MSA in the reply {reply:?}"))
            .split(fs)
            .collect();
        let errors = segments
            .iter()
            .filter(|s| s.starts_with("ERR"))
            .map(|s| {
                let err5 = s.split(fs).nth(5).unwrap_or_default();
                let mut parts = err5.split(cs);
                (
                    parts.next().unwrap_or_default().to_owned(),
                    parts.next().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Ack {
            code: msa.get(1).copied().unwrap_or_default().to_owned(),
            control_id: msa.get(2).copied().unwrap_or_default().to_owned(),
            errors,
            raw: reply.to_owned(),
        }
    }

    /// `MSA-1 MSA-2` then each error as `code:field` (or `code`): `AE M1 missing_field:patient_id`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {}", self.code, self.control_id);
        for (code, field) in &self.errors {
            s.push(' ');
            s.push_str(&issue(code, field));
        }
        s.trim_end().to_owned()
    }
}

fn issue(code: &str, field: &str) -> String {
    if field.is_empty() {
        code.to_owned()
    } else {
        format!("{code}:{field}")
    }
}

/// A stored message as `CONTROL_ID status code:field..` (`-` when it has no control ID).
pub fn outcome(m: &Json) -> String {
    let mut s = format!(
        "{} {}",
        m["control_id"].as_str().unwrap_or("-"),
        m["status"].as_str().unwrap_or("?")
    );
    for e in m["errors"].as_array().into_iter().flatten() {
        s.push(' ');
        s.push_str(&issue(
            e["code"].as_str().unwrap_or("?"),
            e["field"].as_str().unwrap_or_default(),
        ));
    }
    s
}

/// Every message's [`outcome`], sorted.
pub fn outcomes(msgs: &[Json]) -> Vec<String> {
    let mut all: Vec<String> = msgs.iter().map(outcome).collect();
    all.sort();
    all
}

/// Asserts the messages' outcomes are exactly `expected`, in any order.
pub fn assert_outcomes(msgs: &[Json], expected: &[&str]) {
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(outcomes(msgs), want, "messages list outcomes");
}

/// The outcome of the one message with this control ID.
pub fn outcome_of(msgs: &[Json], control_id: &str) -> String {
    let found: Vec<&Json> = msgs
        .iter()
        .filter(|m| m["control_id"] == control_id)
        .collect();
    assert_eq!(found.len(), 1, "one message {control_id}: {msgs:#?}");
    outcome(found[0])
}

fn pick(v: &Json, keys: &[&str]) -> Json {
    Json::Object(
        keys.iter()
            .map(|k| ((*k).to_owned(), v.get(*k).cloned().unwrap_or(Json::Null)))
            .collect(),
    )
}

const EPISODE_KEYS: [&str; 5] = [
    "name",
    "default",
    "case_id",
    "supervising_practitioner_id",
    "status",
];
const APPOINTMENT_KEYS: [&str; 6] = [
    "id",
    "type",
    "start",
    "status",
    "case_id",
    "practitioner_id",
];

/// A patient's episodes (the docs/interface.md §5 keys), the Default first, then by case ID.
pub fn episodes(patient: &Json) -> Vec<Json> {
    let mut eps: Vec<Json> = patient["episodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no episodes in {patient:#}"))
        .iter()
        .map(|e| pick(e, &EPISODE_KEYS))
        .collect();
    eps.sort_by_key(|e| {
        (
            e["default"] != true,
            e["case_id"].as_str().map(str::to_owned),
        )
    });
    eps
}

/// A patient's appointments (the docs/interface.md §5 keys), by ID.
pub fn appointments(patient: &Json) -> Vec<Json> {
    let mut appts: Vec<Json> = patient["appointments"]
        .as_array()
        .unwrap_or_else(|| panic!("no appointments in {patient:#}"))
        .iter()
        .map(|a| pick(a, &APPOINTMENT_KEYS))
        .collect();
    appts.sort_by_key(|a| a["id"].as_str().map(str::to_owned));
    appts
}

/// A patient's demographics: first and last name, birth date, gender, email.
pub fn demographics(patient: &Json) -> Json {
    pick(
        patient,
        &["first_name", "last_name", "birth_date", "gender", "email"],
    )
}

/// The expected Default episode.
pub fn default_episode() -> Json {
    serde_json::json!({
        "name": "Default", "default": true, "case_id": null,
        "supervising_practitioner_id": null, "status": "active",
    })
}

/// An expected Case episode.
pub fn case_episode(name: &str, case_id: &str, supervisor: &str, status: &str) -> Json {
    serde_json::json!({
        "name": name, "default": false, "case_id": case_id,
        "supervising_practitioner_id": supervisor, "status": status,
    })
}

/// An expected appointment.
pub fn appointment(
    id: &str,
    kind: &str,
    start: &str,
    status: &str,
    case_id: &str,
    practitioner: &str,
) -> Json {
    serde_json::json!({
        "id": id, "type": kind, "start": start, "status": status,
        "case_id": case_id, "practitioner_id": practitioner,
    })
}

/// MSA-1 and MSA-2 of an ACK.
pub fn msa(ack: &str) -> (String, String) {
    let a = Ack::parse(ack);
    (a.code, a.control_id)
}

// ---------------------------------------------------------------------------
// Building messages.

/// An HL7 v2 message as segments of fields, built from a base with overrides.
/// Paths are docs/interface.md §3's `SEG-field[.component[.subcomponent]]`, counted
/// from 1 (MSH-1 is the field separator); they address the first segment of
/// that name and the first repetition of the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hl7 {
    segments: Vec<Vec<String>>,
}

/// MSH-7 for `minutes` after 2026-11-20 09:00 in the clinic's zone: the
/// messages' clock for stale-update checks. The bases are at minute 0.
pub fn at(minutes: u32) -> String {
    format!("20261120{:02}{:02}00-0800", 9 + minutes / 60, minutes % 60)
}

impl Hl7 {
    pub fn parse(text: &str) -> Hl7 {
        Hl7 {
            segments: text
                .split(['\r', '\n'])
                .filter(|s| !s.is_empty())
                .map(|s| s.split('|').map(str::to_owned).collect())
                .collect(),
        }
    }

    /// The worked example (an S12 for P555: IE A9001 on case C-42 "Right
    /// Shoulder" at location 12, treating 445566, supervising 778899), sent by
    /// `org` with `control_id` at [`at`]`(0)`.
    pub fn siu(org: &str, control_id: &str) -> Hl7 {
        Hl7::parse(WORKED)
            .set("MSH-4", org)
            .set("MSH-10", control_id)
            .at(0)
    }

    /// A minimal ADT: PID-3 P555 (MR), PID-5 Rivera^Ana, nothing else.
    pub fn adt(org: &str, trigger: &str, control_id: &str) -> Hl7 {
        Hl7::parse(&format!(
            "MSH|^~\\&|EMRGATE|{org}|TENDON|TENDON|{}||ADT^{trigger}|{control_id}|P|2.5.1\r\
             EVN|{trigger}|{}\r\
             PID|1||P555^^^ACME^MR||Rivera^Ana\r",
            at(0),
            at(0)
        ))
    }

    /// Sets the value at `path`, growing the segment as needed.
    pub fn set(mut self, path: &str, value: &str) -> Hl7 {
        let (seg, rest) = path
            .split_once('-')
            .unwrap_or_else(|| panic!("bad path {path}"));
        let mut nums = rest.split('.').map(|n| {
            n.parse::<usize>()
                .unwrap_or_else(|_| panic!("bad path {path}"))
        });
        let field = nums.next().unwrap();
        let component = nums.next();
        let sub = nums.next();
        let segment = self
            .segments
            .iter_mut()
            .find(|s| s[0] == seg)
            .unwrap_or_else(|| panic!("no {seg} segment to set {path} in"));
        let index = if seg == "MSH" { field - 1 } else { field };
        if segment.len() <= index {
            segment.resize(index + 1, String::new());
        }
        let slot = &mut segment[index];
        *slot = match component {
            None => value.to_owned(),
            Some(c) => {
                let mut reps: Vec<String> = slot.split('~').map(str::to_owned).collect();
                let mut comps: Vec<String> = reps[0].split('^').map(str::to_owned).collect();
                if comps.len() < c {
                    comps.resize(c, String::new());
                }
                comps[c - 1] = match sub {
                    None => value.to_owned(),
                    Some(sc) => {
                        let mut subs: Vec<String> =
                            comps[c - 1].split('&').map(str::to_owned).collect();
                        if subs.len() < sc {
                            subs.resize(sc, String::new());
                        }
                        subs[sc - 1] = value.to_owned();
                        subs.join("&")
                    }
                };
                reps[0] = comps.join("^");
                reps.join("~")
            }
        };
        self
    }

    /// Removes every segment named `seg`.
    pub fn without(mut self, seg: &str) -> Hl7 {
        self.segments.retain(|s| s[0] != seg);
        self
    }

    /// Appends a segment given as text (`MRG|P555`).
    pub fn with(mut self, segment: &str) -> Hl7 {
        self.segments
            .push(segment.split('|').map(str::to_owned).collect());
        self
    }

    /// MSH-7 = [`at`]`(minutes)`.
    pub fn at(self, minutes: u32) -> Hl7 {
        self.set("MSH-7", &at(minutes))
    }

    /// MSH-9 = `SIU^S14` (or the ADT's type): the trigger event.
    pub fn trigger(self, trigger: &str) -> Hl7 {
        let kind = self.get("MSH-9.1");
        self.set("MSH-9", &format!("{kind}^{trigger}"))
    }

    /// PID-3: the patient ID (an MR identifier).
    pub fn patient(self, id: &str) -> Hl7 {
        self.set("PID-3", &format!("{id}^^^ACME^MR"))
    }

    /// PID-5: family^given.
    pub fn name(self, family: &str, given: &str) -> Hl7 {
        self.set("PID-5", &format!("{family}^{given}"))
    }

    /// SCH-2: the appointment ID.
    pub fn appointment(self, id: &str) -> Hl7 {
        self.set("SCH-2", id)
    }

    /// PV1-19 and PV2-3.2: the case ID and description.
    pub fn case(self, id: &str, description: &str) -> Hl7 {
        self.set("PV1-19", id).set("PV2-3.2", description)
    }

    /// SCH-8 and AIS-3: the appointment type as `code^name`.
    pub fn kind(self, code_and_name: &str) -> Hl7 {
        self.set("SCH-8", code_and_name).set("AIS-3", code_and_name)
    }

    /// A non-IE appointment type, `Follow Up`.
    pub fn follow_up(self) -> Hl7 {
        self.kind("FU^Follow Up")
    }

    /// AIP-3: the treating therapist.
    pub fn therapist(self, id: &str) -> Hl7 {
        self.set("AIP-3", &format!("{id}^Therapist^Some"))
    }

    /// AIL-3 and PV1-3: the clinic (location) ID.
    pub fn clinic(self, id: &str) -> Hl7 {
        self.set("AIL-3.1", id).set("PV1-3.1", id)
    }

    /// Every start of the appointment: SCH-11.4, AIS-4, AIL-6, AIP-6.
    pub fn start(self, ts: &str) -> Hl7 {
        self.set("SCH-11.4", ts)
            .set("AIS-4", ts)
            .set("AIL-6", ts)
            .set("AIP-6", ts)
    }

    /// SCH-25: the filler status.
    pub fn status(self, status: &str) -> Hl7 {
        self.set("SCH-25", status)
    }

    /// The value at `path` (first repetition), empty when absent.
    pub fn get(&self, path: &str) -> String {
        let (seg, rest) = path.split_once('-').unwrap();
        let nums: Vec<usize> = rest.split('.').map(|n| n.parse().unwrap()).collect();
        let Some(segment) = self.segments.iter().find(|s| s[0] == seg) else {
            return String::new();
        };
        let index = if seg == "MSH" { nums[0] - 1 } else { nums[0] };
        let value = segment.get(index).cloned().unwrap_or_default();
        match nums.get(1) {
            None => value,
            Some(c) => value
                .split('~')
                .next()
                .unwrap_or_default()
                .split('^')
                .nth(c - 1)
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The message text, segments ending in CR.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push_str(&s.join("|"));
            out.push('\r');
        }
        out
    }
}

/// Runs `command` with its stdout a pipe whose reader is already gone (as
/// `tendon ... | head -3` leaves it once `head` has exited): its exit status
/// and its stderr.
pub fn with_closed_stdout(mut command: Command) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = command
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("tendon runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
