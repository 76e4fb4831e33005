//! End to end: a profile schedule (with an injected wall clock, so no real minute passes)
//! switches the profile through the store, the EVE simulator applies it over real HTTP, its apps
//! settle, and the gateway says so; and a switch whose apps stay in transition times out.

use crate::common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::config::{ProfileEntry, ScheduleConfig};
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};
use lps_bridge::schedule::{self, Planner, WallClock};
use lps_bridge::simulator::{self, AppSpec, SimOptions};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn shift(name: &str, cron: &str, profile: &str) -> ScheduleConfig {
    ScheduleConfig {
        name: name.into(),
        cron: cron.into(),
        timezone: Some("Europe/Berlin".into()),
        profile: Some(profile.into()),
        action: None,
        enabled: true,
    }
}

async fn event(probe: &mut Probe, pred: impl Fn(&Value) -> bool) -> Value {
    probe.expect(&format!("{B}/events"), pred).await
}

#[tokio::test]
async fn a_schedule_switches_the_profile_and_the_apps_settle() {
    let gw = TestGateway::start_with(|c| {
        // Both shifts' profiles: with [[profiles]] set, a schedule naming another is refused.
        c.profiles = vec![
            ProfileEntry {
                name: "night".into(),
                description: String::new(),
                apps: Some(vec!["gpu-trainer".into(), "logger".into()]),
            },
            ProfileEntry {
                name: "day".into(),
                description: String::new(),
                apps: None,
            },
        ];
        c.profile_switch.quiet_period = Duration::from_millis(300);
        c.profile_switch.timeout = Duration::from_secs(120);
    })
    .await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    let mut opts = SimOptions::new(gw.lps.clone(), TOKEN);
    opts.apps = AppSpec::parse_list("vision@day,gpu-trainer@night,logger").unwrap();
    opts.global_profile = "day".into();
    opts.speed = 20.0;
    let _sim = simulator::spawn(opts);
    probe
        .expect(&format!("{B}/apps"), |v| {
            let running = |name: &str| {
                v.as_array().is_some_and(|apps| {
                    apps.iter()
                        .any(|a| a["name"] == name && a["state"] == "RUNNING")
                })
            };
            running("vision") && running("logger")
        })
        .await;

    // Thursday 2026-12-03, 21:59:59 in Berlin; the last due entry is the day shift's 06:00.
    let now = Arc::new(AtomicI64::new(ms("2026-12-03T20:59:59Z")));
    let clock: WallClock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let schedules = schedule::compile(&[
        shift("night shift", "0 22 * * 1-5", "night"),
        shift("day shift", "0 6 * * 1-5", "day"),
    ])
    .unwrap();
    let tasks = lps_bridge::tasks::Tasks::default();
    let stop = tasks.input.stop.clone();
    let running = gw.running();
    let (_board, task) = schedule::spawn(
        Planner::new(schedules),
        running.store.clone(),
        running.publisher.clone(),
        format!("{B}/schedules"),
        clock,
        Duration::from_millis(50),
        &tasks,
    );

    // Never set on this box: the day entry is applied once, as missed.
    let fired = event(&mut probe, |v| v["event"] == "schedule_fired").await;
    assert_eq!(fired["schedule"], "day shift");
    assert_eq!(fired["missed"], true);
    assert_eq!(fired["entry"], "2026-12-03T06:00:00+01:00");
    event(&mut probe, |v| {
        v["event"] == "profile_set" && v["profile"] == "day" && v["source"] == "schedule:day shift"
    })
    .await;
    let settled = event(&mut probe, |v| v["event"] == "profile_settled").await;
    assert_eq!(settled["profile"], "day");
    assert_eq!(settled["started"], json!([]));
    assert_eq!(settled["halted"], json!([]));
    probe
        .expect(&format!("{B}/schedules"), |v| {
            v[0]["name"] == "night shift" && v[0]["next"] == "2026-12-03T22:00:00+01:00"
        })
        .await;

    // 22:00:00.5: the night shift's entry passes.
    now.store(ms("2026-12-03T21:00:00.500Z"), Ordering::SeqCst);
    let fired = event(&mut probe, |v| {
        v["event"] == "schedule_fired" && v["schedule"] == "night shift"
    })
    .await;
    assert_eq!(fired["missed"], false);
    assert_eq!(fired["action"], json!({ "profile": "night" }));
    assert_eq!(fired["result"]["desired"]["profile"], "night");
    event(&mut probe, |v| {
        v["event"] == "profile_delivered" && v["profile"] == "night"
    })
    .await;
    let settled = event(&mut probe, |v| {
        v["event"] == "profile_settled" && v["profile"] == "night"
    })
    .await;
    assert_eq!(settled["started"], json!(["gpu-trainer"]));
    assert_eq!(settled["halted"], json!(["vision"]));
    assert_eq!(settled["errors"], json!([]));
    assert_eq!(settled["matches"], true);
    assert!(settled["duration_ms"].as_u64().is_some());
    probe
        .expect(&format!("{B}/profile"), |v| {
            v["desired"] == "night" && v["switch"]["status"] == "settled"
        })
        .await;
    probe
        .expect(&format!("{B}/schedules"), |v| {
            v[0]["next"] == "2026-12-04T22:00:00+01:00" && v[0]["last"]["status"] == "ok"
        })
        .await;
    // The API shows the same board (the gateway's own has no schedules configured here).
    let body = reqwest::get(format!(
        "http://{}/api/schedules",
        running.operator_addr.unwrap()
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    let api: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(api, json!([]));

    // NTP steps the clock 9 hours ahead (Friday 07:00): of the entries passed, only the
    // latest (the day shift's 06:00) is applied, once; the night shift is not repeated.
    probe.forget();
    now.store(ms("2026-12-04T06:00:00Z"), Ordering::SeqCst);
    let fired = event(&mut probe, |v| v["event"] == "schedule_fired").await;
    assert_eq!(fired["schedule"], "day shift");
    assert_eq!(fired["missed"], true);
    assert_eq!(fired["entry"], "2026-12-04T06:00:00+01:00");
    probe
        .expect(&format!("{B}/schedules"), |v| {
            v[1]["next"] == "2026-12-07T06:00:00+01:00" && v[1]["last"]["status"] == "ok"
        })
        .await;
    stop.cancel();
    task.await.unwrap();
    let firings = probe
        .seen
        .iter()
        .filter(|m| m.topic == format!("{B}/events") && m.json()["event"] == "schedule_fired")
        .count();
    assert_eq!(firings, 1, "one firing for the step");
}

fn apps(state: i32) -> LocalAppInfoList {
    LocalAppInfoList {
        apps_info: vec![LocalAppInfo {
            id: "6f1c2a3e-0000-4000-8000-000000000001".into(),
            name: "vision".into(),
            version: "1".into(),
            state,
            ..Default::default()
        }],
    }
}

#[tokio::test]
async fn a_switch_whose_apps_stay_in_transition_is_unsettled() {
    let gw = TestGateway::start_with(|c| {
        c.profile_switch.quiet_period = Duration::from_millis(200);
        c.profile_switch.timeout = Duration::from_millis(1500);
    })
    .await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    // EVE by hand: vision runs, the profile changes, EVE fetches it, vision halts and never ends.
    assert!(eve_post(&gw.lps, "appinfo", &apps(7))
        .await
        .status()
        .is_success());
    let reply = probe.command(B, "profile/set", "night").await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(eve_get(&gw.lps, "local_profile").await.status(), 200);
    assert!(eve_post(&gw.lps, "appinfo", &apps(8))
        .await
        .status()
        .is_success());
    let unsettled = event(&mut probe, |v| v["event"] == "profile_unsettled").await;
    assert_eq!(unsettled["profile"], "night");
    assert_eq!(
        unsettled["in_transition"],
        json!([{ "app": "vision", "state": "HALTING" }])
    );
    probe
        .expect(&format!("{B}/profile"), |v| {
            v["switch"]["status"] == "unsettled"
        })
        .await;
    assert!(
        !probe
            .seen
            .iter()
            .any(|m| m.topic == format!("{B}/events") && m.json()["event"] == "profile_settled"),
        "never settled"
    );
}
