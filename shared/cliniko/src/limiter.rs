//! The client-side rate limit: at most `budget` requests in any rolling
//! `window`, shared by every clone of a client, plus a pause that a 429 sets
//! so that all of them wait for Cliniko's reset together.
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
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

impl RateLimiter {
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
}
