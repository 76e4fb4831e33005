//! The MQTT contract over the real embedded broker: replies, bad input, retained
//! state, retained-command protection, MQTT 5 response topics.

use crate::common;

use common::mqtt::{command_timestamp, Probe};
use common::reports::{device_online, logger, vision, VISION};
use common::store::desired_profile;
use common::*;
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};
use serde_json::json;

fn two_apps(dups: bool) -> LocalAppInfoList {
    let mut apps = vec![vision(), logger()];
    if dups {
        apps.push(LocalAppInfo {
            id: "6f1c2a3e-0000-4000-8000-000000000003".into(),
            name: "logger".into(),
            ..Default::default()
        });
    }
    LocalAppInfoList { apps_info: apps }
}

#[tokio::test]
async fn every_command_gets_one_reply_with_transaction() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let r = probe
        .command(B, "device/set", r#"{"command":"reboot"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    assert!(r["command"]["id"].as_u64().unwrap() >= 1);
    assert!(command_timestamp(&r) > 1_600_000_000_000_000_000);
    let r = probe
        .command(B, "profile/set", r#"{"profile":"night"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["desired"]["profile"], "night");
    probe.publish(&format!("{B}/profile/set"), "day").await;
    let r = probe
        .expect(&format!("{B}/response/profile/set"), |v| {
            v["desired"]["profile"] == "day"
        })
        .await;
    assert!(r.get("transaction").is_none());
    assert_eq!(desired_profile(&gw), "day");
}

#[tokio::test]
async fn bad_input_is_an_error_reply_and_changes_nothing() {
    let gw = TestGateway::start().await;
    eve_post(&gw.lps, "appinfo", &two_apps(true)).await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let before = gw.running().store.snapshot();
    let cases = [
        (
            "app/vision/set",
            r#"{"command":"restart""#,
            "malformed JSON",
        ),
        (
            "app/vision/set",
            r#"{"command":"reboot"}"#,
            "expected one of: restart, purge",
        ),
        (
            "app/visoin/set",
            r#"{"command":"restart"}"#,
            "unknown app 'visoin'",
        ),
        (
            "app/logger/set",
            r#"{"command":"restart"}"#,
            "ambiguous app 'logger'",
        ),
        (
            "device/set",
            r#"{"command":"selfdestruct"}"#,
            "unknown device command",
        ),
        ("radio/set", r#"{"radio_silence":1}"#, "true or false"),
        (
            "network/set",
            r#"{"ports":[{"logical_label":"eth0","mtu":"x"}]}"#,
            "ports[0]",
        ),
        ("device/set", r#"{"cancel":true}"#, "nothing to cancel"),
    ];
    for (topic, payload, expected) in cases {
        let r = probe.command(B, topic, payload).await;
        assert_eq!(r["status"], "error", "{topic} {payload}: {r}");
        assert!(
            r["error"].as_str().unwrap().contains(expected),
            "{topic} {payload}: {r}"
        );
        probe.forget();
    }
    let after = gw.running().store.snapshot();
    assert_eq!(before.commands, after.commands);
    assert_eq!(before.meta, after.meta);
    let unknown = probe
        .command(B, "app/visoin/set", r#"{"command":"restart"}"#)
        .await;
    let text = unknown["error"].as_str().unwrap();
    assert!(
        text.contains("vision") && text.contains(VISION),
        "lists known apps: {text}"
    );
}

#[tokio::test]
async fn retained_command_is_processed_once_and_deleted() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    probe
        .publish_retained(&format!("{B}/device/set"), r#"{"command":"collect_info"}"#)
        .await;
    probe
        .expect(&format!("{B}/response/device/set"), |v| v["status"] == "ok")
        .await;
    // A new subscriber must not receive the command again.
    let mut late = Probe::connect(gw.mqtt_port, &[&format!("{B}/device/set")]).await;
    assert!(
        tokio::time::timeout(
            std::time::Duration::from_millis(500),
            late.expect_msg(&format!("{B}/device/set"), |m| !m.payload.is_empty())
        )
        .await
        .is_err(),
        "the retained command was deleted"
    );
    assert_eq!(
        gw.running().store.snapshot().commands.len(),
        1,
        "processed exactly once"
    );
}

#[tokio::test]
async fn empty_payload_is_ignored_without_reply() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    probe.publish(&format!("{B}/device/set"), "").await;
    probe
        .publish(&format!("{B}/profile/set"), r#"{"profile":"x"}"#)
        .await;
    let first = probe
        .expect_msg(&format!("{B}/response/profile/set"), |_| true)
        .await;
    assert_eq!(first.json()["status"], "ok");
    assert!(probe
        .seen
        .iter()
        .all(|m| m.topic != format!("{B}/response/device/set")));
}

#[tokio::test]
async fn retained_state_topics_follow_eve_reports() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    let bridge = probe
        .expect_msg(&format!("{B}/bridge/state"), |_| true)
        .await;
    assert_eq!(bridge.json()["state"], "online");
    // The first probe may subscribe before the gateway's first publish (then it is delivered
    // live); a subscriber that comes after it must get it as a retained message.
    let mut after = Probe::connect(gw.mqtt_port, &[&format!("{B}/bridge/state")]).await;
    let again = after
        .expect_msg(&format!("{B}/bridge/state"), |_| true)
        .await;
    assert!(again.retain && again.json()["state"] == "online");
    probe
        .expect(&format!("{B}/bridge/info"), |v| v["topic_schema"] == 1)
        .await;
    probe
        .expect(&format!("{B}/eve/state"), |v| v["state"] == "offline")
        .await;
    eve_post(&gw.lps, "appinfo", &two_apps(false)).await;
    probe
        .expect(&format!("{B}/eve/state"), |v| {
            v["state"] == "online" && v["last_seen"].is_string()
        })
        .await;
    let app = probe
        .expect(&format!("{B}/app/vision"), |v| v["state"] == "RUNNING")
        .await;
    assert_eq!(app["id"], VISION);
    assert_eq!(app["version"], "1");
    let apps = probe
        .expect(&format!("{B}/apps"), |v| {
            v.as_array().is_some_and(|a| a.len() == 2)
        })
        .await;
    assert_eq!(apps[0]["name"], "vision");
    eve_post(&gw.lps, "devinfo", &device_online("dev-1")).await;
    probe
        .expect(&format!("{B}/device"), |v| {
            v["device_uuid"] == "dev-1" && v["state"] == "ZDEVICE_STATE_ONLINE"
        })
        .await;
    // A late subscriber gets the state at once (retained).
    let mut late = Probe::connect(gw.mqtt_port, &[&format!("{B}/app/+")]).await;
    let m = late.expect_msg(&format!("{B}/app/logger"), |_| true).await;
    assert!(m.retain);
    // EVE goes quiet (2 s in tests): offline.
    probe
        .expect(&format!("{B}/eve/state"), |v| {
            v["state"] == "offline" && v["last_seen"].is_string()
        })
        .await;
    probe
        .expect(&format!("{B}/events"), |v| v["event"] == "eve_offline")
        .await;
}

#[tokio::test]
async fn mqtt5_response_topic_and_correlation_data() {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let v5_port = free_port();
    let gw = TestGateway::start_with(|c| c.mqtt.listen_v5 = format!("127.0.0.1:{v5_port}")).await;
    let mut opts = MqttOptions::new("v5-client", "127.0.0.1", v5_port);
    opts.set_keep_alive(std::time::Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    client
        .subscribe("my/replies", QoS::AtLeastOnce)
        .await
        .unwrap();
    let props = PublishProperties {
        response_topic: Some("my/replies".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"corr-42")),
        ..Default::default()
    };
    client
        .publish_with_properties(
            format!("{B}/profile/set"),
            QoS::AtLeastOnce,
            false,
            r#"{"profile":"v5"}"#,
            props,
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(patience(), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                if p.topic == "my/replies" {
                    return p;
                }
            }
        }
    })
    .await
    .expect("reply on the v5 response topic");
    let body: serde_json::Value = serde_json::from_slice(&got.payload).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(
        got.properties.unwrap().correlation_data.as_deref(),
        Some(&b"corr-42"[..])
    );
    assert_eq!(desired_profile(&gw), "v5");
}

#[tokio::test]
async fn events_report_the_lifecycle() {
    let gw = TestGateway::start().await;
    eve_post(&gw.lps, "appinfo", &two_apps(false)).await;
    let mut probe = Probe::connect(
        gw.mqtt_port,
        &[&format!("{B}/events"), &format!("{B}/response/#")],
    )
    .await;
    let r = probe
        .command(B, "app/vision/set", r#"{"command":"restart"}"#)
        .await;
    let ts = command_timestamp(&r);
    probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "command_accepted" && v["action"] == "restart"
        })
        .await;
    eve_post(&gw.lps, "appinfo", &two_apps(false)).await;
    probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "command_delivered"
        })
        .await;
    let mut done = two_apps(false);
    done.apps_info[0].last_cmd_timestamp = ts;
    eve_post(&gw.lps, "appinfo", &done).await;
    let ev = probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "command_completed"
        })
        .await;
    assert_eq!(ev["app"], json!({ "id": VISION, "name": "vision" }));
}
