//! The gateway as a client of a plant broker (`[mqtt.external]`), against real second brokers:
//! a plain rumqttd in this process, a TLS rumqttd, a TLS proxy that requires client
//! certificates, and, for the restart and Will tests, brokers and gateways in child processes
//! (rumqttd cannot be stopped in-process).

mod common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::config::ExternalBroker;
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};
use lps_bridge::mqtt::external::{self, ExternalStatus};
use lps_bridge::mqtt::topics::Topics;
use lps_bridge::mqtt::Publisher;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rumqttc::tokio_rustls::TlsAcceptor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const B: &str = "lps/edge";
const VISION: &str = "6f1c2a3e-0000-4000-8000-000000000001";

// ---------------------------------------------------------------------------------------------
// Plant brokers

/// Waits until something accepts connections on the port.
async fn wait_port(port: u16) {
    eventually("broker listening", || async move {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()
            .then_some(())
    })
    .await;
}

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

async fn plant_rumqttd() -> u16 {
    let port = free_port();
    rumqttd_on(port, None).await;
    port
}

/// A stand-in plant broker in a child process, so that it can be killed and restarted on the
/// same port: our own binary with its embedded broker on `port`, under another base topic.
struct ChildBroker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl ChildBroker {
    async fn start(port: u16) -> ChildBroker {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("broker.toml");
        std::fs::write(
            &config,
            format!(
                "[lps]\nlisten = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"127.0.0.1:{port}\"\nbase_topic = \"standin\"\n[operator]\nlisten = \"\"\n[store]\ndir = \"{}\"\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port).await;
        ChildBroker {
            child,
            port,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[mqtt.external]` for a plant broker on loopback, with a short backoff for tests.
fn external_cfg(url: String) -> ExternalBroker {
    ExternalBroker {
        url,
        client_id: format!("lps-bridge-test-{}", uuid::Uuid::new_v4()),
        username: None,
        password: None,
        ca_file: None,
        cert_file: None,
        key_file: None,
        keep_alive: Duration::from_secs(5),
        max_packet_bytes: 1 << 20,
        backoff_max: Duration::from_secs(1),
    }
}

fn plain(port: u16) -> ExternalBroker {
    external_cfg(format!("mqtt://127.0.0.1:{port}"))
}

/// A gateway whose only broker is the plant broker (`[mqtt] listen = ""`).
async fn gateway_external_only(ext: ExternalBroker) -> TestGateway {
    TestGateway::start_with(move |c| {
        c.mqtt.listen = String::new();
        c.mqtt.external = Some(ext);
    })
    .await
}

fn profile(gw: &TestGateway) -> String {
    gw.running()
        .store
        .snapshot()
        .meta
        .desired
        .profile
        .name
        .clone()
}

fn one_app(state: i32) -> LocalAppInfoList {
    LocalAppInfoList {
        apps_info: vec![LocalAppInfo {
            id: VISION.into(),
            name: "vision".into(),
            version: "1".into(),
            state,
            ..Default::default()
        }],
    }
}

// ---------------------------------------------------------------------------------------------
// Command in, telemetry out

#[tokio::test]
async fn commands_come_from_and_telemetry_goes_to_the_plant_broker() {
    let plant = plant_rumqttd().await;
    let mut probe = Probe::connect(plant, &[&format!("{B}/#")]).await;
    // A retained command left on the plant broker must not fire when the gateway subscribes.
    probe
        .publish_retained(&format!("{B}/device/set"), r#"{"command":"reboot"}"#)
        .await;
    probe
        .expect_msg(&format!("{B}/device/set"), |m| !m.payload.is_empty())
        .await;

    let gw = gateway_external_only(plain(plant)).await;
    assert_eq!(gw.mqtt_port, 0, "embedded broker off");

    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    probe
        .expect(&format!("{B}/bridge/info"), |v| {
            v["features"]["external_broker"] == true && v["features"]["embedded_broker"] == false
        })
        .await;
    let refused = probe
        .expect(&format!("{B}/response/device/set"), |v| {
            v["status"] == "error"
        })
        .await;
    assert!(
        refused["error"].as_str().unwrap().contains("retained"),
        "{refused}"
    );
    // ... and its retained copy was deleted on the plant broker.
    let mut fresh = Probe::connect(plant, &[&format!("{B}/device/set")]).await;
    fresh.publish(&format!("{B}/device/set"), "").await;
    let first = fresh.expect_msg(&format!("{B}/device/set"), |_| true).await;
    assert!(
        first.payload.is_empty(),
        "retained command not deleted: {first:?}"
    );
    assert!(gw.running().store.snapshot().commands.is_empty());

    let r = probe
        .command(B, "profile/set", r#"{"profile":"night"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(profile(&gw), "night");
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
    eve_post(&gw.lps, "appinfo", &one_app(7)).await;
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
    let gw = TestGateway::start_with(|c| c.mqtt.external = Some(plain(plant))).await;
    assert_ne!(gw.mqtt_port, 0);
    let mut on_plant = Probe::connect(plant, &[&format!("{B}/#")]).await;
    let mut on_embedded = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    on_plant
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;

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
    assert_eq!(profile(&gw), "night");
}

// ---------------------------------------------------------------------------------------------
// Outages

#[tokio::test]
async fn plant_broker_restart_resubscribes_and_republishes_and_eve_is_served_meanwhile() {
    let port = free_port();
    let mut broker = ChildBroker::start(port).await;
    let gw = gateway_external_only(plain(port)).await;

    let mut probe = Probe::connect(port, &[&format!("{B}/#")]).await;
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    let r = probe
        .command(B, "profile/set", r#"{"profile":"night"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    drop(probe);

    broker.kill();
    // The EVE side keeps working while the plant broker is gone, and state keeps changing.
    let resp = eve_get(&gw.lps, "local_profile").await;
    assert_eq!(resp.status(), 200);
    let resp = eve_post(&gw.lps, "appinfo", &one_app(7)).await;
    assert!(resp.status().is_success(), "{}", resp.status());
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

    let broker = ChildBroker::start(broker.port).await;
    // A fresh subscriber on the empty, restarted broker sees everything again: the birth, the
    // state from before the outage and the state that changed during it.
    let mut fresh = Probe::connect(broker.port, &[&format!("{B}/#")]).await;
    fresh
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    fresh
        .expect(&format!("{B}/profile"), |v| {
            v["desired"] == "night" && v["fetched"] == true
        })
        .await;
    fresh
        .expect(&format!("{B}/app/vision"), |v| v["name"] == "vision")
        .await;
    // Resubscribed: a command published after the restart is answered.
    let r = fresh.command(B, "profile/set", "day").await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(profile(&gw), "day");
}

#[tokio::test]
async fn plant_broker_down_at_start_up_never_blocks_the_gateway() {
    let port = free_port(); // nothing listens here yet
    let started = std::time::Instant::now();
    let gw = gateway_external_only(plain(port)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "start-up waited for the broker: {:?}",
        started.elapsed()
    );
    let resp = eve_get(&gw.lps, "local_profile").await;
    assert_eq!(resp.status(), 200);
    eve_post(&gw.lps, "appinfo", &one_app(7)).await;

    tokio::time::sleep(Duration::from_millis(1500)).await; // a few failed attempts
    rumqttd_on(port, None).await;
    let mut probe = Probe::connect(port, &[&format!("{B}/#")]).await;
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
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
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[lps]\nlisten = \"127.0.0.1:0\"\nserver_token = \"{TOKEN}\"\n[mqtt]\nlisten = \"\"\n[mqtt.external]\nurl = \"mqtt://127.0.0.1:{plant}\"\nclient_id = \"will-test\"\nbackoff_max = \"1s\"\n[operator]\nlisten = \"\"\n[store]\ndir = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut probe = Probe::connect(plant, &[&format!("{B}/bridge/state")]).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    child.kill().unwrap(); // SIGKILL: no goodbye, only the Will
    child.wait().unwrap();
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "offline")
        .await;
    // Retained: a dashboard that connects later sees it too.
    let mut late = Probe::connect(plant, &[&format!("{B}/bridge/state")]).await;
    let m = late
        .expect_msg(&format!("{B}/bridge/state"), |_| true)
        .await;
    assert!(m.retain);
    assert_eq!(m.json()["state"], "offline");
}

#[tokio::test]
async fn graceful_stop_publishes_retained_offline() {
    let plant = plant_rumqttd().await;
    let mut gw = gateway_external_only(plain(plant)).await;
    let mut probe = Probe::connect(plant, &[&format!("{B}/bridge/state")]).await;
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    let started = std::time::Instant::now();
    gw.stop().await;
    // A clean goodbye is immediate; the Will would only follow the 2 s grace and a dropped
    // connection.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "stop took {:?}",
        started.elapsed()
    );
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "offline")
        .await;
    let mut late = Probe::connect(plant, &[&format!("{B}/bridge/state")]).await;
    let m = late
        .expect_msg(&format!("{B}/bridge/state"), |_| true)
        .await;
    assert!(m.retain);
    assert_eq!(m.json()["state"], "offline");
}

// ---------------------------------------------------------------------------------------------
// TLS

/// A test CA that signs server and client certificates, all written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    cert_der: CertificateDer<'static>,
    key_der: PrivateKeyDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "lps-bridge test CA");
        let ca = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            ca_der: ca.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn leaf(&self, name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
            cert_der: cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    fn server(&self) -> Leaf {
        self.leaf(
            "server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self) -> Leaf {
        self.leaf("client", &["node1"], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

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
    let server = pki.server();
    let (port, tls_port) = (free_port(), free_port());
    rumqttd_on(port, Some((tls_port, &server.cert, &server.key))).await;

    // By host name, so that the certificate's DNS name is what is checked.
    let mut ext = external_cfg(format!("mqtts://localhost:{tls_port}"));
    ext.ca_file = Some(pki.ca_file());
    let gw = gateway_external_only(ext).await;
    let mut probe = Probe::connect(port, &[&format!("{B}/#")]).await;
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    let r = probe.command(B, "profile/set", "night").await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(profile(&gw), "night");
}

#[tokio::test]
async fn mqtts_with_a_client_certificate() {
    let pki = Pki::new();
    let plant = plant_rumqttd().await;
    let (front, handshakes) = mtls_front(&pki, plant).await;
    let client = pki.client();
    let mut ext = external_cfg(format!("mqtts://127.0.0.1:{front}"));
    ext.ca_file = Some(pki.ca_file());
    ext.cert_file = Some(client.cert.clone());
    ext.key_file = Some(client.key.clone());
    let gw = gateway_external_only(ext).await;
    let mut probe = Probe::connect(plant, &[&format!("{B}/#")]).await;
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    let r = probe.command(B, "profile/set", "night").await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(profile(&gw), "night");
    assert!(handshakes.load(Ordering::SeqCst) >= 1);
}

/// Runs the client alone (no gateway) against `ext` until it has failed `n` times.
async fn fails_to_connect(ext: &ExternalBroker) -> ExternalStatus {
    let shutdown = CancellationToken::new();
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let topics = Topics::new(B);
    let handle = external::spawn(
        ext,
        &topics,
        topics.command_filters().to_vec(),
        &Publisher::default(),
        tx,
        shutdown.clone(),
    )
    .unwrap();
    let mut watch = handle.watch();
    let status = tokio::time::timeout(patience(), watch.wait_for(|s| s.failures >= 2))
        .await
        .expect("connection attempts fail")
        .unwrap()
        .clone();
    shutdown.cancel();
    handle.stopped().await;
    status
}

#[tokio::test]
async fn tls_is_refused_without_the_right_ca_or_client_certificate() {
    let pki = Pki::new();
    let server = pki.server();
    let (port, tls_port) = (free_port(), free_port());
    rumqttd_on(port, Some((tls_port, &server.cert, &server.key))).await;

    // A server certificate from a CA we were not told to trust.
    let other = Pki::new();
    let mut ext = external_cfg(format!("mqtts://localhost:{tls_port}"));
    ext.ca_file = Some(other.ca_file());
    let status = fails_to_connect(&ext).await;
    assert_eq!(status.connections, 0, "{status:?}");

    // The right CA but the wrong name: 127.0.0.2 is not in the certificate.
    let mut ext = external_cfg(format!("mqtts://127.0.0.2:{tls_port}"));
    ext.ca_file = Some(pki.ca_file());
    let status = fails_to_connect(&ext).await;
    assert_eq!(status.connections, 0, "{status:?}");

    // A broker that requires a client certificate, and none configured.
    let (front, handshakes) = mtls_front(&pki, port).await;
    let mut ext = external_cfg(format!("mqtts://127.0.0.1:{front}"));
    ext.ca_file = Some(pki.ca_file());
    let status = fails_to_connect(&ext).await;
    assert_eq!(status.connections, 0, "{status:?}");
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bad_tls_files_fail_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut ext = external_cfg("mqtts://localhost:8883".into());
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
    let err = match c.validate() {
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
