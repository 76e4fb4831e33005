//! The outcome of a profile switch, derived from EVE's app reports (issue 12 §2). EVE never says
//! which profile it runs; after it fetched a new one, the apps' reported states tell when the
//! switch is over: no app in a transitional state and no state change for `settle_quiet_ms`
//! gives `profile_settled`; still moving after `settle_timeout_ms` gives `profile_unsettled`.
//! The watch lives in memory (a restart mid-switch reports no outcome); the outcome is durable
//! (in the profile's desired state) and shown in `B/profile`.

use super::effect::{EventName, Key, StateTopic};
use super::machine::{Fx, State};
use super::model::{AppReport, Now};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// App name → reported state (`RUNNING`, `HALTING`, ...).
pub type AppStates = BTreeMap<String, String>;

/// A switch being watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleWatch {
    pub profile: String,
    since_mono_ms: u64,
    last_change_mono_ms: u64,
    before: AppStates,
    /// The latest report after the fetch (none yet: not settled).
    latest: Option<AppStates>,
    errors: BTreeMap<String, String>,
}

/// States an app rests in; every other one (BOOTING, HALTING, PURGING, RESTARTING, downloads,
/// volume creation ...) is on the way somewhere.
fn is_resting(state: &str) -> bool {
    matches!(state, "RUNNING" | "HALTED" | "ERROR")
}

fn states(apps: &[AppReport]) -> AppStates {
    apps.iter()
        .map(|a| (label(a), app_state(&a.info)))
        .collect()
}

fn label(a: &AppReport) -> String {
    if a.name.is_empty() {
        a.id.clone()
    } else {
        a.name.clone()
    }
}

fn app_state(info: &Value) -> String {
    info.get("state")
        .and_then(Value::as_str)
        .unwrap_or("INVALID")
        .to_string()
}

/// An app's error text, if EVE reports one.
fn app_error(info: &Value) -> Option<String> {
    let err = info.get("err")?;
    err.get("description")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .map(String::from)
}

fn running(states: &AppStates) -> BTreeSet<&str> {
    states
        .iter()
        .filter(|(_, s)| s.as_str() == "RUNNING")
        .map(|(n, _)| n.as_str())
        .collect()
}

impl State {
    /// EVE fetched a new profile: start watching (a watch in progress is replaced).
    pub(super) fn start_settle(&mut self, now: Now) {
        let before = self.reports.apps.as_deref().map(states).unwrap_or_default();
        self.settle = Some(SettleWatch {
            profile: self.meta.desired.profile.name.clone(),
            since_mono_ms: now.mono_ms,
            last_change_mono_ms: now.mono_ms,
            before,
            latest: None,
            errors: BTreeMap::new(),
        });
        self.meta.desired.profile.outcome = Some(json!({ "status": "settling" }));
    }

    /// A new profile was set: the old switch's outcome no longer matters.
    pub(super) fn cancel_settle(&mut self) {
        self.settle = None;
        self.meta.desired.profile.outcome = None;
    }

    pub(super) fn settle_report(&mut self, apps: &[AppReport], now: Now, fx: &mut Fx) {
        let Some(watch) = &mut self.settle else {
            return;
        };
        let now_states = states(apps);
        if watch.latest.as_ref() != Some(&now_states) {
            watch.latest = Some(now_states);
            watch.last_change_mono_ms = now.mono_ms;
        }
        watch.errors = apps
            .iter()
            .filter_map(|a| app_error(&a.info).map(|e| (label(a), e)))
            .collect();
        self.check_settle(now, fx);
    }

    pub(super) fn check_settle(&mut self, now: Now, fx: &mut Fx) {
        let Some(watch) = &self.settle else {
            return;
        };
        let took = now.mono_ms.saturating_sub(watch.since_mono_ms);
        let quiet = now.mono_ms.saturating_sub(watch.last_change_mono_ms);
        let moving: Vec<Value> = match &watch.latest {
            Some(latest) => latest
                .iter()
                .filter(|(_, s)| !is_resting(s))
                .map(|(app, state)| json!({ "app": app, "state": state }))
                .collect(),
            None => Vec::new(),
        };
        let settled =
            watch.latest.is_some() && moving.is_empty() && quiet >= self.limits.settle_quiet_ms;
        let outcome = if settled {
            self.settled_outcome(watch, took)
        } else if took >= self.limits.settle_timeout_ms {
            json!({
                "profile": watch.profile,
                "duration_ms": took,
                "in_transition": moving,
                "no_report": watch.latest.is_none(),
            })
        } else {
            return;
        };
        self.settle = None;
        let status = if settled {
            fx.event(EventName::ProfileSettled, outcome.clone());
            "settled"
        } else {
            fx.event(EventName::ProfileUnsettled, outcome.clone());
            "unsettled"
        };
        let mut shown = outcome;
        shown["status"] = json!(status);
        shown["at"] = json!(super::model::rfc3339_ms(now.unix_ms()));
        self.meta.desired.profile.outcome = Some(shown);
        fx.persist(Key::Meta);
        fx.publish(StateTopic::Profile);
    }

    fn settled_outcome(&self, watch: &SettleWatch, took: u64) -> Value {
        let empty = AppStates::new();
        let after = watch.latest.as_ref().unwrap_or(&empty);
        let (was, now) = (running(&watch.before), running(after));
        let started: Vec<&str> = now.difference(&was).copied().collect();
        let halted: Vec<&str> = was.difference(&now).copied().collect();
        let errors: Vec<Value> = after
            .iter()
            .filter(|(app, s)| s.as_str() == "ERROR" || watch.errors.contains_key(*app))
            .map(|(app, state)| json!({ "app": app, "state": state, "error": watch.errors.get(app) }))
            .collect();
        let mut out = json!({
            "profile": watch.profile,
            "started": started,
            "halted": halted,
            "errors": errors,
            "duration_ms": took,
        });
        if let Some(expected) = self.limits.profile_apps.get(&watch.profile) {
            let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
            let missing: Vec<&str> = expected.difference(&now).copied().collect();
            let unexpected: Vec<&str> = now.difference(&expected).copied().collect();
            out["matches"] = json!(missing.is_empty() && unexpected.is_empty());
            out["missing"] = json!(missing);
            out["unexpected"] = json!(unexpected);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use serde_json::json;

    fn now(ms: u64) -> Now {
        Now {
            unix_ns: 1_700_000_000_000_000_000 + ms * 1_000_000,
            mono_ms: 1_000 + ms,
        }
    }

    fn report(s: &mut State, apps: &[(&str, &str)], at: u64) -> Applied<Vec<AppCommandOut>> {
        let apps = apps
            .iter()
            .map(|(name, state)| AppReport {
                id: format!("id-{name}"),
                name: name.to_string(),
                last_cmd_timestamp: 0,
                info: json!({ "name": name, "state": state }),
            })
            .collect();
        apply(s, poll::AppInfo { apps }, now(at))
    }

    fn events<R>(a: &Applied<R>) -> Vec<(&'static str, serde_json::Value)> {
        a.effects
            .iter()
            .filter_map(|e| match e {
                // Only the switch's (EVE goes offline in these long silences too).
                Effect::Event(ev) if ev.event.as_str().starts_with("profile_") => {
                    Some((ev.event.as_str(), json!(ev.data)))
                }
                _ => None,
            })
            .collect()
    }

    fn switched(expected: Option<&[&str]>) -> State {
        let mut profile_apps = std::collections::BTreeMap::new();
        if let Some(apps) = expected {
            profile_apps.insert("night".into(), apps.iter().map(|a| a.to_string()).collect());
        }
        let mut s = State::new(Limits {
            settle_quiet_ms: 30_000,
            settle_timeout_ms: 300_000,
            profile_apps: std::sync::Arc::new(profile_apps),
            ..Limits::default()
        });
        report(
            &mut s,
            &[("vision", "RUNNING"), ("gpu-trainer", "HALTED")],
            0,
        );
        let set = Intent::SetProfile {
            profile: "night".into(),
            force: false,
        };
        apply(
            &mut s,
            Submission {
                intent: set,
                source: "test".into(),
            },
            now(1),
        );
        let fetched = apply(&mut s, poll::LocalProfile, now(1_000));
        assert!(s.settle.is_some(), "{fetched:?}");
        s
    }

    #[test]
    fn a_switch_settles_after_the_quiet_period_and_says_what_changed() {
        let mut s = switched(Some(&["gpu-trainer"]));
        report(
            &mut s,
            &[("vision", "HALTING"), ("gpu-trainer", "BOOTING")],
            2_000,
        );
        assert!(events(&apply(&mut s, Tick, now(60_000))).is_empty());
        report(
            &mut s,
            &[("vision", "HALTED"), ("gpu-trainer", "RUNNING")],
            61_000,
        );
        assert!(events(&apply(&mut s, Tick, now(90_999))).is_empty());
        let done = apply(&mut s, Tick, now(91_000));
        let ev = events(&done);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].0, "profile_settled");
        let data = &ev[0].1;
        assert_eq!(data["profile"], "night");
        assert_eq!(data["started"], json!(["gpu-trainer"]));
        assert_eq!(data["halted"], json!(["vision"]));
        assert_eq!(data["errors"], json!([]));
        assert_eq!(data["duration_ms"], 90_000);
        assert_eq!(data["matches"], true);
        assert!(done.effects.contains(&Effect::Publish(StateTopic::Profile)));
        assert!(done.effects.contains(&Effect::Persist(Key::Meta)));
        let shown = s.meta.desired.profile.outcome.clone().unwrap();
        assert_eq!(shown["status"], "settled");
        assert!(s.settle.is_none());
        // Nothing more to report.
        assert!(events(&apply(&mut s, Tick, now(500_000))).is_empty());
    }

    #[test]
    fn an_app_in_error_and_a_mismatch_are_reported() {
        let mut s = switched(Some(&["gpu-trainer", "logger"]));
        report(
            &mut s,
            &[("vision", "RUNNING"), ("gpu-trainer", "ERROR")],
            2_000,
        );
        let ev = events(&apply(&mut s, Tick, now(32_000)));
        assert_eq!(ev[0].0, "profile_settled");
        assert_eq!(ev[0].1["errors"][0]["app"], "gpu-trainer");
        assert_eq!(ev[0].1["matches"], false);
        assert_eq!(ev[0].1["missing"], json!(["gpu-trainer", "logger"]));
        assert_eq!(ev[0].1["unexpected"], json!(["vision"]));
        // Without [[profiles]] apps there is no verdict.
        let mut s = switched(None);
        report(
            &mut s,
            &[("vision", "HALTED"), ("gpu-trainer", "RUNNING")],
            2_000,
        );
        let ev = events(&apply(&mut s, Tick, now(32_000)));
        assert!(ev[0].1.get("matches").is_none(), "{ev:?}");
    }

    #[test]
    fn apps_still_moving_at_the_timeout_are_unsettled() {
        let mut s = switched(None);
        report(
            &mut s,
            &[("vision", "HALTING"), ("gpu-trainer", "BOOTING")],
            2_000,
        );
        report(
            &mut s,
            &[("vision", "HALTED"), ("gpu-trainer", "BOOTING")],
            100_000,
        );
        assert!(events(&apply(&mut s, Tick, now(300_999))).is_empty());
        let ev = events(&apply(&mut s, Tick, now(301_000)));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, "profile_unsettled");
        assert_eq!(
            ev[0].1["in_transition"],
            json!([{ "app": "gpu-trainer", "state": "BOOTING" }])
        );
        assert_eq!(
            s.meta.desired.profile.outcome.as_ref().unwrap()["status"],
            "unsettled"
        );
    }

    #[test]
    fn a_new_profile_cancels_the_watch() {
        let mut s = switched(None);
        let set = Intent::SetProfile {
            profile: "day".into(),
            force: false,
        };
        apply(
            &mut s,
            Submission {
                intent: set,
                source: "test".into(),
            },
            now(2_000),
        );
        assert!(s.settle.is_none());
        assert!(s.meta.desired.profile.outcome.is_none());
        assert!(events(&apply(&mut s, Tick, now(400_000))).is_empty());
    }
}
