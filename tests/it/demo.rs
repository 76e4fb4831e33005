//! `lps-bridge demo` as a newcomer runs it: one command, then the dashboard URL works and shows
//! the simulated node's apps. (On free ports given by a config file, so that nothing else on the
//! machine, such as a system Mosquitto on 1883, can get in the way.)

use crate::common;

use common::*;
use std::process::{Command, Stdio};

#[tokio::test]
async fn demo_serves_dashboard_with_simulated_apps() {
    let tmp = tempfile::tempdir().unwrap();
    let (lps, mqtt, operator) = (free_port(), free_port(), free_port());
    let config = tmp.path().join("demo.toml");
    std::fs::write(
        &config,
        format!("[lps]\nlisten = \"127.0.0.1:{lps}\"\n[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\n[operator]\nlisten = \"127.0.0.1:{operator}\"\n"),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{operator}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
        .args(["demo", "--speed", "20", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = eventually("demo apps running", || async {
        let resp = reqwest::get(format!("{base}/api/state")).await.ok()?;
        let state: serde_json::Value = serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
        let apps = state["apps"].as_array()?;
        (apps.len() == 4 && state["eve"]["state"] == "online").then_some(state)
    })
    .await;
    let names: Vec<&str> = state["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"vision") && names.contains(&"gpu-trainer"),
        "{names:?}"
    );
    let page = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("lps-bridge"));
    let profiles: serde_json::Value = serde_json::from_slice(
        &reqwest::get(format!("{base}/api/profiles"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(profiles[0]["name"], "day");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("{base}/")) && printed.contains(&mqtt.to_string()),
        "{printed}"
    );
}

/// A demo on free ports from a config file (`extra` appended to it), without `--data-dir`.
/// Returns the child and the operator API's base URL.
fn spawn_demo(dir: &std::path::Path, extra: &str) -> (std::process::Child, String) {
    let (lps, mqtt, operator) = (free_port(), free_port(), free_port());
    let config = dir.join(format!("demo-{operator}.toml"));
    std::fs::write(
        &config,
        format!("[lps]\nlisten = \"127.0.0.1:{lps}\"\n[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\n[operator]\nlisten = \"127.0.0.1:{operator}\"\n{extra}"),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
        .args(["demo", "--speed", "20", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{operator}"))
}

/// Waits until the demo on `base` shows its simulated node online with its four apps.
async fn demo_online(base: &str) {
    eventually("demo apps running", || async {
        let resp = reqwest::get(format!("{base}/api/state")).await.ok()?;
        let state: serde_json::Value = serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
        (state["apps"].as_array()?.len() == 4 && state["eve"]["state"] == "online").then_some(())
    })
    .await;
}

/// SIGTERM (what Ctrl-C or a service manager sends), then what the demo printed.
fn stop_demo(child: std::process::Child) -> String {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The data directory the demo printed (`data  <dir>`).
fn printed_data_dir(printed: &str) -> std::path::PathBuf {
    let line = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("data"))
        .unwrap_or_else(|| panic!("no data line in {printed}"));
    line.split_whitespace().next().unwrap().into()
}

#[tokio::test]
async fn demo_with_a_config_keeps_its_data_in_the_files_store_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("from-file");
    let (child, base) = spawn_demo(
        tmp.path(),
        &format!("[store]\ndir = \"{}\"\n", data.display()),
    );
    demo_online(&base).await;
    assert!(
        data.join("lps-bridge.redb").is_file(),
        "the store is in [store] dir"
    );
    let printed = stop_demo(child);
    assert_eq!(printed_data_dir(&printed), data);
    // The file's directory is the user's: kept after the demo.
    assert!(data.join("lps-bridge.redb").is_file());
}

#[tokio::test]
async fn two_demos_without_a_data_dir_run_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, first_base) = spawn_demo(tmp.path(), "");
    let (second, second_base) = spawn_demo(tmp.path(), "");
    demo_online(&first_base).await;
    demo_online(&second_base).await;
    let (a, b) = (stop_demo(first), stop_demo(second));
    let (a, b) = (printed_data_dir(&a), printed_data_dir(&b));
    assert_ne!(a, b, "each demo has a data dir of its own");
    // Scratch directories are the demo's own: gone once it stopped.
    assert!(!a.exists() && !b.exists(), "{a:?} {b:?}");
}

/// A demo on free ports with `base_topic` and `token` from its config file and `args` added,
/// read up to the end of its banner. Returns the child, the banner and the operator API's URL.
async fn demo_with_banner(
    dir: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, String, String, u16) {
    let (lps, mqtt, operator) = (free_port(), free_port(), free_port());
    let config = dir.join(format!("banner-{operator}.toml"));
    std::fs::write(
        &config,
        format!("[lps]\nlisten = \"127.0.0.1:{lps}\"\nserver_token = \"plant-token\"\n[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\nbase_topic = \"plant/hall1\"\n[operator]\nlisten = \"127.0.0.1:{operator}\"\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
        .args(["demo", "--speed", "20", "--config"])
        .arg(&config)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let banner = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut banner = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("Ctrl-C stops it.") {
                break;
            }
        }
        banner
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{operator}");
    demo_online(&base).await;
    (child, banner, base, mqtt)
}

fn sigterm(child: &mut std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}

async fn commands(base: &str) -> usize {
    let body = reqwest::get(format!("{base}/api/commands"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn demo_banner_prints_what_is_configured_and_each_demo_starts_fresh() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_arg = data.display().to_string();
    let (mut child, banner, base, mqtt) =
        demo_with_banner(tmp.path(), &["--data-dir", &data_arg]).await;
    assert!(
        banner.contains(&format!("127.0.0.1:{mqtt}   (base topic plant/hall1)")),
        "{banner}"
    );
    assert!(banner.contains("(token plant-token)"), "{banner}");
    assert!(
        banner.contains(&format!(
            "mosquitto_sub -h 127.0.0.1 -p {mqtt} -t 'plant/hall1/#' -v"
        )),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "mosquitto_pub -h 127.0.0.1 -p {mqtt} -t plant/hall1/profile/set -m night"
        )),
        "{banner}"
    );
    assert!(
        !banner.contains("lps/edge") && !banner.contains("demo-token"),
        "{banner}"
    );
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/apps/vision"))
        .header("content-type", "application/json")
        .body(r#"{"command":"restart"}"#)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(commands(&base).await >= 1);
    sigterm(&mut child);

    // The same data directory again: the earlier demo's commands are gone ...
    let (mut child, banner, base, _) =
        demo_with_banner(tmp.path(), &["--data-dir", &data_arg]).await;
    assert!(banner.contains("started fresh"), "{banner}");
    assert_eq!(commands(&base).await, 0);
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/apps/historian"))
        .header("content-type", "application/json")
        .body(r#"{"command":"restart"}"#)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    sigterm(&mut child);

    // ... unless asked to keep them.
    let (mut child, banner, base, _) =
        demo_with_banner(tmp.path(), &["--data-dir", &data_arg, "--keep-data"]).await;
    assert!(banner.contains("--keep-data"), "{banner}");
    assert!(
        commands(&base).await >= 1,
        "kept the earlier demo's command"
    );
    sigterm(&mut child);
}
