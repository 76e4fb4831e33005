//! The embedded rumqttd broker: its router, and each listener on a thread of ours (see
//! `listener`); the gateway talks to it through an in-process link taken before any listener
//! starts.

use super::auth::Users;
use crate::config::{MqttConfig, MqttTls};
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::{v4::V4, v5::V5};
use rumqttd::{
    Config, ConnectionSettings, Router, RouterConfig, Server, ServerSettings, TlsConfig,
};
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
    #[error("{0}")]
    Config(String),
}

/// The listeners the embedded broker opens.
#[derive(Debug, Clone)]
pub struct Listeners {
    pub v4: SocketAddr,
    pub v5: Option<SocketAddr>,
    pub tls: Option<(SocketAddr, MqttTls)>,
}

fn server(
    name: &str,
    listen: SocketAddr,
    cfg: &MqttConfig,
    users: &Users,
    tls: Option<TlsConfig>,
) -> ServerSettings {
    let mut connections = ConnectionSettings {
        // Idle connections that never send CONNECT hold a descriptor until then (validated to
        // fit rumqttd's u16 milliseconds).
        connection_timeout_ms: cfg.connect_timeout.as_millis().min(u16::MAX as u128) as u16,
        max_payload_size: cfg.max_payload_bytes,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    if !users.is_empty() {
        // With a handler set, rumqttd refuses any CONNECT that does not pass it. It is called
        // only for a CONNECT with credentials (remote.rs handle_auth), so an anonymous broker
        // cannot refuse by client id: there the link's random id is what protects it.
        let users = users.clone();
        connections.set_auth_handler(move |client_id: String, name: String, password: String| {
            let users = users.clone();
            async move {
                if !users.check(&name, &password) {
                    tracing::warn!(%client_id, user = %name, "MQTT CONNECT refused: wrong user name or password");
                    return false;
                }
                match users.client_id_allowed(&name, &client_id) {
                    Ok(()) => true,
                    Err(why) => {
                        tracing::warn!(%client_id, user = %name, "MQTT CONNECT refused: {why}");
                        false
                    }
                }
            }
        });
    }
    ServerSettings {
        name: name.into(),
        listen,
        tls,
        next_connection_delay_ms: 1,
        connections,
    }
}

/// rumqttd binds inside its own thread and never reports failure to us: check first.
fn check_free(addr: SocketAddr) -> Result<(), BrokerError> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| BrokerError::Bind(addr, e))
}

/// rumqttd panics on unreadable TLS files: check them first, naming the key.
pub fn check_tls(tls: &MqttTls) -> Result<(), BrokerError> {
    for (key, path) in [
        ("mqtt.tls.cert_file", &tls.cert_file),
        ("mqtt.tls.key_file", &tls.key_file),
    ] {
        let text = std::fs::read_to_string(path).map_err(|e| {
            BrokerError::Config(format!("{key}: cannot read {}: {e}", path.display()))
        })?;
        if !text.contains("-----BEGIN ") {
            return Err(BrokerError::Config(format!(
                "{key}: {} is not a PEM file",
                path.display()
            )));
        }
    }
    Ok(())
}

/// A started embedded broker.
pub struct Started {
    /// The gateway's link, subscribed: (client id, tx, rx).
    pub link: (String, LinkTx, LinkRx),
    /// Builds another link into the same router (after the first was lost).
    pub connect: super::link::Connect,
    pub auditors: Vec<super::listener::Auditor>,
}

/// Starts the broker with the gateway's link already subscribed to `filters`, so that once a
/// client can connect, no command it sends can be missed.
pub fn start(
    cfg: &MqttConfig,
    listeners: &Listeners,
    filters: &[String],
) -> Result<Started, BrokerError> {
    let users = Users::new(&cfg.users).map_err(BrokerError::Config)?;
    check_free(listeners.v4)?;
    if let Some(v5) = listeners.v5 {
        check_free(v5)?;
    }
    let mut v4 = HashMap::from([(
        "v4".to_string(),
        server("mqtt-v4", listeners.v4, cfg, &users, None),
    )]);
    if let Some((addr, tls)) = &listeners.tls {
        check_tls(tls)?;
        check_free(*addr)?;
        let rustls = TlsConfig::Rustls {
            capath: None,
            certpath: tls.cert_file.display().to_string(),
            keypath: tls.key_file.display().to_string(),
        };
        v4.insert(
            "tls".to_string(),
            server("mqtt-tls", *addr, cfg, &users, Some(rustls)),
        );
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
        v4: Some(v4),
        v5: listeners.v5.map(|addr| {
            HashMap::from([("v5".to_string(), server("mqtt-v5", addr, cfg, &users, None))])
        }),
        ..Config::default()
    };
    // What Broker::new and Broker::start do, with the listeners on threads of ours.
    let router_tx = Router::new(config.id, config.router.clone()).spawn();
    let connect_tx = router_tx.clone();
    let connect: super::link::Connect = Box::new(move |id: &str| {
        LinkBuilder::new(id, connect_tx.clone())
            .build()
            .map(|(tx, rx, _ack)| (tx, rx))
            .map_err(|e| format!("cannot link to the broker's router: {e}"))
    });
    let id = super::link::new_link_id();
    let (mut link_tx, mut link_rx) = connect(&id).map_err(BrokerError::Link)?;
    // The router runs already; the listeners start only once the link is subscribed.
    super::link::subscribe(&mut link_tx, &mut link_rx, filters).map_err(BrokerError::Link)?;
    let mut auditors = Vec::new();
    for settings in config.v4.into_iter().flat_map(HashMap::into_values) {
        let (name, port) = (settings.name.clone(), settings.listen.port());
        let server = Server::new(settings, router_tx.clone(), V4);
        auditors.push(super::listener::spawn(&name, port, server).map_err(BrokerError::Link)?);
    }
    for settings in config.v5.into_iter().flat_map(HashMap::into_values) {
        let (name, port) = (settings.name.clone(), settings.listen.port());
        let server = Server::new(settings, router_tx.clone(), V5);
        auditors.push(super::listener::spawn(&name, port, server).map_err(BrokerError::Link)?);
    }
    Ok(Started {
        link: (id, link_tx, link_rx),
        connect,
        auditors,
    })
}
