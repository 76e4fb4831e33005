//! The EVE-facing API's response policy, checked over real HTTP with protobuf.

use crate::common;

use common::reports::{vision_report, VISION};
use common::store::{device_command, intent, set_profile, set_radio};
use common::*;
use lps_bridge::eve::common::BootOrder;
use lps_bridge::eve::info::ZInfoLocation;
use lps_bridge::eve::profile::*;
use lps_bridge::state::{AppAction, DeviceAction, Intent, NetworkPort};
use serde_json::json;

/// The status of an EVE request to `endpoint` with `msg`.
async fn eve_post_status<M: prost::Message>(gw: &TestGateway, endpoint: &str, msg: &M) -> u16 {
    eve_post(&gw.lps, endpoint, msg).await.status().as_u16()
}

#[tokio::test]
async fn local_profile_always_200_with_token() {
    let gw = TestGateway::start().await;
    let p: LocalProfile = decode(eve_get(&gw.lps, "local_profile").await).await;
    assert_eq!(
        p,
        LocalProfile {
            local_profile: String::new(),
            server_token: TOKEN.into()
        }
    );
    set_profile(&gw, "night").await;
    let p: LocalProfile = decode(eve_get(&gw.lps, "local_profile").await).await;
    assert_eq!(p.local_profile, "night");
    assert_eq!(p.server_token, TOKEN);
}

#[tokio::test]
async fn reports_get_204_until_something_is_set() {
    let gw = TestGateway::start().await;
    assert_eq!(
        eve_post_status(&gw, "radio", &RadioStatus::default()).await,
        204
    );
    assert_eq!(eve_post_status(&gw, "appinfo", &vision_report()).await, 204);
    assert_eq!(
        eve_post_status(&gw, "appbootinfo", &AppBootInfoList::default()).await,
        204
    );
    assert_eq!(
        eve_post_status(&gw, "devinfo", &LocalDevInfo::default()).await,
        204
    );
    assert_eq!(
        eve_post_status(&gw, "network", &NetworkInfo::default()).await,
        204
    );
    let loc = eve_post(
        &gw.lps,
        "location",
        &ZInfoLocation {
            latitude: 48.1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(loc.status(), 200);
    assert_eq!(loc.headers()["content-type"], "application/x-proto-binary");
}

#[tokio::test]
async fn full_state_endpoints_answer_with_token_once_set() {
    let gw = TestGateway::start().await;
    eve_post(&gw.lps, "appinfo", &vision_report()).await;
    set_radio(&gw, true).await;
    intent(
        &gw,
        Intent::SetBoot {
            app: "vision".into(),
            choice: lps_bridge::state::BootChoice::Usb,
        },
    )
    .await;
    let port = NetworkPort {
        logical_label: "eth1".into(),
        config: json!({ "logical_label": "eth1", "mtu": 1400 }),
    };
    intent(&gw, Intent::SetNetwork { ports: vec![port] }).await;

    let radio: RadioConfig =
        decode(eve_post(&gw.lps, "radio", &RadioStatus::default()).await).await;
    assert_eq!(
        radio,
        RadioConfig {
            server_token: TOKEN.into(),
            radio_silence: true
        }
    );
    let boot: AppBootConfigList =
        decode(eve_post(&gw.lps, "appbootinfo", &AppBootInfoList::default()).await).await;
    assert_eq!(boot.server_token, TOKEN);
    assert_eq!(boot.app_configs[0].displayname, "vision");
    assert_eq!(boot.app_configs[0].id, VISION);
    assert_eq!(boot.app_configs[0].usb_boot, BootOrder::Usb as i32);
    let net: LocalNetworkConfig =
        decode(eve_post(&gw.lps, "network", &NetworkInfo::default()).await).await;
    assert_eq!(net.server_token, TOKEN);
    assert_eq!(net.ports[0].logical_label, "eth1");
    assert_eq!(net.ports[0].mtu, 1400);
}

#[tokio::test]
async fn commands_carry_token_timestamp_and_both_app_names() {
    let gw = TestGateway::start().await;
    eve_post(&gw.lps, "appinfo", &vision_report()).await;
    intent(
        &gw,
        Intent::AppCommand {
            app: "vision".into(),
            action: AppAction::Restart,
        },
    )
    .await;
    device_command(&gw, DeviceAction::CollectInfo).await;
    let cmds: LocalAppCmdList = decode(eve_post(&gw.lps, "appinfo", &vision_report()).await).await;
    assert_eq!(cmds.server_token, TOKEN);
    assert_eq!(cmds.app_commands.len(), 1);
    let c = &cmds.app_commands[0];
    assert_eq!((c.id.as_str(), c.displayname.as_str()), (VISION, "vision"));
    assert_eq!(c.command, app_command::Command::Restart as i32);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        c.timestamp > now_ns - 60_000_000_000 && c.timestamp <= now_ns,
        "Unix ns: {}",
        c.timestamp
    );
    let dev: LocalDevCmd =
        decode(eve_post(&gw.lps, "devinfo", &LocalDevInfo::default()).await).await;
    assert_eq!(dev.server_token, TOKEN);
    assert_eq!(dev.command, local_dev_cmd::Command::CollectInfo as i32);
    assert!(dev.timestamp > c.timestamp);
}

#[tokio::test]
async fn undecodable_body_is_400_and_changes_nothing() {
    let gw = TestGateway::start().await;
    let before = gw.running().store.snapshot();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/appinfo", gw.lps))
        .header("Content-Type", "application/x-proto-binary")
        .body(vec![0x0a, 0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/x-proto-binary");
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("appinfo") && text.contains("not a valid"),
        "{text}"
    );
    let after = gw.running().store.snapshot();
    assert_eq!(before.reports, after.reports);
    assert!(!after.eve.online, "a bad request is not EVE");
}

#[tokio::test]
async fn oversize_body_is_413() {
    let gw = TestGateway::start_with(|c| c.lps.max_body_bytes = 4096).await;
    let big = LocalAppInfoList {
        apps_info: (0..200)
            .map(|i| LocalAppInfo {
                name: format!("app-{i:0>40}"),
                ..Default::default()
            })
            .collect(),
    };
    let resp = eve_post(&gw.lps, "appinfo", &big).await;
    assert_eq!(resp.status(), 413);
    assert!(resp.text().await.unwrap().contains("max_body_bytes"));
    assert!(gw.running().store.snapshot().reports.apps.is_none());
}

#[tokio::test]
async fn wrong_content_type_is_accepted() {
    let gw = TestGateway::start().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/appinfo", gw.lps))
        .header("Content-Type", "text/plain")
        .body(prost::Message::encode_to_vec(&vision_report()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        gw.running().store.snapshot().reports.apps.as_ref().unwrap()[0].name,
        "vision"
    );
}

#[tokio::test]
async fn disabled_endpoint_is_404_and_others_are_not() {
    let gw = TestGateway::start_with(|c| {
        c.lps.disabled_endpoints = vec!["location".into(), "signal".into()]
    })
    .await;
    assert_eq!(
        eve_post_status(&gw, "location", &ZInfoLocation::default()).await,
        404
    );
    assert_eq!(eve_get(&gw.lps, "signal").await.status(), 404);
    assert_eq!(
        eve_post_status(&gw, "radio", &RadioStatus::default()).await,
        204
    );
    assert_eq!(
        eve_get(&gw.lps, "nonexistent").await.status(),
        404,
        "unknown paths are not EVE endpoints"
    );
}

#[tokio::test]
async fn device_commands_wait_for_last_cmd_timestamp() {
    let gw = TestGateway::start().await;
    device_command(&gw, DeviceAction::CollectInfo).await;
    device_command(&gw, DeviceAction::Reboot).await;
    let first: LocalDevCmd =
        decode(eve_post(&gw.lps, "devinfo", &LocalDevInfo::default()).await).await;
    let again: LocalDevCmd =
        decode(eve_post(&gw.lps, "devinfo", &LocalDevInfo::default()).await).await;
    assert_eq!(first, again, "the same command until EVE reports it");
    let report = LocalDevInfo {
        last_cmd_timestamp: first.timestamp,
        ..Default::default()
    };
    let second: LocalDevCmd = decode(eve_post(&gw.lps, "devinfo", &report).await).await;
    assert_eq!(
        second.command,
        local_dev_cmd::Command::GracefulReboot as i32
    );
    let report = LocalDevInfo {
        last_cmd_timestamp: second.timestamp,
        ..Default::default()
    };
    assert_eq!(eve_post_status(&gw, "devinfo", &report).await, 204);
}
