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
use common::plant::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

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

#[tokio::test]
#[ignore = "needs mosquitto (CI extra step)"]
async fn mosquitto_commands_telemetry_and_a_restart_mid_test() {
    let port = free_port();
    let mut broker = Mosquitto::start(port, None).await;
    let mut probe = Probe::connect(port, &[&format!("{B}/#")]).await;
    // A retained command left on the broker is refused and deleted, never executed.
    leave_retained_reboot(&mut probe).await;

    let gw = gateway_external_only(external_plain(port)).await;
    expect_bridge_state(&mut probe, "online").await;
    expect_retained_refused(&mut probe).await;
    assert!(gw.running().store.snapshot().commands.is_empty());

    // Command in, reply and telemetry out.
    set_night(&mut probe, &gw, r#"{"profile":"night"}"#).await;
    probe
        .expect(&format!("{B}/profile"), |v| v["desired"] == "night")
        .await;
    drop(probe);

    // Mosquitto goes away; EVE is still served and state still changes.
    broker.kill();
    eve_served_during_outage(&gw).await;

    // Back, empty: the gateway reconnects, resubscribes and republishes everything.
    broker.restart().await;
    expect_everything_back(port, &gw).await;
}

#[tokio::test]
#[ignore = "needs mosquitto (CI extra step)"]
async fn mosquitto_will_on_kill_and_offline_on_stop() {
    let port = free_port();
    let _broker = Mosquitto::start(port, None).await;
    let mut probe = Probe::connect(port, &[&format!("{B}/bridge/state")]).await;

    // A gateway in a child process, killed with SIGKILL: Mosquitto publishes the Will.
    let mut child = child_gateway_external_only(port);
    expect_bridge_state(&mut probe, "online").await;
    child.kill();
    expect_bridge_state(&mut probe, "offline").await;
    probe.forget();

    // An in-process gateway stopped gracefully publishes offline itself (at once, no Will).
    let mut gw = gateway_external_only(external_plain(port)).await;
    expect_bridge_state(&mut probe, "online").await;
    stop_promptly(&mut gw).await;
    expect_offline_retained(&mut probe, port).await;
}

/// A TLS listener on a free port with a server certificate from `pki`, that requires client
/// certificates from it.
fn tls_listener(pki: &Pki) -> TlsListener {
    let server = pki.server();
    TlsListener {
        port: free_port(),
        ca: pki.ca_file(),
        cert: server.cert,
        key: server.key,
    }
}

#[tokio::test]
#[ignore = "needs mosquitto (CI extra step)"]
async fn mosquitto_tls_with_a_client_certificate() {
    let pki = Pki::new();
    let tls = tls_listener(&pki);
    let client = pki.client();
    let port = free_port();
    let _broker = Mosquitto::start(port, Some(&tls)).await;

    // Without a client certificate the handshake is refused: the client keeps retrying.
    let mut ext = external_config(format!("mqtts://localhost:{}", tls.port));
    ext.ca_file = Some(tls.ca.clone());
    let status = fails_to_connect(&ext).await;
    assert_eq!(status.connections, 0, "{status:?}");

    // With it: commands and telemetry over TLS (the probe uses the plain listener).
    ext.cert_file = Some(client.cert);
    ext.key_file = Some(client.key);
    let gw = gateway_external_only(ext).await;
    let mut probe = expect_commands_answered(port, &gw).await;
    probe
        .expect(&format!("{B}/profile"), |v| v["desired"] == "night")
        .await;
}
