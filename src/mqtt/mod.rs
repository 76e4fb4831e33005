//! MQTT: the embedded broker and the gateway's link into it, command ingress, and the publisher
//! that telemetry and replies go through (to every connected broker).

pub mod alerts;
pub mod auth;
mod broker;
pub mod external;
mod ingress;
mod link;
pub mod topics;

pub use broker::{check_tls, BrokerError, Listeners};
pub use ingress::{reply_payload, run as run_ingress};
pub use link::Incoming;

use crate::config::Settings;
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

#[derive(Default)]
struct Shared {
    sinks: Mutex<Vec<mpsc::UnboundedSender<Outgoing>>>,
    /// Everything retained we published, so a broker that (re)connects can be given all of it.
    retained: Mutex<BTreeMap<String, Bytes>>,
    published: std::sync::atomic::AtomicU64,
}

/// Sends to every connected broker. Cheap to clone; never blocks.
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
            let mut retained = lock(&self.shared.retained);
            if out.payload.is_empty() {
                retained.remove(&out.topic);
            } else {
                retained.insert(out.topic.clone(), out.payload.clone());
            }
        }
        lock(&self.shared.sinks).retain(|sink| sink.send(out.clone()).is_ok());
    }

    /// A new broker connection: receives everything published from now on.
    pub fn add_sink(&self) -> mpsc::UnboundedReceiver<Outgoing> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.shared.sinks).push(tx);
        rx
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
}

/// Where the embedded broker's losses are reported: `/metrics` and `B/events`.
pub struct LossReport {
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub store: crate::store::StoreHandle,
}

/// Starts the embedded broker when `mqtt.listen` is set: subscribes `filters` and feeds what
/// arrives on them into `incoming`. Returns whether it started.
pub fn start_embedded(
    settings: &Settings,
    publisher: &Publisher,
    filters: Vec<String>,
    incoming: mpsc::Sender<Incoming>,
    losses: LossReport,
) -> Result<bool, BrokerError> {
    let Some(listen) = settings.mqtt_listen else {
        tracing::info!("mqtt.listen is empty: the embedded broker is off");
        return Ok(false);
    };
    let cfg = &settings.config.mqtt;
    let listeners = Listeners {
        v4: listen,
        v5: settings.mqtt_listen_v5,
        tls: settings.mqtt_tls.clone(),
    };
    let (link_tx, link_rx, alerts) = broker::start(cfg, &listeners, &filters)?;
    tokio::spawn(alerts::run(alerts, losses.metrics, losses.store));
    link::spawn_writer(link_tx, publisher.add_sink()).map_err(BrokerError::Thread)?;
    tokio::spawn(link::run_reader(link_rx, incoming));
    tracing::info!(%listen, v5 = ?settings.mqtt_listen_v5, tls = ?listeners.tls.as_ref().map(|t| t.0), users = cfg.users.len(), "embedded MQTT broker listening");
    if cfg.users.is_empty() {
        tracing::warn!("the embedded broker accepts anonymous clients: anyone who reaches it can send commands (configure [[mqtt.users]])");
    }
    Ok(true)
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
