//! The external plant broker scenario against a real Mosquitto (`/usr/sbin/mosquitto`, from
//! Debian's `mosquitto` package), started by each test on free ports with its own config file.
//! Skipped by plain `cargo test`; CI runs them after installing Mosquitto:
//!
//! ```sh
//! apt-get install -y mosquitto
//! cargo test --locked --test external_mosquitto -- --ignored
//! ```

mod common;

use common::mqtt::Probe;
use common::*;
use lps_bridge::config::ExternalBroker;
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};
use lps_bridge::mqtt::external;
use lps_bridge::mqtt::topics::Topics;
use lps_bridge::mqtt::Publisher;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const B: &str = "lps/edge";
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Waits until something accepts connections on the port.
async fn wait_port(port: u16) {
    eventually("mosquitto listening", || async move {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()
            .then_some(())
    })
    .await;
}

/// Server certificate files for a TLS listener that requires client certificates.
struct TlsListener {
    port: u16,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A Mosquitto child process. Killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    config: PathBuf,
    tls_port: Option<u16>,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    async fn start(port: u16, tls: Option<&TlsListener>) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("mosquitto.conf");
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        );
        // Run as root, Mosquitto would switch to the `mosquitto` user, who cannot read our
        // temporary files: stay the current user.
        if let Some(user) = current_user() {
            text.push_str(&format!("user {user}\n"));
        }
        if let Some(t) = tls {
            text.push_str(&format!(
                "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                t.port,
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            ));
        }
        std::fs::write(&config, text).unwrap();
        let mut m = Mosquitto {
            child: spawn_mosquitto(&config, dir.path()),
            port,
            config,
            tls_port: tls.map(|t| t.port),
            _dir: dir,
        };
        m.wait().await;
        m
    }

    async fn wait(&mut self) {
        wait_port(self.port).await;
        if let Some(p) = self.tls_port {
            wait_port(p).await;
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL: no persistence, so everything retained is gone
        self.child.wait().unwrap();
    }

    /// Starts it again on the same ports, empty.
    async fn restart(&mut self) {
        let dir = self.config.parent().unwrap().to_path_buf();
        self.child = spawn_mosquitto(&self.config, &dir);
        self.wait().await;
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_mosquitto(config: &Path, dir: &Path) -> Child {
    assert!(
        Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} not found: apt-get install -y mosquitto"
    );
    let log = std::fs::File::create(dir.join("mosquitto.log")).unwrap();
    Command::new(MOSQUITTO)
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn current_user() -> Option<String> {
    let out = Command::new("id").arg("-un").output().ok()?;
    let name = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!name.is_empty()).then_some(name)
}

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

fn one_app() -> LocalAppInfoList {
    LocalAppInfoList {
        apps_info: vec![LocalAppInfo {
            id: "6f1c2a3e-0000-4000-8000-000000000001".into(),
            name: "vision".into(),
            version: "1".into(),
            state: 7,
            ..Default::default()
        }],
    }
}

#[tokio::test]
#[ignore = "needs mosquitto (CI extra step)"]
async fn mosquitto_commands_telemetry_and_a_restart_mid_test() {
    let port = free_port();
    let mut broker = Mosquitto::start(port, None).await;
    let mut probe = Probe::connect(port, &[&format!("{B}/#")]).await;
    // A retained command left on the broker is refused and deleted, never executed.
    probe
        .publish_retained(&format!("{B}/device/set"), r#"{"command":"reboot"}"#)
        .await;
    probe
        .expect_msg(&format!("{B}/device/set"), |m| !m.payload.is_empty())
        .await;

    let gw = gateway_external_only(external_cfg(format!("mqtt://127.0.0.1:{port}"))).await;
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
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
    assert!(gw.running().store.snapshot().commands.is_empty());

    // Command in, reply and telemetry out.
    let r = probe
        .command(B, "profile/set", r#"{"profile":"night"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(profile(&gw), "night");
    probe
        .expect(&format!("{B}/profile"), |v| v["desired"] == "night")
        .await;
    drop(probe);

    // Mosquitto goes away; EVE is still served and state still changes.
    broker.kill();
    let resp = eve_get(&gw.lps, "local_profile").await;
    assert_eq!(resp.status(), 200);
    let resp = eve_post(&gw.lps, "appinfo", &one_app()).await;
    assert!(resp.status().is_success(), "{}", resp.status());

    // Back, empty: the gateway reconnects, resubscribes and republishes everything.
    broker.restart().await;
    let mut fresh = Probe::connect(port, &[&format!("{B}/#")]).await;
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
    let r = fresh.command(B, "profile/set", "day").await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(profile(&gw), "day");
}

#[tokio::test]
#[ignore = "needs mosquitto (CI extra step)"]
async fn mosquitto_will_on_kill_and_offline_on_stop() {
    let port = free_port();
    let _broker = Mosquitto::start(port, None).await;
    let mut probe = Probe::connect(port, &[&format!("{B}/bridge/state")]).await;

    // A gateway in a child process, killed with SIGKILL: Mosquitto publishes the Will.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[lps]\nlisten = \"127.0.0.1:0\"\nserver_token = \"{TOKEN}\"\n[mqtt]\nlisten = \"\"\n[mqtt.external]\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"will-test\"\nbackoff_max = \"1s\"\n[operator]\nlisten = \"\"\n[store]\ndir = \"{}\"\n",
            dir.path().join("data").display()
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
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "offline")
        .await;
    probe.forget();

    // An in-process gateway stopped gracefully publishes offline itself (at once, no Will).
    let mut gw = gateway_external_only(external_cfg(format!("mqtt://127.0.0.1:{port}"))).await;
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    let started = std::time::Instant::now();
    gw.stop().await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "offline")
        .await;
    let mut late = Probe::connect(port, &[&format!("{B}/bridge/state")]).await;
    let m = late
        .expect_msg(&format!("{B}/bridge/state"), |_| true)
        .await;
    assert!(m.retain);
    assert_eq!(m.json()["state"], "offline");
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files.
fn pki(dir: &Path) -> (TlsListener, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "lps-bridge test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |name: &str, sans: Vec<String>, usage| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    };
    let (server_cert, server_key) = leaf(
        "server",
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        "client",
        vec!["node1".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    (
        TlsListener {
            port: free_port(),
            ca: ca_file,
            cert: server_cert,
            key: server_key,
        },
        client_cert,
        client_key,
    )
}

#[tokio::test]
#[ignore = "needs mosquitto (CI extra step)"]
async fn mosquitto_tls_with_a_client_certificate() {
    let files = tempfile::tempdir().unwrap();
    let (tls, client_cert, client_key) = pki(files.path());
    let port = free_port();
    let _broker = Mosquitto::start(port, Some(&tls)).await;

    // Without a client certificate the handshake is refused: the client keeps retrying.
    let mut ext = external_cfg(format!("mqtts://localhost:{}", tls.port));
    ext.ca_file = Some(tls.ca.clone());
    {
        let shutdown = CancellationToken::new();
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        let topics = Topics::new(B);
        let handle = external::spawn(
            &ext,
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
            .expect("refused")
            .unwrap()
            .clone();
        assert_eq!(status.connections, 0, "{status:?}");
        shutdown.cancel();
        handle.stopped().await;
    }

    // With it: commands and telemetry over TLS (the probe uses the plain listener).
    ext.cert_file = Some(client_cert);
    ext.key_file = Some(client_key);
    let gw = gateway_external_only(ext).await;
    let mut probe = Probe::connect(port, &[&format!("{B}/#")]).await;
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == "online")
        .await;
    let r = probe.command(B, "profile/set", "night").await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(profile(&gw), "night");
    probe
        .expect(&format!("{B}/profile"), |v| v["desired"] == "night")
        .await;
}
