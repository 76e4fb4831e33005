//! End to end with the simulator: commands EVE never finishes become `stalled`, with the reason
//! the gateway can see, on MQTT, REST and metrics.

use crate::common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::simulator::{self, AppSpec, SimHandle, SimOptions};
use serde_json::Value;

async fn rig(apps: &str, sim_token: &str) -> (TestGateway, SimHandle, Probe) {
    let gw = TestGateway::start().await;
    let probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    let mut opts = SimOptions::new(gw.lps.clone(), sim_token);
    opts.apps = AppSpec::parse_list(apps).unwrap();
    opts.speed = 20.0;
    let sim = simulator::spawn(opts);
    (gw, sim, probe)
}

fn operator(gw: &TestGateway) -> String {
    format!("http://{}", gw.running().operator_addr.unwrap())
}

async fn get_json(url: &str) -> Value {
    serde_json::from_str(&reqwest::get(url).await.unwrap().text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn wrong_token_stalls_a_restart_and_names_profile_server_token() {
    let (gw, _sim, mut probe) = rig("vision", "wrong").await;
    probe
        .expect(&format!("{B}/apps"), |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let reply = probe
        .command(B, "app/vision/set", r#"{"command":"restart"}"#)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let stalled = probe
        .expect(&format!("{B}/events"), |v| v["event"] == "command_stalled")
        .await;
    let reason = stalled["stalled_reason"].as_str().unwrap();
    assert!(reason.contains("profile_server_token"), "{reason}");
    assert!(stalled["deliveries"].as_u64().unwrap() >= 3, "{stalled}");
    probe
        .expect(&format!("{B}/app/vision"), |v| {
            v["command"]["lifecycle"] == "stalled"
        })
        .await;
    probe
        .expect(&format!("{B}/apps"), |v| {
            v[0]["command"]["lifecycle"] == "stalled"
        })
        .await;
    let b = operator(&gw);
    let apps = get_json(&format!("{b}/api/apps")).await;
    let app = apps
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| apps["apps"][0].clone());
    assert_eq!(app["command"]["lifecycle"], "stalled", "{apps}");
    assert_eq!(app["command"]["stalled_reason"], reason);
    let metrics = common::metrics_text(&b).await;
    assert!(
        metrics.contains("lps_bridge_commands{kind=\"app\",lifecycle=\"stalled\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn restart_of_a_halted_app_is_noted_at_acceptance_then_stalls() {
    let (_gw, _sim, mut probe) = rig("vision@day,logger", TOKEN).await;
    probe
        .expect(&format!("{B}/apps"), |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let r = probe.command(B, "profile/set", "night").await;
    assert_eq!(r["status"], "ok", "{r}");
    probe
        .expect(&format!("{B}/app/vision"), |v| v["state"] == "HALTED")
        .await;
    let reply = probe
        .command(B, "app/vision/set", r#"{"command":"restart"}"#)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let note = reply["note"].as_str().unwrap_or_default();
    assert!(note.contains("HALTED"), "{reply}");
    let stalled = probe
        .expect(&format!("{B}/events"), |v| v["event"] == "command_stalled")
        .await;
    let reason = stalled["stalled_reason"].as_str().unwrap();
    assert!(reason.contains("switch to a profile"), "{reason}");
}
