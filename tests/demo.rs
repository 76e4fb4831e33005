//! `lps-bridge demo` as a newcomer runs it: one command, then the dashboard URL works and shows
//! the simulated node's apps. (On free ports given by a config file, so that nothing else on the
//! machine, such as a system Mosquitto on 1883, can get in the way.)

mod common;

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
