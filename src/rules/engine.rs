//! The rules' pure state machine. Time comes in as an argument, so every behaviour is a plain
//! unit test.
//!
//! Each rule keeps one state per concrete topic it matched (`ups/+/status` tracks `ups/ups1/status`
//! and `ups/ups2/status` apart):
//!
//! ```text
//!            true, hold = 0 ──────────────► Fired ── false ──► Armed
//!  Armed ──  true, hold > 0 ─► Holding ── deadline ──► Fired
//!                                 └─ false ─► Armed (hold cancelled)
//! ```
//! A true message while Holding or Fired changes nothing (edge-triggered: no second firing while
//! the condition stays true). An empty payload (a retained message being deleted) is not a
//! reading of the plant and changes nothing.

use super::compile::Rule;
use crate::config::ActionConfig;
use crate::mqtt::topics::filter_matches;
use crate::state::Intent;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// What the engine wants done or reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The rule fires: submit `intent`.
    Fired(Firing),
    /// The condition became true; the rule fires at `deadline` unless it turns false before.
    HoldStarted {
        rule: String,
        topic: String,
        hold: Duration,
        deadline: Instant,
    },
    /// The condition turned false during the hold: the firing is called off.
    HoldCancelled {
        rule: String,
        topic: String,
        held: Duration,
    },
    /// The condition turned false after a firing: the rule can fire again.
    Rearmed { rule: String, topic: String },
}

/// One firing of one rule on one concrete topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub rule: String,
    pub topic: String,
    /// The action as carried out, with placeholders filled (for logs and events).
    pub action: ActionConfig,
    pub intent: Intent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Holding { since: Instant, deadline: Instant },
    Fired,
}

/// All rules and their per-topic state. Armed (the default) is not stored, so memory follows the
/// topics whose condition is true right now.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    /// (rule index, concrete topic) → phase.
    phases: BTreeMap<(usize, String), Phase>,
}

impl Engine {
    pub(super) fn new(rules: Vec<Rule>) -> Engine {
        Engine {
            rules,
            phases: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether no rule is enabled (nothing to subscribe, nothing to run).
    pub fn is_idle(&self) -> bool {
        !self.rules.iter().any(|r| r.enabled)
    }

    /// The topic filters the enabled rules need, each once, in config order.
    pub fn filters(&self) -> Vec<String> {
        let mut filters: Vec<String> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.enabled) {
            if !filters.contains(&rule.filter) {
                filters.push(rule.filter.clone());
            }
        }
        filters
    }

    /// When the earliest hold ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.phases
            .values()
            .filter_map(|p| match p {
                Phase::Holding { deadline, .. } => Some(*deadline),
                Phase::Fired => None,
            })
            .min()
    }

    /// Fires every rule whose hold ended at or before `now`, earliest first.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Outcome> {
        let mut due: Vec<(Instant, usize, String)> = self
            .phases
            .iter()
            .filter_map(|((index, topic), phase)| match phase {
                Phase::Holding { deadline, .. } if *deadline <= now => {
                    Some((*deadline, *index, topic.clone()))
                }
                _ => None,
            })
            .collect();
        due.sort();
        due.into_iter()
            .map(|(_, index, topic)| {
                self.phases.insert((index, topic.clone()), Phase::Fired);
                Outcome::Fired(self.firing(index, topic))
            })
            .collect()
    }

    /// One message on a rule topic. Holds that ended by `now` fire first (the condition did stay
    /// true for the whole hold), then every enabled rule whose filter matches sees the message.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now: Instant) -> Vec<Outcome> {
        let mut outcomes = self.on_timer(now);
        if payload.is_empty() {
            return outcomes;
        }
        for index in 0..self.rules.len() {
            let rule = &self.rules[index];
            if !rule.enabled || filter_matches(&rule.filter, topic).is_none() {
                continue;
            }
            let holds = rule.condition.holds(payload);
            let key = (index, topic.to_string());
            let name = rule.name.clone();
            let hold = rule.hold;
            match (self.phases.get(&key).copied(), holds) {
                (None, true) if hold.is_zero() => {
                    self.phases.insert(key, Phase::Fired);
                    outcomes.push(Outcome::Fired(self.firing(index, topic.to_string())));
                }
                (None, true) => {
                    let deadline = now + hold;
                    self.phases.insert(
                        key,
                        Phase::Holding {
                            since: now,
                            deadline,
                        },
                    );
                    outcomes.push(Outcome::HoldStarted {
                        rule: name,
                        topic: topic.to_string(),
                        hold,
                        deadline,
                    });
                }
                (Some(_), true) | (None, false) => {}
                (Some(Phase::Holding { since, .. }), false) => {
                    self.phases.remove(&key);
                    outcomes.push(Outcome::HoldCancelled {
                        rule: name,
                        topic: topic.to_string(),
                        held: now.saturating_duration_since(since),
                    });
                }
                (Some(Phase::Fired), false) => {
                    self.phases.remove(&key);
                    outcomes.push(Outcome::Rearmed {
                        rule: name,
                        topic: topic.to_string(),
                    });
                }
            }
        }
        outcomes
    }

    fn firing(&self, index: usize, topic: String) -> Firing {
        let rule = &self.rules[index];
        let mut captures = filter_matches(&rule.filter, &topic).unwrap_or_default();
        // A trailing `#` adds the rest of the topic as a last capture; placeholders only name `+`.
        if rule.filter.split('/').next_back() == Some("#") {
            captures.pop();
        }
        let (intent, action) = rule.action.render(&captures);
        Firing {
            rule: rule.name.clone(),
            topic,
            action,
            intent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ActionConfig, RuleConfig};
    use crate::rules::compile;
    use crate::state::{AppAction, DeviceAction};
    use serde_json::json;

    const SEC: Duration = Duration::from_secs(1);

    fn shift(name: &str, value: &str) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            topic: "plant/line1/shift".into(),
            payload: Some(value.into()),
            json: None,
            equals: None,
            hold: Duration::ZERO,
            action: ActionConfig {
                profile: Some(value.into()),
                ..ActionConfig::default()
            },
            enabled: true,
        }
    }

    fn ups(hold: Duration) -> RuleConfig {
        RuleConfig {
            name: "ups".into(),
            topic: "ups/+/status".into(),
            payload: None,
            json: Some("/on_battery".into()),
            equals: Some(json!(true)),
            hold,
            action: ActionConfig {
                device: Some("poweroff".into()),
                ..ActionConfig::default()
            },
            enabled: true,
        }
    }

    fn fault() -> RuleConfig {
        RuleConfig {
            name: "fault".into(),
            topic: "plc/+/+/fault".into(),
            payload: None,
            json: Some("/fault".into()),
            equals: Some(json!(true)),
            hold: Duration::ZERO,
            action: ActionConfig {
                app: Some("{2}".into()),
                command: Some("restart".into()),
                ..ActionConfig::default()
            },
            enabled: true,
        }
    }

    const ON: &[u8] = br#"{"on_battery":true}"#;
    const OFF: &[u8] = br#"{"on_battery":false}"#;

    fn fired(outcomes: &[Outcome]) -> Vec<&Firing> {
        outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Fired(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn fires_when_the_condition_becomes_true() {
        let mut e = compile(&[shift("night", "night"), shift("day", "day")]).unwrap();
        let t0 = Instant::now();
        let out = e.on_message("plant/line1/shift", b"night", t0);
        assert_eq!(
            out,
            vec![Outcome::Fired(Firing {
                rule: "night".into(),
                topic: "plant/line1/shift".into(),
                action: ActionConfig {
                    profile: Some("night".into()),
                    ..ActionConfig::default()
                },
                intent: Intent::SetProfile {
                    profile: "night".into(),
                    force: false,
                },
            })]
        );
        let out = e.on_message("plant/line1/shift", b"day", t0 + SEC);
        assert_eq!(fired(&out).len(), 1);
        assert_eq!(fired(&out)[0].rule, "day");
        assert!(out.contains(&Outcome::Rearmed {
            rule: "night".into(),
            topic: "plant/line1/shift".into()
        }));
        assert!(e.on_message("plant/line1/other", b"night", t0).is_empty());
        assert_eq!(e.next_deadline(), None);
    }

    #[test]
    fn no_second_firing_while_true_and_rearms_on_false() {
        let mut e = compile(&[shift("night", "night")]).unwrap();
        let t0 = Instant::now();
        assert_eq!(
            fired(&e.on_message("plant/line1/shift", b"night", t0)).len(),
            1
        );
        for i in 1..5 {
            assert!(e
                .on_message("plant/line1/shift", b"night", t0 + i * SEC)
                .is_empty());
        }
        let out = e.on_message("plant/line1/shift", b"day", t0 + 5 * SEC);
        assert!(matches!(out.as_slice(), [Outcome::Rearmed { .. }]));
        assert!(
            e.on_message("plant/line1/shift", b"evening", t0 + 6 * SEC)
                .is_empty(),
            "false while armed: nothing"
        );
        assert_eq!(
            fired(&e.on_message("plant/line1/shift", b"night", t0 + 7 * SEC)).len(),
            1,
            "re-armed: fires again"
        );
    }

    #[test]
    fn hold_fires_at_its_deadline_once() {
        let mut e = compile(&[ups(60 * SEC)]).unwrap();
        let t0 = Instant::now();
        let out = e.on_message("ups/ups1/status", ON, t0);
        assert_eq!(
            out,
            vec![Outcome::HoldStarted {
                rule: "ups".into(),
                topic: "ups/ups1/status".into(),
                hold: 60 * SEC,
                deadline: t0 + 60 * SEC
            }]
        );
        assert_eq!(e.next_deadline(), Some(t0 + 60 * SEC));
        assert!(e.on_timer(t0 + 59 * SEC).is_empty(), "not yet");
        assert!(
            e.on_message("ups/ups1/status", ON, t0 + 30 * SEC)
                .is_empty(),
            "true again during the hold neither restarts nor fires"
        );
        assert_eq!(
            e.next_deadline(),
            Some(t0 + 60 * SEC),
            "the hold is not restarted"
        );
        let out = e.on_timer(t0 + 60 * SEC);
        let f = fired(&out);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].intent,
            Intent::DeviceCommand {
                action: DeviceAction::Poweroff
            }
        );
        assert_eq!(f[0].action.device.as_deref(), Some("poweroff"));
        assert_eq!(e.next_deadline(), None);
        assert!(e.on_timer(t0 + 120 * SEC).is_empty());
        assert!(e
            .on_message("ups/ups1/status", ON, t0 + 121 * SEC)
            .is_empty());
    }

    #[test]
    fn false_within_the_hold_cancels_the_firing() {
        let mut e = compile(&[ups(60 * SEC)]).unwrap();
        let t0 = Instant::now();
        e.on_message("ups/ups1/status", ON, t0);
        let out = e.on_message("ups/ups1/status", OFF, t0 + 20 * SEC);
        assert_eq!(
            out,
            vec![Outcome::HoldCancelled {
                rule: "ups".into(),
                topic: "ups/ups1/status".into(),
                held: 20 * SEC
            }]
        );
        assert_eq!(e.next_deadline(), None);
        assert!(e.on_timer(t0 + 61 * SEC).is_empty(), "never fires");
        // On battery again: a fresh, full hold.
        let out = e.on_message("ups/ups1/status", ON, t0 + 70 * SEC);
        assert!(
            matches!(out.as_slice(), [Outcome::HoldStarted { deadline, .. }] if *deadline == t0 + 130 * SEC)
        );
        assert!(e.on_timer(t0 + 129 * SEC).is_empty());
        assert_eq!(fired(&e.on_timer(t0 + 130 * SEC)).len(), 1);
    }

    #[test]
    fn a_message_after_the_deadline_fires_the_due_hold_first() {
        let mut e = compile(&[ups(10 * SEC)]).unwrap();
        let t0 = Instant::now();
        e.on_message("ups/ups1/status", ON, t0);
        // The timer has not run yet, but the condition stayed true for the whole hold.
        let out = e.on_message("ups/ups1/status", OFF, t0 + 11 * SEC);
        assert!(
            matches!(out.as_slice(), [Outcome::Fired(_), Outcome::Rearmed { .. }]),
            "{out:?}"
        );
    }

    #[test]
    fn unparsable_or_missing_counts_as_false() {
        let mut e = compile(&[ups(60 * SEC)]).unwrap();
        let t0 = Instant::now();
        e.on_message("ups/ups1/status", ON, t0);
        let out = e.on_message("ups/ups1/status", b"garbage", t0 + SEC);
        assert!(matches!(out.as_slice(), [Outcome::HoldCancelled { .. }]));
        e.on_message("ups/ups1/status", ON, t0 + 2 * SEC);
        let out = e.on_message("ups/ups1/status", br#"{"charge":50}"#, t0 + 3 * SEC);
        assert!(matches!(out.as_slice(), [Outcome::HoldCancelled { .. }]));
    }

    #[test]
    fn an_empty_payload_changes_nothing() {
        let mut e = compile(&[ups(60 * SEC)]).unwrap();
        let t0 = Instant::now();
        e.on_message("ups/ups1/status", ON, t0);
        assert!(e.on_message("ups/ups1/status", b"", t0 + SEC).is_empty());
        assert_eq!(fired(&e.on_timer(t0 + 60 * SEC)).len(), 1);
    }

    #[test]
    fn each_concrete_topic_has_its_own_state() {
        let mut e = compile(&[ups(60 * SEC)]).unwrap();
        let t0 = Instant::now();
        e.on_message("ups/ups1/status", ON, t0);
        e.on_message("ups/ups2/status", ON, t0 + 10 * SEC);
        assert_eq!(e.next_deadline(), Some(t0 + 60 * SEC));
        // ups2 back on mains: only its hold is cancelled.
        let out = e.on_message("ups/ups2/status", OFF, t0 + 20 * SEC);
        assert!(
            matches!(out.as_slice(), [Outcome::HoldCancelled { topic, .. }] if topic == "ups/ups2/status")
        );
        let out = e.on_timer(t0 + 60 * SEC);
        let f = fired(&out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].topic, "ups/ups1/status");
        // ups2 on battery again: its own hold, its own firing, though ups1 stays fired.
        e.on_message("ups/ups2/status", ON, t0 + 70 * SEC);
        assert_eq!(e.next_deadline(), Some(t0 + 130 * SEC));
        let out = e.on_timer(t0 + 200 * SEC);
        assert_eq!(fired(&out).len(), 1);
        assert_eq!(fired(&out)[0].topic, "ups/ups2/status");
    }

    #[test]
    fn holds_fire_in_deadline_order() {
        let mut e = compile(&[ups(60 * SEC)]).unwrap();
        let t0 = Instant::now();
        e.on_message("ups/ups9/status", ON, t0);
        e.on_message("ups/ups1/status", ON, t0 + SEC);
        let out = e.on_timer(t0 + 100 * SEC);
        let topics: Vec<&str> = fired(&out).iter().map(|f| f.topic.as_str()).collect();
        assert_eq!(topics, vec!["ups/ups9/status", "ups/ups1/status"]);
    }

    #[test]
    fn wildcards_fill_the_action() {
        let mut e = compile(&[fault()]).unwrap();
        let t0 = Instant::now();
        let out = e.on_message("plc/line1/vision/fault", br#"{"fault":true}"#, t0);
        let f = fired(&out);
        assert_eq!(
            f[0].intent,
            Intent::AppCommand {
                app: "vision".into(),
                action: AppAction::Restart
            }
        );
        assert_eq!(f[0].action.app.as_deref(), Some("vision"));
        assert_eq!(f[0].action.command.as_deref(), Some("restart"));
        let out = e.on_message("plc/line2/logger/fault", br#"{"fault":true}"#, t0);
        assert_eq!(
            fired(&out)[0].intent,
            Intent::AppCommand {
                app: "logger".into(),
                action: AppAction::Restart
            }
        );
        assert!(e
            .on_message("plc/line1/vision/fault", br#"{"fault":true}"#, t0 + SEC)
            .is_empty());
    }

    #[test]
    fn a_trailing_hash_is_not_a_placeholder() {
        let mut rule = fault();
        rule.topic = "plc/+/#".into();
        rule.action.app = Some("app-{1}".into());
        let mut e = compile(&[rule]).unwrap();
        let out = e.on_message("plc/vision/x/y", br#"{"fault":true}"#, Instant::now());
        assert_eq!(fired(&out)[0].action.app.as_deref(), Some("app-vision"));
    }

    #[test]
    fn disabled_rules_never_fire() {
        let mut off = shift("night", "night");
        off.enabled = false;
        let mut e = compile(&[off, shift("day", "day")]).unwrap();
        assert!(!e.is_idle());
        let t0 = Instant::now();
        assert!(e.on_message("plant/line1/shift", b"night", t0).is_empty());
        assert!(e.on_timer(t0 + 1000 * SEC).is_empty());
        let mut only_off = shift("night", "night");
        only_off.enabled = false;
        let e = compile(&[only_off]).unwrap();
        assert!(e.is_idle() && e.filters().is_empty());
    }

    #[test]
    fn several_rules_on_one_message_each_decide() {
        let mut restart = fault();
        restart.topic = "plc/line1/+/fault".into();
        restart.action.app = Some("{1}".into());
        let mut collect = fault();
        collect.name = "collect".into();
        collect.hold = 5 * SEC;
        collect.action = ActionConfig {
            device: Some("collect_info".into()),
            ..ActionConfig::default()
        };
        let mut e = compile(&[restart, collect]).unwrap();
        let t0 = Instant::now();
        let out = e.on_message("plc/line1/vision/fault", br#"{"fault":true}"#, t0);
        assert!(
            matches!(
                out.as_slice(),
                [Outcome::Fired(f), Outcome::HoldStarted { rule, .. }] if f.rule == "fault" && rule == "collect"
            ),
            "{out:?}"
        );
    }
}
