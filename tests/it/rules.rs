//! Bridge rules end to end: a plant client publishes on its own topics to the real
//! embedded broker; the rules turn that into intents in the store and report on `B/events`.

use crate::common;

use common::mqtt::Probe;
use common::reports::{logger, vision, VISION};
use common::store::desired_profile;
use common::*;
use lps_bridge::config::{Config, RuleConfig};
use lps_bridge::eve::profile::LocalAppInfoList;
use lps_bridge::state::{AppAction, CommandKind, DeviceAction, State};
use serde_json::{json, Value};
use std::time::Duration;

/// `[[rules]]` as an operator would write them.
fn rules(toml: &str) -> Vec<RuleConfig> {
    Config::from_toml(toml).unwrap().rules
}

const SHIFT: &str = r#"
[[rules]]
name = "night shift"
topic = "plant/line1/shift"
payload = "night"
action = { profile = "night" }
"#;

const UPS: &str = r#"
[[rules]]
name = "ups poweroff"
topic = "ups/+/status"
json = "/on_battery"
equals = true
hold = "1s"
action = { device = "poweroff" }
"#;

const FAULT: &str = r#"
[[rules]]
name = "fault restart"
topic = "plc/line1/+/fault"
json = "/fault"
equals = true
action = { app = "{1}", command = "restart" }
"#;

async fn gateway(toml: &str) -> TestGateway {
    let rules = rules(toml);
    TestGateway::start_with(move |c| c.rules = rules).await
}

async fn probe(gw: &TestGateway) -> Probe {
    ready_probe(gw, &[&format!("{B}/events"), &format!("{B}/profile")]).await
}

/// A probe on `filters`, returned once the gateway's own broker link is subscribed: the link
/// subscribes before it publishes anything, so seeing `B/bridge/state` (retained or live) means a
/// plant message published now reaches the rules (`app::start` returns before that).
async fn ready_probe(gw: &TestGateway, filters: &[&str]) -> Probe {
    let bridge = format!("{B}/bridge/state");
    let mut all = filters.to_vec();
    all.push(&bridge);
    let mut probe = Probe::connect(gw.mqtt_port, &all).await;
    probe.expect(&bridge, |_| true).await;
    probe
}

fn event(name: &'static str, rule: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == name && v["rule"] == rule
}

fn device_commands(state: &State, source: &str) -> Vec<DeviceAction> {
    state
        .commands
        .values()
        .filter(|c| c.source == source)
        .filter_map(|c| match &c.kind {
            CommandKind::Device { action } => Some(*action),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_plc_shift_topic_switches_the_profile() {
    let gw = gateway(SHIFT).await;
    let mut probe = probe(&gw).await;
    probe.publish("plant/line1/shift", "night").await;
    let fired = probe
        .expect(&format!("{B}/events"), event("rule_fired", "night shift"))
        .await;
    assert_eq!(fired["topic"], "plant/line1/shift");
    assert_eq!(fired["action"], json!({ "profile": "night" }));
    assert_eq!(fired["result"]["desired"], json!({ "profile": "night" }));
    assert!(fired["at"].as_str().unwrap().ends_with('Z'), "{fired}");
    probe
        .expect(&format!("{B}/profile"), |v| v["desired"] == "night")
        .await;
    let set = probe
        .expect(&format!("{B}/events"), |v| v["event"] == "profile_set")
        .await;
    assert_eq!(set["source"], "rule:night shift");
    assert_eq!(desired_profile(&gw), "night");
}

#[tokio::test]
async fn a_ups_back_on_mains_within_the_hold_cancels_then_a_held_failure_powers_off_once() {
    let gw = gateway(&format!("{UPS}{SHIFT}")).await;
    let mut probe = probe(&gw).await;
    let events = format!("{B}/events");
    let (on, off) = (r#"{"on_battery":true}"#, r#"{"on_battery":false}"#);

    probe.publish("ups/ups1/status", on).await;
    let started = probe
        .expect(&events, event("rule_hold_started", "ups poweroff"))
        .await;
    assert_eq!(started["topic"], "ups/ups1/status");
    assert_eq!(started["hold_ms"], 1000);
    assert!(started["fires_at"].is_string());
    probe.publish("ups/ups1/status", off).await;
    let cancelled = probe
        .expect(&events, event("rule_hold_cancelled", "ups poweroff"))
        .await;
    assert_eq!(cancelled["topic"], "ups/ups1/status");
    assert!(cancelled["held_ms"].as_u64().unwrap() < 1000);
    probe.forget();

    // On battery again, and it stays so: fires after a fresh, full hold (not at the first one's
    // deadline, which the cancel called off).
    let second = tokio::time::Instant::now();
    probe.publish("ups/ups1/status", on).await;
    probe
        .expect(&events, event("rule_hold_started", "ups poweroff"))
        .await;
    let fired = probe
        .expect(&events, event("rule_fired", "ups poweroff"))
        .await;
    assert!(
        second.elapsed() >= Duration::from_secs(1),
        "fired {:?} after the second 'on battery'",
        second.elapsed()
    );
    assert_eq!(fired["topic"], "ups/ups1/status");
    assert_eq!(fired["action"], json!({ "device": "poweroff" }));
    let id = fired["result"]["command"]["id"].as_u64().unwrap();
    assert!(fired["result"]["command"]["timestamp"].is_string());

    // Still on battery: no second firing. The shift rule is a marker: the rules take messages in
    // order, so once it fired the repeated 'on battery' has been seen.
    probe.publish("ups/ups1/status", on).await;
    probe.publish("ups/ups1/status", on).await;
    probe.publish("plant/line1/shift", "night").await;
    probe
        .expect(&events, event("rule_fired", "night shift"))
        .await;
    let ups_firings = probe
        .seen
        .iter()
        .filter(|m| m.topic == events && event("rule_fired", "ups poweroff")(&m.json()))
        .count();
    assert_eq!(ups_firings, 1);
    let state = gw.running().store.snapshot();
    assert_eq!(
        device_commands(&state, "rule:ups poweroff"),
        vec![DeviceAction::Poweroff]
    );
    assert!(state.commands.contains_key(&id));
}

#[tokio::test]
async fn a_wildcard_fault_restarts_that_app_and_an_unknown_app_is_reported() {
    let gw = gateway(FAULT).await;
    let apps = LocalAppInfoList {
        apps_info: vec![vision(), logger()],
    };
    assert!(eve_post(&gw.lps, "appinfo", &apps)
        .await
        .status()
        .is_success());
    let mut probe = probe(&gw).await;
    let events = format!("{B}/events");

    probe
        .publish("plc/line1/vision/fault", r#"{"fault":true,"code":17}"#)
        .await;
    let fired = probe
        .expect(&events, event("rule_fired", "fault restart"))
        .await;
    assert_eq!(fired["topic"], "plc/line1/vision/fault");
    assert_eq!(
        fired["action"],
        json!({ "app": "vision", "command": "restart" })
    );
    let id = fired["result"]["command"]["id"].as_u64().unwrap();
    let state = gw.running().store.snapshot();
    let cmd = &state.commands[&id];
    assert_eq!(cmd.source, "rule:fault restart");
    match &cmd.kind {
        CommandKind::App { app, action } => {
            assert_eq!(app.id, VISION);
            assert_eq!(*action, AppAction::Restart);
        }
        other => panic!("{other:?}"),
    }

    probe
        .publish("plc/line1/ghost/fault", r#"{"fault":true}"#)
        .await;
    let failed = probe
        .expect(&events, event("rule_failed", "fault restart"))
        .await;
    assert_eq!(failed["topic"], "plc/line1/ghost/fault");
    assert_eq!(
        failed["action"],
        json!({ "app": "ghost", "command": "restart" })
    );
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("unknown app 'ghost'") && error.contains("vision"),
        "{error}"
    );
    assert_eq!(
        gw.running().store.snapshot().commands.len(),
        state.commands.len(),
        "a failed rule changes nothing"
    );
}

#[tokio::test]
async fn disabled_rules_are_not_acted_on() {
    let gw = gateway(&format!(
        "{}{SHIFT}",
        r#"
[[rules]]
name = "disabled reboot"
topic = "plant/line1/shift"
payload = "night"
action = { device = "reboot" }
enabled = false
"#
    ))
    .await;
    let mut probe = probe(&gw).await;
    probe.publish("plant/line1/shift", "night").await;
    probe
        .expect(&format!("{B}/events"), event("rule_fired", "night shift"))
        .await;
    assert!(gw.running().store.snapshot().commands.is_empty());
    assert!(!probe
        .seen
        .iter()
        .any(|m| m.json()["rule"] == "disabled reboot"));
}

#[test]
fn a_bad_rule_is_rejected_by_validation_with_its_name() {
    let config = Config {
        rules: rules(
            r#"
[[rules]]
name = "typo"
topic = "plc/line1/+/fault"
json = "/fault"
equals = true
action = { app = "{1}", command = "restrat" }
"#,
        ),
        ..Config::default()
    };
    let err = lps_bridge::app::prepare(config)
        .expect_err("must be rejected")
        .to_string();
    assert!(
        err.contains("rules")
            && err.contains("rule 'typo'")
            && err.contains("unknown app command 'restrat'; expected one of: restart, purge"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rule_filter_overlapping_the_command_topics_does_not_run_commands_twice() {
    // A broker delivers a message once per matching subscription: the gateway must not subscribe
    // both `lps/edge/#` (the rule) and `lps/edge/+/set` (commands).
    let gw = gateway(&format!(
        "{SHIFT}{}",
        r#"
[[rules]]
name = "gateway offline"
topic = "lps/edge/#"
json = "/state"
equals = "offline"
action = { radio_silence = false }
"#
    ))
    .await;
    let mut probe = ready_probe(&gw, &[&format!("{B}/response/#"), &format!("{B}/events")]).await;
    let r = probe
        .command(B, "device/set", r#"{"command":"reboot"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    assert!(r.get("note").is_none(), "queued behind a duplicate: {r}");
    // Markers that pass through both paths after the command.
    let r = probe.command(B, "profile/set", "day").await;
    assert_eq!(r["status"], "ok", "{r}");
    probe.publish("plant/line1/shift", "night").await;
    probe
        .expect(&format!("{B}/events"), event("rule_fired", "night shift"))
        .await;
    let replies = probe
        .seen
        .iter()
        .filter(|m| m.topic == format!("{B}/response/device/set"))
        .count();
    assert_eq!(replies, 1);
    let state = gw.running().store.snapshot();
    assert_eq!(device_commands(&state, "mqtt"), vec![DeviceAction::Reboot]);
    let firings = probe
        .seen
        .iter()
        .filter(|m| event("rule_fired", "night shift")(&m.json()))
        .count();
    assert_eq!(firings, 1);
}
