//! The client-side rate limit: at most `budget` requests in any rolling
//! `window`, shared by every clone of a client, plus a pause that a 429 sets
//! so that all of them wait for Cliniko's reset together.
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

pub(crate) struct RateLimiter {
    budget: usize,
    window: Duration,
    state: Mutex<State>,
}

struct State {
    /// When each request of the current window was let through, oldest first.
    sent: VecDeque<Instant>,
    /// No request before this (from a 429's `X-RateLimit-Reset`).
    paused_until: Option<Instant>,
}

/// The limiters of this process, one per Cliniko user (an API key on its
/// base URL) and budget: every client made for a key shares one, so a sync
/// and the "Open in" clicks of the same connection draw on one budget.
/// Kept for the life of the process (one small entry per connected key), so
/// a click right after a sync still sees the sync's requests in its window.
static SHARED: LazyLock<Mutex<HashMap<u64, Arc<RateLimiter>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl RateLimiter {
    /// The process's limiter for `(api_key, base_url)` with this budget.
    /// The map holds a hash, never the key.
    pub(crate) fn shared(
        api_key: &str,
        base_url: &str,
        budget: u32,
        window: Duration,
    ) -> Arc<Self> {
        let mut h = std::hash::DefaultHasher::new();
        (api_key, base_url, budget, window).hash(&mut h);
        let id = h.finish();
        let mut all = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            all.entry(id)
                .or_insert_with(|| Arc::new(RateLimiter::new(budget, window))),
        )
    }

    pub(crate) fn new(budget: u32, window: Duration) -> Self {
        let budget = budget.max(1) as usize;
        RateLimiter {
            budget,
            window,
            state: Mutex::new(State {
                sent: VecDeque::with_capacity(budget),
                paused_until: None,
            }),
        }
    }

    /// Waits until one more request fits in the window (and any pause is
    /// over), and counts it.
    pub(crate) async fn acquire(&self) {
        loop {
            let until = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.paused_until {
                    Some(until) if until > now => Some(until),
                    _ => {
                        state.paused_until = None;
                        while state
                            .sent
                            .front()
                            .is_some_and(|&at| at + self.window <= now)
                        {
                            state.sent.pop_front();
                        }
                        if state.sent.len() < self.budget {
                            state.sent.push_back(now);
                            None
                        } else {
                            // The oldest request leaves the window then.
                            state.sent.front().map(|&at| at + self.window)
                        }
                    }
                }
            };
            match until {
                None => return,
                // Others may take the freed slot first: check again on waking.
                Some(until) => tokio::time::sleep_until(until).await,
            }
        }
    }

    /// Holds every request back for `wait` (never shortening a longer pause).
    pub(crate) fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = self.lock();
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rolling_window() {
        let limiter = RateLimiter::new(3, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        limiter.pause_for(Duration::from_secs(5));
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(15));
    }

    #[test]
    fn one_limiter_per_key_and_base() {
        let w = Duration::from_secs(60);
        let a = RateLimiter::shared("key-au1", "http://127.0.0.1:1/v1", 200, w);
        let b = RateLimiter::shared("key-au1", "http://127.0.0.1:1/v1", 200, w);
        let other_key = RateLimiter::shared("other-au1", "http://127.0.0.1:1/v1", 200, w);
        let other_base = RateLimiter::shared("key-au1", "http://127.0.0.1:2/v1", 200, w);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other_key));
        assert!(!Arc::ptr_eq(&a, &other_base));
    }
}
