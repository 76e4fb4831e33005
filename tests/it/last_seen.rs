//! `B/eve/state.last_seen`: the time of EVE's last request, kept across a gateway restart.

use crate::common;

use common::mqtt::Probe;
use common::*;

#[tokio::test]
async fn last_seen_is_the_last_poll_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gw = TestGateway::start_config(test_config(tmp.path())).await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/eve/state")]).await;
    assert_eq!(eve_get(&gw.lps, "local_profile").await.status(), 200);
    let online = probe
        .expect(&format!("{B}/eve/state"), |v| v["state"] == "online")
        .await;
    let seen = online["last_seen"].as_str().expect("a time").to_string();
    let rest: serde_json::Value = serde_json::from_str(
        &reqwest::get(format!(
            "http://{}/api/eve",
            gw.running().operator_addr.unwrap()
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(rest["last_seen"], seen.as_str(), "MQTT and REST agree");
    drop(probe);
    gw.stop().await;

    let gw = TestGateway::start_config(test_config(tmp.path())).await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/eve/state")]).await;
    let after = probe.expect(&format!("{B}/eve/state"), |_| true).await;
    assert_eq!(after["state"], "offline", "{after}");
    assert_eq!(after["last_seen"], seen.as_str(), "{after}");
}
