//! The embedded rumqttd broker. `start()` blocks forever, so it gets its own OS thread; the
//! gateway talks to it through an in-process link taken before the broker starts.

use crate::config::MqttConfig;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("MQTT broker cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("MQTT broker: {0}")]
    Link(String),
    #[error("MQTT broker thread: {0}")]
    Thread(std::io::Error),
}

fn server(name: &str, listen: SocketAddr, cfg: &MqttConfig) -> ServerSettings {
    ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: cfg.max_payload_bytes,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// rumqttd binds inside its own thread and never reports failure to us: check first.
fn check_free(addr: SocketAddr) -> Result<(), BrokerError> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| BrokerError::Bind(addr, e))
}

/// Starts the broker and returns the gateway's link into it.
pub fn start(
    cfg: &MqttConfig,
    listen: SocketAddr,
    listen_v5: Option<SocketAddr>,
) -> Result<(LinkTx, LinkRx), BrokerError> {
    check_free(listen)?;
    if let Some(v5) = listen_v5 {
        check_free(v5)?;
    }
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections,
            // Also caps how many retained messages one subscribe receives.
            max_outgoing_packet_count: 1000,
            // Memory per topic filter is size × count: small, for an edge box.
            max_segment_size: cfg.segment_bytes,
            max_segment_count: cfg.segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([(
            "v4".to_string(),
            server("mqtt-v4", listen, cfg),
        )])),
        v5: listen_v5.map(|addr| HashMap::from([("v5".to_string(), server("mqtt-v5", addr, cfg))])),
        ..Config::default()
    };
    let mut broker = Broker::new(config);
    let link = broker
        .link("lps-bridge")
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(err) = broker.start() {
                tracing::error!(%err, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    Ok(link)
}
