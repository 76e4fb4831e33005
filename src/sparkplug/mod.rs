//! A Sparkplug B edge node (Eclipse Sparkplug 3.0): the EVE node is the edge node, each app a
//! device. Births declare every metric with its type, data follows by exception, NCMD / DCMD
//! writes become the same intents as the MQTT command topics, NDEATH is the session's Will.
//!
//! - `payload`: our own Sparkplug B protobuf (proto/sparkplug), values and metric writes.
//! - `metrics`: the metric table (names, datatypes, writable, aliases) and values from the state.
//! - `node`: bdSeq / seq, births, DATA by exception, DDEATH (pure).
//! - `host`: the primary host's STATE.
//! - `writes`: metric writes → intents (the one seam into the command layer).
//! - `session`: the MQTT client and its loop.

pub mod host;
pub mod metrics;
pub mod node;
pub mod payload;
mod session;
pub mod writes;

pub use session::Broker;

use crate::config::Settings;
use crate::store::StoreHandle;
use crate::tasks::Tasks;

/// Where the edge node connects, from the config (`None` when `[sparkplug]` is off).
pub fn broker(settings: &Settings) -> Option<Broker> {
    let cfg = &settings.config;
    if !cfg.sparkplug.enabled {
        return None;
    }
    let external = cfg.mqtt.external.as_ref();
    if cfg.sparkplug.uses_external(external.is_some()) {
        return external.cloned().map(Broker::External);
    }
    let mut addr = settings.mqtt_listen?;
    // A wildcard listen address is reached over loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Some(Broker::Embedded {
        addr,
        // Always: its client id is reserved, and the broker's front door lets a reserved id in
        // only with the gateway's own login (users configured or not).
        login: true,
    })
}

/// Runs the edge node until `tasks.output.stop` (then NDEATH and DISCONNECT).
pub async fn run(settings: Settings, broker: Broker, store: StoreHandle, tasks: Tasks) {
    tracing::info!(group = %settings.config.sparkplug.group_id, broker = ?matches!(broker, Broker::External(_)).then_some("external").unwrap_or("embedded"), "Sparkplug B edge node starting");
    session::run(settings.config.sparkplug.clone(), broker, store, tasks).await;
}
