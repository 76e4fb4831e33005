//! The Sparkplug B edge node under a burst of its own messages: thousands of DBIRTHs at once,
//! on the embedded broker (no external host needed; `sparkplug::` decodes the payloads).

use crate::common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::eve::info::ZSwState;
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};

/// An app report far larger than the session's channels (rumqttc's 1,024 requests, the 256
/// events between its event loop and the session): every DBIRTH still goes out, and the node
/// still answers afterwards (an NDATA when an app changes).
#[tokio::test]
async fn thousands_of_new_apps_are_all_born_and_the_node_keeps_going() {
    const APPS: usize = 3_000;
    let gw = TestGateway::start_with(|c| {
        c.sparkplug.enabled = true;
        c.sparkplug.group_id = "g".into();
        c.sparkplug.edge_node_id = "n".into();
        c.sparkplug.broker = "embedded".into();
    })
    .await;
    let mut probe = Probe::connect(gw.mqtt_port, &["spBv1.0/g/#"]).await;
    probe.expect_msg("spBv1.0/g/NBIRTH/n", |_| true).await;
    let app = |n: usize, state: ZSwState| LocalAppInfo {
        id: format!("6f1c2a3e-0000-4000-8000-{n:012}"),
        name: format!("app-{n:04}"),
        version: "1".into(),
        state: state as i32,
        ..Default::default()
    };
    let report = |state_of_0: ZSwState| LocalAppInfoList {
        apps_info: (0..APPS)
            .map(|n| {
                app(
                    n,
                    if n == 0 {
                        state_of_0
                    } else {
                        ZSwState::Running
                    },
                )
            })
            .collect(),
    };
    assert_eq!(
        eve_post(&gw.lps, "appinfo", &report(ZSwState::Running))
            .await
            .status(),
        204
    );
    let mut births = std::collections::BTreeSet::new();
    probe
        .receive_until("a DBIRTH for every app", |m| {
            if m.topic.starts_with("spBv1.0/g/DBIRTH/n/") {
                births.insert(m.topic.clone());
            }
            births.len() >= APPS
        })
        .await;
    assert_eq!(births.len(), APPS);
    // The session is not stuck behind the burst: a change still goes out.
    probe.forget();
    assert_eq!(
        eve_post(&gw.lps, "appinfo", &report(ZSwState::Halted))
            .await
            .status(),
        204
    );
    probe
        .receive_until("a DDATA for the changed app", |m| {
            m.topic.starts_with("spBv1.0/g/DDATA/n/app-0000")
        })
        .await;
}
