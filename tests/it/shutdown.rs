//! Stopping is complete: SIGTERM to the real binary while a burst of commands is in flight, and
//! every command the store accepted has its reply published before the process is gone.

use crate::common;

use common::plant::wait_ports;
use common::*;
use lps_bridge::state::Limits;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;

/// Commands in the burst: more than the ingress hands the store at once (256), so that some
/// are still waiting for the store, or for their reply, when SIGTERM arrives.
const BURST: u64 = 1_000;

fn client(id: &str, port: u16) -> (AsyncClient, rumqttc::EventLoop) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    AsyncClient::new(opts, BURST as usize + 10)
}

#[tokio::test]
async fn sigterm_publishes_the_reply_of_every_accepted_command() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (lps_port, mqtt_port) = (free_port(), free_port());
    let config = tmp.path().join("lps-bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[lps]\nlisten = \"127.0.0.1:{lps_port}\"\n[mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n[operator]\nlisten = \"\"\n[store]\ndir = \"{}\"\nkeep_finished_commands = 100000\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ports(&[lps_port, mqtt_port]).await;

    // The subscriber reads replies until its connection ends: the gateway's process is gone.
    let (sub, mut sub_loop) = client("shutdown-sub", mqtt_port);
    let (replies_tx, mut replies) = mpsc::unbounded_channel::<serde_json::Value>();
    let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel::<()>();
    let reader = tokio::spawn(async move {
        loop {
            match sub_loop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = replies_tx.send(serde_json::from_slice(&p.payload).unwrap());
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = subscribed_tx.send(());
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    sub.subscribe(format!("{B}/response/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(patience(), subscribed.recv())
        .await
        .expect("SUBACK");

    let (publisher, mut pub_loop) = client("shutdown-pub", mqtt_port);
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    let topic = format!("{B}/device/set");
    for i in 0..BURST {
        publisher
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                format!(r#"{{"command":"collect_info","transaction":{i}}}"#),
            )
            .await
            .unwrap();
    }

    // SIGTERM as soon as the gateway answers, with the rest of the burst still in flight.
    let first = tokio::time::timeout(patience(), replies.recv())
        .await
        .expect("a first reply")
        .unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    tokio::time::timeout(patience(), reader)
        .await
        .expect("the subscriber's connection ends with the process")
        .unwrap();
    let mut got = vec![first];
    while let Ok(reply) = replies.try_recv() {
        got.push(reply);
    }
    for reply in &got {
        assert_eq!(reply["status"], "ok", "{reply}");
    }
    let replied: BTreeSet<u64> = got
        .iter()
        .map(|r| r["command"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(replied.len(), got.len(), "one reply per command");

    // What the store accepted, read from its files once the gateway is gone.
    let limits = Limits {
        keep_finished_commands: 100_000,
        ..Limits::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let (store, task) = lps_bridge::store::start(&data, limits, stop.clone()).unwrap();
    let accepted: BTreeSet<u64> = store
        .snapshot()
        .commands
        .values()
        .filter(|c| c.source == "mqtt")
        .map(|c| c.id)
        .collect();
    stop.cancel();
    task.await;
    println!(
        "a burst of {BURST}: {} accepted, {} answered",
        accepted.len(),
        replied.len()
    );
    assert!(!accepted.is_empty());
    let unanswered: Vec<&u64> = accepted.difference(&replied).collect();
    let unknown: Vec<&u64> = replied.difference(&accepted).collect();
    assert!(
        unanswered.is_empty() && unknown.is_empty(),
        "accepted but never answered: {unanswered:?}; answered but not in the store: {unknown:?}"
    );
}
