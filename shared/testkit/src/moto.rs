//! The moto harness: one `moto_server` per test binary, on a free port of
//! 127.0.0.1, and AWS clients pointed at it. Every test of a binary shares
//! the server ([`moto`]); each works in resources of its own
//! ([`fresh_store`], [`unique_prefix`]).
//!
//! moto is `infra/moto_serial.py` run by `target/venv/bin/python` (moto is
//! installed there by `infra/test` from infra/requirements-test.txt): moto's
//! own server with its DynamoDB backend serialised, because moto's
//! transactions are not thread-safe (the script says more). `TENDON_MOTO_SERVER`
//! may name another `moto_server`. A missing server FAILS the tests: they do
//! not skip.
//!
//! The server runs under a small `sh` watchdog that reads our stdin: when this
//! process ends (even by a panic or a kill), the pipe closes and the watchdog
//! stops moto, so no server outlives its test binary. (A `static` is never
//! dropped, so a Drop impl alone would not do.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use tendon_aws::{AwsStore, BootstrapEnv};

/// How long moto may take to answer after it is started.
const READY_DEADLINE: Duration = Duration::from_secs(60);

pub struct Moto {
    /// `http://127.0.0.1:<port>`: what `AWS_ENDPOINT_URL` would be.
    pub endpoint: String,
    child: Mutex<Child>,
    /// Held open for the life of the process; closing it stops moto.
    _lifeline: Mutex<ChildStdin>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(child) = self.child.get_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// The program and arguments that start moto (before `-H host -p port`).
fn moto_command() -> Vec<PathBuf> {
    match std::env::var_os("TENDON_MOTO_SERVER") {
        Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
        _ => vec![
            repo_root().join("target/venv/bin/python"),
            repo_root().join("infra/moto_serial.py"),
        ],
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// True once moto answers HTTP on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

fn start() -> Moto {
    let command = moto_command();
    let server = &command[0];
    assert!(
        server.is_file(),
        "{} not found.\n  The moto tests need it: run infra/test once (it installs \
         infra/requirements-test.txt into target/venv), or\n      python3 -m venv target/venv && \
         target/venv/bin/pip install -r infra/requirements-test.txt\n  or point TENDON_MOTO_SERVER at a moto_server.",
        server.display()
    );
    let log = std::env::temp_dir().join(format!("tendon-moto-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).expect("a moto log file");
    let port = free_port();
    // $1: port, then the command. moto's stdin is /dev/null; `read` waits on ours.
    // SIGKILL: moto holds nothing worth a clean stop, and a busy one (a big
    // table) was seen to outlive SIGTERM by minutes, holding gigabytes.
    let watchdog = r#"
port=$1; shift
"$@" -H 127.0.0.1 -p "$port" </dev/null &
pid=$!
trap 'kill -KILL "$pid" 2>/dev/null' EXIT INT TERM HUP
read -r _ || true
"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(watchdog)
        .arg("moto-watchdog")
        .arg(port.to_string())
        .args(&command)
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
    let lifeline = child.stdin.take().expect("piped stdin");
    let deadline = Instant::now() + READY_DEADLINE;
    while !answers(port) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "moto exited ({status}) before answering; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "moto did not answer on port {port} within {} s; its log:\n{}",
            READY_DEADLINE.as_secs(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Mutex::new(child),
        _lifeline: Mutex::new(lifeline),
    }
}

/// The test binary's moto, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start)
}

/// SDK settings for moto: its endpoint, region us-east-1, test credentials.
/// (The same as AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and
/// AWS_SECRET_ACCESS_KEY in the environment, without mutating this process's
/// environment under concurrently running tests.)
pub async fn sdk_config() -> SdkConfig {
    let moto = moto();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// A prefix unique to this test: its resources are its own.
pub fn unique_prefix(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("t{}-{name}-{n}", std::process::id())
}

/// Bootstraps fresh resources on moto and returns a store on them.
pub async fn fresh_store(name: &str) -> (AwsStore, BootstrapEnv) {
    let sdk = sdk_config().await;
    let env = tendon_aws::bootstrap_with(&sdk, &unique_prefix(name))
        .await
        .expect("bootstrap on moto");
    (AwsStore::from_config(&sdk, &env), env)
}
