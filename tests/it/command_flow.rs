//! End to end, every command kind: a real MQTT client → the gateway → the EVE simulator (polling
//! over real HTTP, following the signal stream) → telemetry back on MQTT.

use crate::common;

use common::mqtt::{command_timestamp, Probe};
use common::*;
use lps_bridge::eve::info::{BootReason, ZDeviceState, ZSwState};
use lps_bridge::simulator::{self, AppSpec, SimHandle, SimOptions, SimSnapshot};
use serde_json::Value;
use std::time::Duration;

struct Rig {
    _gw: TestGateway,
    sim: SimHandle,
    probe: Probe,
}

impl Rig {
    async fn start(apps: &str) -> Rig {
        Self::start_with_token(apps, TOKEN).await
    }

    async fn start_with_token(apps: &str, sim_token: &str) -> Rig {
        let gw = TestGateway::start().await;
        let probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
        let mut opts = SimOptions::new(gw.lps.clone(), sim_token);
        opts.apps = AppSpec::parse_list(apps).unwrap();
        opts.speed = 20.0;
        let sim = simulator::spawn(opts);
        Rig {
            _gw: gw,
            sim,
            probe,
        }
    }

    async fn sim_until(&self, what: &str, pred: impl Fn(&SimSnapshot) -> bool) -> SimSnapshot {
        match self.sim.wait_for(pred, patience()).await {
            Ok(s) => s,
            Err(s) => panic!(
                "simulator never reached: {what}\n{}",
                serde_json::to_string_pretty(&s).unwrap_or_default()
            ),
        }
    }

    async fn command(&mut self, relative: &str, payload: &str) -> Value {
        let r = self.probe.command(B, relative, payload).await;
        assert_eq!(r["status"], "ok", "{relative} {payload}: {r}");
        r
    }

    /// [`Rig::command`], returning the timestamp of the command it created.
    async fn command_ts(&mut self, relative: &str, payload: &str) -> u64 {
        command_timestamp(&self.command(relative, payload).await)
    }

    async fn expect(&mut self, relative: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.probe.expect(&format!("{B}/{relative}"), pred).await
    }

    async fn event(&mut self, name: &str) -> Value {
        let name = name.to_string();
        self.expect("events", move |v| v["event"] == name.as_str())
            .await
    }

    /// Waits until the simulator has reported its apps, so names resolve.
    async fn apps_known(&mut self) {
        self.expect("apps", |v| v.as_array().is_some_and(|a| !a.is_empty()))
            .await;
    }
}

/// A uint64 in protobuf JSON form (a string) equals `t`.
fn is_ts(v: &Value, t: u64) -> bool {
    v.as_str().and_then(|s| s.parse::<u64>().ok()) == Some(t)
}

#[tokio::test]
async fn app_restart_runs_through_the_whole_lifecycle() {
    let mut rig = Rig::start("vision,logger").await;
    rig.apps_known().await;
    let t = rig
        .command_ts("app/vision/set", r#"{"command":"restart"}"#)
        .await;
    rig.event("command_delivered").await;
    let done = rig.event("command_completed").await;
    assert_eq!(done["timestamp"], t.to_string());
    let sim = rig
        .sim_until("vision restarted", |s| {
            s.app("vision")
                .is_some_and(|a| a.restart_count == 1 && a.state == ZSwState::Running)
        })
        .await;
    assert_eq!(sim.app("vision").unwrap().last_cmd_timestamp, t);
    assert_eq!(sim.app("logger").unwrap().restart_count, 0);
    rig.expect("app/vision", move |v| {
        v["command"]["lifecycle"] == "completed"
            && is_ts(&v["last_cmd_timestamp"], t)
            && v["state"] == "RUNNING"
    })
    .await;
    assert!(
        rig.probe
            .seen
            .iter()
            .any(|m| m.topic == format!("{B}/app/vision") && m.json()["state"] == "RESTARTING"),
        "RESTARTING was reported on the way"
    );
}

#[tokio::test]
async fn app_purge_completes() {
    let mut rig = Rig::start("vision").await;
    rig.apps_known().await;
    let t = rig
        .command_ts("app/vision/set", r#"{"command":"purge"}"#)
        .await;
    rig.expect("app/vision", move |v| {
        v["command"]["lifecycle"] == "completed" && is_ts(&v["last_cmd_timestamp"], t)
    })
    .await;
    let sim = rig
        .sim_until("purged", |s| {
            s.app("vision").is_some_and(|a| a.purge_count == 1)
        })
        .await;
    assert!(sim
        .received
        .iter()
        .any(|r| r.command == "COMMAND_PURGE" && r.timestamp == t));
}

#[tokio::test]
async fn profile_switch_halts_and_starts_apps() {
    let mut rig = Rig::start("vision@day,trainer@night,logger").await;
    rig.apps_known().await;
    rig.command("profile/set", "night").await;
    rig.event("profile_delivered").await;
    rig.expect("profile", |v| {
        v["desired"] == "night" && v["fetched"] == true
    })
    .await;
    rig.expect("app/vision", |v| v["state"] == "HALTED").await;
    rig.expect("app/trainer", |v| v["state"] == "RUNNING").await;
    rig.expect("app/logger", |v| v["state"] == "RUNNING").await;
    rig.command("profile/set", r#"{"profile":""}"#).await;
    rig.sim_until("override cleared", |s| {
        s.local_profile.is_empty()
            && s.app("vision")
                .is_some_and(|a| a.state == ZSwState::Running)
    })
    .await;
}

#[tokio::test]
async fn collect_info_uses_unix_ns_timestamp() {
    let mut rig = Rig::start("vision").await;
    let t = rig
        .command_ts("device/set", r#"{"command":"collect_info"}"#)
        .await;
    rig.expect("device", move |v| {
        is_ts(&v["last_cmd_timestamp"], t) && v["command"].is_null()
    })
    .await;
    let sim = rig
        .sim_until("collect info", |s| !s.collect_info.is_empty())
        .await;
    let published = &sim.collect_info[0];
    assert_eq!(published.timestamp, t);
    let now_year =
        humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..4].to_string();
    assert!(
        published.time.starts_with(&now_year),
        "read as Unix ns it is a time of today: {}",
        published.time
    );
}

#[tokio::test]
async fn shutdown_halts_all_apps() {
    let mut rig = Rig::start("vision,logger").await;
    rig.apps_known().await;
    rig.command("device/set", r#"{"command":"shutdown"}"#).await;
    rig.event("command_completed").await;
    rig.expect("app/vision", |v| v["state"] == "HALTED").await;
    rig.expect("app/logger", |v| v["state"] == "HALTED").await;
}

#[tokio::test]
async fn reboot_comes_back_with_reboot_reason() {
    let mut rig = Rig::start("vision").await;
    rig.apps_known().await;
    let t = rig
        .command_ts("device/set", r#"{"command":"reboot"}"#)
        .await;
    rig.expect("device", |v| v["state"] == "ZDEVICE_STATE_REBOOTING")
        .await;
    rig.expect("device", move |v| {
        v["state"] == "ZDEVICE_STATE_ONLINE"
            && v["last_boot_reason"] == "BOOT_REASON_REBOOT_CMD"
            && is_ts(&v["last_cmd_timestamp"], t)
    })
    .await;
    let sim = rig
        .sim_until("rebooted", |s| {
            s.boot_count >= 2
                && s.app("vision")
                    .is_some_and(|a| a.state == ZSwState::Running)
        })
        .await;
    assert_eq!(sim.last_boot_reason, BootReason::RebootCmd);
}

#[tokio::test]
async fn poweroff_then_eve_goes_offline() {
    let mut rig = Rig::start("vision").await;
    rig.apps_known().await;
    rig.command("device/set", r#"{"command":"poweroff"}"#).await;
    rig.expect("device", |v| {
        v["state"] == "ZDEVICE_STATE_PREPARING_POWEROFF"
            || v["state"] == "ZDEVICE_STATE_POWERING_OFF"
    })
    .await;
    rig.expect("device", |v| v["state"] == "ZDEVICE_STATE_POWERING_OFF")
        .await;
    let sim = rig.sim_until("powered off", |s| s.powered_off).await;
    assert_eq!(sim.device_state, ZDeviceState::ZdeviceStatePoweringOff);
    rig.expect("eve/state", |v| v["state"] == "offline").await;
}

#[tokio::test]
async fn radio_silence_is_applied_and_lifted() {
    let mut rig = Rig::start("vision").await;
    rig.command("radio/set", r#"{"radio_silence":true}"#).await;
    rig.event("radio_applied").await;
    rig.expect("radio", |v| {
        v["desired"]["status"] == "applied" && v["reported"]["radio_silence"] == true
    })
    .await;
    rig.command("radio/set", r#"{"radio_silence":false}"#).await;
    rig.expect("radio", |v| {
        v["desired"]["radio_silence"] == false && v["desired"]["status"] == "applied"
    })
    .await;
    assert!(!rig.sim.snapshot().radio_silence);
}

#[tokio::test]
async fn usb_boot_order_is_applied_then_removed() {
    let mut rig = Rig::start("vision,logger").await;
    rig.apps_known().await;
    rig.command("app/vision/set", r#"{"boot":"usb"}"#).await;
    rig.event("boot_order_applied").await;
    rig.expect("app/vision", |v| {
        v["boot_order"] == "BOOT_ORDER_USB"
            && v["boot_source"] == "BOOT_ORDER_SOURCE_LPS"
            && v["boot_desired"] == "BOOT_ORDER_USB"
    })
    .await;
    rig.command("app/vision/set", r#"{"boot":"default"}"#).await;
    rig.expect("app/vision", |v| {
        v["boot_order"] == "BOOT_ORDER_UNSPECIFIED" && v["boot_desired"].is_null()
    })
    .await;
    rig.sim_until("boot order reset", |s| {
        s.app("vision")
            .is_some_and(|a| a.boot_order == lps_bridge::eve::common::BootOrder::Unspecified)
    })
    .await;
}

#[tokio::test]
async fn network_override_applied_refused_and_reverted() {
    let mut rig = Rig::start("vision").await;
    rig.command(
        "network/set",
        r#"{"ports":[{"logical_label":"eth1","mtu":1400,"use_dhcp":true}]}"#,
    )
    .await;
    rig.event("network_applied").await;
    rig.expect("network", |v| v["desired"]["status"] == "applied")
        .await;
    rig.sim_until("eth1 mtu", |s| {
        s.network
            .local_ports
            .iter()
            .any(|p| p.logical_label == "eth1" && p.mtu == 1400)
    })
    .await;

    rig.command("network/set", r#"{"ports":[{"logical_label":"wwan0","mtu":1400,"wireless_device_type":"WIRELESS_TYPE_CELLULAR","cellular_config":{"apn":"plant"}}]}"#).await;
    let refused = rig.event("network_rejected").await;
    assert!(
        refused["error"].as_str().unwrap().contains("not permitted"),
        "{refused}"
    );

    assert_eq!(refused["served"], false, "no longer served: {refused}");

    // EVE reported its ports: one it does not have is refused at once, naming the known ones.
    let eth9 = rig
        .probe
        .command(
            B,
            "network/set",
            r#"{"ports":[{"logical_label":"eth9","use_dhcp":true}]}"#,
        )
        .await;
    assert!(
        eth9["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown network port 'eth9'") && e.contains("'eth1'")),
        "{eth9}"
    );

    rig.command("network/set", r#"{"ports":[]}"#).await;
    rig.expect("events", |v| {
        v["event"] == "network_applied" && v["reverted"] == true
    })
    .await;
    rig.sim_until("reverted", |s| s.network.local_ports.is_empty())
        .await;
}

#[tokio::test]
async fn simulator_refuses_a_wrong_token() {
    let mut rig = Rig::start_with_token("vision", "another-token").await;
    rig.apps_known().await;
    rig.command("app/vision/set", r#"{"command":"restart"}"#)
        .await;
    let sim = rig
        .sim_until("token refused", |s| {
            s.endpoints.values().any(|c| c.token_mismatches > 0)
        })
        .await;
    assert_eq!(
        sim.app("vision").unwrap().restart_count,
        0,
        "a command with the wrong token is not executed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.sim.snapshot().app("vision").unwrap().restart_count, 0);
}

#[tokio::test]
async fn cancel_withdraws_a_queued_device_command() {
    let mut rig = Rig::start_with_token("vision", "another-token").await;
    // EVE (with another token) never acknowledges: the queue would be stuck without cancel.
    let first = rig.command("device/set", r#"{"command":"reboot"}"#).await;
    let second = rig
        .command("device/set", r#"{"command":"collect_info"}"#)
        .await;
    assert!(second["note"].as_str().unwrap().contains("queued"));
    rig.expect("device", |v| v["command"]["lifecycle"] == "delivered")
        .await;
    let id = first["command"]["id"].as_u64().unwrap();
    let c = rig
        .command("device/set", &format!(r#"{{"cancel":true,"id":{id}}}"#))
        .await;
    assert_eq!(c["cancelled"][0]["may_have_been_received"], true);
    let sid = second["command"]["id"].clone();
    rig.expect("device", move |v| v["command"]["id"] == sid)
        .await;
}
