//! The gateway's own broker links: no client can take them over, a lost link comes back with its
//! subscriptions, users cannot reuse each other's client ids, every accepted socket has
//! TCP_NODELAY, and a subscriber that never reads does not stop commands or EVE.

use crate::common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::config::MqttUser;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet};
use std::io::Write;
use std::time::Duration;

/// Connects with `client_id` and returns the CONNACK code (None if the broker closed instead).
/// The client is left connected (its event loop keeps running) until the test ends.
async fn connect_as_id(
    port: u16,
    client_id: &str,
    credentials: Option<(&str, &str)>,
) -> Option<ConnectReturnCode> {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = credentials {
        opts.set_credentials(u, p);
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut tx = Some(tx);
        loop {
            let outcome = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => Some(Some(ack.code)),
                Ok(_) => None,
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => Some(Some(code)),
                Err(_) => Some(None),
            };
            if let Some(outcome) = outcome {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(outcome);
                }
                if outcome != Some(ConnectReturnCode::Success) {
                    // Refused: do not retry.
                    return;
                }
            }
        }
    });
    tokio::time::timeout(patience(), rx)
        .await
        .expect("the broker answers or closes")
        .unwrap()
}

fn users() -> Vec<MqttUser> {
    ["plc", "scada", "probe"]
        .into_iter()
        .map(|name| MqttUser {
            name: name.into(),
            password: Some(format!("{name}-pw")),
            password_hash: None,
        })
        .collect()
}

async fn profile_command_works(probe: &mut Probe, profile: &str) {
    let reply = probe
        .command(B, "profile/set", &format!(r#"{{"profile":"{profile}"}}"#))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
}

#[tokio::test]
async fn reserved_ids_are_refused_on_an_anonymous_broker_too() {
    let gw = TestGateway::start().await;
    // The front door judges every CONNECT, with or without credentials.
    for id in [
        "lps-bridge".to_string(),
        gw.running().publisher.link().unwrap().id(),
    ] {
        assert_eq!(
            connect_as_id(gw.mqtt_port, &id, None).await,
            Some(ConnectReturnCode::BadClientId),
            "{id} is the gateway's"
        );
    }
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    profile_command_works(&mut probe, "night").await;
    let link = gw.running().publisher.link().unwrap();
    assert!(link.is_up());
    assert_eq!(link.reconnects(), 0);
    assert!(link.id().starts_with("lps-bridge-link-"));
}

#[tokio::test]
async fn reserved_and_foreign_client_ids_are_refused_for_users() {
    let gw = TestGateway::start_with(|c| c.mqtt.users = users()).await;
    let link_id = gw.running().publisher.link().unwrap().id();
    let ok = Some(ConnectReturnCode::Success);
    for id in ["lps-bridge", link_id.as_str()] {
        assert_ne!(
            connect_as_id(gw.mqtt_port, id, Some(("plc", "plc-pw"))).await,
            ok,
            "{id} is the gateway's"
        );
    }
    // scada is connected; plc must not kick it off by reusing its id.
    assert_eq!(
        connect_as_id(gw.mqtt_port, "scada-hmi", Some(("scada", "scada-pw"))).await,
        ok
    );
    assert_ne!(
        connect_as_id(gw.mqtt_port, "scada-hmi", Some(("plc", "plc-pw"))).await,
        ok,
        "another user's client id"
    );
    assert_ne!(
        connect_as_id(gw.mqtt_port, "scada", Some(("plc", "plc-pw"))).await,
        ok
    );
    assert_eq!(
        connect_as_id(gw.mqtt_port, "plc", Some(("plc", "plc-pw"))).await,
        ok
    );
    let link = gw.running().publisher.link().unwrap();
    assert_eq!(link.reconnects(), 0, "the link was never dropped");
    let mut probe = Probe::connect_as(
        gw.mqtt_port,
        ("probe", "probe-pw"),
        &[&format!("{B}/response/#")],
    )
    .await;
    profile_command_works(&mut probe, "day").await;
}

#[tokio::test]
async fn a_lost_link_comes_back_subscribed_with_its_retained_state() {
    let gw = TestGateway::start().await;
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    profile_command_works(&mut probe, "night").await;
    let link = gw.running().publisher.link().unwrap();
    let stolen = link.id();
    // Only a client that knows the random id and the gateway's own per-process login can do
    // this (tests read both in-process): the door refuses a reserved id to anyone else.
    let gateway = (
        lps_bridge::mqtt::auth::GATEWAY_USER,
        lps_bridge::mqtt::auth::gateway_password(),
    );
    assert_eq!(
        connect_as_id(gw.mqtt_port, &stolen, Some(gateway)).await,
        Some(ConnectReturnCode::Success)
    );
    eventually("the link rebuilt", || async {
        (link.reconnects() == 1 && link.is_up()).then_some(())
    })
    .await;
    assert_ne!(
        link.id(),
        stolen,
        "a new id, so the intruder is not kicked back and forth"
    );
    // Subscribed again: commands flow; retained state restored for late subscribers.
    profile_command_works(&mut probe, "day").await;
    let mut late = Probe::connect(gw.mqtt_port, &[&format!("{B}/bridge/state")]).await;
    late.expect(&format!("{B}/bridge/state"), |_| true).await;
    let operator = gw.running().operator_addr.unwrap();
    let ready = reqwest::get(format!("http://{operator}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(body["mqtt_link"], "up");
    let metrics = common::metrics_text(&format!("http://{operator}")).await;
    assert!(metrics.contains("lps_bridge_mqtt_link_up 1"), "{metrics}");
    assert!(metrics.contains("lps_bridge_mqtt_link_reconnects_total 1"));
}

#[tokio::test]
async fn every_accepted_broker_socket_has_tcp_nodelay_and_is_acked_at_once() {
    let gw = TestGateway::start().await;
    let mut probes = Vec::new();
    for _ in 0..5 {
        probes.push(Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await);
    }
    let publisher = gw.running().publisher.clone();
    let audit = eventually("5 client sockets in the audit", || {
        let publisher = publisher.clone();
        async move {
            let audits = publisher.socket_audits().await;
            let v4 = audits.into_iter().find(|a| a.listener == "mqtt-v4")?;
            (v4.clients >= 5 && v4.quick_acks >= 5).then_some(v4)
        }
    })
    .await;
    // Without TCP_NODELAY a QoS 1 reply waits for the client's delayed ACK (~40 ms).
    assert_eq!(audit.clients_without_nodelay, 0, "{audit:?}");
    // Without the ACK sweep a default (Nagle) client's next command waits for our delayed ACK
    // of its last PUBACK (~40 ms): the sweep has told the client sockets to ACK at once.
    assert!(audit.quick_acks >= 5, "{audit:?}");
    let operator = gw.running().operator_addr.unwrap();
    let metrics = common::metrics_text(&format!("http://{operator}")).await;
    assert!(
        metrics
            .contains("lps_bridge_mqtt_listener_sockets_without_nodelay{listener=\"mqtt-v4\"} 0"),
        "{metrics}"
    );
}

/// A raw MQTT 3.1.1 CONNECT + SUBSCRIBE (QoS 1) to `filter`; the socket is then never read.
fn stalled_subscriber(port: u16, filter: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let id = b"stalled";
    let mut connect = vec![0x10, (10 + 2 + id.len()) as u8];
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60]);
    connect.extend_from_slice(&[0, id.len() as u8]);
    connect.extend_from_slice(id);
    let f = filter.as_bytes();
    let mut subscribe = vec![0x82, (2 + 2 + f.len() + 1) as u8, 0, 1, 0, f.len() as u8];
    subscribe.extend_from_slice(f);
    subscribe.push(1);
    s.write_all(&connect).unwrap();
    s.write_all(&subscribe).unwrap();
    s
}

#[tokio::test]
async fn a_subscriber_that_never_reads_blocks_nothing() {
    let gw = TestGateway::start().await;
    let _stalled = stalled_subscriber(gw.mqtt_port, "#");
    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let big = "x".repeat(200_000);
    // Fill the stalled client's socket buffers: 200 large retained messages through the broker.
    for i in 0..200 {
        probe
            .publish(&format!("plant/filler/{i}"), big.clone())
            .await;
    }
    for i in 0..50 {
        let reply = probe
            .command(B, "profile/set", &format!(r#"{{"profile":"p{i}"}}"#))
            .await;
        assert_eq!(reply["status"], "ok", "{reply}");
    }
    let resp = eve_get(&gw.lps, "local_profile").await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(gw.running().publisher.dropped(), 0);
}
