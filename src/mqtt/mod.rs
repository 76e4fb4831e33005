//! MQTT: the embedded broker, the gateway's link into it, command ingress, and the publisher
//! that telemetry and replies go through.

mod broker;
pub mod commands;
mod ingress;
mod link;
pub mod topics;

pub use broker::BrokerError;
pub use ingress::reply_payload;

use crate::config::Settings;
use crate::store::StoreHandle;
use bytes::Bytes;
use tokio::sync::mpsc;
use topics::Topics;

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

/// Sends to every connected broker (today the embedded one). Never blocks.
#[derive(Clone, Default)]
pub struct Publisher {
    sinks: Vec<mpsc::UnboundedSender<Outgoing>>,
}

impl Publisher {
    pub fn publish(&self, out: Outgoing) {
        for sink in &self.sinks {
            let _ = sink.send(out.clone());
        }
    }

    pub fn is_connected(&self) -> bool {
        !self.sinks.is_empty()
    }
}

/// Starts the embedded broker (when `mqtt.listen` is set) and command ingress.
pub fn start(settings: &Settings, store: StoreHandle) -> Result<Publisher, BrokerError> {
    let Some(listen) = settings.mqtt_listen else {
        tracing::info!("mqtt.listen is empty: the embedded broker is off");
        return Ok(Publisher::default());
    };
    let cfg = &settings.config.mqtt;
    let topics = Topics::new(&cfg.base_topic);
    let (link_tx, link_rx) = broker::start(cfg, listen, settings.mqtt_listen_v5)?;
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    link::spawn_writer(link_tx, topics.command_filters().to_vec(), out_rx)
        .map_err(BrokerError::Thread)?;
    let publisher = Publisher {
        sinks: vec![out_tx],
    };
    let (in_tx, in_rx) = mpsc::channel(1024);
    tokio::spawn(link::run_reader(link_rx, in_tx));
    tokio::spawn(ingress::run(in_rx, store, topics, publisher.clone()));
    tracing::info!(%listen, v5 = ?settings.mqtt_listen_v5, "embedded MQTT broker listening");
    Ok(publisher)
}
