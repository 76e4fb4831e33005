//! MQTT: the embedded broker and the gateway's link into it, command ingress, and the publisher
//! that telemetry and replies go through (to every connected broker).

pub mod alerts;
pub mod auth;
mod broker;
mod door;
pub mod external;
mod fair_share;
mod ingress;
mod link;
mod listener;
mod packet;
pub mod state_guard;
pub mod topics;

pub use broker::{check_tls, BrokerError, Listeners};
pub use ingress::{run as run_ingress, Ingress};

/// Checks what only MQTT can judge in `[mqtt]` (TLS files, users, the plant broker's options),
/// binding nothing: start-up and `check-config` both run it (through `app::prepare`).
pub fn prepare(cfg: &MqttConfig) -> Result<(), ConfigError> {
    let invalid = |key: &'static str, reason: String| ConfigError::Invalid { key, reason };
    if let Some(tls) = &cfg.tls {
        check_tls(tls).map_err(|e| invalid("mqtt.tls", e.to_string()))?;
    }
    auth::Users::new(&cfg.users).map_err(|reason| invalid("mqtt.users", reason))?;
    let tls = cfg.tls.as_ref().and_then(|t| t.listen.parse().ok());
    door::check_policy(cfg, tls).map_err(|reason| invalid("mqtt.allow_anonymous", reason))?;
    if let Some(external) = &cfg.external {
        external::check(external).map_err(|e| match e {
            external::ExternalError::Invalid { key, reason } => invalid(key, reason),
        })?;
    }
    Ok(())
}
pub use link::{Incoming, LinkHealth};
pub use listener::SocketAudit;

use crate::config::{ConfigError, MqttConfig, Settings};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// MQTT 5 correlation data for a reply on a client's response topic.
    pub correlation: Option<Bytes>,
}

impl Outgoing {
    pub fn retained(topic: String, payload: Bytes) -> Outgoing {
        Outgoing {
            topic,
            payload,
            retain: true,
            correlation: None,
        }
    }

    pub fn message(topic: String, payload: Bytes) -> Outgoing {
        Outgoing {
            topic,
            payload,
            retain: false,
            correlation: None,
        }
    }

    /// An empty retained payload deletes the retained message.
    pub fn clear_retained(topic: String) -> Outgoing {
        Outgoing::retained(topic, Bytes::new())
    }
}

/// How many messages may wait for one broker connection before new ones are dropped (and
/// counted): the writer of the embedded broker's link only waits while the router is busy or
/// the link is being rebuilt; an external broker's while it is unreachable.
pub const SINK_CAPACITY: usize = 16_384;

#[derive(Default)]
struct Shared {
    sinks: Mutex<Vec<mpsc::Sender<Outgoing>>>,
    /// Everything retained we published, so a broker that (re)connects can be given all of it.
    retained: Mutex<BTreeMap<String, Bytes>>,
    published: std::sync::atomic::AtomicU64,
    /// Messages not handed to a broker connection because its queue was full.
    dropped: std::sync::atomic::AtomicU64,
    /// The embedded broker's link and listeners, once started.
    embedded: std::sync::OnceLock<Embedded>,
    /// Hashes of the last retained payloads of the topics [`state_guard`] watches, to tell our
    /// own echoes from a foreign publish.
    recent: Mutex<std::collections::HashMap<String, std::collections::VecDeque<u64>>>,
    /// Command permits of the embedded broker's door, given back by ingress.
    fair: fair_share::FairShare,
}

/// How many recent payloads per guarded topic count as ours (echoes overtaken by newer ones).
const RECENT_PAYLOADS: usize = 16;

struct Embedded {
    link: Arc<LinkHealth>,
    auditors: Vec<listener::Auditor>,
}

/// Sends to every connected broker. Cheap to clone; never blocks: each broker connection has a
/// bounded queue, and what does not fit is dropped and counted (`dropped`).
#[derive(Clone, Default)]
pub struct Publisher {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Publisher {
    /// Messages published since start (for metrics).
    pub fn published(&self) -> u64 {
        self.shared
            .published
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn publish(&self, out: Outgoing) {
        self.shared
            .published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if out.retain {
            if let Some(ring) = lock(&self.shared.recent).get_mut(&out.topic) {
                if ring.len() == RECENT_PAYLOADS {
                    ring.pop_front();
                }
                ring.push_back(topics::stable_hash(&out.payload));
            }
            let mut retained = lock(&self.shared.retained);
            if out.payload.is_empty() {
                retained.remove(&out.topic);
            } else {
                retained.insert(out.topic.clone(), out.payload.clone());
            }
        }
        let mut full = false;
        lock(&self.shared.sinks).retain(|sink| match sink.try_send(out.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                full = true;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if full {
            let n = self
                .shared
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(topic = %out.topic, dropped_total = n + 1, "a broker connection's queue is full ({SINK_CAPACITY} messages): message dropped");
        }
    }

    /// Ingress finished a command (see `fair_share`): its sender's permit goes back.
    pub(crate) fn command_done(&self) {
        self.shared.fair.done();
    }

    /// Starts remembering the recent retained payloads of `topics` (see [`state_guard`]).
    pub fn remember_recent(&self, topics: Vec<String>) {
        let mut recent = lock(&self.shared.recent);
        for topic in topics {
            recent.entry(topic).or_default();
        }
    }

    /// Whether a retained payload with this hash was among the last ones we sent to `topic`.
    pub fn published_recently(&self, topic: &str, hash: u64) -> bool {
        lock(&self.shared.recent)
            .get(topic)
            .is_some_and(|ring| ring.contains(&hash))
    }

    /// What we hold retained on `topic` now.
    pub fn retained_payload(&self, topic: &str) -> Option<Bytes> {
        lock(&self.shared.retained).get(topic).cloned()
    }

    /// Messages dropped because a broker connection's queue was full (for metrics).
    pub fn dropped(&self) -> u64 {
        self.shared
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A new broker connection: receives everything published from now on.
    pub fn add_sink(&self) -> mpsc::Receiver<Outgoing> {
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        lock(&self.shared.sinks).push(tx);
        rx
    }

    /// The embedded broker's link, when that broker runs.
    pub fn link(&self) -> Option<&LinkHealth> {
        self.shared.embedded.get().map(|e| &*e.link)
    }

    /// What each embedded listener's descriptor table holds (empty without an embedded broker).
    pub async fn socket_audits(&self) -> Vec<SocketAudit> {
        let Some(embedded) = self.shared.embedded.get() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for auditor in &embedded.auditors {
            if let Some(audit) = auditor.audit().await {
                out.push(audit);
            }
        }
        out
    }

    /// The full retained state as messages, for a broker that just (re)connected.
    pub fn retained(&self) -> Vec<Outgoing> {
        lock(&self.shared.retained)
            .iter()
            .map(|(topic, payload)| Outgoing::retained(topic.clone(), payload.clone()))
            .collect()
    }

    pub fn is_connected(&self) -> bool {
        !lock(&self.shared.sinks).is_empty()
    }

    /// Lets go of every broker connection's queue: each connection sends what it holds, then
    /// ends (the embedded link's writer thread with it). Publishing afterwards reaches no one.
    /// The last step of the stop order before the store closes.
    pub fn close(&self) {
        lock(&self.shared.sinks).clear();
    }
}

/// The embedded broker's link, for the stop order.
pub struct EmbeddedLink {
    writer_done: tokio::sync::oneshot::Receiver<()>,
}

impl EmbeddedLink {
    /// Resolves once the link's writer has handed the router everything queued before
    /// [`Publisher::close`] (or the writer ended another way).
    pub async fn drained(self) {
        let _ = self.writer_done.await;
    }
}

/// Where the embedded broker's losses are reported: `/metrics` and `B/events`.
pub struct LossReport {
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub store: crate::store::StoreHandle,
}

/// Starts the embedded broker when `mqtt.listen` is set: subscribes `filters` and feeds what
/// arrives on them into `incoming`. Returns its link, for the stop order, when it started. The
/// link's readers stop with `tasks.input`, the loss reports with `tasks.output`; the writer
/// with [`Publisher::close`].
pub fn start_embedded(
    settings: &Settings,
    publisher: &Publisher,
    filters: Vec<String>,
    incoming: mpsc::Sender<Incoming>,
    losses: LossReport,
    tasks: &crate::tasks::Tasks,
) -> Result<Option<EmbeddedLink>, BrokerError> {
    let Some(listen) = settings.mqtt_listen else {
        tracing::info!("mqtt.listen is empty: the embedded broker is off");
        return Ok(None);
    };
    let cfg = &settings.config.mqtt;
    let listeners = Listeners {
        v4: listen,
        v5: settings.mqtt_listen_v5,
        tls: settings.mqtt_tls.clone(),
    };
    let started = broker::start(cfg, &listeners, &filters, publisher.shared.fair.clone())?;
    tasks.output.spawn(alerts::run(
        started.router_thread.clone(),
        losses.metrics,
        losses.store,
        tasks.output.stop.clone(),
    ));
    let health = Arc::new(LinkHealth::default());
    let retained = publisher.clone();
    let writer_done = link::spawn(
        link::Running {
            connect: started.connect,
            filters,
            health: health.clone(),
            retained: Box::new(move || retained.retained()),
        },
        started.link,
        publisher.add_sink(),
        incoming,
        &tasks.input,
    )
    .map_err(BrokerError::Thread)?;
    let _ = publisher.shared.embedded.set(Embedded {
        link: health,
        auditors: started.auditors,
    });
    tracing::info!(%listen, v5 = ?settings.mqtt_listen_v5, tls = ?listeners.tls.as_ref().map(|t| t.0), users = cfg.users.len(), "embedded MQTT broker listening");
    Ok(Some(EmbeddedLink { writer_done }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retained_cache_follows_publishes_and_clears() {
        let p = Publisher::default();
        let mut rx = p.add_sink();
        p.publish(Outgoing::retained("a".into(), Bytes::from_static(b"1")));
        p.publish(Outgoing::message("e".into(), Bytes::from_static(b"x")));
        p.publish(Outgoing::retained("b".into(), Bytes::from_static(b"2")));
        p.publish(Outgoing::clear_retained("a".into()));
        let topics: Vec<String> = p.retained().into_iter().map(|o| o.topic).collect();
        assert_eq!(topics, vec!["b"]);
        let mut got = 0;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, 4, "every publish reaches every sink");
    }
}
