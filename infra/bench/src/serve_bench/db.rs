//! What `serve-bench` reads from the server's database (read-only, while it
//! runs): how many messages are processed, and when each message was
//! received and made its patient and its episode.
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::measure::{rfc3339_ns, wall_ns};
use super::server::{Msg, Server};
use super::{ORG, Options};

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
pub(crate) fn wait_processed(
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
pub(crate) struct Stamps {
    pub(crate) received: i64,
    pub(crate) patient: i64,
    pub(crate) episode: i64,
}

/// Per control ID, the server's stamps; also checks that every message made a
/// patient with a Default and a Case episode.
/// The records in the JSON column of the query `sql`, whose `?1` is [`ORG`].
fn org_json(conn: &Connection, sql: &str) -> Result<Vec<Value>, String> {
    let sql_err = |e: rusqlite::Error| e.to_string();
    let mut stmt = conn.prepare(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map([ORG], |r| r.get::<_, String>(0))
        .map_err(sql_err)?;
    rows.map(|row| serde_json::from_str(&row.map_err(sql_err)?).map_err(|e| e.to_string()))
        .collect()
}

pub(crate) fn read_stamps(db: &Path, msgs: &[Msg]) -> Result<Vec<Stamps>, String> {
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
    for ev in org_json(&conn, "SELECT json FROM events WHERE org = ?1 ORDER BY seq")? {
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
    let (mut patients, mut good) = (0usize, 0usize);
    for rec in org_json(&conn, "SELECT json FROM patients WHERE org = ?1")? {
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
