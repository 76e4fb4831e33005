//! The embedded broker's front door: who may connect (anonymous from loopback only, unless
//! `mqtt.allow_anonymous`), refusals as CONNACK codes both in MQTT 3.1.1 (rumqttc) and 5 (raw
//! bytes), and a fair share of the command path per client. Real gateway, real TCP.
//!
//! "From the network" is played by `MqttConfig::test_loopback_is_remote`, a test-only switch
//! (not a config key) that makes the door judge loopback peers as remote ones: a test cannot
//! count on the machine having another address.

use crate::common;

use common::load::{parse_token, restart_command};
use common::reports::vision_report;
use common::*;
use lps_bridge::config::MqttUser;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use std::io::{Read, Write};
use std::time::Duration;

/// Connects with rumqttc; the CONNACK code, or None if the connection was closed without one.
async fn connack(port: u16, id: &str, login: Option<(&str, &str)>) -> Option<ConnectReturnCode> {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = login {
        opts.set_credentials(u, p);
    }
    let (_client, mut eventloop) = AsyncClient::new(opts, 10);
    tokio::time::timeout(patience(), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Some(ack.code),
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Some(code),
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("the broker answers or closes")
}

fn plc_user() -> Vec<MqttUser> {
    vec![MqttUser {
        name: "plc".into(),
        password: Some("pw".into()),
        password_hash: None,
    }]
}

#[tokio::test]
async fn anonymous_clients_from_loopback_connect_and_command() {
    let gw = TestGateway::start().await;
    assert_eq!(
        connack(gw.mqtt_port, "anon-1", None).await,
        Some(ConnectReturnCode::Success)
    );
    let mut probe = mqtt::Probe::connect(gw.mqtt_port, &[&format!("{B}/response/#")]).await;
    let reply = probe
        .command(B, "profile/set", r#"{"profile":"night"}"#)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
}

#[tokio::test]
async fn anonymous_clients_from_the_network_are_refused_with_not_authorized() {
    let gw = TestGateway::start_with(|c| c.mqtt.test_loopback_is_remote = true).await;
    assert_eq!(
        connack(gw.mqtt_port, "anon-2", None).await,
        Some(ConnectReturnCode::NotAuthorized)
    );
    // A made-up login is no way around it while no users are configured.
    assert_eq!(
        connack(gw.mqtt_port, "anon-3", Some(("someone", "x"))).await,
        Some(ConnectReturnCode::NotAuthorized)
    );
    let open = TestGateway::start_with(|c| {
        c.mqtt.test_loopback_is_remote = true;
        c.mqtt.allow_anonymous = true;
    })
    .await;
    assert_eq!(
        connack(open.mqtt_port, "anon-4", None).await,
        Some(ConnectReturnCode::Success),
        "mqtt.allow_anonymous = true lets them in"
    );
}

#[tokio::test]
async fn wrong_logins_and_reserved_ids_get_a_connack_that_says_so() {
    let gw = TestGateway::start_with(|c| {
        c.mqtt.users = plc_user();
        c.mqtt.test_loopback_is_remote = true;
    })
    .await;
    let port = gw.mqtt_port;
    assert_eq!(
        connack(port, "plc-1", Some(("plc", "pw"))).await,
        Some(ConnectReturnCode::Success),
        "a user logs in from the network"
    );
    assert_eq!(
        connack(port, "plc-2", Some(("plc", "wrong"))).await,
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    assert_eq!(
        connack(port, "nobody", Some(("nobody", "pw"))).await,
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    assert_eq!(
        connack(port, "plc-3", None).await,
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(
        connack(port, "scada", Some(("plc", "pw"))).await,
        Some(ConnectReturnCode::BadClientId),
        "another user's client id"
    );
    assert_eq!(
        connack(port, "lps-bridge", Some(("plc", "pw"))).await,
        Some(ConnectReturnCode::BadClientId),
        "the gateway's reserved id"
    );
}

#[tokio::test]
async fn reserved_ids_are_refused_without_users_too() {
    let gw = TestGateway::start().await;
    let link = gw.running().publisher.link().unwrap().id();
    assert_eq!(
        connack(gw.mqtt_port, &link, None).await,
        Some(ConnectReturnCode::BadClientId)
    );
    assert!(gw.running().publisher.link().unwrap().is_up());
}

fn mqtt_string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

/// A raw CONNECT of `level` with a login, and the first bytes the broker answers.
fn raw_connack(port: u16, level: u8, user: &str, password: &str) -> Vec<u8> {
    let mut body = mqtt_string("MQTT");
    body.extend_from_slice(&[level, 0xc2, 0, 30]);
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(mqtt_string(&format!("{user}-raw")));
    body.extend(mqtt_string(user));
    body.extend(mqtt_string(password));
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(patience())).unwrap();
    s.write_all(&packet).unwrap();
    // One CONNACK: two header bytes and the length in the second.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 64];
    while answer.len() < 2 || answer.len() < 2 + usize::from(answer[1]) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    answer
}

#[tokio::test]
async fn mqtt5_clients_get_mqtt5_reason_codes() {
    let v5 = free_port();
    let gw = TestGateway::start_with(|c| {
        c.mqtt.users = plc_user();
        c.mqtt.listen_v5 = format!("127.0.0.1:{v5}");
    })
    .await;
    let (v4, bad) = (gw.mqtt_port, "wrong");
    let answers = tokio::task::spawn_blocking(move || {
        (
            raw_connack(v5, 5, "plc", bad),
            raw_connack(v4, 4, "plc", bad),
            raw_connack(v4, 5, "plc", "pw"),
            raw_connack(v5, 5, "plc", "pw"),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        answers.0,
        vec![0x20, 3, 0, 0x86, 0],
        "5: bad user name or password"
    );
    assert_eq!(
        answers.1,
        vec![0x20, 2, 0, 4],
        "3.1.1: bad user name or password"
    );
    assert_eq!(
        answers.2,
        vec![0x20, 3, 0, 0x84, 0],
        "MQTT 5 on the 3.1.1 listener: unsupported protocol version"
    );
    assert_eq!(
        answers.3[..4],
        [0x20, answers.3[1], 0, 0],
        "accepted: {:?}",
        answers.3
    );
}

async fn wait(replies: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(300), replies.recv())
        .await
        .expect("replies keep coming")
        .expect("subscriber running")
}

/// Client A floods `N` commands; client B sends one once the broker acknowledged 1,000 of A's.
/// With the fair share, B's reply comes after at most what was let in when B arrived (the
/// commands in flight, `fair_share::PERMITS` = 256, and one per other waiting client). This
/// checks the outcome through the real door (B is answered inside the flood, and every reply
/// arrives); on this load the gateway without the door passes it too (about 1,300 of A's
/// replies came first), so the bound itself is shown by `fair_share`'s unit tests (FIFO, one
/// waiter per connection, never over-released).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_does_not_starve_another_clients_command() {
    const N: usize = 5000;
    let gw = TestGateway::start().await;
    let status = eve_post(&gw.lps, "appinfo", &vision_report())
        .await
        .status();
    assert!(status.is_success(), "{status}");
    let port = gw.mqtt_port;
    let topic = format!("{B}/app/vision/set");
    // One QoS 1 subscriber sees every reply in the order the gateway published them.
    let mut opts = MqttOptions::new("replies", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (subscriber, mut sub_loop) = AsyncClient::new(opts, 10);
    subscriber
        .subscribe(format!("{B}/response/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match sub_loop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some((token, _)) = parse_token(&p.payload) {
                        if tx.send(token).is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    subscribed.await.unwrap();
    // Clients with deep queues (a flooder sends as fast as the broker acknowledges); each one's
    // PUBACKs are counted.
    let client = |id: &str| {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_inflight(1_000);
        let (client, mut eventloop) = AsyncClient::new(opts, 2 * N);
        let (acks_tx, acks) = tokio::sync::watch::channel(0usize);
        tokio::spawn(async move {
            let mut acked = 0;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked += 1;
                        acks_tx.send_replace(acked);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        (client, acks)
    };
    let ((a, mut a_acks), (b, _)) = (client("flooder"), client("quiet"));
    for seq in 0..N {
        a.publish(&topic, QoS::AtLeastOnce, false, restart_command(0, seq, 0))
            .await
            .unwrap();
    }
    // B sends once the broker has taken 1,000 of A's: without a fair share A's acknowledged
    // commands pile up in the gateway ahead of B's (the broker acknowledges on receipt).
    tokio::time::timeout(Duration::from_secs(300), a_acks.wait_for(|n| *n >= 1_000))
        .await
        .expect("the broker takes A's flood")
        .unwrap();
    b.publish(&topic, QoS::AtLeastOnce, false, restart_command(1, 0, 0))
        .await
        .unwrap();
    let mut order = Vec::new();
    let mut distinct = std::collections::HashSet::new();
    while distinct.len() < N + 1 {
        let token = wait(&mut replies).await;
        if distinct.insert(token.clone()) {
            order.push(token);
        }
    }
    let b_at = order.iter().position(|t| t == "1.0").expect("B's reply");
    let a_before_b = b_at; // everything before it is A's
    eprintln!("A's replies before B's: {a_before_b} of {N}");
    assert!(
        a_before_b < N,
        "B's reply came after A's last one: the flood starved it"
    );
    // Without the fair share B's command waited behind about all of A's; with it, behind what
    // was let in when B arrived (1,000 acknowledged, plus up to 256 in flight). Half of the
    // flood is a bound no scheduling delay before B's publish comes near.
    assert!(
        a_before_b <= N / 2,
        "{a_before_b} of A's {N} replies came before B's"
    );
}
