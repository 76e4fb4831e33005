//! The gateway's state machine.
//!
//! One pure `apply(&mut State, I: Input, Now) -> Applied<I::Reply>` is the only place state
//! changes; each kind of input (a `Submission`, each of EVE's `poll` requests, `Tick`,
//! `Announce`) has a reply type of its own. The store actor owns the `State` and runs it. EVE's rules live here, each with unit tests:
//! one command per app (a new one supersedes the old), device commands served one at a time
//! (the next only after EVE reports the previous one's timestamp), Unix-ns timestamps that only
//! grow, app names resolved against EVE's last report, cancel, and the accepted → delivered →
//! completed lifecycle. Radio, boot order and network are full desired state: `Serve` says
//! whether EVE gets 204, the state, or an empty state until it reports the override gone.

pub mod commands;
pub mod effect;
pub mod input;
mod intents;
pub mod level;
pub mod machine;
pub mod model;
mod pending;
pub mod poll;
pub mod refusal;
mod reports;
pub mod resolve;
pub mod settle;
mod stall;
#[cfg(test)]
mod tests;

pub use commands::Commands;
pub use effect::{Effect, Endpoint, Event, EventName, Key, ReportKind, StateTopic};
pub use input::{
    Accepted, Announce, AppCommandOut, CommandRef, Input, Intent, IntentReply, Origin, Submission,
    Tick,
};
pub use machine::{apply, Applied, Fx, Limits, Meta, State, LAST_SEEN_EVERY_MS};
pub use model::*;
pub use pending::pending_endpoints;
pub use refusal::Refusal;
pub use reports::boot_order_name;
pub use stall::{STALL_AFTER_DELIVERIES, STALL_MIN_SPAN_MS};
