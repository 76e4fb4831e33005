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
    probe
        .until_seen("the NBIRTH", |seen| {
            seen.iter().any(|m| m.topic == "spBv1.0/g/NBIRTH/n")
        })
        .await;
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
    let births = |seen: &[common::mqtt::Msg]| {
        seen.iter()
            .filter(|m| m.topic.starts_with("spBv1.0/g/DBIRTH/n/"))
            .map(|m| m.topic.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert_eq!(
        eve_post(&gw.lps, "appinfo", &report(ZSwState::Running))
            .await
            .status(),
        204
    );
    probe
        .until_seen("a DBIRTH for every app", |seen| births(seen) >= APPS)
        .await;
    assert_eq!(births(&probe.seen), APPS);
    // The session is not stuck behind the burst: a change still goes out.
    probe.forget();
    assert_eq!(
        eve_post(&gw.lps, "appinfo", &report(ZSwState::Halted))
            .await
            .status(),
        204
    );
    probe
        .until_seen("a DDATA for the changed app", |seen| {
            seen.iter()
                .any(|m| m.topic.starts_with("spBv1.0/g/DDATA/n/app-0000"))
        })
        .await;
}
