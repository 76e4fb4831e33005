//! The embedded rumqttd broker. `start()` blocks forever, so it gets its own OS thread; the
//! gateway talks to it through an in-process link taken before the broker starts.

use super::auth::Users;
use crate::config::{MqttConfig, MqttTls};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings, TlsConfig};
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
) -> Result<(LinkTx, LinkRx), BrokerError> {
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
    let mut broker = Broker::new(config);
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
    Ok((link_tx, link_rx))
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
