//! Profile schedules (`[[schedules]]`): cron entries in a time zone that set a profile
//! or do a bridge-rule action, through the same intent path as MQTT, REST and rules.
//!
//! - `spec` checks a schedule (cron, zone, action) and does the occurrence arithmetic.
//! - `planner` is the pure semantics across restarts and clock steps; the clock is an argument.
//! - `task` polls the wall clock, submits what is due (source `schedule:<name>`) and publishes
//!   the next firings.

mod fire;
mod planner;
mod spec;
mod task;

pub use planner::{Due, Planner, ProfileNow};
pub use spec::{compile, compile_one, show, Schedule};
pub use task::{spawn, system_clock, Board, WallClock};

/// Checks `[[schedules]]` binding nothing: start-up and `check-config` both run it.
pub fn prepare(
    configs: &[crate::config::ScheduleConfig],
) -> Result<Vec<Schedule>, crate::config::ConfigError> {
    compile(configs).map_err(|reason| crate::config::ConfigError::Invalid {
        key: "schedules",
        reason,
    })
}

/// How often the task looks at the wall clock (a step is noticed within this).
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// `check-config`'s lines for the schedules: each with its zone, action and next three firings.
pub fn describe(configs: &[crate::config::ScheduleConfig]) -> String {
    let Ok(schedules) = compile(configs) else {
        return String::new();
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let mut out = String::new();
    for s in &schedules {
        let action = serde_json::to_string(&s.action).unwrap_or_default();
        out.push_str(&format!(
            "schedule '{}': {} ({}) -> {action}{}\n",
            s.name,
            s.cron_text,
            s.zone_name,
            if s.enabled { "" } else { " [disabled]" }
        ));
        for at in s.next_n(now, 3) {
            out.push_str(&format!("  next: {}\n", show(&at)));
        }
    }
    out
}
