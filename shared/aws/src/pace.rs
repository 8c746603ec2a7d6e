//! [`SendPacer`]: keeps one process's SES sends within the account's
//! `MaxSendRate`, so a dispatch pass with many due emails is spread out
//! instead of being throttled.
//!
//! SES counts the rate per account and region across every sender; the pacer
//! only sees its own process. One dispatch invocation runs at a time in the
//! normal case (a pass takes well under the one-minute schedule), and a
//! throttled send is retried here with backoff and then deferred by the core
//! (`dispatch::backoff`), so an overlap costs time, never a lost email.
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Environment variable that overrides the send rate (emails per second)
/// instead of reading SES's `MaxSendRate` (for a shared account, or moto).
pub const ENV_SES_MAX_SEND_RATE: &str = "TENDON_SES_MAX_SEND_RATE";

/// The rate assumed when SES cannot tell (its sandbox rate).
pub const FALLBACK_SEND_RATE: f64 = 1.0;

/// Hands out send slots at most `rate` per second, first come first served.
#[derive(Debug)]
pub struct SendPacer {
    rate: f64,
    interval: Duration,
    /// The earliest instant the next send may start.
    next: Mutex<Option<Instant>>,
}

impl SendPacer {
    /// A pacer for `rate` sends per second (a rate that is not positive and
    /// finite is taken as [`FALLBACK_SEND_RATE`]).
    pub fn per_second(rate: f64) -> SendPacer {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            FALLBACK_SEND_RATE
        };
        SendPacer {
            rate,
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(None),
        }
    }

    /// Sends per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The time between two sends.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this caller's slot. Slots are taken in call order; the lock
    /// is held only to take one, never across the wait.
    pub async fn wait_turn(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// How long to wait before retry `attempt` (1, 2, ...) of a throttled
    /// send: 4, 8, 16 ... intervals, at least 250 ms, at most 5 s.
    pub fn throttle_backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << (attempt.clamp(1, 8) + 1);
        (self.interval * factor).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }
}

/// The rate from [`ENV_SES_MAX_SEND_RATE`], if it is set to a positive number.
pub fn rate_from_env() -> Result<Option<f64>, String> {
    match std::env::var(ENV_SES_MAX_SEND_RATE) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Some(r)),
            _ => Err(format!(
                "{ENV_SES_MAX_SEND_RATE} must be a positive number of emails per second, not {v:?}"
            )),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sends_are_spaced_by_the_rate() {
        let pacer = SendPacer::per_second(4.0);
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            pacer.wait_turn().await;
            starts.push(start.elapsed());
        }
        let ms: Vec<u128> = starts.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 250, 500, 750, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_get_distinct_slots() {
        let pacer = std::sync::Arc::new(SendPacer::per_second(10.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.wait_turn().await;
                    start.elapsed().as_millis()
                })
            })
            .collect();
        let mut ms = Vec::new();
        for t in tasks {
            ms.push(t.await.unwrap());
        }
        ms.sort();
        assert_eq!(ms, [0, 100, 200, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pacer_does_not_bank_slots() {
        let pacer = SendPacer::per_second(2.0);
        pacer.wait_turn().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        pacer.wait_turn().await;
        pacer.wait_turn().await;
        assert_eq!(start.elapsed().as_millis(), 500, "no burst after idling");
    }

    #[test]
    fn bad_rates_fall_back_and_backoff_is_bounded() {
        assert_eq!(
            SendPacer::per_second(0.0).interval(),
            Duration::from_secs(1)
        );
        assert_eq!(
            SendPacer::per_second(f64::NAN).interval(),
            Duration::from_secs(1)
        );
        let fast = SendPacer::per_second(1000.0);
        assert_eq!(fast.throttle_backoff(1), Duration::from_millis(250));
        let slow = SendPacer::per_second(1.0);
        assert_eq!(slow.throttle_backoff(1), Duration::from_secs(4));
        assert_eq!(slow.throttle_backoff(9), Duration::from_secs(5));
    }
}
