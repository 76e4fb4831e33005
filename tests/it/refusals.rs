//! End to end with the real broker and the EVE simulator: refusals that say at once what was
//! wrong and what would be right (mistyped command topics, unknown ports, misspelled profiles),
//! and a network override EVE rejected that is no longer served.

use crate::common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::config::ProfileEntry;
use lps_bridge::simulator::{self, AppSpec, Endpoint, SimHandle, SimOptions};
use serde_json::Value;

fn sim(gw: &TestGateway) -> SimHandle {
    let mut opts = SimOptions::new(gw.lps.clone(), TOKEN);
    opts.apps = AppSpec::parse_list("vision").unwrap();
    opts.speed = 20.0;
    simulator::spawn(opts)
}

fn profiles() -> Vec<ProfileEntry> {
    ["day", "night"]
        .iter()
        .map(|n| ProfileEntry {
            name: n.to_string(),
            description: String::new(),
            apps: None,
        })
        .collect()
}

async fn post(gw: &TestGateway, path: &str, body: &str) -> (u16, Value) {
    let url = format!("http://{}{path}", gw.running().operator_addr.unwrap());
    let resp = reqwest::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

fn error(reply: &Value) -> &str {
    assert_eq!(reply["status"], "error", "{reply}");
    reply["error"].as_str().unwrap()
}

#[tokio::test]
async fn mistyped_command_topics_are_answered_with_the_right_topic() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    for (typed, right) in [
        ("apps/vision/set", "app/vision/set"),
        ("app/vision/sett", "app/vision/set"),
        ("profil/set", "profile/set"),
    ] {
        let reply = probe.command(B, typed, r#"{"command":"restart"}"#).await;
        let why = error(&reply);
        assert!(
            why.contains("not a command topic")
                && why.contains(&format!("did you mean {B}/{right}?")),
            "{typed}: {why}"
        );
    }
    // Nothing was accepted, and the gateway's own replies (on topics the filters also match)
    // were not answered in turn: exactly one reply per mistyped topic.
    // A real command after them: its reply comes after any echo the broker had in flight.
    let ok = probe
        .command(B, "radio/set", r#"{"radio_silence":false}"#)
        .await;
    assert_eq!(ok["status"], "ok", "{ok}");
    let replies = probe
        .seen
        .iter()
        .filter(|m| m.topic == format!("{B}/response/profil/set"))
        .count();
    assert_eq!(replies, 1);
    assert!(probe
        .seen
        .iter()
        .all(|m| !m.topic.starts_with(&format!("{B}/response/response/"))));
    assert!(
        !probe
            .seen
            .iter()
            .any(|m| m.topic == format!("{B}/events") && m.json()["event"] == "command_accepted"),
        "nothing accepted"
    );
}

#[tokio::test]
async fn an_unknown_port_is_refused_at_once_once_eve_reported_its_ports() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    let eth9 = r#"{"ports":[{"logical_label":"eth9","use_dhcp":true}]}"#;
    // Before EVE's first network report: taken, with a note that the names are unchecked.
    let before = probe.command(B, "network/set", eth9).await;
    assert_eq!(before["status"], "ok", "{before}");
    assert!(
        before["note"].as_str().unwrap().contains("not checked"),
        "{before}"
    );
    probe.command(B, "network/set", r#"{"ports":[]}"#).await;

    let _sim = sim(&gw);
    probe
        .expect(&format!("{B}/network"), |v| {
            v["reported"]["latest_config"].is_array()
        })
        .await;
    let refused = probe.command(B, "network/set", eth9).await;
    let why = error(&refused);
    assert!(
        why.contains("unknown network port 'eth9'") && why.contains("'eth0', 'eth1', 'wwan0'"),
        "{why}"
    );
    let (status, body) = post(&gw, "/api/network", eth9).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], refused["error"]);
}

#[tokio::test]
async fn a_misspelled_profile_is_refused_listing_the_configured_ones() {
    let gw = TestGateway::start_with(|c| c.profiles = profiles()).await;
    let sim = sim(&gw);
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    let refused = probe.command(B, "profile/set", "nigth").await;
    let why = error(&refused);
    assert!(
        why.contains("unknown profile 'nigth'")
            && why.contains("'day', 'night'")
            && why.contains("force"),
        "{why}"
    );
    let (status, body) = post(&gw, "/api/profile", r#"{"profile":"nigth"}"#).await;
    assert_eq!(status, 422, "{body}");

    probe.forget(); // the bare-name reply carries no transaction to tell it apart
    let forced = probe
        .command(
            B,
            "profile/set",
            r#"{"profile":"maintenance","force":true}"#,
        )
        .await;
    assert_eq!(forced["status"], "ok", "{forced}");
    assert!(
        forced["note"].as_str().unwrap().contains("force"),
        "{forced}"
    );
    sim.wait_for(|s| s.local_profile == "maintenance", patience())
        .await
        .expect("EVE got the forced profile");
    let (status, body) = post(&gw, "/api/profile", r#"{"profile":"night"}"#).await;
    assert_eq!((status, body.get("note")), (200, None), "{body}");
}

#[tokio::test]
async fn without_configured_profiles_the_reply_says_the_name_is_not_checked() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    let reply = probe.command(B, "profile/set", "nigth").await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(
        reply["note"].as_str().unwrap().contains("not checked"),
        "{reply}"
    );
}

#[tokio::test]
async fn a_rejected_network_override_is_no_longer_served_until_submitted_again() {
    let gw = TestGateway::start().await;
    let sim = sim(&gw);
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    probe
        .expect(&format!("{B}/network"), |v| {
            v["reported"]["latest_config"].is_array()
        })
        .await;
    // The simulator's controller does not permit local changes to wwan0.
    let wwan0 = r#"{"ports":[{"logical_label":"wwan0","mtu":1400,"wireless_device_type":"WIRELESS_TYPE_CELLULAR","cellular_config":{"apn":"plant"}}]}"#;
    assert_eq!(probe.command(B, "network/set", wwan0).await["status"], "ok");
    let rejected = probe
        .expect(&format!("{B}/events"), |v| v["event"] == "network_rejected")
        .await;
    assert_eq!(rejected["served"], false, "{rejected}");
    assert_eq!(rejected["note"], "no longer served; submit again to retry");
    let no_content = |s: &simulator::SimSnapshot| {
        s.endpoints
            .get(&Endpoint::Network)
            .and_then(|c| c.statuses.get("204").copied())
            .unwrap_or(0)
    };
    let before = no_content(&sim.snapshot());
    // EVE polls on and gets 204 (nothing to apply) instead of the rejected override again.
    sim.wait_for(|s| no_content(s) >= before + 2, patience())
        .await
        .expect("network polls answered 204 after the rejection");
    probe.forget();
    assert_eq!(probe.command(B, "network/set", wwan0).await["status"], "ok");
    let again = probe
        .expect(&format!("{B}/events"), |v| v["event"] == "network_rejected")
        .await;
    assert_eq!(
        again["served"], false,
        "re-submitted: served, and rejected, again"
    );
}
