//! The server under test and its clients: a fresh `tendon serve` on a free
//! port with its own database, the messages posted to it, and a keep-alive
//! HTTP/1.1 client that posts them and checks every ACK.
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::measure::wall_ns;
use super::{ORG, Options};

pub(crate) struct Server {
    pub(crate) child: Child,
    addr: SocketAddr,
    key: String,
    pub(crate) db: PathBuf,
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
pub(crate) fn start_server(o: &Options, name: &str) -> Result<Server, String> {
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

pub(crate) struct Msg {
    pub(crate) control_id: String,
    pub(crate) body: Vec<u8>,
}

/// `n` distinct messages from the template: new MSH-10, PID-3 (both
/// repetitions), SCH-2 and PV1-19, so each makes a new patient and case.
pub(crate) fn make_messages(template: &str, tag: &str, n: usize) -> Result<Vec<Msg>, String> {
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

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Client {
    addr: SocketAddr,
    head: String,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    pub(crate) fn new(server: &Server) -> Client {
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
    /// Posts `msg`, `late` after its scheduled time, and counts it in
    /// `posted` once answered.
    pub(crate) fn send(&mut self, msg: &Msg, late: Duration, posted: &AtomicUsize) -> Sent {
        let sent = wall_ns();
        let scheduled = sent - i64::try_from(late.as_nanos()).unwrap_or(0);
        let reply = self.post(&msg.body);
        let acked = wall_ns();
        let error = check_ack(&msg.control_id, &reply);
        posted.fetch_add(1, Ordering::Release);
        Sent {
            scheduled,
            sent,
            acked,
            error,
        }
    }

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
pub(crate) struct Sent {
    pub(crate) scheduled: i64,
    pub(crate) sent: i64,
    pub(crate) acked: i64,
    pub(crate) error: String,
}
