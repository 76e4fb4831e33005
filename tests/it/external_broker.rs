//! The gateway as a client of a plant broker (`[mqtt.external]`), against real second brokers:
//! a plain rumqttd in this process, a TLS rumqttd, a TLS proxy that requires client
//! certificates, and, for the restart and Will tests, brokers and gateways in child processes
//! (rumqttd cannot be stopped in-process).

use crate::common;

use common::mqtt::Probe;
use common::plant::*;
use common::reports::vision_report;
use common::store::desired_profile;
use common::*;
use lps_bridge::mqtt::external;
use rumqttc::tokio_rustls::TlsAcceptor;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Plant brokers

fn rumqttd_server(
    name: &str,
    port: u16,
    tls: Option<rumqttd::TlsConfig>,
) -> rumqttd::ServerSettings {
    rumqttd::ServerSettings {
        name: name.into(),
        listen: ([127, 0, 0, 1], port).into(),
        tls,
        next_connection_delay_ms: 1,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// A plain rumqttd in this process on `port`, plus a TLS listener on `tls_port` if given. It
/// runs until the test process ends.
async fn rumqttd_on(port: u16, tls: Option<(u16, &Path, &Path)>) {
    let mut v4 = HashMap::from([("plain".to_string(), rumqttd_server("plain", port, None))]);
    if let Some((tls_port, cert, key)) = tls {
        let config = rumqttd::TlsConfig::Rustls {
            capath: None,
            certpath: cert.display().to_string(),
            keypath: key.display().to_string(),
        };
        v4.insert(
            "tls".to_string(),
            rumqttd_server("tls", tls_port, Some(config)),
        );
    }
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 100,
            max_outgoing_packet_count: 1000,
            max_segment_size: 1 << 20,
            max_segment_count: 2,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        ..rumqttd::Config::default()
    };
    let mut broker = rumqttd::Broker::new(config);
    std::thread::spawn(move || {
        if let Err(err) = broker.start() {
            eprintln!("plant broker stopped: {err}");
        }
    });
    wait_port(port).await;
    if let Some((tls_port, _, _)) = tls {
        wait_port(tls_port).await;
    }
}

/// A rumqttd on a plain and a TLS port, with a server certificate from `pki`.
async fn tls_rumqttd(pki: &Pki) -> (u16, u16) {
    let server = pki.server();
    let (port, tls_port) = (free_port(), free_port());
    rumqttd_on(port, Some((tls_port, &server.cert, &server.key))).await;
    (port, tls_port)
}

async fn plant_rumqttd() -> u16 {
    let port = free_port();
    rumqttd_on(port, None).await;
    port
}

/// A stand-in plant broker in a child process, so that it can be killed and restarted on the
/// same port: our own binary with its embedded broker on `port`, under another base topic.
async fn child_broker(port: u16) -> ChildGateway {
    let broker = ChildGateway::spawn(
        &format!(
            "[lps]\nlisten = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"127.0.0.1:{port}\"\nbase_topic = \"standin\"\n"
        ),
        &[("RUST_LOG", "error")],
    );
    wait_port(port).await;
    broker
}

// ---------------------------------------------------------------------------------------------
// Command in, telemetry out

#[tokio::test]
async fn commands_come_from_and_telemetry_goes_to_the_plant_broker() {
    let plant = plant_rumqttd().await;
    let mut probe = Probe::connect(plant, &[&format!("{B}/#")]).await;
    // A retained command left on the plant broker must not fire when the gateway subscribes.
    leave_retained_reboot(&mut probe).await;

    let gw = gateway_external_only(external_plain(plant)).await;
    assert_eq!(gw.mqtt_port, 0, "embedded broker off");

    expect_bridge_state(&mut probe, "online").await;
    probe
        .expect(&format!("{B}/bridge/info"), |v| {
            v["features"]["external_broker"] == true && v["features"]["embedded_broker"] == false
        })
        .await;
    expect_retained_refused(&mut probe).await;
    // ... and its retained copy was deleted on the plant broker.
    let mut fresh = Probe::connect(plant, &[&format!("{B}/device/set")]).await;
    fresh.publish(&format!("{B}/device/set"), "").await;
    let first = fresh.expect_msg(&format!("{B}/device/set"), |_| true).await;
    assert!(
        first.payload.is_empty(),
        "retained command not deleted: {first:?}"
    );
    assert!(gw.running().store.snapshot().commands.is_empty());

    set_night(&mut probe, &gw, r#"{"profile":"night"}"#).await;
    let p = probe
        .expect(&format!("{B}/profile"), |v| v["desired"] == "night")
        .await;
    assert_eq!(p["fetched"], false);

    // EVE fetches it: the retained view follows on the plant broker.
    let resp = eve_get(&gw.lps, "local_profile").await;
    assert_eq!(resp.status(), 200);
    probe
        .expect(&format!("{B}/profile"), |v| {
            v["desired"] == "night" && v["fetched"] == true
        })
        .await;
    eve_post(&gw.lps, "appinfo", &vision_report()).await;
    let r = probe
        .command(B, "app/vision/set", r#"{"command":"restart"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    probe
        .expect(&format!("{B}/app/vision"), |v| v["command"].is_object())
        .await;
}

#[tokio::test]
async fn with_both_brokers_commands_come_from_both_and_telemetry_goes_to_both() {
    let plant = plant_rumqttd().await;
    let gw = TestGateway::start_with(|c| c.mqtt.external = Some(external_plain(plant))).await;
    assert_ne!(gw.mqtt_port, 0);
    let mut on_plant = Probe::connect(plant, &[&format!("{B}/#")]).await;
    let mut on_embedded = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    expect_bridge_state(&mut on_plant, "online").await;

    let r = on_embedded.command(B, "profile/set", "day").await;
    assert_eq!(r["status"], "ok", "{r}");
    on_plant
        .expect(&format!("{B}/profile"), |v| v["desired"] == "day")
        .await;

    let r = on_plant
        .command(B, "profile/set", r#"{"profile":"night"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    on_embedded
        .expect(&format!("{B}/profile"), |v| v["desired"] == "night")
        .await;
    assert_eq!(desired_profile(&gw), "night");
}

// ---------------------------------------------------------------------------------------------
// Outages

#[tokio::test]
async fn plant_broker_restart_resubscribes_and_republishes_and_eve_is_served_meanwhile() {
    let port = free_port();
    let mut broker = child_broker(port).await;
    let gw = gateway_external_only(external_plain(port)).await;

    let mut probe = online_probe(port).await;
    let r = probe
        .command(B, "profile/set", r#"{"profile":"night"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    drop(probe);

    broker.kill();
    // The EVE side keeps working while the plant broker is gone, and state keeps changing.
    eve_served_during_outage(&gw).await;
    eventually("the app report is stored", || async {
        gw.running()
            .store
            .snapshot()
            .reports
            .apps
            .is_some()
            .then_some(())
    })
    .await;

    let _broker = child_broker(port).await;
    // A fresh subscriber on the empty, restarted broker sees everything again: the birth, the
    // state from before the outage and the state that changed during it; and the gateway has
    // resubscribed.
    expect_everything_back(port, &gw).await;
}

#[tokio::test]
async fn plant_broker_down_at_start_up_never_blocks_the_gateway() {
    let port = free_port(); // nothing listens here yet
    let started = std::time::Instant::now();
    let gw = gateway_external_only(external_plain(port)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "start-up waited for the broker: {:?}",
        started.elapsed()
    );
    let resp = eve_get(&gw.lps, "local_profile").await;
    assert_eq!(resp.status(), 200);
    eve_post(&gw.lps, "appinfo", &vision_report()).await;

    tokio::time::sleep(Duration::from_millis(1500)).await; // a few failed attempts
    rumqttd_on(port, None).await;
    let mut probe = online_probe(port).await;
    probe
        .expect(&format!("{B}/app/vision"), |v| v["name"] == "vision")
        .await;
    let r = probe.command(B, "profile/set", "night").await;
    assert_eq!(r["status"], "ok", "{r}");
}

// ---------------------------------------------------------------------------------------------
// Last Will and graceful offline

#[tokio::test]
async fn will_marks_the_gateway_offline_when_it_is_killed() {
    let plant = plant_rumqttd().await;
    let mut probe = Probe::connect(plant, &[&format!("{B}/bridge/state")]).await;
    let mut child = child_gateway_external_only(plant);
    expect_bridge_state(&mut probe, "online").await;
    // SIGKILL: no goodbye, only the Will. Retained: a dashboard that connects later sees it too.
    child.kill();
    expect_offline_retained(&mut probe, plant).await;
}

#[tokio::test]
async fn graceful_stop_publishes_retained_offline() {
    let plant = plant_rumqttd().await;
    let mut gw = gateway_external_only(external_plain(plant)).await;
    let mut probe = Probe::connect(plant, &[&format!("{B}/bridge/state")]).await;
    expect_bridge_state(&mut probe, "online").await;
    // A clean goodbye is immediate.
    stop_promptly(&mut gw).await;
    expect_offline_retained(&mut probe, plant).await;
}

// ---------------------------------------------------------------------------------------------
// TLS

/// A TLS front end that requires a client certificate from `pki` and forwards to a plain
/// broker: what a plant broker with certificate authentication looks like to the gateway.
/// Returns its port and the number of completed handshakes.
async fn mtls_front(pki: &Pki, upstream: u16) -> (u16, Arc<AtomicU64>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server = pki.server();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.cert_der], server.key_der)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicU64::new(0));
    let counter = handshakes.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let Ok(mut broker) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            });
        }
    });
    (port, handshakes)
}

#[tokio::test]
async fn mqtts_to_a_tls_rumqttd_with_a_custom_ca() {
    let pki = Pki::new();
    let (port, tls_port) = tls_rumqttd(&pki).await;

    // By host name, so that the certificate's DNS name is what is checked.
    let mut ext = external_config(format!("mqtts://localhost:{tls_port}"));
    ext.ca_file = Some(pki.ca_file());
    let gw = gateway_external_only(ext).await;
    expect_commands_answered(port, &gw).await;
}

#[tokio::test]
async fn mqtts_with_a_client_certificate() {
    let pki = Pki::new();
    let plant = plant_rumqttd().await;
    let (front, handshakes) = mtls_front(&pki, plant).await;
    let client = pki.client();
    let mut ext = external_config(format!("mqtts://127.0.0.1:{front}"));
    ext.ca_file = Some(pki.ca_file());
    ext.cert_file = Some(client.cert.clone());
    ext.key_file = Some(client.key.clone());
    let gw = gateway_external_only(ext).await;
    expect_commands_answered(plant, &gw).await;
    assert!(handshakes.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn tls_is_refused_without_the_right_ca_or_client_certificate() {
    let pki = Pki::new();
    let (port, tls_port) = tls_rumqttd(&pki).await;

    // A server certificate from a CA we were not told to trust.
    let other = Pki::new();
    let mut ext = external_config(format!("mqtts://localhost:{tls_port}"));
    ext.ca_file = Some(other.ca_file());
    let status = fails_to_connect(&ext).await;
    assert_eq!(status.connections, 0, "{status:?}");

    // The right CA but the wrong name: 127.0.0.2 is not in the certificate.
    let mut ext = external_config(format!("mqtts://127.0.0.2:{tls_port}"));
    ext.ca_file = Some(pki.ca_file());
    let status = fails_to_connect(&ext).await;
    assert_eq!(status.connections, 0, "{status:?}");

    // A broker that requires a client certificate, and none configured.
    let (front, handshakes) = mtls_front(&pki, port).await;
    let mut ext = external_config(format!("mqtts://127.0.0.1:{front}"));
    ext.ca_file = Some(pki.ca_file());
    let status = fails_to_connect(&ext).await;
    assert_eq!(status.connections, 0, "{status:?}");
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bad_tls_files_fail_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut ext = external_config("mqtts://localhost:8883".into());
    ext.ca_file = Some(dir.path().join("missing-ca.pem"));
    let err = external::check(&ext).unwrap_err().to_string();
    assert!(
        err.starts_with("mqtt.external.ca_file: cannot read ") && err.contains("missing-ca.pem"),
        "{err}"
    );
    // Refused by config validation or, at the latest, by start-up.
    let mut c = test_config(dir.path());
    c.mqtt.listen = String::new();
    c.mqtt.external = Some(ext);
    let err = match lps_bridge::app::prepare(c) {
        Err(err) => err.to_string(),
        Ok(settings) => match lps_bridge::app::start(settings).await {
            Ok(_) => panic!("started with an unreadable ca_file"),
            Err(err) => format!("{err:#}"),
        },
    };
    assert!(
        err.contains("mqtt.external.ca_file") && err.contains("missing-ca.pem"),
        "{err}"
    );
}
