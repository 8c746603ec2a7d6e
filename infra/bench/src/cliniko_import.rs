//! `cliniko-import-bench`: a first Cliniko sync of N patients (default
//! 10,000) into a fresh SQLite store, against `tendon-fake-cliniko` with a
//! per-request latency and Cliniko's rate limit enforced by the server. It
//! prints the requests per list, the wall time, and its ratio to the bound
//! the rate limit and the latency set:
//!
//! ```text
//! bound = max(requests x latency,                      one request after another
//!             (ceil(requests / rate) - 1) x 60 s + latency)  the last request's minute
//! ```
//!
//! Usage: `cliniko-import-bench [--patients N] [--latency-ms L] [--rate R] [--runs K]`
//! (defaults 10000, 250, 200, 3). The client is given the same rate as the
//! server enforces. Target: wall / bound <= 1.2, and at most 101 requests to
//! `GET /patients`. Each run then re-syncs with nothing changed and prints
//! that re-sync's requests (target: at most 16).
use std::time::{Duration, Instant};

use tendon_bench::{Args, options_or_exit};
use tendon_cliniko::{Client, ClientConfig};
use tendon_core::cliniko::api::ClinikoPatient;
use tendon_core::cliniko::{ClinikoConnection, sync};
use tendon_core::org::Org;
use tendon_core::ports::{ClinikoStore, ConfigStore};
use tendon_fake_cliniko::FakeCliniko;
use tendon_local::SqliteStore;

const KEY: &str = "MS0xMjM0NTY3ODkwMTIzNDU2Nzg5LWJlbmNo-au1";
/// Cliniko asks for `Application (contact email)`.
const UA: &str = "Tendon bench (ci@tendon-health.dev)";

struct Options {
    patients: u64,
    latency: Duration,
    rate: u32,
    runs: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut a = Options {
        patients: 10_000,
        latency: Duration::from_millis(250),
        rate: 200,
        runs: 3,
    };
    let mut it = Args::from_env();
    while let Some(flag) = it.next() {
        let value = it.value(&flag)?;
        let n: u64 = value.parse().map_err(|_| format!("{flag}: not a number"))?;
        match flag.as_str() {
            "--patients" => a.patients = n,
            "--latency-ms" => a.latency = Duration::from_millis(n),
            "--rate" => a.rate = u32::try_from(n).map_err(|_| "--rate: too large")?,
            "--runs" => a.runs = usize::try_from(n).map_err(|_| "--runs: too large")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn profile(n: u64) -> ClinikoPatient {
    ClinikoPatient {
        id: (1_000_000_000_000_000_000 + n).to_string(),
        first_name: Some(format!("First{n}")),
        last_name: Some(format!("Last{n}")),
        date_of_birth: Some("1985-03-12".into()),
        sex: Some("Female".into()),
        email: Some(format!("patient{n}@example.com")),
        // One edit a minute over the past weeks, as a clinic's are spread.
        updated_at: (jiff::Timestamp::from_second(1_790_000_000).expect("in range")
            + jiff::SignedDuration::from_mins(i64::try_from(n).unwrap_or(0)))
        .to_string(),
        ..Default::default()
    }
}

struct Run {
    wall: Duration,
    bound: Duration,
    patient_pages: u64,
    total: u64,
    rate_limited: u64,
    synced: usize,
    /// The requests of a re-sync right after, in which nothing changed.
    quiet: Vec<String>,
}

async fn run(a: &Options, n: usize) -> Result<Run, String> {
    let server = FakeCliniko::start().await;
    let state = server.state();
    state.set_api_keys([KEY]);
    for i in 0..a.patients {
        state.upsert_patient(profile(i));
    }
    state.enforce_rate_limit(Some((a.rate, Duration::from_secs(60))));
    state.set_latency(a.latency);

    let db = std::env::temp_dir().join(format!(
        "tendon-cliniko-bench-{}-{n}.db",
        std::process::id()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let store = SqliteStore::open(&db)?;
    let org = Org {
        id: "BENCH".into(),
        name: "Bench Physio".into(),
        timezone: "Australia/Melbourne".into(),
        ie_types: Vec::new(),
        field_map: Default::default(),
    };
    store
        .create_org(&org, "bench-key-hash")
        .await
        .map_err(|e| e.to_string())?;
    let connection = ClinikoConnection {
        org: org.id.clone(),
        api_key: KEY.into(),
        shard: "au1".into(),
        base_url: Some(server.base_url().to_owned()),
        token: "bench".into(),
        watermark: None,
        connected_at: jiff::Timestamp::now(),
        last_sync_at: None,
    };
    store
        .put_connection(&connection)
        .await
        .map_err(|e| e.to_string())?;
    let client = Client::new(ClientConfig {
        base_url: connection.base_url.clone(),
        requests_per_minute: a.rate,
        ..ClientConfig::new(KEY, UA)
    })
    .map_err(|e| e.to_string())?;
    state.clear_requests();

    let started = Instant::now();
    let report = sync::sync_org(&store, &client, &org.id, jiff::Timestamp::now(), |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let wall = started.elapsed();

    let total = state.total_requests();
    let (rate_limited, patient_pages) = (
        state.rate_limited_count(),
        state.request_count("/v1/patients"),
    );
    state.clear_requests();
    sync::sync_org(&store, &client, &org.id, jiff::Timestamp::now(), |_| {})
        .await
        .map_err(|e| e.to_string())?;
    let quiet = state.requests().into_iter().map(|r| r.path).collect();
    let chain = a.latency * u32::try_from(total).unwrap_or(u32::MAX);
    let minutes = total.div_ceil(u64::from(a.rate.max(1))).saturating_sub(1);
    let by_rate = Duration::from_secs(60 * minutes) + a.latency;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Ok(Run {
        wall,
        bound: chain.max(by_rate),
        patient_pages,
        total,
        rate_limited,
        synced: report.synced,
        quiet,
    })
}

fn main() {
    let a = options_or_exit("cliniko-import-bench", parse_args());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut ratios = Vec::new();
    for n in 0..a.runs {
        let r = match rt.block_on(run(&a, n)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cliniko-import-bench: {e}");
                std::process::exit(1);
            }
        };
        assert_eq!(r.synced as u64, a.patients, "every patient is imported");
        let ratio = r.wall.as_secs_f64() / r.bound.as_secs_f64();
        println!(
            "run {}: {} patients, {} requests to /v1/patients, {} in all, {} answered 429; wall {:.2} s, bound {:.2} s, ratio {ratio:.3}",
            n + 1,
            a.patients,
            r.patient_pages,
            r.total,
            r.rate_limited,
            r.wall.as_secs_f64(),
            r.bound.as_secs_f64()
        );
        println!(
            "run {}: a quiet re-sync then made {} requests (target <= 16): {}",
            n + 1,
            r.quiet.len(),
            r.quiet.join(" ")
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!(
        "cliniko import: median wall/bound = {median:.3} over {} runs (target <= 1.2), latency {} ms, rate {}/min",
        a.runs,
        a.latency.as_millis(),
        a.rate
    );
}
