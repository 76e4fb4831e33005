//! Hostile input, each case found by a hostile-input run against the real gateway: a real
//! broker over TCP, real HTTP, a real data dir. Every assertion is a count or a state.

mod common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::eve::profile::LocalProfile;
use serde_json::Value;

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
