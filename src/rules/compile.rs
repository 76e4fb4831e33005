//! `[[rules]]` from the config → checked rules. Every refusal names the rule and says what would
//! be right; this is what start-up and `check-config` run.

use super::action::Action;
use super::condition::{valid_pointer, Condition, Expected};
use super::engine::Engine;
use super::RuleError;
use crate::config::RuleConfig;
use crate::mqtt::topics::valid_filter;
use std::collections::HashSet;
use std::time::Duration;

/// One checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub filter: String,
    pub condition: Condition,
    pub hold: Duration,
    pub action: Action,
    pub enabled: bool,
}

/// Checks every rule; the first bad one is the error.
pub fn compile(rules: &[RuleConfig]) -> Result<Engine, RuleError> {
    let mut names = HashSet::new();
    let mut compiled = Vec::with_capacity(rules.len());
    for (index, cfg) in rules.iter().enumerate() {
        let fail = |reason: String| RuleError {
            index,
            rule: cfg.name.clone(),
            reason,
        };
        let rule = compile_one(cfg).map_err(fail)?;
        if !names.insert(rule.name.clone()) {
            return Err(fail(
                "another rule has the same name; names must be unique (they appear in logs and events)"
                    .into(),
            ));
        }
        compiled.push(rule);
    }
    Ok(Engine::new(compiled))
}

fn compile_one(cfg: &RuleConfig) -> Result<Rule, String> {
    if cfg.name.trim().is_empty() {
        return Err(
            "the rule has no name; give it one (name = \"...\"), it appears in logs and events"
                .into(),
        );
    }
    if cfg.name.trim() != cfg.name {
        return Err("the name starts or ends with whitespace".into());
    }
    valid_filter(&cfg.topic).map_err(|e| format!("topic: {e}"))?;
    let condition = condition(cfg)?;
    let wildcards = cfg.topic.split('/').filter(|l| *l == "+").count();
    let action = Action::compile(&cfg.action, wildcards, &cfg.topic)?;
    Ok(Rule {
        name: cfg.name.clone(),
        filter: cfg.topic.clone(),
        condition,
        hold: cfg.hold,
        action,
        enabled: cfg.enabled,
    })
}

fn condition(cfg: &RuleConfig) -> Result<Condition, String> {
    match (&cfg.payload, &cfg.json, &cfg.equals) {
        (None, None, None) => Err(
            "no condition: give payload = \"night\" (the whole payload) or json = \"/mode\" with equals = ..."
                .into(),
        ),
        (Some(_), Some(_), _) => {
            Err("give either 'payload' (text match) or 'json' with 'equals', not both".into())
        }
        (Some(_), None, Some(_)) => Err(
            "'equals' goes with 'json' (a JSON pointer); for a text match use 'payload' alone"
                .into(),
        ),
        (None, None, Some(_)) => Err(
            "'equals' needs 'json', the JSON pointer of the value to compare (e.g. json = \"/on_battery\")"
                .into(),
        ),
        (None, Some(pointer), None) => Err(format!(
            "'json = \"{pointer}\"' needs 'equals' (a string, number or bool to compare with)"
        )),
        (Some(text), None, None) => {
            let text = text.trim();
            if text.is_empty() {
                return Err("'payload' is empty: an empty payload is what deleting a retained message looks like and never triggers a rule".into());
            }
            Ok(Condition::Text(text.to_string()))
        }
        (None, Some(pointer), Some(equals)) => {
            valid_pointer(pointer).map_err(|e| format!("json: {e}"))?;
            Ok(Condition::Json {
                pointer: pointer.clone(),
                equals: Expected::from_value(equals)?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ActionConfig;
    use serde_json::json;

    fn base() -> RuleConfig {
        RuleConfig {
            name: "r".into(),
            topic: "plant/line1/shift".into(),
            payload: Some("night".into()),
            json: None,
            equals: None,
            hold: Duration::ZERO,
            action: ActionConfig {
                profile: Some("night".into()),
                ..ActionConfig::default()
            },
            enabled: true,
        }
    }

    /// Compiles one rule changed by `f`; returns the error text.
    fn refused(f: impl FnOnce(&mut RuleConfig)) -> String {
        let mut rule = base();
        rule.name = "bad one".into();
        f(&mut rule);
        let err = compile(&[base(), rule]).expect_err("must be refused");
        assert_eq!(err.index, 1);
        let text = err.to_string();
        assert!(text.starts_with("rule 'bad one': "), "{text}");
        text
    }

    fn action(f: impl FnOnce(&mut ActionConfig)) -> impl FnOnce(&mut RuleConfig) {
        move |r| {
            r.action = ActionConfig::default();
            f(&mut r.action)
        }
    }

    fn assert_has(text: &str, want: &str) {
        assert!(text.contains(want), "'{text}' should contain '{want}'");
    }

    #[test]
    fn good_rules_compile() {
        let mut ups = base();
        ups.name = "ups".into();
        ups.topic = "ups/+/status".into();
        ups.payload = None;
        ups.json = Some("/on_battery".into());
        ups.equals = Some(json!(true));
        ups.hold = Duration::from_secs(60);
        ups.action = ActionConfig {
            device: Some("poweroff".into()),
            ..ActionConfig::default()
        };
        let mut off = base();
        off.name = "off".into();
        off.enabled = false;
        off.topic = "other/#".into();
        let engine = compile(&[base(), ups, off]).unwrap();
        assert_eq!(engine.rules().len(), 3);
        assert!(!engine.rules()[2].enabled);
        assert_eq!(
            engine.filters(),
            vec!["plant/line1/shift".to_string(), "ups/+/status".to_string()],
            "disabled rules are not subscribed"
        );
        assert!(compile(&[]).unwrap().filters().is_empty());
    }

    #[test]
    fn filters_are_deduplicated() {
        let mut day = base();
        day.name = "day".into();
        day.payload = Some("day".into());
        let engine = compile(&[base(), day]).unwrap();
        assert_eq!(engine.filters(), vec!["plant/line1/shift".to_string()]);
    }

    #[test]
    fn names_must_be_present_and_unique() {
        let err = compile(&[RuleConfig {
            name: " ".into(),
            ..base()
        }])
        .unwrap_err();
        assert_eq!(err.to_string().split(':').next(), Some("rule #1"));
        assert_has(&err.to_string(), "no name");
        let err = compile(&[RuleConfig {
            name: " r".into(),
            ..base()
        }])
        .unwrap_err();
        assert_has(&err.to_string(), "whitespace");
        let err = compile(&[base(), base()]).unwrap_err();
        assert_eq!(err.index, 1);
        assert_has(&err.to_string(), "rule 'r': another rule has the same name");
    }

    #[test]
    fn topic_filter_must_be_valid() {
        assert_has(&refused(|r| r.topic = "plant/#/x".into()), "topic:");
        assert_has(&refused(|r| r.topic = "ups+/status".into()), "whole level");
        assert_has(&refused(|r| r.topic = String::new()), "empty");
    }

    #[test]
    fn exactly_one_condition() {
        assert_has(&refused(|r| r.payload = None), "no condition: give payload");
        assert_has(
            &refused(|r| {
                r.json = Some("/mode".into());
                r.equals = Some(json!("night"));
            }),
            "either 'payload'",
        );
        assert_has(
            &refused(|r| r.equals = Some(json!("night"))),
            "'equals' goes with 'json'",
        );
        assert_has(
            &refused(|r| {
                r.payload = None;
                r.json = Some("/mode".into());
            }),
            "needs 'equals'",
        );
        assert_has(
            &refused(|r| {
                r.payload = None;
                r.equals = Some(json!(true));
            }),
            "'equals' needs 'json'",
        );
        assert_has(
            &refused(|r| r.payload = Some("  ".into())),
            "'payload' is empty",
        );
    }

    #[test]
    fn equals_and_pointer_are_checked() {
        let json_rule = |pointer: &str, equals: serde_json::Value| {
            let pointer = pointer.to_string();
            move |r: &mut RuleConfig| {
                r.payload = None;
                r.json = Some(pointer);
                r.equals = Some(equals);
            }
        };
        assert_has(
            &refused(json_rule("/mode", json!(["night"]))),
            "'equals' must be a string, number or bool, got an array",
        );
        assert_has(&refused(json_rule("/mode", json!({"a":1}))), "got a table");
        assert_has(
            &refused(json_rule("/mode", serde_json::Value::Null)),
            "must be a string, number or bool",
        );
        assert_has(
            &refused(json_rule("mode", json!("night"))),
            "json: the JSON pointer 'mode' must start with '/'",
        );
        assert_has(
            &refused(json_rule("/a~x", json!(1))),
            "'~' must be followed",
        );
        for ok in [json!("night"), json!(3), json!(2.5), json!(false)] {
            let mut r = base();
            json_rule("/mode", ok)(&mut r);
            compile(&[r]).unwrap();
        }
    }

    #[test]
    fn actions_must_be_one_kind() {
        assert_has(&refused(action(|_| {})), "the action is empty");
        assert_has(
            &refused(action(|a| {
                a.profile = Some("night".into());
                a.device = Some("reboot".into());
            })),
            "mixes kinds (profile, device)",
        );
        assert_has(
            &refused(action(|a| {
                a.app = Some("vision".into());
                a.command = Some("restart".into());
                a.radio_silence = Some(true);
            })),
            "mixes kinds",
        );
        assert_has(
            &refused(action(|a| {
                a.app = Some("vision".into());
                a.command = Some("restart".into());
                a.boot = Some("usb".into());
            })),
            "not both",
        );
        assert_has(
            &refused(action(|a| a.app = Some("vision".into()))),
            "needs what to do",
        );
        assert_has(
            &refused(action(|a| {
                a.app = Some(" ".into());
                a.command = Some("restart".into());
            })),
            "'app' is empty",
        );
    }

    #[test]
    fn command_and_boot_need_an_app() {
        assert_has(
            &refused(action(|a| a.command = Some("restart".into()))),
            "'command' needs the app",
        );
        assert_has(
            &refused(action(|a| a.boot = Some("usb".into()))),
            "'boot' needs the app",
        );
    }

    #[test]
    fn unknown_values_are_worded_like_command_replies() {
        assert_has(
            &refused(action(|a| {
                a.app = Some("vision".into());
                a.command = Some("reboot".into());
            })),
            "unknown app command 'reboot'; expected one of: restart, purge",
        );
        assert_has(
            &refused(action(|a| {
                a.app = Some("vision".into());
                a.boot = Some("cdrom".into());
            })),
            "unknown boot order 'cdrom'; expected one of: usb, nousb, default",
        );
        assert_has(
            &refused(action(|a| a.device = Some("explode".into()))),
            "unknown device command 'explode'; expected one of: shutdown, poweroff, reboot, collect_info",
        );
        assert_has(
            &refused(action(|a| a.device = Some("{1}".into()))),
            "unknown device command '{1}'",
        );
    }

    #[test]
    fn placeholders_must_match_plus_wildcards() {
        let restart = |app: &str, topic: &str| {
            let (app, topic) = (app.to_string(), topic.to_string());
            move |r: &mut RuleConfig| {
                r.topic = topic;
                r.action = ActionConfig {
                    app: Some(app),
                    command: Some("restart".into()),
                    ..ActionConfig::default()
                };
            }
        };
        assert_has(
            &refused(restart("{2}", "plc/line1/+/fault")),
            "uses {2} but the topic filter 'plc/line1/+/fault' has 1 '+' wildcard(s)",
        );
        assert_has(
            &refused(restart("{0}", "plc/line1/+/fault")),
            "count from {1}",
        );
        assert_has(&refused(restart("{1}", "plc/#")), "has 0 '+'");
        assert_has(
            &refused(|r| {
                r.action.profile = Some("{1}".into());
            }),
            "action: '{1}' uses {1}",
        );
        let mut ok = base();
        restart("{2}-{1}", "plc/+/+/fault")(&mut ok);
        compile(&[ok]).unwrap();
    }

    #[test]
    fn disabled_rules_are_still_checked() {
        assert_has(
            &refused(|r| {
                r.enabled = false;
                r.action.profile = None;
            }),
            "the action is empty",
        );
    }
}
