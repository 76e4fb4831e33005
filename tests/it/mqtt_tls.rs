//! The embedded broker's TLS listener (`[mqtt.tls]`), with users: another gateway (node B)
//! connects to it over mqtts:// as its plant broker, authenticates, and its telemetry and
//! commands flow through; a client that does not trust the CA is refused.

use crate::common;

use common::mqtt::Probe;
use common::plant::{external_config, fails_to_connect, Pki};
use common::*;
use lps_bridge::config::{MqttTls, MqttUser};

#[tokio::test]
async fn a_gateway_talks_to_the_embedded_broker_over_tls_with_a_password() {
    let pki = Pki::new();
    let server = pki.server();
    let tls_port = free_port();
    let hub = TestGateway::start_with(|c| {
        c.mqtt.tls = Some(MqttTls {
            listen: format!("127.0.0.1:{tls_port}"),
            cert_file: server.cert.clone(),
            key_file: server.key.clone(),
        });
        c.mqtt.users = vec![
            MqttUser {
                name: "node-b".into(),
                password: Some("b-secret".into()),
                password_hash: None,
            },
            MqttUser {
                name: "probe".into(),
                password: Some("p-secret".into()),
                password_hash: None,
            },
        ];
    })
    .await;

    let mut ext = external_config(format!("mqtts://localhost:{tls_port}"));
    ext.ca_file = Some(pki.ca_file());
    ext.client_id = "node-b".into();
    ext.username = Some("node-b".into());
    ext.password = Some("b-secret".into());
    let node_b = TestGateway::start_with(move |c| {
        c.mqtt.listen = String::new();
        c.mqtt.base_topic = "plant/node-b".into();
        c.mqtt.external = Some(ext);
    })
    .await;

    // A plain-port client of the hub (with its own user) sees node B's telemetry and commands it.
    let mut probe =
        Probe::connect_as(hub.mqtt_port, ("probe", "p-secret"), &["plant/node-b/#"]).await;
    probe
        .expect("plant/node-b/bridge/state", |v| v["state"] == "online")
        .await;
    let reply = probe
        .command("plant/node-b", "profile/set", r#"{"profile":"night"}"#)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(
        node_b.running().store.snapshot().meta.desired.profile.name,
        "night"
    );
    assert_eq!(
        hub.running().store.snapshot().meta.desired.profile.name,
        "",
        "the hub's own base topic is untouched"
    );
}

#[tokio::test]
async fn tls_clients_need_the_ca_and_a_password() {
    let pki = Pki::new();
    let server = pki.server();
    let tls_port = free_port();
    let _hub = TestGateway::start_with(|c| {
        c.mqtt.tls = Some(MqttTls {
            listen: format!("127.0.0.1:{tls_port}"),
            cert_file: server.cert.clone(),
            key_file: server.key.clone(),
        });
        c.mqtt.users = vec![MqttUser {
            name: "node-b".into(),
            password: Some("b-secret".into()),
            password_hash: None,
        }];
    })
    .await;
    let other = Pki::new();
    let mut untrusted = external_config(format!("mqtts://localhost:{tls_port}"));
    untrusted.ca_file = Some(other.ca_file());
    untrusted.username = Some("node-b".into());
    untrusted.password = Some("b-secret".into());
    let status = fails_to_connect(&untrusted).await;
    assert!(!status.connected && status.connections == 0, "{status:?}");

    let mut wrong_password = external_config(format!("mqtts://localhost:{tls_port}"));
    wrong_password.ca_file = Some(pki.ca_file());
    wrong_password.client_id = "node-b".into();
    wrong_password.username = Some("node-b".into());
    wrong_password.password = Some("nope".into());
    let status = fails_to_connect(&wrong_password).await;
    assert!(!status.connected && status.connections == 0, "{status:?}");
}

#[test]
fn unreadable_tls_files_are_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[mqtt.tls]\nlisten = \"127.0.0.1:8883\"\ncert_file = \"/nonexistent/server.pem\"\nkey_file = \"/nonexistent/server.key\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mqtt.tls.cert_file") && err.contains("/nonexistent/server.pem"),
        "{err}"
    );
}
