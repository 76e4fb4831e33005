//! The embedded rumqttd broker: its router, and each listener on a thread of ours (see
//! `listener`); the gateway talks to it through an in-process link taken before any listener
//! starts.
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
use super::door::Policy;
use super::fair_share::FairShare;
use super::topics::Topics;
use crate::config::{MqttConfig, MqttTls};
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::{v4::V4, v5::V5};
use rumqttd::{
    ConnectionSettings, Router, RouterConfig, SegmentConfig, Server, ServerSettings, TlsConfig,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

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
                // The door judged its clients already: this is the TLS listener, or a local
                // process on an internal port.
                if !users.check(&name, &password) {
                    tracing::warn!(%client_id, user = %name, "MQTT CONNECT refused by the broker: wrong user name or password");
                    return false;
                }
                match users.client_id_allowed(&name, &client_id) {
                    Ok(()) => true,
                    Err(why) => {
                        tracing::warn!(%client_id, user = %name, "MQTT CONNECT refused by the broker: {why}");
                        false
                    }
                }
            }
        });
    }
    // rumqttd sleeps this long after every accept (tokio rounds 1 ms up to ~2 ms), which caps a
    // listener near 500 accepts/s. The internal listeners behind the door go without it: the
    // door sends at most door::HANDSHAKES connections at a time, well inside the listener's
    // backlog (a full backlog is what made descriptors linger when this was first tried). The
    // TLS listener takes clients directly, so it keeps the pause.
    let next_connection_delay_ms = if tls.is_some() { 1 } else { 0 };
    ServerSettings {
        name: name.into(),
        listen,
        tls,
        next_connection_delay_ms,
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

/// A free port on 127.0.0.1 for an internal listener (rumqttd binds it itself and cannot
/// report an ephemeral port, so we choose one; nothing else binds it in between in practice,
/// and if something did, the listener's start fails with a clear error).
fn internal_address() -> Result<SocketAddr, BrokerError> {
    let any: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    std::net::TcpListener::bind(any)
        .and_then(|l| l.local_addr())
        .map_err(|e| BrokerError::Bind(any, e))
}

static NEXT_ROUTER_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A started embedded broker.
pub struct Started {
    /// The name of the router's thread (`router-<id>`), where rumqttd logs what it drops.
    pub router_thread: String,
    /// The gateway's link, subscribed: (client id, tx, rx).
    pub link: (String, LinkTx, LinkRx),
    /// Builds another link into the same router (after the first was lost).
    pub connect: super::link::Connect,
    pub auditors: Vec<super::listener::Auditor>,
}

/// Starts the broker with the gateway's link already subscribed to `filters`, so that once a
/// client can connect, no command it sends can be missed. The plain listeners are our doors
/// (`door`) in front of rumqttd on internal loopback ports; TLS is rumqttd's own listener.
pub fn start(
    cfg: &MqttConfig,
    listeners: &Listeners,
    filters: &[String],
    fair: FairShare,
) -> Result<Started, BrokerError> {
    let users = Users::new(&cfg.users).map_err(BrokerError::Config)?;
    super::door::check_policy(cfg, listeners.tls.as_ref().map(|t| t.0))
        .map_err(BrokerError::Config)?;
    // Bound now (not when the door starts), so a taken address is reported at start.
    let bind = |addr: SocketAddr| {
        std::net::TcpListener::bind(addr).map_err(|e| BrokerError::Bind(addr, e))
    };
    let v4_door = bind(listeners.v4)?;
    let v5_door = listeners.v5.map(bind).transpose()?;
    let v4_internal = internal_address()?;
    let v5_internal = listeners.v5.map(|_| internal_address()).transpose()?;
    let tls = match &listeners.tls {
        Some((addr, tls)) => {
            check_tls(tls)?;
            check_free(*addr)?;
            let rustls = TlsConfig::Rustls {
                capath: None,
                certpath: tls.cert_file.display().to_string(),
                keypath: tls.key_file.display().to_string(),
            };
            Some(server("mqtt-tls", *addr, cfg, &users, Some(rustls)))
        }
        None => None,
    };
    // Unique per broker in the process: the router thread is named after it, and losses are
    // attributed by that name (`alerts`).
    let router_id = NEXT_ROUTER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        own_topics_bytes = guaranteed_backlog_bytes(cfg.own_segment_bytes, cfg.own_segment_count),
        other_topics_bytes = guaranteed_backlog_bytes(cfg.segment_bytes, cfg.segment_count),
        "MQTT backlog: a subscriber may fall this far behind per filter before it loses messages"
    );
    // What Broker::new and Broker::start do, with the listeners on threads of ours.
    let router_thread = format!("router-{router_id}");
    // rumqttd's router thread has no stop in 0.20: `Router::run` loops until its channel's
    // `recv` fails, and the router keeps a sender to that channel itself, so that never
    // happens. It ends with the process (the stop order hands it everything first, see
    // `app::stop`).
    let router_tx = Router::new(router_id, router_config(cfg)).spawn();
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
    let policy = Arc::new(Policy {
        users: users.clone(),
        allow_anonymous: cfg.allow_anonymous,
        loopback_is_remote: cfg.test_loopback_is_remote,
        connect_timeout: cfg.connect_timeout,
        // rumqttd judges the payload limit itself; this only bounds what the door buffers.
        max_packet: cfg.max_payload_bytes.saturating_add(128 * 1024),
        topics: Topics::new(&cfg.base_topic),
        fair: fair.clone(),
    });
    fair.spawn_expiry();
    let mut auditors = Vec::new();
    let internal = |name: &str, addr: SocketAddr| server(name, addr, cfg, &users, None);
    let spawn_failed =
        |e: std::io::Error| BrokerError::Link(format!("cannot start the MQTT door: {e}"));
    let auditor = super::listener::spawn(
        "mqtt-v4",
        v4_internal.port(),
        Server::new(internal("mqtt-v4", v4_internal), router_tx.clone(), V4),
        false,
    )
    .map_err(BrokerError::Link)?;
    let front = super::door::spawn("mqtt-v4", v4_door, 4, v4_internal, policy.clone())
        .map_err(spawn_failed)?;
    auditors.push(auditor.with_front(front));
    if let (Some(door), Some(addr)) = (v5_door, v5_internal) {
        let auditor = super::listener::spawn(
            "mqtt-v5",
            addr.port(),
            Server::new(internal("mqtt-v5", addr), router_tx.clone(), V5),
            false,
        )
        .map_err(BrokerError::Link)?;
        let front =
            super::door::spawn("mqtt-v5", door, 5, addr, policy.clone()).map_err(spawn_failed)?;
        auditors.push(auditor.with_front(front));
    }
    if let Some(settings) = tls {
        let port = settings.listen.port();
        let server = Server::new(settings, router_tx.clone(), V4);
        auditors.push(
            super::listener::spawn("mqtt-tls", port, server, true).map_err(BrokerError::Link)?,
        );
    }
    if let Some(note) =
        super::door::startup_note(cfg.users.len(), cfg.allow_anonymous, listeners.v4)
    {
        tracing::warn!("{note}");
    }
    Ok(Started {
        router_thread,
        link: (id, link_tx, link_rx),
        connect,
        auditors,
    })
}
