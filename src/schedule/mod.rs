//! Profile schedules (`[[schedules]]`, issue 12): cron entries in a time zone that set a profile
//! or do a bridge-rule action, through the same intent path as MQTT, REST and rules.
//!
//! - `spec` checks a schedule (cron, zone, action) and does the occurrence arithmetic.
//! - `planner` is the pure semantics across restarts and clock steps; the clock is an argument.
//! - `task` polls the wall clock, submits what is due (source `schedule:<name>`) and publishes
//!   the next firings.

mod planner;
mod spec;

pub use planner::{Due, Planner, ProfileNow};
pub use spec::{compile, compile_one, show, Schedule};
