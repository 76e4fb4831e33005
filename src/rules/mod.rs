//! Bridge rules: plant topics and payloads mapped to the same intents as the command topics,
//! through the same validation and the same durable path.
//!
//! - `compile` checks `[[rules]]` (start-up and `check-config`) and returns the `Engine`.
//! - `engine` is the pure, edge-triggered state machine (per rule and per concrete topic, with
//!   `hold`); time is an argument.
//! - `task::run` feeds it MQTT messages and timers, submits each firing as an intent with source
//!   `rule:<name>`, and reports on `B/events` (`rule_fired`, `rule_failed`, `rule_hold_started`,
//!   `rule_hold_cancelled`).
//! - `disjoint_cover` gives the broker subscriptions for the command and rule filters together
//!   without overlap, so that no message is delivered twice.
//!
//! Rule state lives in memory: after a restart every rule starts armed, so a condition that is
//! still true (a retained plant message) fires once more.

mod action;
mod compile;
mod condition;
mod engine;
mod filters;
mod task;

pub use action::{Action, Template};
pub use compile::{compile, Rule};
pub use condition::{Condition, Expected};
pub use engine::{Engine, Firing, Outcome};
pub use filters::{contains, disjoint_cover, overlap};
pub use task::run;

/// Compiles `[[rules]]` into the engine, binding nothing: start-up and `check-config` both run it.
pub fn prepare(rules: &[crate::config::RuleConfig]) -> Result<Engine, crate::config::ConfigError> {
    compile(rules).map_err(|e| crate::config::ConfigError::Invalid {
        key: "rules",
        reason: e.to_string(),
    })
}

/// A rule that cannot be used, with its position, its name and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Position in the merged rule list (config file first, then `rule_files` in order).
    pub index: usize,
    pub rule: String,
    pub reason: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.rule.trim().is_empty() {
            write!(f, "rule #{}: {}", self.index + 1, self.reason)
        } else {
            write!(f, "rule '{}': {}", self.rule, self.reason)
        }
    }
}

impl std::error::Error for RuleError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleConfig;
    use std::path::Path;

    /// The shape of a `rule_files` entry: only `[[rules]]`.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RuleFile {
        rules: Vec<RuleConfig>,
    }

    #[test]
    fn every_shipped_example_compiles() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bridge-config/rules");
        let mut names = Vec::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let file: RuleFile =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!file.rules.is_empty(), "{}: no rules", path.display());
            let engine = compile(&file.rules).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            names.extend(engine.rules().iter().map(|r| r.name.clone()));
        }
        for want in [
            "shift-profiles.toml",
            "ups-poweroff.toml",
            "plc-fault-restart.toml",
        ] {
            assert!(dir.join(want).is_file(), "{want} is shipped");
        }
        assert!(files >= 3);
        // All examples together are one valid rule set too (names are unique across files).
        let mut all = Vec::new();
        for file in [
            "shift-profiles.toml",
            "ups-poweroff.toml",
            "plc-fault-restart.toml",
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            all.extend(toml::from_str::<RuleFile>(&text).unwrap().rules);
        }
        compile(&all).unwrap();
    }

    #[test]
    fn examples_behave_as_documented() {
        use serde_json::json;
        use std::time::Duration;
        use tokio::time::Instant;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bridge-config/rules");
        let load = |file: &str| {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            compile(&toml::from_str::<RuleFile>(&text).unwrap().rules).unwrap()
        };
        let t0 = Instant::now();
        let intents = |out: Vec<Outcome>| -> Vec<serde_json::Value> {
            out.into_iter()
                .filter_map(|o| match o {
                    Outcome::Fired(f) => Some(serde_json::to_value(f.action).unwrap()),
                    _ => None,
                })
                .collect()
        };

        let mut shift = load("shift-profiles.toml");
        assert_eq!(
            intents(shift.on_message("plant/line1/shift", b"night", t0)),
            vec![json!({"profile":"night"})]
        );
        assert_eq!(
            intents(shift.on_message("plant/line1/shift", b"day", t0)),
            vec![json!({"profile":"day"})]
        );

        let mut ups = load("ups-poweroff.toml");
        let on = br#"{"on_battery":true,"charge":93}"#;
        assert!(intents(ups.on_message("ups/ups1/status", on, t0)).is_empty());
        assert_eq!(ups.next_deadline(), Some(t0 + Duration::from_secs(60)));
        assert_eq!(
            intents(ups.on_timer(t0 + Duration::from_secs(60))),
            vec![json!({"device":"poweroff"})]
        );

        let mut plc = load("plc-fault-restart.toml");
        assert!(
            intents(plc.on_message("plc/line1/vision/fault", br#"{"fault":true}"#, t0)).is_empty()
        );
        assert_eq!(
            intents(plc.on_timer(t0 + Duration::from_secs(2))),
            vec![json!({"app":"vision","command":"restart"})]
        );
    }
}
