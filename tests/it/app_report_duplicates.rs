//! An appinfo report with duplicate and empty app ids: EVE's report is the source of truth, but
//! one app is one entry. Before, such a report was taken whole (204) and two entries could share
//! one retained `B/app/<level>` topic.

use crate::common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::eve::info::ZSwState;
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};
use serde_json::Value;

const VISION: &str = "6f1c2a3e-0000-4000-8000-00000000d001";
const LOGGER: &str = "6f1c2a3e-0000-4000-8000-00000000d002";

fn app(id: &str, name: &str, state: ZSwState) -> LocalAppInfo {
    LocalAppInfo {
        id: id.into(),
        name: name.into(),
        version: "1".into(),
        state: state as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn duplicate_and_empty_app_ids_keep_one_entry_and_one_topic_per_app() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    let report = LocalAppInfoList {
        apps_info: vec![
            app(VISION, "vision", ZSwState::Running),
            // Same id (other case), other name and state: ignored, the first entry wins.
            app(
                &VISION.to_ascii_uppercase(),
                "vision-twin",
                ZSwState::Halted,
            ),
            app(LOGGER, "logger", ZSwState::Running),
            app(LOGGER, "logger", ZSwState::Running),
            // Neither id nor name: nothing to show or command it by.
            app("", "", ZSwState::Running),
        ],
    };
    assert_eq!(eve_post(&gw.lps, "appinfo", &report).await.status(), 204);
    let summary = probe
        .expect(&format!("{B}/apps"), |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let names: Vec<&str> = summary
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["vision", "logger"], "{summary}");
    let vision: Value = probe
        .expect(&format!("{B}/app/vision"), |v| v["name"] == "vision")
        .await;
    assert_eq!(vision["state"], "RUNNING", "the first entry of an id wins");
    let state = gw.running().store.snapshot();
    assert_eq!(state.reports.apps.as_deref().map(<[_]>::len), Some(2));

    // A command by name resolves to the one app, not "ambiguous".
    let reply = probe
        .command(B, "app/vision/set", r#"{"command":"restart"}"#)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
}
