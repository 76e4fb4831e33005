//! Nothing accepted is lost: the gateway runs as a child process and is killed with SIGKILL
//! between acceptance and delivery, and in the middle of a stream of commands.

use crate::common;

use common::mqtt::{command_timestamp, Probe};
use common::plant::{wait_ports, ChildGateway};
use common::reports::{vision, VISION};
use common::*;
use lps_bridge::eve::profile::{
    LocalAppCmdList, LocalAppInfo, LocalAppInfoList, LocalDevCmd, LocalDevInfo,
};
use std::path::Path;
use std::time::Duration;

struct Proc {
    child: ChildGateway,
    lps: String,
    mqtt_port: u16,
}

/// A gateway in a child process with its store in `dir`, once it listens.
async fn spawn(dir: &Path) -> Proc {
    let (lps_port, mqtt_port) = (free_port(), free_port());
    let child = ChildGateway::spawn_in(
        dir,
        &format!(
            "[lps]\nlisten = \"127.0.0.1:{lps_port}\"\nserver_token = \"{TOKEN}\"\n[mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n"
        ),
        &[],
    );
    wait_ports(&[lps_port, mqtt_port]).await;
    Proc {
        child,
        lps: format!("http://127.0.0.1:{lps_port}"),
        mqtt_port,
    }
}

fn kill9(proc: &mut Proc) {
    proc.child.kill(); // SIGKILL on Unix
}

fn apps(last: u64) -> LocalAppInfoList {
    LocalAppInfoList {
        apps_info: vec![LocalAppInfo {
            last_cmd_timestamp: last,
            ..vision()
        }],
    }
}

#[tokio::test]
async fn accepted_command_survives_kill_between_acceptance_and_delivery() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gw = spawn(tmp.path()).await;
    assert_eq!(eve_post(&gw.lps, "appinfo", &apps(0)).await.status(), 204);
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let app = probe
        .command(B, "app/vision/set", r#"{"command":"purge"}"#)
        .await;
    let dev = probe
        .command(B, "device/set", r#"{"command":"collect_info"}"#)
        .await;
    assert_eq!(app["status"], "ok");
    assert_eq!(dev["status"], "ok");
    let app_ts = command_timestamp(&app);
    let dev_ts = command_timestamp(&dev);
    kill9(&mut gw); // acknowledged, never delivered

    let mut gw = spawn(tmp.path()).await;
    let cmds: LocalAppCmdList = decode(eve_post(&gw.lps, "appinfo", &apps(0)).await).await;
    assert_eq!(cmds.app_commands.len(), 1);
    assert_eq!(
        cmds.app_commands[0].timestamp, app_ts,
        "the same command, the same timestamp"
    );
    assert_eq!(cmds.app_commands[0].id, VISION);
    let d: LocalDevCmd = decode(eve_post(&gw.lps, "devinfo", &LocalDevInfo::default()).await).await;
    assert_eq!(d.timestamp, dev_ts);

    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let next = probe
        .command(B, "device/set", r#"{"command":"reboot"}"#)
        .await;
    let next_ts = command_timestamp(&next);
    assert!(
        next_ts > dev_ts && next_ts > app_ts,
        "new timestamps are larger after restart"
    );
    kill9(&mut gw);
}

#[tokio::test]
async fn no_acknowledged_command_is_lost_when_killed_mid_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gw = spawn(tmp.path()).await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let topic = format!("{B}/device/set");
    // One round trip first: the stream below starts against a gateway known to be answering.
    let first = probe
        .command(B, "device/set", r#"{"command":"collect_info"}"#)
        .await;
    assert_eq!(first["status"], "ok", "{first}");
    probe.forget();
    for i in 0..300 {
        probe
            .publish(
                &topic,
                format!(r#"{{"command":"collect_info","transaction":{i}}}"#),
            )
            .await;
    }
    // Kill once some replies are in, while the rest are still being processed.
    probe
        .expect(&format!("{B}/response/device/set"), |v| {
            v["transaction"].as_u64().is_some_and(|t| t >= 20)
        })
        .await;
    kill9(&mut gw);
    tokio::time::sleep(Duration::from_millis(200)).await; // let the client drain what the socket already had
    let mut acked = Vec::new();
    while let Ok(m) = tokio::time::timeout(
        Duration::from_millis(100),
        probe.expect_msg("never", |_| false),
    )
    .await
    {
        let _ = m;
    }
    for m in probe
        .seen
        .iter()
        .filter(|m| m.topic.ends_with("response/device/set"))
    {
        let v = m.json();
        if v["status"] == "ok" {
            acked.push(command_timestamp(&v));
        }
    }
    assert!(!acked.is_empty());
    let gw2 = spawn(tmp.path()).await;
    // Serve the whole queue: every acknowledged command must come back, in order.
    let served = serve_device_queue(&gw2.lps).await;
    for ts in &acked {
        assert!(
            served.contains(ts),
            "acknowledged command {ts} was lost ({} acked, {} served)",
            acked.len(),
            served.len()
        );
    }
    let mut gw2 = gw2;
    kill9(&mut gw2);
}
