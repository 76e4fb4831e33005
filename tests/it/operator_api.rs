//! The operator HTTP API over real HTTP: REST mirrors MQTT (same validation, same wording), bearer
//! auth, SSE live updates that end on shutdown, Prometheus metrics, health checks.

use crate::common;

use bytes::Bytes;
use common::mqtt::Probe;
use common::reports::{device_online, vision, VISION};
use common::*;
use futures::{Stream, StreamExt};
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};
use serde_json::{json, Value};

fn base(gw: &TestGateway) -> String {
    format!("http://{}", gw.running().operator_addr.unwrap())
}

fn apps() -> LocalAppInfoList {
    LocalAppInfoList {
        apps_info: vec![LocalAppInfo {
            version: "2".into(),
            ..vision()
        }],
    }
}

async fn post(url: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null),
    )
}

async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null),
    )
}

/// Appends what arrives on the stream to `text` until `done(text)`; each chunk within the patience.
async fn read_until(
    stream: &mut (impl Stream<Item = reqwest::Result<Bytes>> + Unpin),
    text: &mut String,
    done: impl Fn(&str) -> bool,
) {
    while !done(text) {
        let chunk = tokio::time::timeout(patience(), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn reads_mirror_the_state_topics() {
    let gw = TestGateway::start().await;
    eve_post(&gw.lps, "appinfo", &apps()).await;
    eve_post(&gw.lps, "devinfo", &device_online("dev-9")).await;
    let b = base(&gw);
    let (s, state) = get(&format!("{b}/api/state")).await;
    assert_eq!(s, 200);
    assert_eq!(state["eve"]["state"], "online");
    assert_eq!(state["device"]["device_uuid"], "dev-9");
    assert_eq!(state["apps"][0]["name"], "vision");
    let (s, app) = get(&format!("{b}/api/apps/vision")).await;
    assert_eq!((s, app["version"].clone()), (200, json!("2")));
    let (s, by_id) = get(&format!("{b}/api/apps/{VISION}")).await;
    assert_eq!((s, by_id["name"].clone()), (200, json!("vision")));
    let (s, err) = get(&format!("{b}/api/apps/visoin")).await;
    assert_eq!(s, 404);
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("unknown app 'visoin'"));
    for path in [
        "eve", "device", "apps", "profile", "profiles", "radio", "network", "location", "commands",
    ] {
        assert_eq!(get(&format!("{b}/api/{path}")).await.0, 200, "{path}");
    }
    assert_eq!(get(&format!("{b}/api/nope")).await.0, 404);
}

#[tokio::test]
async fn mutations_use_the_same_validation_and_wording_as_mqtt() {
    let gw = TestGateway::start().await;
    eve_post(&gw.lps, "appinfo", &apps()).await;
    let b = base(&gw);
    let mut probe = Probe::connect(gw.mqtt_port, &["lps/edge/response/#"]).await;
    let cases = [
        ("apps/vision", "app/vision/set", r#"{"command":"reboot"}"#),
        ("apps/visoin", "app/visoin/set", r#"{"command":"restart"}"#),
        ("device", "device/set", r#"{"command":"explode"}"#),
        ("radio", "radio/set", r#"{"radio_silence":"on"}"#),
        ("profile", "profile/set", r#"{"profile":1}"#),
        ("device", "device/set", r#"{"cancel":true}"#),
        ("apps/vision", "app/vision/set", r#"{"command":"restart""#),
    ];
    for (path, topic, body) in cases {
        let (status, rest) = post(&format!("{b}/api/{path}"), body, None).await;
        assert!(status == 400 || status == 422, "{path} {body}: {status}");
        let mqtt = probe.command("lps/edge", topic, body).await;
        assert_eq!(rest["error"], mqtt["error"], "{path} {body}");
        assert_eq!(rest["status"], "error");
        probe.forget();
    }
    let (status, ok) = post(
        &format!("{b}/api/apps/vision"),
        r#"{"command":"restart","transaction":"t9"}"#,
        None,
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["transaction"], "t9");
    let id = ok["command"]["id"].as_u64().unwrap();
    let (_, cmd) = get(&format!("{b}/api/commands/{id}")).await;
    assert_eq!(cmd["source"], "rest");
    assert_eq!(cmd["lifecycle"], "accepted");
    let (status, ok) = post(&format!("{b}/api/profile"), "\"night\"", None).await;
    assert_eq!(
        (status, ok["desired"]["profile"].clone()),
        (200, json!("night"))
    );
    assert_eq!(post(&format!("{b}/api/device"), "", None).await.0, 400);
}

#[tokio::test]
async fn bearer_token_guards_mutations_and_optionally_reads() {
    let gw = TestGateway::start_with(|c| c.operator.token = "op-secret".into()).await;
    let b = base(&gw);
    let (status, body) = post(&format!("{b}/api/profile"), "night", None).await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("bearer"));
    assert_eq!(
        post(&format!("{b}/api/profile"), "night", Some("wrong"))
            .await
            .0,
        401
    );
    assert_eq!(
        post(&format!("{b}/api/profile"), "night", Some("op-secret"))
            .await
            .0,
        200
    );
    assert_eq!(
        get(&format!("{b}/api/state")).await.0,
        200,
        "reads are open by default"
    );

    let gw = TestGateway::start_with(|c| {
        c.operator.token = "op-secret".into();
        c.operator.protect_reads = true;
    })
    .await;
    let b = base(&gw);
    assert_eq!(get(&format!("{b}/api/state")).await.0, 401);
    assert_eq!(get(&format!("{b}/metrics")).await.0, 401);
    let ok = reqwest::Client::new()
        .get(format!("{b}/api/state"))
        .bearer_auth("op-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        reqwest::get(format!("{b}/healthz")).await.unwrap().status(),
        200,
        "health stays open"
    );
    assert_eq!(
        reqwest::get(format!("{b}/readyz")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn sse_streams_state_and_events_and_ends_on_shutdown() {
    let mut gw = TestGateway::start().await;
    let b = base(&gw);
    let resp = reqwest::get(format!("{b}/api/events")).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    // The first message is the full state.
    read_until(&mut stream, &mut text, |t| t.contains("event: state")).await;
    post(&format!("{b}/api/profile"), "night", None).await;
    read_until(&mut stream, &mut text, |t| {
        t.contains("\"event\":\"profile_set\"") && t.contains("\"desired\":\"night\"")
    })
    .await;
    let stop = tokio::spawn(async move { gw.stop().await });
    let end = tokio::time::timeout(patience(), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                return false;
            }
        }
        true
    })
    .await
    .expect("the SSE stream ends on shutdown");
    assert!(end, "clean end, not an error");
    tokio::time::timeout(patience(), stop)
        .await
        .unwrap()
        .unwrap();
}

/// The complete `(event, data)` messages of an SSE text so far.
fn sse_messages(text: &str) -> Vec<(String, String)> {
    let complete = &text[..text.rfind("\n\n").map_or(0, |i| i + 2)];
    complete
        .split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_string())
            };
            Some((field("event:")?, field("data:").unwrap_or_default()))
        })
        .collect()
}

/// The parts of the patches received so far, each patch's keys joined by commas.
fn patches(text: &str) -> Vec<(String, Value)> {
    sse_messages(text)
        .into_iter()
        .filter(|(event, _)| event == "patch")
        .map(|(_, data)| {
            let patch: Value = serde_json::from_str(&data).unwrap();
            let keys: Vec<&str> = patch
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            (keys.join(","), patch)
        })
        .collect()
}

#[tokio::test]
async fn sse_sends_only_the_parts_that_changed() {
    let gw = TestGateway::start().await;
    let b = base(&gw);
    let resp = reqwest::get(format!("{b}/api/events")).await.unwrap();
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let first_state = |t: &str| {
        sse_messages(t)
            .into_iter()
            .find(|(e, _)| e == "state")
            .map(|(_, d)| d)
    };
    read_until(&mut stream, &mut text, |t| first_state(t).is_some()).await;
    let full: Value = serde_json::from_str(&first_state(&text).unwrap()).unwrap();
    for part in [
        "eve", "device", "apps", "profile", "radio", "network", "store",
    ] {
        assert!(full.get(part).is_some(), "the first state is whole: {part}");
    }

    // A profile set changes the profile part alone.
    post(&format!("{b}/api/profile"), "night", None).await;
    read_until(&mut stream, &mut text, |t| !patches(t).is_empty()).await;
    let (keys, patch) = patches(&text).remove(0);
    assert_eq!(keys, "profile", "{patch}");
    assert_eq!(patch["profile"]["desired"], "night");

    // EVE's app report: the apps (and EVE's own state), not the profile again.
    eve_post(&gw.lps, "appinfo", &apps()).await;
    read_until(&mut stream, &mut text, |t| {
        patches(t).iter().any(|(_, p)| p.get("apps").is_some())
    })
    .await;
    let (keys, patch) = patches(&text)
        .into_iter()
        .find(|(_, p)| p.get("apps").is_some())
        .unwrap();
    assert_eq!(patch["apps"][0]["name"], "vision");
    assert!(!keys.split(',').any(|k| k == "profile"), "{keys}");
    // Only state changes send anything: no patch is empty, and none came as a whole state.
    assert!(patches(&text).iter().all(|(keys, _)| !keys.is_empty()));
    let states = sse_messages(&text)
        .iter()
        .filter(|(e, _)| e == "state")
        .count();
    assert_eq!(states, 1, "one full state, at connect");
}

#[tokio::test]
async fn metrics_and_health() {
    let gw = TestGateway::start().await;
    eve_post(&gw.lps, "appinfo", &apps()).await;
    eve_post(&gw.lps, "appinfo", &apps()).await;
    let b = base(&gw);
    post(&format!("{b}/api/device"), r#"{"command":"reboot"}"#, None).await;
    let text = common::metrics_text(&b).await;
    assert!(
        text.contains("lps_bridge_eve_requests_total{endpoint=\"appinfo\",status=\"204\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("lps_bridge_commands{kind=\"device\",lifecycle=\"accepted\"} 1"),
        "{text}"
    );
    assert!(text.contains("lps_bridge_eve_online 1"));
    assert!(text.contains("lps_bridge_store_commits_total"));
    assert!(text.contains("lps_bridge_mqtt_messages_published_total"));
    let _probe = Probe::connect(gw.mqtt_port, &[]).await;
    let text = common::metrics_text(&b).await;
    let connections: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("lps_bridge_mqtt_connections "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(connections >= 1, "the probe is counted: {connections}");
    let (s, ready) = get(&format!("{b}/readyz")).await;
    assert_eq!(s, 200);
    assert_eq!(ready["store"], "open");
    let (s, doc) = get(&format!("{b}/api/openapi.json")).await;
    assert_eq!(s, 200);
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with('3')),
        Some(true)
    );
    let page = reqwest::get(format!("{b}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("lps-bridge"));
}
