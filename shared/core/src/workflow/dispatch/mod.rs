//! Dispatch: claim the due steps, re-check each against the current state,
//! record the delivery, send, and record the outcome.
//!
//! Exactly-once as far as the outside allows: a claim is a conditional write,
//! so two passes never take the same step; the delivery is recorded (keyed by
//! the send's identity) before the provider is called, so a crash between the
//! send and its record repeats that one send at most once, and a crash before
//! the send loses nothing (the claim expires and the step is taken again).
//!
//! `pass` runs a pass, `verdict` decides each claimed step, `follow` keeps a
//! step about an appointment in step with it, `delivery` renders what is
//! sent, and `unsubscribe_link` makes the link every email carries.
mod delivery;
mod follow;
mod pass;
#[cfg(test)]
mod tests;
mod unsubscribe_link;
mod verdict;

pub use delivery::build_delivery;
pub use follow::{appointment_updates, follow_appointment};
pub use pass::{CLAIM_BATCH, CLAIM_LEASE, Dispatcher, MAX_ATTEMPTS, PassReport};
pub use unsubscribe_link::{
    path_segment, unsubscribe_token, unsubscribe_token_ok, unsubscribe_url,
};
pub use verdict::{Verdict, channel_of, verdict};
