//! Security of the embedded broker: users with plain or hashed passwords, anonymous refused once
//! a user exists, and secrets never shown.

use crate::common;

use common::store::desired_profile;
use common::*;
use lps_bridge::config::MqttUser;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet};
use std::time::Duration;

/// Connects and returns the CONNACK code, or None if the broker closed the connection instead.
async fn connect(port: u16, credentials: Option<(&str, &str)>) -> Option<ConnectReturnCode> {
    // A user may use its own name, or its name with a `-<suffix>`, as client id.
    let owner = credentials.map_or("sec", |(user, _)| user);
    let mut opts = MqttOptions::new(
        format!("{owner}-{}", uuid::Uuid::new_v4()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = credentials {
        opts.set_credentials(u, p);
    }
    let (_client, mut eventloop) = AsyncClient::new(opts, 10);
    let outcome = tokio::time::timeout(patience(), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Some(ack.code),
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Some(code),
                Err(_) => return None,
            }
        }
    })
    .await;
    outcome.expect("the broker answers or closes")
}

fn users() -> Vec<MqttUser> {
    vec![
        MqttUser {
            name: "plc".into(),
            password: Some("plain-pw".into()),
            password_hash: None,
        },
        MqttUser {
            name: "scada".into(),
            password: None,
            password_hash: Some(lps_bridge::mqtt::auth::hash_password("hashed-pw").unwrap()),
        },
    ]
}

#[tokio::test]
async fn without_users_anonymous_clients_connect() {
    let gw = TestGateway::start().await;
    assert_eq!(
        connect(gw.mqtt_port, None).await,
        Some(ConnectReturnCode::Success)
    );
}

#[tokio::test]
async fn users_are_checked_and_anonymous_refused() {
    let gw = TestGateway::start_with(|c| c.mqtt.users = users()).await;
    let ok = Some(ConnectReturnCode::Success);
    assert_eq!(
        connect(gw.mqtt_port, Some(("plc", "plain-pw"))).await,
        ok,
        "plain password"
    );
    assert_eq!(
        connect(gw.mqtt_port, Some(("scada", "hashed-pw"))).await,
        ok,
        "argon2 hash"
    );
    assert_ne!(
        connect(gw.mqtt_port, Some(("plc", "wrong"))).await,
        ok,
        "wrong password"
    );
    assert_ne!(
        connect(gw.mqtt_port, Some(("nobody", "plain-pw"))).await,
        ok,
        "unknown user"
    );
    assert_ne!(connect(gw.mqtt_port, None).await, ok, "anonymous");
}

#[tokio::test]
async fn an_authenticated_user_can_command() {
    let gw = TestGateway::start_with(|c| c.mqtt.users = users()).await;
    let mut opts = MqttOptions::new("plc-client", "127.0.0.1", gw.mqtt_port);
    opts.set_credentials("plc", "plain-pw");
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    client
        .subscribe("lps/edge/response/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish(
            "lps/edge/profile/set",
            rumqttc::QoS::AtLeastOnce,
            false,
            "night",
        )
        .await
        .unwrap();
    tokio::time::timeout(patience(), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                if p.topic == "lps/edge/response/profile/set" {
                    return;
                }
            }
        }
    })
    .await
    .expect("reply");
    assert_eq!(desired_profile(&gw), "night");
}

#[test]
fn secrets_never_printed_by_print_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[lps]\nserver_token = \"tok-secret\"\n[mqtt.external]\nurl = \"mqtt://127.0.0.1:1\"\nclient_id = \"x\"\nusername = \"u\"\npassword = \"ext-secret\"\n[[mqtt.users]]\nname = \"plc\"\npassword = \"user-secret\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
        .args(["print-config", "--config"])
        .arg(&path)
        .env("LPS_BRIDGE_MQTT_PASSWORD", "env-secret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in ["tok-secret", "ext-secret", "user-secret", "env-secret"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(text.contains("name = \"plc\""));
}

#[test]
fn hash_password_prints_a_usable_hash() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let users = lps_bridge::mqtt::auth::Users::new(&[MqttUser {
        name: "u".into(),
        password: None,
        password_hash: Some(hash),
    }])
    .unwrap();
    assert!(users.check("u", "pw"));
}
