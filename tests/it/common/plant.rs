//! Plant brokers and the gateway as their client (`[mqtt.external]`): ports to wait for, client
//! configs, gateways in child processes, a test PKI, and the checks every plant broker shares.

use super::mqtt::Probe;
use super::reports::vision_report;
use super::store::desired_profile;
use super::{eve_get, eve_post, eventually, patience, TestGateway, B, TOKEN};
use lps_bridge::config::ExternalBroker;
use lps_bridge::mqtt::external::{self, ExternalStatus};
use lps_bridge::mqtt::topics::Topics;
use lps_bridge::mqtt::Publisher;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Ports

/// Waits until something accepts connections on every one of the ports.
pub async fn wait_ports(ports: &[u16]) {
    eventually(
        &format!("listening on 127.0.0.1 {ports:?}"),
        || async move {
            ports
                .iter()
                .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
                .then_some(())
        },
    )
    .await;
}

/// Waits until something accepts connections on the port.
pub async fn wait_port(port: u16) {
    wait_ports(&[port]).await;
}

// ---------------------------------------------------------------------------------------------
// The gateway as a client of a plant broker

/// `[mqtt.external]` for a plant broker at `url`, with a short backoff for tests.
pub fn external_config(url: String) -> ExternalBroker {
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

/// `[mqtt.external]` for a plain (no TLS) plant broker on loopback.
pub fn external_plain(port: u16) -> ExternalBroker {
    external_config(format!("mqtt://127.0.0.1:{port}"))
}

/// A gateway whose only broker is the plant broker (`[mqtt] listen = ""`).
pub async fn gateway_external_only(ext: ExternalBroker) -> TestGateway {
    TestGateway::start_with(move |c| {
        c.mqtt.listen = String::new();
        c.mqtt.external = Some(ext);
    })
    .await
}

/// Runs the client alone (no gateway) against `ext` until it has failed twice.
pub async fn fails_to_connect(ext: &ExternalBroker) -> ExternalStatus {
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

// ---------------------------------------------------------------------------------------------
// Gateways in child processes

/// `lps-bridge run` in a child process, its output discarded. Killed on drop.
pub struct ChildGateway {
    child: Child,
    _tmp: Option<tempfile::TempDir>,
}

impl ChildGateway {
    /// Runs the gateway on a config file in `dir`: `sections`, then no operator API and the
    /// store in `dir/data` (so a gateway started again in `dir` finds the same store). `envs`
    /// are added to its environment.
    pub fn spawn_in(dir: &Path, sections: &str, envs: &[(&str, &str)]) -> ChildGateway {
        Self::spawn_with_operator(dir, sections, "", envs)
    }

    /// [`ChildGateway::spawn_in`] with the operator API on `operator_listen` ("" = none).
    pub fn spawn_with_operator(
        dir: &Path,
        sections: &str,
        operator_listen: &str,
        envs: &[(&str, &str)],
    ) -> ChildGateway {
        let config = dir.join("lps-bridge.toml");
        std::fs::write(
            &config,
            format!(
                "{sections}[operator]\nlisten = \"{operator_listen}\"\n[store]\ndir = \"{}\"\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
            .args(["run", "--config"])
            .arg(&config)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        ChildGateway { child, _tmp: None }
    }

    /// Whether the child is still running (not exited, e.g. with an error at start).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// [`ChildGateway::spawn_in`] a temporary directory that lives as long as the child.
    pub fn spawn(sections: &str, envs: &[(&str, &str)]) -> ChildGateway {
        let tmp = tempfile::tempdir().unwrap();
        let mut gw = Self::spawn_in(tmp.path(), sections, envs);
        gw._tmp = Some(tmp);
        gw
    }

    /// SIGKILL (on Unix), and reaped: no goodbye, nothing flushed.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway in a child process whose only broker is the plain plant broker on `plant`.
pub fn child_gateway_external_only(plant: u16) -> ChildGateway {
    ChildGateway::spawn(
        &format!(
            "[lps]\nlisten = \"127.0.0.1:0\"\nserver_token = \"{TOKEN}\"\n[mqtt]\nlisten = \"\"\n[mqtt.external]\nurl = \"mqtt://127.0.0.1:{plant}\"\nclient_id = \"will-test\"\nbackoff_max = \"1s\"\n"
        ),
        &[],
    )
}

// ---------------------------------------------------------------------------------------------
// TLS

/// A test CA that signs server and client certificates, all written as PEM files.
pub struct Pki {
    dir: tempfile::TempDir,
    pub ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files and in DER.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_der: CertificateDer<'static>,
    pub key_der: PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new() -> Pki {
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

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn leaf(&self, name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
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

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Leaf {
        self.leaf(
            "server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate for `node1`.
    pub fn client(&self) -> Leaf {
        self.leaf("client", &["node1"], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

// ---------------------------------------------------------------------------------------------
// What every plant broker must see

/// Waits for `B/bridge/state` to say `state` on `probe`.
pub async fn expect_bridge_state(probe: &mut Probe, state: &str) {
    probe
        .expect(&format!("{B}/bridge/state"), |v| v["state"] == state)
        .await;
}

/// A probe on `B/#` of the broker on `port`, returned once the gateway is online there.
pub async fn online_probe(port: u16) -> Probe {
    let mut probe = Probe::connect(port, &[&format!("{B}/#")]).await;
    expect_bridge_state(&mut probe, "online").await;
    probe
}

/// Leaves a retained `reboot` command on the broker of `probe` (subscribed to it), as a careless
/// publisher would.
pub async fn leave_retained_reboot(probe: &mut Probe) {
    probe
        .publish_retained(&format!("{B}/device/set"), r#"{"command":"reboot"}"#)
        .await;
    probe
        .expect_msg(&format!("{B}/device/set"), |m| !m.payload.is_empty())
        .await;
}

/// The gateway refused the retained command with an error reply that says why.
pub async fn expect_retained_refused(probe: &mut Probe) {
    let refused = probe
        .expect(&format!("{B}/response/device/set"), |v| {
            v["status"] == "error"
        })
        .await;
    assert!(
        refused["error"].as_str().unwrap().contains("retained"),
        "{refused}"
    );
}

/// `profile/set` with `payload` on `probe` is answered `ok` and sets the gateway's profile to
/// `night`.
pub async fn set_night(probe: &mut Probe, gw: &TestGateway, payload: &str) {
    let r = probe.command(B, "profile/set", payload).await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(desired_profile(gw), "night");
}

/// A command on the broker on `port` is answered and sets the gateway's profile to `night`.
/// Returns the probe, online and subscribed to `B/#`.
pub async fn expect_commands_answered(port: u16, gw: &TestGateway) -> Probe {
    let mut probe = online_probe(port).await;
    set_night(&mut probe, gw, "night").await;
    probe
}

/// While the plant broker is gone, EVE is still served and its app report (`vision`) accepted.
pub async fn eve_served_during_outage(gw: &TestGateway) {
    let resp = eve_get(&gw.lps, "local_profile").await;
    assert_eq!(resp.status(), 200);
    let resp = eve_post(&gw.lps, "appinfo", &vision_report()).await;
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// After the plant broker on `port` came back empty: a fresh subscriber sees everything again
/// (the birth, the `night` profile set before the outage and fetched during it, the app reported
/// during it), and the gateway has resubscribed (a new command is answered).
pub async fn expect_everything_back(port: u16, gw: &TestGateway) {
    let mut fresh = online_probe(port).await;
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
    assert_eq!(desired_profile(gw), "day");
}

/// Stops the gateway, which says goodbye at once: the Will would only follow the 2 s grace and
/// a dropped connection.
pub async fn stop_promptly(gw: &mut TestGateway) {
    let started = std::time::Instant::now();
    gw.stop().await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "stop took {:?}",
        started.elapsed()
    );
}

/// `B/bridge/state` turns `offline` on `probe`, and a subscriber that connects to the broker on
/// `port` later gets it too (retained).
pub async fn expect_offline_retained(probe: &mut Probe, port: u16) {
    expect_bridge_state(probe, "offline").await;
    let mut late = Probe::connect(port, &[&format!("{B}/bridge/state")]).await;
    let m = late
        .expect_msg(&format!("{B}/bridge/state"), |_| true)
        .await;
    assert!(m.retain);
    assert_eq!(m.json()["state"], "offline");
}
