//! The store on a disk that fills up or is read-only, with a real file system: a 4 MiB tmpfs
//! mounted by the test under the gateway's data directory (needs root, as CI runs). While the
//! store cannot write, commands are refused with the reason, `/readyz` is 503 and EVE is still
//! served what is durable; once space returns it takes commands again without a restart, and
//! nothing acknowledged is lost across a `kill -9` right after that.
//!
//! (A data directory that turns read-only while the gateway has its file open cannot be staged
//! here: the kernel refuses `remount,ro` with EBUSY while a file is open for writing. Start-up
//! on a read-only mount is tested; a runtime write error of any kind takes the same path as
//! the full disk.)

use crate::common;

use common::mqtt::{command_timestamp, Probe};
use common::plant::{wait_ports, ChildGateway};
use common::reports::{vision, VISION};
use common::*;
use lps_bridge::eve::profile::{
    AppBootInfoList, LocalAppCmdList, LocalAppInfo, LocalAppInfoList, LocalDevCmd, LocalDevInfo,
    LocalProfile, NetworkInfo, RadioStatus,
};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A small tmpfs mounted on `path` for as long as it lives.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(path)
            .output()
            .expect("cannot run mount(8)");
        assert!(
            out.status.success(),
            "mounting a tmpfs on {} failed ({}): tests/it/store_faults.rs needs root (CI runs as root)",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    fn remount(&self, option: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{option}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount,{option} {}: {}",
            self.path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// Fills the file system with one file, to the last byte it takes.
    fn fill(&self) {
        let mut file = std::fs::File::create(self.filler()).unwrap();
        let chunk = vec![0xA5u8; 16 * 1024];
        while file.write_all(&chunk).is_ok() {}
        // Whatever is left below one chunk.
        while file.write_all(&[0xA5]).is_ok() {}
        let _ = file.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a gateway killed a moment ago may still be closing its file.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

struct Gw {
    child: ChildGateway,
    lps: String,
    mqtt_port: u16,
    op: String,
}

/// A gateway in a child process, its store in `dir/data`, once it listens.
async fn spawn(dir: &Path) -> Gw {
    let (lps_port, mqtt_port, op_port) = (free_port(), free_port(), free_port());
    let child = ChildGateway::spawn_with_operator(
        dir,
        &format!(
            "[lps]\nlisten = \"127.0.0.1:{lps_port}\"\nserver_token = \"{TOKEN}\"\n[mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n"
        ),
        &format!("127.0.0.1:{op_port}"),
        &[],
    );
    wait_ports(&[lps_port, mqtt_port, op_port]).await;
    Gw {
        child,
        lps: format!("http://127.0.0.1:{lps_port}"),
        mqtt_port,
        op: format!("http://127.0.0.1:{op_port}"),
    }
}

async fn readyz(gw: &Gw) -> (u16, Value) {
    let resp = reqwest::get(format!("{}/readyz", gw.op)).await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}

async fn metrics(gw: &Gw) -> String {
    common::metrics_text(&gw.op).await
}

async fn rest_device(gw: &Gw, body: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/device", gw.op))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}

fn apps(last: u64) -> LocalAppInfoList {
    LocalAppInfoList {
        apps_info: vec![LocalAppInfo {
            last_cmd_timestamp: last,
            ..vision()
        }],
    }
}

/// The store's fault reason must say once what failed and what to do.
fn assert_reason(reason: &str, dir: &Path, remedy: &str) {
    let dir = dir.display().to_string();
    assert!(
        reason.contains(&format!("{remedy} {dir}")),
        "reason names the remedy for {dir}: {reason}"
    );
    assert!(
        reason.matches("store").count() <= 1,
        "no repeated prefixes: {reason}"
    );
    assert!(!reason.contains("Previous I/O error"), "{reason}");
}

/// Waits (longer than the usual patience: the back-off may have grown to 16 s) for `check`.
async fn within_backoff<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45) + patience();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_full_disk_refuses_commands_serves_eve_and_heals_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fs = Tmpfs::mount(&data);
    let mut gw = spawn(tmp.path()).await;
    assert_eq!(readyz(&gw).await.0, 200);
    assert_eq!(eve_post(&gw.lps, "appinfo", &apps(0)).await.status(), 204);
    let mut probe = Probe::connect(
        gw.mqtt_port,
        &[
            &format!("{B}/response/#"),
            &format!("{B}/events"),
            &format!("{B}/bridge/state"),
        ],
    )
    .await;
    let app = probe
        .command(B, "app/vision/set", r#"{"command":"purge"}"#)
        .await;
    assert_eq!(app["status"], "ok", "{app}");
    let app_ts = command_timestamp(&app);
    let dev = probe
        .command(B, "device/set", r#"{"command":"collect_info"}"#)
        .await;
    assert_eq!(dev["status"], "ok", "{dev}");

    fs.fill();
    // redb may still find room in pages it freed earlier: commands go on until a commit needs
    // space the disk no longer has. Every one acknowledged until then is durable.
    let mut acked = vec![command_timestamp(&dev)];
    let refusal = loop {
        let reply = probe
            .command(B, "device/set", r#"{"command":"collect_info"}"#)
            .await;
        if reply["status"] == "ok" {
            acked.push(command_timestamp(&reply));
            assert!(acked.len() < 5_000, "the full disk never refused a commit");
            continue;
        }
        break reply["error"].as_str().unwrap().to_string();
    };
    assert_reason(&refusal, &data, "free space in");
    assert!(refusal.starts_with("not accepted: "), "{refusal}");

    // Read-only now: readyz says why, MQTT and REST commands are refused with the reason.
    let (status, ready) = readyz(&gw).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["store"], "read-only");
    assert_reason(
        ready["store_reason"].as_str().unwrap(),
        &data,
        "free space in",
    );
    let again = probe
        .command(B, "device/set", r#"{"command":"reboot"}"#)
        .await;
    assert_eq!(again["status"], "error", "{again}");
    assert_reason(again["error"].as_str().unwrap(), &data, "free space in");
    let (status, body) = rest_device(&gw, r#"{"command":"reboot"}"#).await;
    assert_eq!(status, 503, "{body}");
    assert_reason(body["error"].as_str().unwrap(), &data, "free space in");
    let failed = probe
        .expect(&format!("{B}/events"), |v| v["event"] == "store_failed")
        .await;
    assert_reason(failed["reason"].as_str().unwrap(), &data, "free space in");
    probe
        .expect(&format!("{B}/bridge/state"), |v| {
            v["state"] == "online" && v["store"] == "read-only"
        })
        .await;
    let text = metrics(&gw).await;
    assert!(text.contains("lps_bridge_store_writable 0"), "{text}");
    assert!(text.contains("lps_bridge_store_failures_total 1"), "{text}");

    // EVE is still served what is durable, over and over (what it reports is not stored).
    let profile: LocalProfile = decode(eve_get(&gw.lps, "local_profile").await).await;
    assert_eq!(profile.server_token, TOKEN);
    for _ in 0..2 {
        let cmds: LocalAppCmdList = decode(eve_post(&gw.lps, "appinfo", &apps(0)).await).await;
        assert_eq!(cmds.app_commands.len(), 1);
        assert_eq!(cmds.app_commands[0].id, VISION);
        assert_eq!(cmds.app_commands[0].timestamp, app_ts);
    }
    let first: LocalDevCmd =
        decode(eve_post(&gw.lps, "devinfo", &LocalDevInfo::default()).await).await;
    assert_eq!(Some(&first.timestamp), acked.first());
    let others = [
        eve_post(&gw.lps, "radio", &RadioStatus::default()).await,
        eve_post(&gw.lps, "appbootinfo", &AppBootInfoList::default()).await,
        eve_post(&gw.lps, "network", &NetworkInfo::default()).await,
    ];
    for resp in others {
        assert_eq!(resp.status(), 204, "{}", resp.url());
    }

    // Space returns: the store heals by itself, no restart.
    fs.free();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45) + patience();
    let events = format!("{B}/events");
    while !probe
        .seen
        .iter()
        .any(|m| m.topic == events && m.json()["event"] == "store_recovered")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no store_recovered on {events} after the space returned"
        );
        // Short waits (the probe's own wait would give up after the usual patience).
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            probe.expect(&events, |v| v["event"] == "store_recovered"),
        )
        .await;
    }
    let (status, ready) = readyz(&gw).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["store"], "open");
    let ok = probe
        .command(B, "device/set", r#"{"command":"collect_info"}"#)
        .await;
    assert_eq!(ok["status"], "ok", "{ok}");
    acked.push(command_timestamp(&ok));
    let text = metrics(&gw).await;
    assert!(text.contains("lps_bridge_store_writable 1"), "{text}");
    assert!(
        text.contains("lps_bridge_store_recoveries_total 1"),
        "{text}"
    );

    // kill -9 right after recovery: every acknowledged command is still there.
    gw.child.kill();
    let gw = spawn(tmp.path()).await;
    let cmds: LocalAppCmdList = decode(eve_post(&gw.lps, "appinfo", &apps(0)).await).await;
    assert_eq!(cmds.app_commands.len(), 1);
    assert_eq!(cmds.app_commands[0].timestamp, app_ts);
    let served = serve_device_queue(&gw.lps).await;
    assert_eq!(
        served, acked,
        "every acknowledged device command, in order, nothing refused among them"
    );
    drop(gw);
    drop(fs);
}

/// A store with one app and one device command, written by a gateway that was then killed.
async fn store_with_commands(dir: &Path) -> (u64, u64) {
    let mut gw = spawn(dir).await;
    assert_eq!(eve_post(&gw.lps, "appinfo", &apps(0)).await.status(), 204);
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let app = probe
        .command(B, "app/vision/set", r#"{"command":"restart"}"#)
        .await;
    let dev = probe
        .command(B, "device/set", r#"{"command":"reboot"}"#)
        .await;
    gw.child.kill();
    (command_timestamp(&app), command_timestamp(&dev))
}

#[tokio::test]
async fn starts_on_a_full_disk_and_heals_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&tmp.path().join("data"));
    starts_read_only_and_heals_after(
        tmp.path(),
        &fs,
        "free space in",
        |fs| fs.fill(),
        |fs| fs.free(),
    )
    .await;
}

#[tokio::test]
async fn starts_on_a_read_only_mount_and_heals_when_it_is_writable() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&tmp.path().join("data"));
    starts_read_only_and_heals_after(
        tmp.path(),
        &fs,
        "make",
        |fs| fs.remount("ro"),
        |fs| fs.remount("rw"),
    )
    .await;
}

/// A store written by a gateway killed with SIGKILL, then `break_it`: a gateway started on it
/// runs, serves EVE from disk, says why it is not ready, and heals once `restore` gives the
/// write access back; nothing is lost across another `kill -9`.
async fn starts_read_only_and_heals_after(
    tmp: &Path,
    fs: &Tmpfs,
    remedy: &str,
    break_it: impl FnOnce(&Tmpfs),
    restore: impl FnOnce(&Tmpfs),
) {
    let data = tmp.join("data");
    let (app_ts, dev_ts) = store_with_commands(tmp).await;
    break_it(fs);
    let mut gw = spawn(tmp).await;
    assert!(gw.child.is_running(), "the gateway must start");
    let (status, ready) = readyz(&gw).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["store"], "read-only");
    assert_reason(ready["store_reason"].as_str().unwrap(), &data, remedy);

    let cmds: LocalAppCmdList = decode(eve_post(&gw.lps, "appinfo", &apps(0)).await).await;
    assert_eq!(cmds.app_commands.len(), 1);
    assert_eq!(cmds.app_commands[0].timestamp, app_ts);
    let dev: LocalDevCmd =
        decode(eve_post(&gw.lps, "devinfo", &LocalDevInfo::default()).await).await;
    assert_eq!(dev.timestamp, dev_ts);
    let _: LocalProfile = decode(eve_get(&gw.lps, "local_profile").await).await;

    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let refused = probe
        .command(B, "device/set", r#"{"command":"collect_info"}"#)
        .await;
    assert_eq!(refused["status"], "error", "{refused}");
    assert_reason(refused["error"].as_str().unwrap(), &data, remedy);
    let text = metrics(&gw).await;
    assert!(text.contains("lps_bridge_store_writable 0"), "{text}");

    restore(fs);
    within_backoff("readyz 200 after the store healed", || {
        let gw = &gw;
        async move { (readyz(gw).await.0 == 200).then_some(()) }
    })
    .await;
    let ok = probe
        .command(B, "device/set", r#"{"command":"collect_info"}"#)
        .await;
    assert_eq!(ok["status"], "ok", "{ok}");
    let ok_ts = command_timestamp(&ok);
    gw.child.kill();

    // What was on disk and what was accepted after healing are both there.
    let gw = spawn(tmp).await;
    assert_eq!(readyz(&gw).await.0, 200);
    assert_eq!(serve_device_queue(&gw.lps).await, vec![dev_ts, ok_ts]);
}
