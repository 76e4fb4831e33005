//! An MQTT load generator with rumqttc's default options (as a PLC or Node-RED would connect):
//! publishers that flood a topic, and a subscriber that counts distinct messages and when they
//! arrived. Shared by tests/it/mqtt_backlog.rs (counts) and examples/bench.rs (included by path,
//! timings), so both drive every broker the same way.
//!
//! Every message carries a token `~<client>.<seq>.<sent µs>~` (in the payload, or in a command's
//! `transaction`, which the reply echoes): the subscriber counts distinct tokens, so QoS 1
//! duplicates are not counted twice.
#![allow(dead_code)]

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The clock shared by publishers and subscriber: tokens carry microseconds since it.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Instant);

impl Clock {
    pub fn new() -> Clock {
        Clock(Instant::now())
    }

    pub fn now_us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

pub fn token(client: usize, seq: usize, sent_us: u64) -> String {
    format!("~{client}.{seq}.{sent_us}~")
}

/// An app restart command whose `transaction` (echoed in the reply) carries the load token.
#[allow(dead_code)]
pub fn restart_command(client: usize, seq: usize, sent_us: u64) -> Vec<u8> {
    format!(
        r#"{{"command":"restart","transaction":"{}"}}"#,
        token(client, seq, sent_us)
    )
    .into_bytes()
}

/// `(client.seq, sent µs)` of the first token in `payload`.
pub fn parse_token(payload: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let start = text.find('~')? + 1;
    let len = text[start..].find('~')?;
    let mut parts = text[start..start + len].split('.');
    let (client, seq, sent) = (parts.next()?, parts.next()?, parts.next()?);
    Some((format!("{client}.{seq}"), sent.parse().ok()?))
}

/// A fixed-size payload carrying a token, padded with `.`.
pub fn padded(client: usize, seq: usize, sent_us: u64, size: usize) -> Vec<u8> {
    let mut p = token(client, seq, sent_us).into_bytes();
    if p.len() < size {
        p.resize(size, b'.');
    }
    p
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts
}

/// What one subscriber saw.
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    pub distinct: usize,
    pub duplicates: usize,
    /// Send → receive, per distinct message.
    pub latencies_us: Vec<u64>,
    pub first_us: Option<u64>,
    pub last_us: Option<u64>,
}

/// A subscriber that counts distinct tokens; it can start paused (not reading its socket), to
/// play a subscriber that falls behind.
pub struct Subscriber {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<(String, u64, u64)>,
    run: watch::Sender<bool>,
    seen: HashSet<String>,
    delivery: Delivery,
}

impl Subscriber {
    pub async fn connect(
        port: u16,
        id: &str,
        filter: &str,
        qos: QoS,
        clock: Clock,
        paused: bool,
    ) -> Result<Subscriber, String> {
        let (client, mut eventloop) = AsyncClient::new(options(id, port), 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (run, mut running) = watch::channel(true);
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                if !*running.borrow() && running.wait_for(|r| *r).await.is_err() {
                    return;
                }
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Some((key, sent)) = parse_token(&p.payload) {
                            if tx.send((key, sent, clock.now_us())).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        client
            .subscribe(filter, qos)
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(15), ready_rx.recv())
            .await
            .map_err(|_| format!("{id}: no SUBACK for {filter} within 15 s"))?;
        if paused {
            run.send_replace(false);
        }
        Ok(Subscriber {
            client,
            rx,
            run,
            seen: HashSet::new(),
            delivery: Delivery::default(),
        })
    }

    /// Starts reading again after a pause.
    pub fn resume(&self) {
        self.run.send_replace(true);
    }

    /// Receives until `expected` distinct messages arrived, or nothing arrived for `idle`.
    pub async fn collect(&mut self, expected: usize, idle: Duration) -> Delivery {
        while self.delivery.distinct < expected {
            match tokio::time::timeout(idle, self.rx.recv()).await {
                Ok(Some((key, sent, received))) => {
                    if self.seen.insert(key) {
                        let d = &mut self.delivery;
                        d.distinct += 1;
                        d.latencies_us.push(received.saturating_sub(sent));
                        d.first_us.get_or_insert(received);
                        d.last_us = Some(received);
                    } else {
                        self.delivery.duplicates += 1;
                    }
                }
                _ => break,
            }
        }
        self.delivery.clone()
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
    }
}

/// What a flood of publishers did.
#[derive(Debug, Default, Clone)]
pub struct Flood {
    /// Publishes acknowledged by the broker (QoS 1) or written (QoS 0).
    pub acked: usize,
    pub first_us: u64,
    pub last_us: u64,
}

/// Who floods: `clients` publishers (ids `<prefix>-<n>`) of `per_client` messages each.
#[derive(Debug, Clone)]
pub struct Publishers {
    pub port: u16,
    pub prefix: String,
    pub clients: usize,
    pub per_client: usize,
    pub qos: QoS,
    pub clock: Clock,
    /// How long to wait for the broker's acknowledgements.
    pub patience: Duration,
}

/// The publishers send as fast as the client lets them, and wait until the broker acknowledged
/// them all (or the patience passed).
pub async fn flood<T, P>(plan: &Publishers, topic: T, payload: P) -> Flood
where
    T: Fn(usize) -> String + Send + Sync + Clone + 'static,
    P: Fn(usize, usize, u64) -> Vec<u8> + Send + Sync + Clone + 'static,
{
    let Publishers {
        port,
        ref prefix,
        clients,
        per_client,
        qos,
        clock,
        patience,
    } = *plan;
    let first_us = clock.now_us();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (topic, payload) = (topic.clone(), payload.clone());
        let id = format!("{prefix}-{c}");
        tasks.push(tokio::spawn(async move {
            let (client, mut eventloop) = AsyncClient::new(options(&id, port), 100);
            let (acks_tx, mut acks_rx) = watch::channel(0usize);
            let poller = tokio::spawn(async move {
                let mut acked = 0;
                loop {
                    let done = match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) if qos != QoS::AtMostOnce => true,
                        Ok(Event::Outgoing(Outgoing::Publish(_))) => qos == QoS::AtMostOnce,
                        Ok(_) => false,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            false
                        }
                    };
                    if done {
                        acked += 1;
                        acks_tx.send_replace(acked);
                    }
                }
            });
            let t = topic(c);
            for seq in 0..per_client {
                if client
                    .publish(&t, qos, false, payload(c, seq, clock.now_us()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let acked = tokio::time::timeout(patience, acks_rx.wait_for(|n| *n >= per_client))
                .await
                .map(|_| per_client)
                .unwrap_or_else(|_| *acks_rx.borrow());
            let _ = client.disconnect().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            poller.abort();
            acked
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap_or(0);
    }
    Flood {
        acked,
        first_us,
        last_us: clock.now_us(),
    }
}
