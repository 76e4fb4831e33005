//! The suite's clients: MQTT commanders (rumqttc, QoS 1) that count acknowledged commands, a
//! REST commander, and a retained-state reader.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::gateway::BASE;

/// An acknowledged command: what the reply said it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub id: u64,
    pub timestamp: u64,
}

/// A reply's command id and timestamp (`{"status":"ok","command":{"id":..,"timestamp":".."}}`).
pub fn ack_of(reply: &Value) -> Option<Ack> {
    if reply["status"] != "ok" {
        return None;
    }
    let c = &reply["command"];
    Some(Ack {
        id: c["id"].as_u64()?,
        timestamp: c["timestamp"].as_str()?.parse().ok()?,
    })
}

/// What the clients of one run saw: acknowledgements and errors, shared between tasks.
#[derive(Default)]
pub struct Ledger {
    pub acks: Vec<Ack>,
    pub errors: Vec<String>,
    pub sent: usize,
    /// transaction → when it was sent (for latency).
    pub pending: HashMap<String, Instant>,
    pub latencies_us: Vec<u64>,
}

pub type Shared = Arc<Mutex<Ledger>>;

pub fn options(id: &str, port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(2 << 20, 2 << 20);
    opts
}

/// A client that publishes commands (QoS 1) and reads the replies on `B/response/#`.
pub struct Commander {
    pub client: AsyncClient,
    pub id: String,
    ready: mpsc::UnboundedReceiver<()>,
}

impl Commander {
    /// Connects and subscribes; replies go into `ledger`. `cap` is rumqttc's request queue.
    pub async fn connect(
        port: u16,
        id: &str,
        ledger: Shared,
        cap: usize,
    ) -> Result<Commander, String> {
        let (client, mut eventloop) = AsyncClient::new(options(id, port), cap);
        let (tx, ready) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Ok(v) = serde_json::from_slice::<Value>(&p.payload) else {
                            continue;
                        };
                        let tx_id = v["transaction"].as_str().map(str::to_string);
                        let mut l = ledger.lock().unwrap();
                        if let Some(t) = tx_id.as_ref().and_then(|t| l.pending.remove(t)) {
                            l.latencies_us.push(t.elapsed().as_micros() as u64);
                        } else if tx_id.is_some() {
                            continue; // a QoS 1 duplicate, or another client's reply
                        }
                        match ack_of(&v) {
                            Some(a) => l.acks.push(a),
                            None => l.errors.push(v.to_string()),
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => return, // the gateway is gone: this client's run is over
                }
            }
        });
        let mut c = Commander {
            client,
            id: id.to_string(),
            ready,
        };
        c.client
            .subscribe(format!("{BASE}/response/#"), QoS::AtLeastOnce)
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(10), c.ready.recv())
            .await
            .map_err(|_| format!("{id}: no SUBACK"))?
            .ok_or_else(|| format!("{id}: connection failed"))?;
        Ok(c)
    }

    /// DISCONNECT: the event loop then ends, and the gateway closes the connection.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
    }

    /// Publishes `payload` (a JSON object without `transaction`) with transaction `tx`.
    pub async fn send(&self, ledger: &Shared, relative: &str, command: &str, tx: &str) -> bool {
        let payload = format!(r#"{{"command":"{command}","transaction":"{tx}"}}"#);
        {
            let mut l = ledger.lock().unwrap();
            l.pending.insert(tx.to_string(), Instant::now());
            l.sent += 1;
        }
        self.client
            .publish(
                format!("{BASE}/{relative}"),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .is_ok()
    }
}

/// POST a command to the REST API; the acknowledgement if it was accepted.
pub async fn rest_command(
    http: &reqwest::Client,
    rest: &str,
    path: &str,
    body: &str,
) -> Result<Ack, String> {
    let resp = http
        .post(format!("{rest}/api/{path}"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&resp.bytes().await.map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    ack_of(&v).ok_or_else(|| v.to_string())
}

/// The command log as the REST API shows it.
#[derive(Debug)]
pub struct Logged {
    pub timestamp: u64,
    pub lifecycle: String,
    pub accepted_at_ms: u64,
}

/// id → what the log holds.
pub async fn command_log(
    http: &reqwest::Client,
    rest: &str,
) -> Result<BTreeMap<u64, Logged>, String> {
    let v: Value = http
        .get(format!("{rest}/api/commands?limit=100000000"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))?;
    let mut log = BTreeMap::new();
    for c in v.as_array().ok_or("not an array")? {
        let (Some(id), Some(ts)) = (
            c["id"].as_u64(),
            c["timestamp"].as_str().and_then(|t| t.parse().ok()),
        ) else {
            return Err(format!("command without id/timestamp: {c}"));
        };
        log.insert(
            id,
            Logged {
                timestamp: ts,
                lifecycle: c["lifecycle"].as_str().unwrap_or("?").to_string(),
                accepted_at_ms: c["accepted_at_ms"].as_u64().unwrap_or(0),
            },
        );
    }
    Ok(log)
}

/// The retained topics under `B/#` a fresh subscriber gets within `wait` (non-empty payloads).
pub async fn retained_topics(port: u16, wait: Duration) -> Result<HashSet<String>, String> {
    let id = format!("retained-{}", uuid::Uuid::new_v4());
    let (client, mut eventloop) = AsyncClient::new(options(&id, port), 16);
    client
        .subscribe(format!("{BASE}/#"), QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    let mut topics = HashSet::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => break,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.retain && !p.payload.is_empty() => {
                topics.insert(p.topic.clone());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
    let _ = client.disconnect().await;
    Ok(topics)
}
