//! The clock port: now, from the wall or stopped (tests, simulations).

pub trait Clock: Send + Sync {
    fn now(&self) -> jiff::Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// A clock stopped at one instant (tests, simulations).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub jiff::Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> jiff::Timestamp {
        self.0
    }
}
