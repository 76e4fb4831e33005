//! The Sparkplug B edge node, read by an independent host: tests/sparkplug/host.py on PyPI's
//! `pysparkplug` (installed by .ci/run into /opt/lps-bridge-ci/venv; LPS_SPARKPLUG_PYTHON points
//! elsewhere). Every NBIRTH, DBIRTH, NDATA, DDATA, DDEATH and NDEATH is decoded by it.

use crate::common;

use common::plant::{wait_port, ChildGateway};
use common::reports::{logger, vision};
use common::*;
use lps_bridge::eve::info::ZSwState;
use lps_bridge::eve::profile::{LocalAppInfoList, LocalDevInfo};
use lps_bridge::simulator::{self, AppSpec, SimOptions};
use serde_json::{json, Value};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const GROUP: &str = "plant1";
const NODE: &str = "node-7";

fn python() -> String {
    std::env::var("LPS_SPARKPLUG_PYTHON")
        .unwrap_or_else(|_| "/opt/lps-bridge-ci/venv/bin/python3".into())
}

/// The Python host: what it decoded, line by line, and a way to send it commands.
struct Host {
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::UnboundedReceiver<Value>,
    /// Every decoded Sparkplug message so far (not the host's own acknowledgements).
    seen: Vec<Value>,
    /// How far [`Host::next`] has taken from `seen`.
    cursor: usize,
}

impl Host {
    async fn connect(port: u16) -> Host {
        Self::connect_as(port, &[]).await
    }

    /// With extra arguments, e.g. `--user plc --password pw`.
    async fn connect_as(port: u16, args: &[&str]) -> Host {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sparkplug/host.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (the pysparkplug venv .ci/run makes): {e}",
                    python()
                )
            });
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let v: Value = serde_json::from_str(&line).expect("the host prints JSON lines");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut host = Host {
            child,
            stdin,
            rx,
            seen: Vec::new(),
            cursor: 0,
        };
        host.ack(|v| v["ready"] == true).await;
        host
    }

    /// Reads one line: a decoded message goes to `seen`, anything else is returned.
    async fn read(&mut self) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + patience();
        let v = tokio::time::timeout_at(deadline, self.rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the host waited in vain; it saw:\n{}",
                    self.seen
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })
            .expect("the host exited");
        if v.get("topic").is_some() {
            // Everything the node sends must decode (the test's own garbage NCMD need not).
            let ours = matches!(v["type"].as_str(), Some("NCMD" | "DCMD"));
            assert!(
                ours || v.get("decode_error").is_none(),
                "pysparkplug cannot decode: {v}"
            );
            self.seen.push(v);
            None
        } else {
            Some(v)
        }
    }

    /// The next decoded message after the last one taken that matches `pred`.
    async fn next(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            if let Some(i) = self.seen[self.cursor..].iter().position(&pred) {
                let i = self.cursor + i;
                self.cursor = i + 1;
                return self.seen[i].clone();
            }
            self.read().await;
        }
    }

    /// The host's own line (ready, sent) matching `pred`.
    async fn ack(&mut self, pred: impl Fn(&Value) -> bool) {
        loop {
            if let Some(v) = self.read().await {
                if pred(&v) {
                    return;
                }
            }
        }
    }

    /// The next message of `kind` (for devices: of that device).
    async fn expect(&mut self, kind: &str, device: Option<&str>) -> Value {
        let (kind, device) = (kind.to_string(), device.map(str::to_string));
        self.next(move |v| {
            v["type"] == kind.as_str()
                && device
                    .as_deref()
                    .is_none_or(|d| v["device"].as_str() == Some(d))
        })
        .await
    }

    async fn send(&mut self, cmd: Value) {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
        let op = cmd["op"].clone();
        self.ack(move |v| v["sent"] == op).await;
    }

    async fn ncmd(&mut self, metrics: Value) {
        self.send(json!({"op": "ncmd", "group": GROUP, "node": NODE, "metrics": metrics}))
            .await;
    }

    async fn rebirth(&mut self) {
        self.ncmd(json!([{"name": "Node Control/Rebirth", "datatype": "BOOLEAN", "value": true}]))
            .await;
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn metric<'a>(msg: &'a Value, name: &str) -> &'a Value {
    msg["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {msg}"))
}

fn seq(msg: &Value) -> u64 {
    msg["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq: {msg}"))
}

/// Every node-scoped message after each NBIRTH goes up by one (mod 256); NBIRTH has seq 0.
fn check_seq(seen: &[Value]) {
    let mut last: Option<u64> = None;
    for m in seen {
        match m["type"].as_str().unwrap() {
            "NBIRTH" => {
                assert_eq!(seq(m), 0, "NBIRTH seq 0: {m}");
                last = Some(0);
            }
            "NDEATH" => {
                assert_eq!(m["has_seq"], false, "NDEATH has no seq: {m}");
                last = None;
            }
            // Before the first NBIRTH the host saw (it joined late): nothing to compare with.
            "NDATA" | "DBIRTH" | "DDATA" | "DDEATH" if last.is_none() => {}
            "NDATA" | "DBIRTH" | "DDATA" | "DDEATH" => {
                let prev = last.unwrap();
                assert_eq!(seq(m), (prev + 1) % 256, "seq goes up by one: {m}");
                last = Some(seq(m));
            }
            _ => {}
        }
    }
}

fn sparkplug_on(c: &mut lps_bridge::config::Config) {
    c.sparkplug.enabled = true;
    c.sparkplug.group_id = GROUP.into();
    c.sparkplug.edge_node_id = NODE.into();
}

async fn report_apps(gw: &TestGateway, apps: Vec<lps_bridge::eve::profile::LocalAppInfo>) {
    let resp = eve_post(&gw.lps, "appinfo", &LocalAppInfoList { apps_info: apps }).await;
    assert!(resp.status().is_success());
}

/// The node metrics a SCADA sees in NBIRTH, with their datatypes (pysparkplug's names).
const NODE_METRICS: &[(&str, &str)] = &[
    ("bdSeq", "INT64"),
    ("Node Control/Rebirth", "BOOLEAN"),
    ("Device/State", "STRING"),
    ("Device/Boot Time", "DATETIME"),
    ("Device/Last Boot Reason", "STRING"),
    ("EVE/Online", "BOOLEAN"),
    ("EVE/Last Seen", "DATETIME"),
    ("Profile/Desired", "STRING"),
    ("Profile/Fetched", "BOOLEAN"),
    ("Radio/Silence", "BOOLEAN"),
    ("Location/Latitude", "DOUBLE"),
    ("Location/Longitude", "DOUBLE"),
    ("Commands/Shutdown", "BOOLEAN"),
    ("Commands/Poweroff", "BOOLEAN"),
    ("Commands/Reboot", "BOOLEAN"),
    ("Command/State", "STRING"),
];

const DEVICE_METRICS: &[(&str, &str)] = &[
    ("State", "STRING"),
    ("Version", "STRING"),
    ("Error", "STRING"),
    ("Boot Order", "STRING"),
    ("Command/Name", "STRING"),
    ("Command/Lifecycle", "STRING"),
    ("Commands/Restart", "BOOLEAN"),
    ("Commands/Purge", "BOOLEAN"),
];

fn check_birth(msg: &Value, table: &[(&str, &str)]) {
    let metrics = msg["metrics"].as_array().unwrap();
    let got: Vec<(&str, &str)> = metrics
        .iter()
        .filter(|m| m["name"] != "bdSeq" || table[0].0 == "bdSeq")
        .map(|m| (m["name"].as_str().unwrap(), m["datatype"].as_str().unwrap()))
        .collect();
    assert_eq!(got, table, "birth metrics: {msg}");
    let mut aliases: Vec<u64> = metrics
        .iter()
        .map(|m| m["alias"].as_u64().unwrap())
        .collect();
    aliases.sort();
    aliases.dedup();
    assert_eq!(
        aliases.len(),
        metrics.len(),
        "births carry unique aliases: {msg}"
    );
}

#[tokio::test]
#[ignore = "needs the pysparkplug venv (.ci/run makes it; CI extra step)"]
async fn births_data_and_deaths_follow_the_spec() {
    let mut gw = TestGateway::start_with(sparkplug_on).await;
    let mut host = Host::connect(gw.mqtt_port).await;
    // The node was born before the host subscribed: a Rebirth brings everything again.
    host.rebirth().await;
    let nbirth = host.expect("NBIRTH", None).await;
    assert_eq!(nbirth["topic"], format!("spBv1.0/{GROUP}/NBIRTH/{NODE}"));
    check_birth(&nbirth, NODE_METRICS);
    assert_eq!(
        metric(&nbirth, "bdSeq")["value"],
        0,
        "first CONNECT: bdSeq 0"
    );
    assert_eq!(metric(&nbirth, "Node Control/Rebirth")["value"], false);
    assert_eq!(
        metric(&nbirth, "Device/State")["is_null"],
        true,
        "not reported yet"
    );
    // (Published at QoS 0; rumqttd delivers at the subscription's QoS, so that is not checked.)
    assert_eq!(nbirth["retain"], false);

    // Apps appear: one DBIRTH each.
    report_apps(&gw, vec![vision(), logger()]).await;
    let dbirth = host.expect("DBIRTH", Some("vision")).await;
    check_birth(&dbirth, DEVICE_METRICS);
    assert_eq!(metric(&dbirth, "State")["value"], "RUNNING");
    assert_eq!(metric(&dbirth, "Version")["value"], "1");
    let cursor = host.cursor;
    host.cursor = 0;
    host.expect("DBIRTH", Some("logger")).await;
    host.cursor = cursor.max(host.cursor);

    // By exception: only what changed, by alias (pysparkplug names it from the birth).
    let mut halted = vision();
    halted.state = ZSwState::Halted as i32;
    report_apps(&gw, vec![halted, logger()]).await;
    let ddata = host.expect("DDATA", Some("vision")).await;
    assert_eq!(ddata["metrics"].as_array().unwrap().len(), 1, "{ddata}");
    assert_eq!(metric(&ddata, "State")["value"], "HALTED");
    assert!(ddata["metrics"][0]["alias"].is_u64());

    let resp = eve_post(
        &gw.lps,
        "devinfo",
        &LocalDevInfo {
            device_uuid: "6f1c2a3e-0000-4000-8000-00000000d001".into(),
            state: lps_bridge::eve::info::ZDeviceState::ZdeviceStateOnline as i32,
            ..Default::default()
        },
    )
    .await;
    assert!(resp.status().is_success());
    let ndata = host
        .next(|v| v["type"] == "NDATA" && v["metrics"].to_string().contains("Device/State"))
        .await;
    assert_eq!(
        metric(&ndata, "Device/State")["value"],
        "ZDEVICE_STATE_ONLINE"
    );

    // An app leaves EVE's report: DDEATH.
    report_apps(&gw, vec![vision()]).await;
    let ddeath = host.expect("DDEATH", Some("logger")).await;
    assert_eq!(ddeath["has_seq"], true);

    // Rebirth: NBIRTH with seq 0 and the same bdSeq (same CONNECT), then every DBIRTH.
    host.rebirth().await;
    let again = host.expect("NBIRTH", None).await;
    assert_eq!(metric(&again, "bdSeq")["value"], 0);
    assert_eq!(
        metric(&again, "Device/State")["value"],
        "ZDEVICE_STATE_ONLINE"
    );
    host.expect("DBIRTH", Some("vision")).await;

    // A clean stop: NDEATH with only bdSeq, QoS 1, not retained.
    gw.stop().await;
    let ndeath = host.expect("NDEATH", None).await;
    assert_eq!(ndeath["metric_count"], 1);
    assert_eq!(metric(&ndeath, "bdSeq")["value"], 0);
    assert_eq!(ndeath["qos"], 1);
    assert_eq!(ndeath["retain"], false);
    check_seq(&host.seen);
}

#[tokio::test]
#[ignore = "needs the pysparkplug venv (.ci/run makes it; CI extra step)"]
async fn writes_reach_eve_and_refusals_are_evented() {
    let gw = TestGateway::start_with(sparkplug_on).await;
    let mut probe = common::mqtt::Probe::connect(gw.mqtt_port, &[&format!("{B}/events")]).await;
    let mut host = Host::connect(gw.mqtt_port).await;
    let mut opts = SimOptions::new(gw.lps.clone(), TOKEN);
    opts.apps = AppSpec::parse_list("vision@day,trainer@night").unwrap();
    opts.speed = 20.0;
    let sim = simulator::spawn(opts);
    host.rebirth().await;
    let dbirth = host.expect("DBIRTH", Some("vision")).await;

    // DCMD Commands/Restart by alias only, as SCADA sends it after the birth.
    let alias = metric(&dbirth, "Commands/Restart")["alias"].clone();
    host.send(
        json!({"op": "dcmd", "group": GROUP, "node": NODE, "device": "vision",
        "metrics": [{"alias": alias, "datatype": "BOOLEAN", "value": true}]}),
    )
    .await;
    sim.wait_for(
        |s| s.app("vision").is_some_and(|a| a.restart_count == 1),
        patience(),
    )
    .await
    .expect("EVE restarted vision on a DCMD");
    let lifecycle = host
        .next(|v| v["type"] == "DDATA" && v.to_string().contains("\"completed\""))
        .await;
    assert_eq!(
        metric(&lifecycle, "Command/Lifecycle")["value"],
        "completed"
    );

    // The controller deletes an app: it leaves EVE's report, and SCADA gets its DDEATH.
    assert!(sim.remove_app("trainer"));
    let ddeath = host.expect("DDEATH", Some("trainer")).await;
    assert_eq!(ddeath["has_seq"], true);

    // NCMD Profile/Desired → the same intent as B/profile/set → EVE's next poll.
    host.ncmd(json!([{"name": "Profile/Desired", "datatype": "STRING", "value": "night"}]))
        .await;
    sim.wait_for(|s| s.local_profile == "night", patience())
        .await
        .expect("EVE fetched the profile written over Sparkplug");
    let ndata = host
        .next(|v| v["type"] == "NDATA" && v["metrics"].to_string().contains("Profile/Desired"))
        .await;
    assert_eq!(metric(&ndata, "Profile/Desired")["value"], "night");

    // Refused writes change nothing and are announced.
    host.ncmd(json!([{"name": "Commands/Reboot", "datatype": "BOOLEAN", "value": false}]))
        .await;
    let refused = probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "sparkplug_write_refused"
        })
        .await;
    assert_eq!(refused["metric"], "Commands/Reboot");
    host.ncmd(json!([{"name": "EVE/Online", "datatype": "BOOLEAN", "value": true}]))
        .await;
    let refused = probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "sparkplug_write_refused" && v["metric"] == "EVE/Online"
        })
        .await;
    assert!(refused["error"].as_str().unwrap().contains("read-only"));
    host.send(
        json!({"op": "dcmd", "group": GROUP, "node": NODE, "device": "nosuch",
        "metrics": [{"name": "Commands/Purge", "datatype": "BOOLEAN", "value": true}]}),
    )
    .await;
    probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "sparkplug_write_refused" && v["error"].to_string().contains("nosuch")
        })
        .await;
    host.send(
        json!({"op": "raw", "topic": format!("spBv1.0/{GROUP}/NCMD/{NODE}"), "hex": "ffffff"}),
    )
    .await;
    probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "sparkplug_write_refused"
                && v["error"].to_string().contains("not a Sparkplug B")
        })
        .await;
    assert_eq!(sim.snapshot().app("vision").unwrap().purge_count, 0);
    check_seq(&host.seen);
}

#[tokio::test]
#[ignore = "needs the pysparkplug venv (.ci/run makes it; CI extra step)"]
async fn births_wait_for_the_primary_host_and_follow_it() {
    let gw = TestGateway::start_with(|c| {
        sparkplug_on(c);
        c.sparkplug.primary_host_id = "scada".into();
    })
    .await;
    report_apps(&gw, vec![vision()]).await;
    let mut host = Host::connect(gw.mqtt_port).await;
    host.send(json!({"op": "state", "host": "scada", "online": true}))
        .await;
    let nbirth = host.expect("NBIRTH", None).await;
    assert_eq!(metric(&nbirth, "bdSeq")["value"], 0);
    host.expect("DBIRTH", Some("vision")).await;
    assert!(
        host.seen
            .iter()
            .take_while(|m| m["type"] != "STATE")
            .all(|m| m["type"] != "NBIRTH"),
        "no birth before the host's STATE online: {:?}",
        host.seen
    );

    // A retained NCMD is taken once live; on the next CONNECT (below) its retained copy is
    // refused and deleted, never applied again.
    let mut probe = common::mqtt::Probe::connect(gw.mqtt_port, &[&format!("{B}/events")]).await;
    let retained = {
        use lps_bridge::sparkplug::payload::{encode, metric, Value};
        let night = Value::Text("night".into());
        encode(
            None,
            1,
            vec![metric(Some("Profile/Desired"), None, &night, 1)],
        )
    };
    let hex: String = retained.iter().map(|b| format!("{b:02x}")).collect();
    host.send(json!({"op": "raw", "topic": format!("spBv1.0/{GROUP}/NCMD/{NODE}"), "hex": hex, "retain": true}))
        .await;
    probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "profile_set" && v["source"] == "sparkplug"
        })
        .await;

    // The host goes offline: NDEATH, and the node waits again on a new CONNECT.
    host.send(json!({"op": "state", "host": "scada", "online": false}))
        .await;
    let ndeath = host.expect("NDEATH", None).await;
    assert_eq!(metric(&ndeath, "bdSeq")["value"], 0);
    host.send(json!({"op": "state", "host": "scada", "online": true}))
        .await;
    let nbirth = host.expect("NBIRTH", None).await;
    assert_eq!(
        metric(&nbirth, "bdSeq")["value"],
        1,
        "bdSeq + 1 on the new CONNECT"
    );
    host.expect("DBIRTH", Some("vision")).await;
    check_seq(&host.seen);
}

/// A gateway killed without a goodbye: the broker publishes the Will, NDEATH with the bdSeq of
/// the NBIRTH. The gateway runs in a child process on a plant broker (a second embedded one).
#[tokio::test]
#[ignore = "needs the pysparkplug venv (.ci/run makes it; CI extra step)"]
async fn a_killed_gateway_leaves_its_ndeath_will() {
    let plant = TestGateway::start().await;
    wait_port(plant.mqtt_port).await;
    let mut host = Host::connect(plant.mqtt_port).await;
    let mut child = ChildGateway::spawn(
        &format!(
            "[lps]\nlisten = \"127.0.0.1:0\"\nserver_token = \"{TOKEN}\"\n[mqtt]\nlisten = \"\"\n[mqtt.external]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"spb-kill\"\nbackoff_max = \"1s\"\n[sparkplug]\nenabled = true\ngroup_id = \"{GROUP}\"\nedge_node_id = \"{NODE}\"\n",
            plant.mqtt_port
        ),
        &[],
    );
    let nbirth = host.expect("NBIRTH", None).await;
    let bd_seq = metric(&nbirth, "bdSeq")["value"].clone();
    assert!(child.is_running());
    child.kill();
    let ndeath = host.expect("NDEATH", None).await;
    assert_eq!(metric(&ndeath, "bdSeq")["value"], bd_seq);
    assert_eq!(ndeath["metric_count"], 1);
    assert_eq!(ndeath["qos"], 1);
}

/// With broker users configured, the edge node logs in as the gateway's own user; a SCADA user
/// sees it as before.
#[tokio::test]
#[ignore = "needs the pysparkplug venv (.ci/run makes it; CI extra step)"]
async fn the_edge_node_logs_in_when_the_embedded_broker_has_users() {
    let gw = TestGateway::start_with(|c| {
        sparkplug_on(c);
        c.mqtt.users = vec![lps_bridge::config::MqttUser {
            name: "scada".into(),
            password: Some("pw".into()),
            password_hash: None,
        }];
    })
    .await;
    let mut host = Host::connect_as(gw.mqtt_port, &["--user", "scada", "--password", "pw"]).await;
    host.rebirth().await;
    let nbirth = host.expect("NBIRTH", None).await;
    check_birth(&nbirth, NODE_METRICS);
}
