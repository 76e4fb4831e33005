//! Wiring only: open the store, bind the listeners, start the broker and the tasks; stop them in
//! order (HTTP and streams first, the store last so in-flight requests still get answers).

use crate::config::Settings;
use crate::lps::{self, LpsState};
use crate::mqtt::{self, topics::Topics};
use crate::state::Limits;
use crate::store::{self, StoreHandle};
use crate::telemetry::publish::{self as telemetry, Telemetry};
use anyhow::Context;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A started gateway: where it listens and how to stop it.
pub struct Running {
    pub lps_addr: SocketAddr,
    pub operator_addr: Option<SocketAddr>,
    pub mqtt_addr: Option<SocketAddr>,
    pub store: StoreHandle,
    shutdown: CancellationToken,
    store_stop: CancellationToken,
    servers: TaskTracker,
    store_task: store::StoreTask,
}

async fn bind(what: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

fn serve(
    tracker: &TaskTracker,
    name: &'static str,
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) {
    tracker.spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(err) = result {
            tracing::error!(%err, server = name, "HTTP server failed");
        }
    });
}

fn operator_router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" }))
}

/// Starts everything; returns once all listeners are bound.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let config = &settings.config;
    let shutdown = CancellationToken::new();
    let store_stop = CancellationToken::new();
    let limits = Limits {
        eve_offline_after_ms: config.lps.eve_offline_after.as_millis() as u64,
        keep_finished_commands: config.store.keep_finished_commands,
    };
    let (store, store_task) = store::start(&config.store.dir, limits, store_stop.clone())
        .with_context(|| format!("cannot open the store in {}", config.store.dir.display()))?;

    let lps_listener = bind("the EVE LPS API", settings.lps_listen).await?;
    let lps_addr = lps_listener.local_addr()?;
    let operator_listener = match settings.operator_listen {
        Some(addr) => Some(bind("the operator API", addr).await?),
        None => None,
    };
    let operator_addr = operator_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;

    let topics = Topics::new(&config.mqtt.base_topic);
    let publisher = mqtt::Publisher::default();
    let (incoming_tx, incoming_rx) = tokio::sync::mpsc::channel(1024);
    let filters = topics.command_filters().to_vec();
    mqtt::start_embedded(&settings, &publisher, filters, incoming_tx)?;
    tokio::spawn(mqtt::run_ingress(
        incoming_rx,
        store.clone(),
        topics.clone(),
        publisher.clone(),
        None,
    ));
    let servers = TaskTracker::new();
    if publisher.is_connected() {
        let features = json!({
            "embedded_broker": true,
            "mqtt5": settings.mqtt_listen_v5.is_some(),
            "signal": !config.lps.disabled_endpoints.iter().any(|e| e == "signal"),
        });
        let telemetry = Telemetry::new(topics, publisher);
        servers.spawn(telemetry::run(
            telemetry,
            store.clone(),
            features,
            shutdown.clone(),
        ));
    }

    let lps_state = LpsState {
        store: store.clone(),
        token: Arc::from(config.lps.server_token.as_str()),
        disabled: Arc::new(config.lps.disabled_endpoints.iter().cloned().collect()),
        shutdown: shutdown.clone(),
        signal_burst: config.lps.signal_burst,
        signal_interval: config.lps.signal_interval,
        warned_content_type: Arc::default(),
    };
    serve(
        &servers,
        "lps",
        lps_listener,
        lps::router(lps_state, config.lps.max_body_bytes),
        shutdown.clone(),
    );
    if let Some(listener) = operator_listener {
        serve(
            &servers,
            "operator",
            listener,
            operator_router(),
            shutdown.clone(),
        );
    }
    servers.close();
    if config.lps.server_token.is_empty() {
        tracing::warn!("lps.server_token is empty: EVE accepts our answers only if its profile_server_token is empty too");
    }
    tracing::info!(lps = %lps_addr, operator = ?operator_addr, mqtt = ?settings.mqtt_listen, store = %config.store.dir.display(), "lps-bridge running");
    Ok(Running {
        lps_addr,
        operator_addr,
        mqtt_addr: settings.mqtt_listen,
        store,
        shutdown,
        store_stop,
        servers,
        store_task,
    })
}

impl Running {
    /// Stops the servers (ending signal streams), then the store.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(5), self.servers.wait())
            .await
            .is_err()
        {
            tracing::warn!("servers did not stop within 5 s");
        }
        self.store_stop.cancel();
        self.store_task.await;
    }
}

/// Runs until `signal` resolves, then shuts down in order.
pub async fn run(
    settings: Settings,
    signal: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let running = start(settings).await?;
    signal.await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
