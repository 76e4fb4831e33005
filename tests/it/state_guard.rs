//! A client overwriting a retained state topic of the gateway: noticed, counted, re-asserted.

use crate::common;

use common::mqtt::Probe;
use common::*;

#[tokio::test]
async fn a_foreign_retained_profile_is_replaced_by_ours_and_counted() {
    let gw = TestGateway::start().await;
    let intruder = Probe::connect(gw.mqtt_port, &[]).await;
    let mut watcher = Probe::connect(gw.mqtt_port, &[&format!("{B}/profile")]).await;
    watcher
        .expect(&format!("{B}/profile"), |v| v["desired"] == "")
        .await;
    intruder
        .publish_retained(&format!("{B}/profile"), r#"{"desired":"hacked"}"#)
        .await;
    watcher
        .expect(&format!("{B}/profile"), |v| v["desired"] == "hacked")
        .await;
    // Re-asserted: ours comes back after the foreign one.
    watcher
        .expect(&format!("{B}/profile"), |v| v["desired"] == "")
        .await;
    // A new subscriber gets our retained value, not the intruder's.
    let mut late = Probe::connect(gw.mqtt_port, &[&format!("{B}/profile")]).await;
    let got = late.expect(&format!("{B}/profile"), |_| true).await;
    assert_eq!(got["desired"], "", "{got}");
    let metrics =
        common::metrics_text(&format!("http://{}", gw.running().operator_addr.unwrap())).await;
    assert!(
        metrics.contains("lps_bridge_mqtt_state_overwrites_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn our_own_state_changes_are_not_counted_as_overwrites() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    for p in ["day", "night", "day", "night"] {
        let r = probe.command(B, "profile/set", p).await;
        assert_eq!(r["status"], "ok", "{r}");
    }
    probe
        .expect(&format!("{B}/profile"), |v| v["desired"] == "night")
        .await;
    let metrics =
        common::metrics_text(&format!("http://{}", gw.running().operator_addr.unwrap())).await;
    assert!(
        metrics.contains("lps_bridge_mqtt_state_overwrites_total 0"),
        "{metrics}"
    );
}
