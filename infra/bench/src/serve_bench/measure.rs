//! What `serve-bench` measures with: the wall clock in Unix nanoseconds
//! (and RFC 3339 instants read as such), distributions of milliseconds, and
//! the CPU use of the server, of this process and of the machine (/proc).
use std::fs;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall clock in Unix nanoseconds: comparable with the server's timestamps
/// (same machine, same clock).
pub(crate) fn wall_ns() -> i64 {
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
pub(crate) fn rfc3339_ns(s: &str) -> Option<i64> {
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

pub(crate) fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of the values that are not NaN (NaN if there is none).
pub(crate) fn median(values: &[f64]) -> f64 {
    let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    tendon_bench::median(v)
}

pub(crate) struct Dist {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    mean: f64,
    n: usize,
}

impl Dist {
    pub(crate) fn of(mut v: Vec<f64>) -> Dist {
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

    pub(crate) fn line(&self) -> String {
        format!(
            "p50 {:>8.1}  p90 {:>8.1}  p99 {:>8.1}  max {:>8.1}  mean {:>8.1} ms  (n={})",
            self.p50, self.p90, self.p99, self.max, self.mean, self.n
        )
    }
}

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

pub(crate) struct CpuMark {
    server: Option<f64>,
    client: Option<f64>,
    machine: Option<(f64, f64)>,
    at: Instant,
}

impl CpuMark {
    pub(crate) fn now(server_pid: u32) -> CpuMark {
        CpuMark {
            server: cpu_secs(&server_pid.to_string()),
            client: cpu_secs("self"),
            machine: machine_jiffies(),
            at: Instant::now(),
        }
    }

    /// Server cores, client cores, machine busy fraction since `self`.
    pub(crate) fn since(&self, server_pid: u32) -> (f64, f64, f64) {
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
