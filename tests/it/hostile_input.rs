//! Hostile input, each case found by a hostile-input run against the real gateway: a real
//! broker over TCP, real HTTP, a real data dir. Every assertion is a count or a state.

use crate::common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::eve::info::ZSwState;
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList, LocalProfile};
use lps_bridge::mqtt::topics::{MAX_LEVEL_BYTES, MAX_PAYLOAD_BYTES};
use lps_bridge::state::CommandKind;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::mpsc;

fn operator_base(gw: &TestGateway) -> String {
    format!("http://{}", gw.running().operator_addr.unwrap())
}

/// The operator token is read from `?token=` only on the SSE stream; mutations and other reads
/// need the header, so the token never has to be put in a URL that changes something.
#[tokio::test]
async fn token_query_parameter_only_opens_the_event_stream() {
    let gw = TestGateway::start_with(|c| {
        c.operator.token = "op-secret".into();
        c.operator.protect_reads = true;
    })
    .await;
    let b = operator_base(&gw);
    let http = reqwest::Client::new();

    let by_query = http
        .post(format!("{b}/api/profile?token=op-secret"))
        .body("night")
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 401, "a mutation never takes ?token=");
    let body: Value = serde_json::from_slice(&by_query.bytes().await.unwrap()).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("/api/events"),
        "{body}"
    );
    assert_eq!(
        common::store::desired_profile(&gw),
        "",
        "the refused mutation changed nothing"
    );
    let by_header = http
        .post(format!("{b}/api/profile"))
        .bearer_auth("op-secret")
        .body("night")
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);

    let read_by_query = http
        .get(format!("{b}/api/state?token=op-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_by_query.status(),
        401,
        "protected reads need the header"
    );

    // EventSource cannot set headers: the stream alone accepts the query parameter.
    let stream = http
        .get(format!("{b}/api/events?token=op-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    drop(stream);
    let stream = http
        .get(format!("{b}/api/events?token=wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 401);
    let stream = http
        .get(format!("{b}/api/events"))
        .bearer_auth("op-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200, "the header works on the stream too");
}

/// A 200 KB `[[[[…` on `B/profile/set` used to become the profile EVE was served; now every
/// free-text value that reaches EVE is bounded and checked, and the refusal names the limit.
#[tokio::test]
async fn oversize_and_control_character_profiles_are_refused_and_change_nothing() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    probe
        .publish(&format!("{B}/profile/set"), "[".repeat(200_000))
        .await;
    let reply = probe
        .expect(&format!("{B}/response/profile/set"), |v| {
            v["status"] == "error"
        })
        .await;
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("the limit is 65536 bytes"),
        "{reply}"
    );
    probe.forget();
    let reply = probe.command(B, "profile/set", &"[".repeat(1_000)).await;
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("the profile name is 1000 bytes; the limit is 128 bytes"),
        "{reply}"
    );
    probe.forget();
    let reply = probe
        .command(B, "profile/set", r#"{"profile":"night\u001b[2J"}"#)
        .await;
    assert!(
        reply["error"].as_str().unwrap().contains("U+001B"),
        "{reply}"
    );
    let served: LocalProfile = decode(eve_get(&gw.lps, "local_profile").await).await;
    assert_eq!(served.local_profile, "", "EVE is served no refused name");
    assert_eq!(common::store::desired_profile(&gw), "");

    probe.forget();
    let reply = probe.command(B, "profile/set", "night").await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let served: LocalProfile = decode(eve_get(&gw.lps, "local_profile").await).await;
    assert_eq!(served.local_profile, "night");
}

fn app_info(id: String, name: &str) -> LocalAppInfo {
    LocalAppInfo {
        id,
        name: name.into(),
        version: "1".into(),
        state: ZSwState::Running as i32,
        ..Default::default()
    }
}

fn uuid_n(n: usize) -> String {
    format!("6f1c2a3e-0000-4000-8000-{n:012}")
}

/// The last payload seen on each topic under `B/app/`: empty means its retained copy was deleted.
fn app_topics(probe: &Probe) -> BTreeMap<String, Vec<u8>> {
    let prefix = format!("{B}/app/");
    probe
        .seen
        .iter()
        .filter(|m| m.topic.starts_with(&prefix) && !m.topic.ends_with("/set"))
        .map(|m| (m.topic.clone(), m.payload.clone()))
        .collect()
}

/// A 70,000-character app name made `B/app/<name>` longer than MQTT allows, and `a/b`, `a+b`,
/// `a#b`, `a_b` all mapped to `B/app/a_b`. Now every level is bounded and every app has its own
/// topic, which also names it in commands.
#[tokio::test]
async fn long_and_colliding_app_names_get_bounded_unique_topics_that_take_commands() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    let long = "x".repeat(70_000);
    let names = [long.as_str(), "a/b", "a+b", "a#b", "a_b"];
    let report = LocalAppInfoList {
        apps_info: names
            .iter()
            .enumerate()
            .map(|(i, n)| app_info(uuid_n(i + 1), n))
            .collect(),
    };
    assert_eq!(eve_post(&gw.lps, "appinfo", &report).await.status(), 204);
    let summary = probe
        .expect(&format!("{B}/apps"), |v| {
            v.as_array().is_some_and(|a| a.len() == names.len())
        })
        .await;
    let levels: Vec<String> = summary
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["topic"].as_str().unwrap().to_string())
        .collect();
    let distinct: BTreeSet<&String> = levels.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{levels:?}");
    assert!(
        levels.iter().all(|l| l.len() <= MAX_LEVEL_BYTES),
        "{levels:?}"
    );
    assert_eq!(levels[4], "a_b", "a clean name is its own level");
    let topics = app_topics(&probe);
    assert_eq!(topics.len(), names.len(), "{:?}", topics.keys());
    for level in &levels {
        let msg = &topics[&format!("{B}/app/{level}")];
        assert!(!msg.is_empty());
    }

    // Each level takes commands for its own app.
    for (i, level) in levels.iter().enumerate() {
        probe.forget();
        let reply = probe
            .command(B, &format!("app/{level}/set"), r#"{"command":"restart"}"#)
            .await;
        assert_eq!(reply["status"], "ok", "{level}: {reply}");
        let id = reply["command"]["id"].as_u64().unwrap();
        let state = gw.running().store.snapshot();
        let CommandKind::App { app, .. } = &state.commands[&id].kind else {
            panic!("not an app command")
        };
        assert_eq!(app.id, uuid_n(i + 1), "{level}");
    }

    // A subscriber that connects now gets every retained topic intact (a corrupt length would
    // disconnect it again and again).
    let mut late = Probe::connect(gw.mqtt_port, &[&format!("{B}/app/+")]).await;
    for level in &levels {
        late.expect_msg(&format!("{B}/app/{level}"), |m| !m.payload.is_empty())
            .await;
    }
    let long_view = late
        .expect(&format!("{B}/app/{}", levels[0]), |_| true)
        .await;
    assert_eq!(long_view["name"].as_str().unwrap().len(), 70_000);
}

/// 3,000 apps, then 3: the list topic is bounded (a notice instead of 400 KB) and the retained
/// topics of the apps that went away are deleted.
#[tokio::test]
async fn many_apps_bound_the_list_topic_and_removed_apps_are_cleared() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    let many = LocalAppInfoList {
        apps_info: (0..3_000)
            .map(|i| app_info(uuid_n(i), &format!("app-{i}")))
            .collect(),
    };
    assert_eq!(eve_post(&gw.lps, "appinfo", &many).await.status(), 204);
    let notice = probe
        .expect(&format!("{B}/apps"), |v| v["too_large"] == true)
        .await;
    assert_eq!(notice["count"], 3_000, "{notice}");
    assert_eq!(notice["limit"], MAX_PAYLOAD_BYTES);
    assert!(notice["bytes"].as_u64().unwrap() > MAX_PAYLOAD_BYTES as u64);
    let topics = app_topics(&probe);
    assert_eq!(
        topics.values().filter(|p| !p.is_empty()).count(),
        3_000,
        "one retained topic per app"
    );
    let apps = reqwest::get(format!(
        "http://{}/api/apps",
        gw.running().operator_addr.unwrap()
    ))
    .await
    .unwrap();
    let apps: Value = serde_json::from_slice(&apps.bytes().await.unwrap()).unwrap();
    assert_eq!(
        apps.as_array().unwrap().len(),
        3_000,
        "the REST API has them all"
    );

    let few = LocalAppInfoList {
        apps_info: many.apps_info[..3].to_vec(),
    };
    assert_eq!(eve_post(&gw.lps, "appinfo", &few).await.status(), 204);
    probe
        .expect(&format!("{B}/apps"), |v| {
            v.as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
    let topics = app_topics(&probe);
    let kept: Vec<&String> = topics
        .iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(t, _)| t)
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!(
        topics.values().filter(|p| p.is_empty()).count(),
        2_997,
        "every removed app's retained topic is deleted"
    );
}

/// A raw MQTT client for the flood: no waiting per message, a wide in-flight window, and a count
/// of the broker's acknowledgements (the broker acknowledges once the message is in its log).
async fn flooder(port: u16, name: &str) -> (rumqttc::AsyncClient, mpsc::UnboundedReceiver<()>) {
    let mut opts = rumqttc::MqttOptions::new(name, "127.0.0.1", port);
    opts.set_keep_alive(std::time::Duration::from_secs(30));
    opts.set_inflight(1_000);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 25_000);
    let (acks_tx, acks) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                    if acks_tx.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    (client, acks)
}

/// One client floods 20,000 commands on one app's topic; once the broker acknowledged 1,000 of
/// them (the front door passes a flooding client's commands at the pace they are answered, so
/// the rest wait in that client's connection), another client sends one command for another app. It is answered while the flood is still
/// being answered (flood replies keep arriving after it), not after the whole flood.
#[tokio::test]
async fn one_clients_flood_does_not_hold_up_another_clients_command() {
    const FLOOD: usize = 20_000;
    let gw = TestGateway::start().await;
    let report = LocalAppInfoList {
        apps_info: vec![app_info(uuid_n(1), "flood"), app_info(uuid_n(2), "other")],
    };
    assert_eq!(eve_post(&gw.lps, "appinfo", &report).await.status(), 204);
    let mut replies = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let flood_reply = format!("{B}/response/app/flood/set");
    let other_reply = format!("{B}/response/app/other/set");

    let (flood, mut acks) = flooder(gw.mqtt_port, "flooder").await;
    for _ in 0..FLOOD {
        flood
            .publish(
                format!("{B}/app/flood/set"),
                rumqttc::QoS::AtLeastOnce,
                false,
                r#"{"command":"restart"}"#,
            )
            .await
            .unwrap();
    }
    let mut acked = 0;
    while acked < 1_000 {
        tokio::time::timeout(patience(), acks.recv())
            .await
            .expect("the broker acknowledges the flood")
            .unwrap();
        acked += 1;
    }

    let other = Probe::connect(gw.mqtt_port, &[]).await;
    other
        .publish(&format!("{B}/app/other/set"), r#"{"command":"restart"}"#)
        .await;
    let answer = replies.expect(&other_reply, |_| true).await;
    assert_eq!(answer["status"], "ok", "{answer}");
    let before = replies
        .seen
        .iter()
        .filter(|m| m.topic == flood_reply)
        .count();
    // The flood is still being answered after the other client's reply.
    replies.seen.clear();
    replies.expect(&flood_reply, |_| true).await;
    println!("flood replies before the other client's reply: {before} of {FLOOD}");
    assert!(before < FLOOD, "{before}");
}
