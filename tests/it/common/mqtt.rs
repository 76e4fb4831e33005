//! A real MQTT client (rumqttc) for tests: publish, and wait for a message matching a predicate.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Msg {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

pub struct Probe {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Msg>,
    pub seen: Vec<Msg>,
}

impl Probe {
    /// Connects and subscribes to `filters`; waits for the connection.
    pub async fn connect(port: u16, filters: &[&str]) -> Probe {
        Self::connect_with(port, None, filters).await
    }

    /// Connects with a user name and password.
    pub async fn connect_as(port: u16, credentials: (&str, &str), filters: &[&str]) -> Probe {
        Self::connect_with(port, Some(credentials), filters).await
    }

    async fn connect_with(port: u16, credentials: Option<(&str, &str)>, filters: &[&str]) -> Probe {
        let id = format!("probe-{}", uuid::Uuid::new_v4());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        if let Some((user, password)) = credentials {
            opts.set_credentials(user, password);
        }
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 256);
        let (tx, rx) = mpsc::unbounded_channel();
        let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Msg {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = conn_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = conn_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(super::patience(), conn_rx.recv())
            .await
            .expect("MQTT connect")
            .unwrap();
        for f in filters {
            client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
            tokio::time::timeout(super::patience(), conn_rx.recv())
                .await
                .expect("MQTT suback")
                .unwrap();
        }
        Probe {
            client,
            rx,
            seen: Vec::new(),
        }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
    }

    pub async fn publish_retained(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload.into())
            .await
            .unwrap();
    }

    /// Waits for a message on `topic` whose JSON satisfies `pred`; earlier ones are kept in `seen`.
    pub async fn expect(&mut self, topic: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.expect_msg(topic, |m| pred(&m.json())).await.json()
    }

    pub async fn expect_msg(&mut self, topic: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        if let Some(m) = self.seen.iter().find(|m| m.topic == topic && pred(m)) {
            return m.clone();
        }
        self.receive_until(topic, |m| m.topic == topic && pred(m))
            .await
    }

    /// Receives until `done` holds for a new message (each is kept in `seen`) and returns that
    /// one; panics after `patience()` with the last ones seen.
    pub async fn receive_until(&mut self, what: &str, mut done: impl FnMut(&Msg) -> bool) -> Msg {
        let deadline = tokio::time::Instant::now() + super::patience();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(m)) => {
                    self.seen.push(m.clone());
                    if done(&m) {
                        return m;
                    }
                }
                _ => {
                    let topics: Vec<String> = self
                        .seen
                        .iter()
                        .rev()
                        .take(15)
                        .map(|m| format!("{} {}", m.topic, String::from_utf8_lossy(&m.payload)))
                        .collect();
                    panic!(
                        "timed out waiting on {what}; last seen:\n{}",
                        topics.join("\n")
                    );
                }
            }
        }
    }

    /// Publishes a command and returns its reply.
    pub async fn command(&mut self, base: &str, relative: &str, payload: &str) -> Value {
        let reply_topic = format!("{base}/response/{relative}");
        let tx = uuid::Uuid::new_v4().to_string();
        let payload = match serde_json::from_str::<Value>(payload) {
            Ok(Value::Object(mut o)) => {
                o.insert("transaction".into(), Value::String(tx.clone()));
                Value::Object(o).to_string()
            }
            _ => payload.to_string(),
        };
        self.publish(&format!("{base}/{relative}"), payload).await;
        let tx2 = tx.clone();
        self.expect(&reply_topic, move |v| {
            v["transaction"] == tx2 || v.get("transaction").is_none()
        })
        .await
    }

    /// Drops everything received so far.
    pub fn forget(&mut self) {
        while self.rx.try_recv().is_ok() {}
        self.seen.clear();
    }
}

/// The timestamp of the command in a command reply: a uint64, in protobuf JSON a string.
pub fn command_timestamp(reply: &Value) -> u64 {
    reply["command"]["timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}
