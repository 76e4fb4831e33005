//! The two HTTP servers: EVE's LPS API and the operator API (REST, SSE, dashboard).

use super::messaging::Mqtt;
use super::Core;
use crate::config::Settings;
use crate::lps::{self, LpsState};
use crate::operator::{self, OperatorState};
use anyhow::Context;
use axum::Router;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The bound listeners, before anything serves on them.
pub(super) struct Listeners {
    pub lps: TcpListener,
    pub lps_addr: SocketAddr,
    pub operator: Option<TcpListener>,
    pub operator_addr: Option<SocketAddr>,
}

async fn bind_one(what: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

pub(super) async fn bind(settings: &Settings) -> anyhow::Result<Listeners> {
    let lps = bind_one("the EVE LPS API", settings.lps_listen).await?;
    let lps_addr = lps.local_addr()?;
    let operator = match settings.operator_listen {
        Some(addr) => Some(bind_one("the operator API", addr).await?),
        None => None,
    };
    let operator_addr = operator.as_ref().map(|l| l.local_addr()).transpose()?;
    Ok(Listeners {
        lps,
        lps_addr,
        operator,
        operator_addr,
    })
}

/// A way in: stops taking connections on `input.stop`, and finishes the requests it has.
fn serve(core: &Core, name: &'static str, listener: TcpListener, router: Router) {
    let stop = core.tasks.input.stop.clone();
    core.tasks.input.spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(err) = result {
            tracing::error!(%err, server = name, "HTTP server failed");
        }
    });
}

pub(super) fn serve_lps(core: &Core, listener: TcpListener) {
    let config = &core.settings.config;
    let state = LpsState {
        store: core.store.clone(),
        token: Arc::from(config.lps.server_token.as_str()),
        disabled: Arc::new(
            config
                .lps
                .disabled_endpoints
                .iter()
                .filter_map(|e| crate::eve::Endpoint::from_name(e))
                .collect(),
        ),
        shutdown: core.tasks.input.stop.clone(),
        streams: core.tasks.input.tracker.clone(),
        signal_burst: config.lps.signal_burst,
        signal_interval: config.lps.signal_interval,
        warned_content_type: Arc::default(),
    };
    let router = lps::router(state, config.lps.max_body_bytes, core.metrics.clone());
    serve(core, "lps", listener, router);
}

/// `ready` is what `/readyz` reports beside the store.
pub(super) fn serve_operator(
    core: &Core,
    mqtt: &Mqtt,
    schedules: crate::schedule::Board,
    listener: TcpListener,
    ready: Value,
) {
    let (settings, config) = (&core.settings, &core.settings.config);
    let addr = listener.local_addr().ok();
    let token =
        (!config.operator.token.is_empty()).then(|| Arc::from(config.operator.token.as_str()));
    if token.is_none() {
        if addr.is_some_and(|a| !a.ip().is_loopback()) {
            tracing::warn!("OPERATOR API WITHOUT A TOKEN on {addr:?}: anyone who reaches it can restart apps and power the node off (operator.allow_unauthenticated = true)");
        } else {
            tracing::info!("operator API without a token: reachable from this machine only");
        }
    }
    let embedded = mqtt.embedded.is_some();
    let state = OperatorState {
        store: core.store.clone(),
        metrics: core.metrics.clone(),
        publisher: mqtt.publisher.clone(),
        profiles: Arc::new(config.profiles.clone()),
        schedules,
        token,
        protect_reads: config.operator.protect_reads,
        shutdown: core.tasks.input.stop.clone(),
        streams: core.tasks.input.tracker.clone(),
        mqtt_ports: Arc::new(
            [
                settings.mqtt_listen,
                settings.mqtt_listen_v5,
                settings.mqtt_tls.as_ref().map(|t| t.0),
            ]
            .into_iter()
            .flatten()
            .filter(|_| embedded)
            .map(|a| a.port())
            .collect(),
        ),
        ready: Arc::new(ready),
    };
    serve(core, "operator", listener, operator::router(state));
}
