//! The external plant broker scenario against a real Mosquitto (`/usr/sbin/mosquitto`, from
//! Debian's `mosquitto` package), started by each test on free ports with its own config file.
//! Skipped by plain `cargo test`; CI runs them after installing Mosquitto:
//!
//! ```sh
//! apt-get install -y mosquitto
//! cargo test --locked --test external_mosquitto -- --ignored
//! ```

use crate::common;

use common::mqtt::Probe;
use common::plant::*;
use common::store::desired_profile;
use common::*;
use lps_bridge::state::CommandKind;
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
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        );
        if let Some(t) = tls {
            text.push_str(&format!(
                "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                t.port,
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            ));
        }
        Self::start_in(
            tempfile::tempdir().unwrap(),
            port,
            tls.map(|t| t.port),
            text,
        )
        .await
    }

    /// Runs Mosquitto on the config `text` (listening on `port`, and on `tls_port` if given),
    /// written to `dir`, which it keeps.
    async fn start_in(
        dir: tempfile::TempDir,
        port: u16,
        tls_port: Option<u16>,
        mut text: String,
    ) -> Mosquitto {
        // Run as root, Mosquitto would switch to the `mosquitto` user, who cannot read our
        // temporary files: stay the current user.
        if let Some(user) = current_user() {
            text.push_str(&format!("user {user}\n"));
        }
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(&config, text).unwrap();
        let mut m = Mosquitto {
            child: spawn_mosquitto(&config, dir.path()),
            port,
            config,
            tls_port,
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

// ---------------------------------------------------------------------------------------------
// Per-user topic ACLs: the shipped example (bridge-config/mosquitto/)

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bridge-config/mosquitto");
const GATEWAY: (&str, &str) = ("lps-bridge", "gateway-secret");
const OPERATOR: (&str, &str) = ("operator", "operator-secret");
const VIEWER: (&str, &str) = ("viewer", "viewer-secret");

/// The example's mosquitto.conf as shipped, but listening on `port` on loopback, with the
/// example's ACL file and a password file in `dir` for the three users of the example.
fn example_mosquitto_conf(dir: &Path, port: u16) -> String {
    let passwd = dir.join("lps-bridge.passwd");
    for (i, (user, password)) in [GATEWAY, OPERATOR, VIEWER].into_iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c"); // creates the file
        }
        let status = cmd
            .arg("-b")
            .arg(&passwd)
            .args([user, password])
            .status()
            .expect("mosquitto_passwd (Debian's mosquitto package)");
        assert!(status.success());
    }
    let shipped = std::fs::read_to_string(format!("{EXAMPLE}/mosquitto.conf")).unwrap();
    let mut moved = 0;
    let text: Vec<String> = shipped
        .lines()
        .map(|line| {
            let key = line.split_whitespace().next().unwrap_or("");
            let replaced = match key {
                "listener" => format!("listener {port} 127.0.0.1"),
                "password_file" => format!("password_file {}", passwd.display()),
                "acl_file" => format!("acl_file {EXAMPLE}/lps-bridge.acl"),
                _ => return line.to_string(),
            };
            moved += 1;
            replaced
        })
        .collect();
    assert_eq!(
        moved, 3,
        "the example has a listener, a password_file and an acl_file"
    );
    text.join("\n") + "\nlog_dest stderr\n"
}

/// Publishes one QoS 1 message as `credentials` and waits for the broker's PUBACK: the broker
/// has handled it (delivered it, or dropped it for the ACL: MQTT 3.1.1 acknowledges both).
async fn publish_acked(port: u16, (user, password): (&str, &str), topic: &str, payload: &str) {
    use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new(format!("acl-{}", uuid::Uuid::new_v4()), "127.0.0.1", port);
    opts.set_credentials(user, password);
    let (client, mut eventloop) = AsyncClient::new(opts, 8);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .await
        .unwrap();
    tokio::time::timeout(patience(), async {
        loop {
            match eventloop.poll().await.expect("MQTT connection") {
                Event::Incoming(Packet::ConnAck(ack)) => {
                    assert_eq!(ack.code, ConnectReturnCode::Success, "{user} connects")
                }
                Event::Incoming(Packet::PubAck(_)) => break,
                _ => {}
            }
        }
    })
    .await
    .expect("PUBACK");
    let _ = client.disconnect().await;
}

#[tokio::test]
#[ignore = "needs mosquitto (CI extra step)"]
async fn mosquitto_acl_example_a_viewer_cannot_command_an_operator_can() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let text = example_mosquitto_conf(dir.path(), port);
    let _broker = Mosquitto::start_in(dir, port, None, text).await;

    // The gateway as the example's lps-bridge.toml configures it (embedded broker off, its own
    // user), on this broker, its password as LPS_BRIDGE_MQTT_PASSWORD would give it.
    let example =
        lps_bridge::config::Config::load(Some(Path::new(&format!("{EXAMPLE}/lps-bridge.toml"))))
            .unwrap();
    assert_eq!(
        example.mqtt.listen, "",
        "the example turns the embedded broker off"
    );
    assert_eq!(
        example.mqtt.base_topic, B,
        "the ACL file is written for {B}"
    );
    let mut ext = example.mqtt.external.unwrap();
    assert_eq!(ext.username.as_deref(), Some(GATEWAY.0));
    ext.url = format!("mqtt://127.0.0.1:{port}");
    ext.password = Some(GATEWAY.1.into());
    ext.backoff_max = std::time::Duration::from_secs(1);
    let gw = gateway_external_only(ext).await;

    // The viewer reads the state (the gateway's birth, and so its user's rights, are there).
    let mut viewer = Probe::connect_as(port, VIEWER, &[&format!("{B}/#")]).await;
    expect_bridge_state(&mut viewer, "online").await;

    // The viewer's poweroff and profile switch: handled by the broker, and dropped there.
    publish_acked(
        port,
        VIEWER,
        &format!("{B}/device/set"),
        r#"{"command":"poweroff","transaction":"viewer"}"#,
    )
    .await;
    publish_acked(
        port,
        VIEWER,
        &format!("{B}/profile/set"),
        r#"{"profile":"viewer-was-here","transaction":"viewer"}"#,
    )
    .await;

    // The operator's commands, sent after those: answered and executed.
    let mut operator = Probe::connect_as(port, OPERATOR, &[&format!("{B}/response/#")]).await;
    let r = operator
        .command(
            B,
            "profile/set",
            r#"{"profile":"night","transaction":"op-1"}"#,
        )
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(desired_profile(&gw), "night");
    let r = operator
        .command(B, "app/vision/set", r#"{"command":"restart"}"#)
        .await;
    assert_eq!(r["status"], "ok", "{r}");

    // The gateway handles its commands in order: had the viewer's reached it, their replies
    // would be on the broker before the operator's. The viewer sees the operator's replies and
    // none for its own; the store holds the operator's app command and no device command.
    viewer
        .expect(&format!("{B}/response/app/vision/set"), |v| {
            v["status"] == "ok"
        })
        .await;
    let viewer_replies: Vec<&str> = viewer
        .seen
        .iter()
        .filter(|m| m.topic.starts_with(&format!("{B}/response/")))
        .filter(|m| m.json()["transaction"] == "viewer")
        .map(|m| m.topic.as_str())
        .collect();
    assert!(viewer_replies.is_empty(), "{viewer_replies:?}");
    let state = gw.running().store.snapshot();
    let kinds: Vec<&CommandKind> = state.commands.values().map(|c| &c.kind).collect();
    assert!(
        matches!(kinds.as_slice(), [CommandKind::App { .. }]),
        "only the operator's app command: {kinds:?}"
    );

    // The operator may command, not speak for the gateway: a forged retained bridge state is
    // dropped too, and a late subscriber still gets the gateway's own.
    publish_acked(
        port,
        OPERATOR,
        &format!("{B}/bridge/state"),
        r#"{"state":"offline"}"#,
    )
    .await;
    let mut late = Probe::connect_as(port, VIEWER, &[&format!("{B}/bridge/state")]).await;
    expect_bridge_state(&mut late, "online").await;

    // Without a password, or with a wrong one, nobody gets in.
    let mut wrong = external_plain(port);
    wrong.username = Some(VIEWER.0.into());
    wrong.password = Some("not-the-password".into());
    assert_eq!(fails_to_connect(&wrong).await.connections, 0);
}

/// A command flood through Mosquitto as the plant broker: every command's reply must come back
/// through the gateway's external link. Mosquitto runs with `max_queued_messages 0` (its
/// default of 1,000 queued messages per client drops beyond that, by design), so anything
/// missing is lost on our side. The gateway's reply burst is far larger than rumqttc's request
/// channel: a full channel used to drop replies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (CI extra step)"]
async fn mosquitto_reply_flood_every_command_answered() {
    use common::load::{self, Clock, Subscriber};
    use rumqttc::QoS;
    use std::time::Duration;

    let port = free_port();
    let text = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n\
         max_queued_messages 0\n"
    );
    let _broker = Mosquitto::start_in(tempfile::tempdir().unwrap(), port, None, text).await;
    let mut probe = Probe::connect(port, &[&format!("{B}/bridge/state")]).await;
    let gw = gateway_external_only(external_plain(port)).await;
    expect_bridge_state(&mut probe, "online").await;
    let status = eve_post(&gw.lps, "appinfo", &common::reports::vision_report())
        .await
        .status();
    assert!(status.is_success(), "{status}");

    let clock = Clock::new();
    let filter = format!("{B}/response/#");
    let mut replies = Subscriber::connect(port, "replies", &filter, QoS::AtLeastOnce, clock, false)
        .await
        .unwrap();
    // 10,000 commands arrive faster than the store answers them. Acknowledged as soon as read
    // (rumqttc's automatic acks), about half were dropped at our full forward buffer; with manual
    // acks after ingress has them, Mosquitto holds back the rest. ~40,000 messages go back out:
    // far beyond rumqttc's 1,024 requests.
    let (clients, per_client) = (10, 1000);
    let flood = load::flood(
        &load::Publishers {
            port,
            prefix: "flood".into(),
            clients,
            per_client,
            qos: QoS::AtLeastOnce,
            clock,
            patience: Duration::from_secs(300),
        },
        |_| format!("{B}/app/vision/set"),
        load::restart_command,
    )
    .await;
    assert_eq!(
        flood.acked,
        clients * per_client,
        "Mosquitto acknowledged every command"
    );
    let got = replies
        .collect(clients * per_client, Duration::from_secs(30))
        .await;
    assert_eq!(
        got.distinct,
        clients * per_client,
        "every command's reply reached the QoS 1 subscriber on {filter} through Mosquitto"
    );
}
