//! The edge node's own MQTT client (rumqttc), so it has a real Will (NDEATH): one CONNECT per
//! session, bdSeq + 1 per CONNECT; subscriptions (NCMD, DCMD, the primary host's STATE) before
//! NBIRTH; DATA by exception from the store's change stream; NDEATH before a clean DISCONNECT.

use super::host::{self, Host};
use super::metrics::{self, REBIRTH};
use super::node::{Message, Node};
use super::payload::{self, Written};
use super::writes;
use crate::backoff::Backoff;
use crate::config::{ExternalBroker, SparkplugConfig};
use crate::store::StoreHandle;
use crate::tasks::Tasks;
use crate::telemetry::views::unix_ms_now;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// Where the edge node connects.
#[derive(Debug, Clone)]
pub enum Broker {
    /// The embedded broker over loopback; `login` when it has users (then as the gateway's own user).
    Embedded {
        addr: SocketAddr,
        login: bool,
    },
    External(ExternalBroker),
}

/// Largest packet either way: births of many apps are large.
const MAX_PACKET: usize = 1 << 20;

fn options(broker: &Broker, will: LastWill) -> Result<MqttOptions, String> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let mut options = match broker {
        Broker::Embedded { addr, login } => {
            // A reserved, random id, like the gateway's broker links.
            let id = format!("{}sparkplug-{suffix}", crate::mqtt::auth::LINK_ID_PREFIX);
            let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
            o.set_keep_alive(Duration::from_secs(30))
                .set_max_packet_size(MAX_PACKET, MAX_PACKET);
            if *login {
                o.set_credentials(
                    crate::mqtt::auth::GATEWAY_USER,
                    crate::mqtt::auth::gateway_password(),
                );
            }
            o
        }
        Broker::External(cfg) => {
            let (mut o, _) =
                crate::mqtt::external::mqtt_options(cfg, "unused").map_err(|e| e.to_string())?;
            // Beside the gateway's own link, with a stable id of its own.
            o.set_client_id(format!("{}-sparkplug", cfg.client_id.trim()));
            o
        }
    };
    options.set_clean_session(true).set_last_will(will);
    Ok(options)
}

/// The edge node id: configured, else EVE's device UUID once known, else the host name.
pub fn node_id(cfg: &SparkplugConfig, state: &crate::state::State) -> String {
    if !cfg.edge_node_id.is_empty() {
        return cfg.edge_node_id.clone();
    }
    let id = metrics::device_uuid(state).unwrap_or_else(host_name);
    id.replace(['/', '+', '#'], "_")
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "lps-bridge".into())
}

enum End {
    Shutdown,
    /// The session ended; `connected` says whether it got as far as a CONNACK.
    Reconnect {
        connected: bool,
    },
}

/// Runs sessions until `tasks.output.stop`; writes are awaited on `tasks.replies`.
pub async fn run(cfg: SparkplugConfig, broker: Broker, store: StoreHandle, tasks: Tasks) {
    let shutdown = tasks.output.stop.clone();
    let mut bd_seq = 0u64;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let node = Node::new(&cfg.group_id, &node_id(&cfg, &store.snapshot()), bd_seq);
        // bdSeq goes up by one on every CONNECT (and wraps like the spec's 0..255 counters).
        bd_seq = (bd_seq + 1) % 256;
        match session(&cfg, &broker, node, &store, &tasks).await {
            End::Shutdown => return,
            End::Reconnect { connected } => {
                if connected {
                    backoff.reset();
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

struct Session<'a> {
    client: AsyncClient,
    node: Node,
    store: &'a StoreHandle,
    /// Where each write's outcome is awaited.
    replies: &'a TaskTracker,
    cfg: &'a SparkplugConfig,
    host: Host,
    /// Subscriptions acknowledged (births wait for them).
    subscribed: bool,
    pending_subacks: usize,
}

impl Session<'_> {
    async fn send(&self, messages: Vec<Message>) {
        for m in messages {
            if let Err(err) = self
                .client
                .publish(m.topic.clone(), QoS::AtMostOnce, false, m.payload)
                .await
            {
                tracing::warn!(topic = %m.topic, %err, "Sparkplug publish failed");
            }
        }
    }

    fn host_ready(&self) -> bool {
        self.cfg.primary_host_id.is_empty() || self.host.online()
    }

    async fn births(&mut self) {
        let births = self.node.births(&self.store.snapshot(), unix_ms_now());
        tracing::info!(node = %self.node.id, bd_seq = self.node.bd_seq, devices = births.len() - 1, "Sparkplug births");
        self.send(births).await;
    }

    /// NDEATH by hand, then DISCONNECT (a clean DISCONNECT makes the broker drop the Will).
    async fn die(&self) {
        let death = self.node.ndeath(unix_ms_now());
        let _ = self
            .client
            .publish(death.topic, QoS::AtLeastOnce, false, death.payload)
            .await;
        let _ = self.client.disconnect().await;
    }

    async fn on_command(&mut self, topic: &str, payload: &[u8]) {
        let ncmd = self.node.topic("NCMD");
        let dcmd_prefix = format!("{}/", self.node.topic("DCMD"));
        let device = if topic == ncmd {
            None
        } else if let Some(d) = topic.strip_prefix(&dcmd_prefix) {
            Some(d.to_string())
        } else {
            return;
        };
        let writes = match payload::decode_writes(payload) {
            Ok(w) => w,
            Err(why) => return writes::refused(self.replies, self.store, topic, "", &why),
        };
        for w in writes {
            let label = w
                .name
                .clone()
                .or(w.alias.map(|a| format!("alias {a}")))
                .unwrap_or_else(|| "a metric without name or alias".into());
            let spec = match &device {
                None => metrics::node_index(w.name.as_deref(), w.alias).map(|i| metrics::NODE[i]),
                Some(d) => match self.node.device_alias_base(d) {
                    Some(base) if self.node.device_alive(d) => {
                        metrics::device_index(w.name.as_deref(), w.alias, base)
                            .map(|i| metrics::DEVICE[i])
                    }
                    _ => {
                        writes::refused(
                            self.replies,
                            self.store,
                            topic,
                            &label,
                            &format!("no app '{d}' is reported by EVE"),
                        );
                        continue;
                    }
                },
            };
            let Some(spec) = spec else {
                writes::refused(self.replies, self.store, topic, &label, "no such metric");
                continue;
            };
            if !spec.writable {
                writes::refused(
                    self.replies,
                    self.store,
                    topic,
                    spec.name,
                    "the metric is read-only",
                );
                continue;
            }
            if device.is_none() && spec.name == REBIRTH {
                match w.value {
                    Written::Bool(true) => {
                        if self.node.is_born() || self.host_ready() {
                            self.births().await;
                        }
                    }
                    _ => writes::refused(
                        self.replies,
                        self.store,
                        topic,
                        REBIRTH,
                        "write true to request a rebirth",
                    ),
                }
                continue;
            }
            match writes::to_intent(device.as_deref(), spec.name, &w.value) {
                Ok(intent) => {
                    writes::submit(
                        self.replies,
                        self.store,
                        topic.to_string(),
                        spec.name.to_string(),
                        intent,
                    )
                    .await
                }
                Err(why) => writes::refused(self.replies, self.store, topic, spec.name, &why),
            }
        }
    }

    /// Returns false when the session must end (the primary host went offline).
    async fn on_state(&mut self, payload: &[u8]) -> bool {
        let state = match host::parse(payload) {
            Ok(s) => s,
            Err(why) => {
                tracing::warn!(host = %self.cfg.primary_host_id, %why, "primary host STATE ignored");
                return true;
            }
        };
        if self.host.update(state).is_none() {
            return true;
        }
        if state.online {
            if self.subscribed && !self.node.is_born() {
                self.births().await;
            }
            true
        } else if self.node.is_born() {
            tracing::info!(host = %self.cfg.primary_host_id, "primary host offline: NDEATH and reconnect");
            self.die().await;
            false
        } else {
            true
        }
    }
}

async fn session(
    cfg: &SparkplugConfig,
    broker: &Broker,
    node: Node,
    store: &StoreHandle,
    tasks: &Tasks,
) -> End {
    let shutdown = &tasks.output.stop;
    let death = node.ndeath(unix_ms_now());
    let will = LastWill::new(death.topic, death.payload, QoS::AtLeastOnce, false);
    let opts = match options(broker, will) {
        Ok(o) => o,
        Err(why) => {
            tracing::error!(%why, "Sparkplug: cannot build the MQTT options");
            shutdown.cancelled().await;
            return End::Shutdown;
        }
    };
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    // The event loop runs on its own, so publishing never waits on this task's own polling.
    // It never waits on this task either: while a burst (thousands of DBIRTHs) fills rumqttc's
    // request channel, this task is not reading events, and a bounded channel here stalled the
    // poller, so the requests never drained. Only the events the session acts on are passed;
    // they are few (acks, the broker's publishes), not one per message we send.
    // Aborted when the session ends.
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let poller = tasks.output.spawn(async move {
        loop {
            let event = eventloop.poll().await;
            let failed = event.is_err();
            let wanted = match &event {
                Ok(Event::Incoming(p)) => matches!(
                    p,
                    Packet::ConnAck(_) | Packet::SubAck(_) | Packet::Publish(_)
                ),
                Ok(Event::Outgoing(o)) => matches!(o, rumqttc::Outgoing::Disconnect),
                Err(_) => true,
            };
            if (wanted && events_tx.send(event).is_err()) || failed {
                break;
            }
        }
    });
    let mut changes = store.subscribe();
    let mut s = Session {
        client,
        node,
        store,
        replies: &tasks.replies,
        cfg,
        host: Host::default(),
        subscribed: false,
        pending_subacks: 0,
    };
    let mut connected = false;
    let end = loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                if connected {
                    s.die().await;
                    // Let the NDEATH and DISCONNECT go out (a few seconds at most).
                    let _ = tokio::time::timeout(Duration::from_secs(3), async {
                        while let Some(Ok(e)) = events.recv().await {
                            if matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                                break;
                            }
                        }
                    })
                    .await;
                }
                break End::Shutdown;
            }
            event = events.recv() => match event {
                None => break End::Reconnect { connected },
                Some(Err(err)) => {
                    tracing::warn!(%err, node = %s.node.id, "Sparkplug connection lost; reconnecting");
                    break End::Reconnect { connected };
                }
                Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    connected = true;
                    let mut filters = vec![s.node.topic("NCMD"), format!("{}/+", s.node.topic("DCMD"))];
                    if !cfg.primary_host_id.is_empty() {
                        filters.push(host::topic(&cfg.primary_host_id));
                    }
                    s.pending_subacks = filters.len();
                    for f in filters {
                        if let Err(err) = s.client.subscribe(f, QoS::AtLeastOnce).await {
                            tracing::warn!(%err, "Sparkplug subscribe failed");
                        }
                    }
                }
                Some(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                    s.pending_subacks = s.pending_subacks.saturating_sub(1);
                    if s.pending_subacks == 0 && !s.subscribed {
                        s.subscribed = true;
                        if s.host_ready() {
                            s.births().await;
                        } else {
                            tracing::info!(host = %cfg.primary_host_id, "Sparkplug births wait for the primary host's STATE online");
                        }
                    }
                }
                Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    if !cfg.primary_host_id.is_empty() && p.topic == host::topic(&cfg.primary_host_id) {
                        if !s.on_state(&p.payload).await {
                            break End::Reconnect { connected };
                        }
                    } else if p.payload.is_empty() {
                        // What deleting a retained message looks like (ours included): no command.
                    } else if p.retain {
                        // A retained command would fire again on every reconnect: refuse and delete it.
                        writes::refused(&tasks.replies, store, &p.topic, "", &crate::command::CommandError::Retained.to_string());
                        let _ = s.client.publish(p.topic.clone(), QoS::AtLeastOnce, true, Vec::new()).await;
                    } else {
                        s.on_command(&p.topic, &p.payload).await;
                    }
                }
                Some(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) => {
                    break End::Reconnect { connected };
                }
                Some(Ok(_)) => {}
            },
            change = changes.recv() => {
                if matches!(change, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    shutdown.cancelled().await;
                    continue;
                }
                let state = store.snapshot();
                if node_id(cfg, &state) != s.node.id {
                    tracing::info!(from = %s.node.id, to = %node_id(cfg, &state), "Sparkplug edge node id changed (EVE's UUID is known): reconnecting");
                    if connected {
                        s.die().await;
                    }
                    break End::Reconnect { connected };
                }
                let out = s.node.changes(&state, unix_ms_now());
                s.send(out).await;
            }
        }
    };
    // Give a DISCONNECT a moment to leave before the event loop is dropped.
    if matches!(end, End::Reconnect { .. }) {
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Some(Ok(_)) = events.recv().await {}
        })
        .await;
    }
    poller.abort();
    end
}
