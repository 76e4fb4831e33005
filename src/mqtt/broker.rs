//! The embedded rumqttd broker. `start()` blocks forever, so it gets its own OS thread; the
//! gateway talks to it through an in-process link taken before the broker starts.
//!
//! # How far a subscriber may fall behind (read from rumqttd 0.20's source)
//!
//! rumqttd keeps no queue per client. Every subscription filter (the filter string, shared by all
//! its subscribers) has one in-memory commitlog, and each subscriber only holds a cursor into
//! it. What that means for the settings:
//!
//! - The log is a ring of `count` segments of `size` bytes, where a message counts as
//!   `4 + topic + payload` bytes. When the active segment is full a new one is started and,
//!   with `count` segments present, the oldest is dropped. A reader whose cursor is in the
//!   dropped segment is moved to the oldest remaining one: the messages in between are lost and
//!   rumqttd only emits a `CursorJump` alert (with `lost: 0` hard-coded) and a warning.
//!   So a subscriber may fall behind by at least `(count - 1) × size` and at most
//!   `count × size` counted bytes before it loses anything.
//! - Memory grows lazily, per filter, with what is published on topics the filter matches, not
//!   with what subscribers have yet to read: a filter that saw enough traffic keeps `count × size`
//!   counted bytes forever, fast subscribers or not. A message costs about 240 bytes of
//!   bookkeeping (its `Publish`, MQTT 5 properties and timestamp) on top of its counted bytes, so
//!   small messages use several times their counted size. A filter that never matched anything
//!   costs nothing beyond an empty segment.
//! - `custom_segment` overrides size and count for filters *matching* a pattern (the
//!   subscriber's filter string is matched as a topic, so `lps/edge/#` covers `lps/edge/#`,
//!   `lps/edge/response/#` and `lps/edge/app/+/set`, but not `#`). If two patterns match, the
//!   one rumqttd happens to iterate last wins: we use one pattern only.
//! - A QoS 1/2 subscriber has at most 100 unacknowledged messages in flight (a constant,
//!   `MAX_INFLIGHT`, in rumqttd's outgoing buffer); `max_outgoing_packet_count` only bounds how
//!   many QoS 0 messages one read forwards (and how many retained messages one subscribe gets).
//!   A slow QoS 1 subscriber is therefore paced at 100 in flight and the rest waits in the log;
//!   neither setting adds a buffer that would keep messages the log has dropped.
//! - `max_inflight_count` (per connection) is how many incoming packets the broker reads from
//!   one socket before handing them to the router; it does not buffer outgoing messages.
//!
//! We size the log for both: our own topics (`mqtt.own_segment_*`, under `base_topic`: the
//! gateway's command subscriptions, replies, state and events) and everything else
//! (`mqtt.segment_*`, plant topics and rule filters).

use super::auth::Users;
use crate::config::{MqttConfig, MqttTls};
use rumqttd::alerts::AlertsLink;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{
    Broker, Config, ConnectionSettings, RouterConfig, SegmentConfig, ServerSettings, TlsConfig,
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
        connection_timeout_ms: 60_000,
        max_payload_size: cfg.max_payload_bytes,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    if !users.is_empty() {
        // With a handler set, rumqttd refuses any CONNECT that does not pass it.
        let users = users.clone();
        connections.set_auth_handler(move |_client_id, name: String, password: String| {
            let users = users.clone();
            async move { users.check(&name, &password) }
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

/// The router's memory and backlog: `mqtt.segment_*` for every filter, `mqtt.own_segment_*` for
/// filters under the base topic (see the module comment for what each setting carries).
fn router_config(cfg: &MqttConfig) -> RouterConfig {
    let own = SegmentConfig {
        max_segment_size: cfg.own_segment_bytes,
        max_segment_count: cfg.own_segment_count,
    };
    RouterConfig {
        max_connections: cfg.max_connections,
        // QoS 0 read batch, and the cap on retained messages one subscribe receives.
        max_outgoing_packet_count: 1000,
        max_segment_size: cfg.segment_bytes,
        max_segment_count: cfg.segment_count,
        custom_segment: Some(HashMap::from([(format!("{}/#", cfg.base_topic), own)])),
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    }
}

/// The backlog a subscriber may fall behind by before it loses messages: at least
/// `(count - 1) × size` counted bytes (`4 + topic + payload` per message).
fn guaranteed_backlog_bytes(size: usize, count: usize) -> usize {
    size.saturating_mul(count.saturating_sub(1))
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

/// Starts the broker and returns the gateway's link into it.
/// Starts the broker with the gateway's link already subscribed to `filters`, so that once a
/// client can connect, no command it sends can be missed.
pub fn start(
    cfg: &MqttConfig,
    listeners: &Listeners,
    filters: &[String],
) -> Result<(LinkTx, LinkRx, AlertsLink), BrokerError> {
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
        router: router_config(cfg),
        v4: Some(v4),
        v5: listeners.v5.map(|addr| {
            HashMap::from([("v5".to_string(), server("mqtt-v5", addr, cfg, &users, None))])
        }),
        metrics: Some(super::alerts::alert_settings()),
        ..Config::default()
    };
    tracing::info!(
        own_topics_bytes = guaranteed_backlog_bytes(cfg.own_segment_bytes, cfg.own_segment_count),
        other_topics_bytes = guaranteed_backlog_bytes(cfg.segment_bytes, cfg.segment_count),
        "MQTT backlog: a subscriber may fall this far behind per filter before it loses messages"
    );
    let mut broker = Broker::new(config);
    // Taken before start(): the alerts link reports every cursor jump (a reader that fell too far
    // behind and lost messages); start() then pushes them once a second.
    let alerts = broker
        .alerts()
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    let (mut link_tx, mut link_rx) = broker
        .link("lps-bridge")
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    // The router runs from Broker::new; the listeners only from start().
    super::link::subscribe(&mut link_tx, &mut link_rx, filters).map_err(BrokerError::Link)?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(err) = broker.start() {
                tracing::error!(%err, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    wait_listening(listeners.v4)?;
    Ok((link_tx, link_rx, alerts))
}

/// The broker binds on its own thread: wait until it listens, so that "started" means "clients
/// can connect". Reads the kernel's socket table where there is one (a probe connection would
/// make the broker log an aborted client); elsewhere tries to connect.
fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listening = match crate::metrics::count_sockets(&[addr.port()], crate::metrics::LISTEN)
        {
            Some(n) => n > 0,
            None => std::net::TcpStream::connect_timeout(
                &loopback(addr),
                std::time::Duration::from_millis(200),
            )
            .is_ok(),
        };
        if listening {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(BrokerError::Bind(
                addr,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the broker did not start listening within 10 s",
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Where to reach a listener bound to `addr` from this machine.
fn loopback(addr: SocketAddr) -> SocketAddr {
    if !addr.ip().is_unspecified() {
        return addr;
    }
    let ip: std::net::IpAddr = match addr {
        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    SocketAddr::new(ip, addr.port())
}
