//! Wiring only: open the store, bind the listeners, start the broker and the tasks; stop them in
//! order (HTTP and streams first, the store last so in-flight requests still get answers).

use crate::config::Settings;
use crate::lps::{self, LpsState};
use crate::metrics::Metrics;
use crate::mqtt::{self, topics::Topics};
use crate::operator::{self, OperatorState};
use crate::state::Limits;
use crate::store::{self, StoreHandle};
use crate::telemetry::publish::{self as telemetry, Telemetry};
use anyhow::Context;
use axum::Router;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A started gateway: where it listens and how to stop it.
pub struct Running {
    pub lps_addr: SocketAddr,
    pub operator_addr: Option<SocketAddr>,
    pub mqtt_addr: Option<SocketAddr>,
    pub store: StoreHandle,
    /// What the gateway publishes through, and its embedded broker link's health.
    pub publisher: mqtt::Publisher,
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

/// The config checked the way start-up needs it, binding nothing: the config's own checks, then
/// each subsystem's `prepare`. `run`, `demo` and `check-config` all come through here.
pub fn prepare(config: crate::config::Config) -> Result<Settings, crate::config::ConfigError> {
    let settings = config.validate()?;
    mqtt::prepare(&settings.config.mqtt)?;
    crate::rules::prepare(&settings.config.rules)?;
    crate::schedule::prepare(&settings.config.schedules)?;
    Ok(settings)
}

/// Starts everything; returns once all listeners are bound.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let config = &settings.config;
    // Bad rules are refused before anything binds (`prepare` ran the same check).
    let rules = crate::rules::prepare(&config.rules)?;
    let schedules = crate::schedule::prepare(&config.schedules)?;
    let shutdown = CancellationToken::new();
    let store_stop = CancellationToken::new();
    let limits = Limits {
        eve_offline_after_ms: config.lps.eve_offline_after.as_millis() as u64,
        keep_finished_commands: config.store.keep_finished_commands,
        settle_quiet_ms: config.profile_switch.quiet_period.as_millis() as u64,
        settle_timeout_ms: config.profile_switch.timeout.as_millis() as u64,
        profile_apps: Arc::new(
            config
                .profiles
                .iter()
                .filter_map(|p| p.apps.clone().map(|apps| (p.name.clone(), apps)))
                .collect(),
        ),
        profiles: config.profiles.iter().map(|p| p.name.clone()).collect(),
    };
    let (store, store_task) = store::start(&config.store.dir, limits, store_stop.clone())
        .with_context(|| format!("cannot open the store in {}", config.store.dir.display()))?;
    let metrics = Arc::new(Metrics::default());

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

    // MQTT: every broker feeds one ingress; rule topics are handed on to the rules task.
    let topics = Topics::new(&config.mqtt.base_topic);
    let publisher = mqtt::Publisher::default();
    let (incoming_tx, incoming_rx) = mpsc::channel(1024);
    let rule_filters = rules.filters();
    // No two subscriptions may overlap: a broker delivers a message once per matching one.
    let filters = crate::rules::disjoint_cover(
        topics
            .command_filters()
            .into_iter()
            .chain(rule_filters.iter().cloned())
            .chain(mqtt::state_guard::filters(&topics)),
    );
    mqtt::state_guard::register(&topics, &publisher);
    let losses = mqtt::LossReport {
        metrics: metrics.clone(),
        store: store.clone(),
    };
    let embedded = mqtt::start_embedded(
        &settings,
        &publisher,
        filters.clone(),
        incoming_tx.clone(),
        losses,
    )?;
    let external = match &config.mqtt.external {
        Some(ext) => Some(mqtt::external::spawn(
            ext,
            &topics,
            filters,
            &publisher,
            incoming_tx,
            shutdown.clone(),
        )?),
        None => None,
    };
    let servers = TaskTracker::new();
    let rule_route = if rule_filters.is_empty() {
        None
    } else {
        let (rules_tx, rules_rx) = mpsc::channel(1024);
        servers.spawn(crate::rules::run(
            rules,
            rules_rx,
            store.clone(),
            shutdown.clone(),
        ));
        Some((rule_filters, rules_tx))
    };
    tokio::spawn(mqtt::run_ingress(
        incoming_rx,
        store.clone(),
        topics.clone(),
        publisher.clone(),
        rule_route,
        metrics.clone(),
    ));
    let board = if schedules.is_empty() {
        crate::schedule::Board::fixed(&[])
    } else {
        let (board, task) = crate::schedule::spawn(
            crate::schedule::Planner::new(schedules),
            store.clone(),
            publisher.clone(),
            topics.topic("schedules"),
            crate::schedule::system_clock(),
            crate::schedule::POLL_EVERY,
            shutdown.clone(),
        );
        servers.spawn(async move {
            let _ = task.await;
        });
        board
    };
    let external_broker = external.is_some();
    if let Some(external) = external {
        // Stopping waits for the retained offline state and DISCONNECT (a few seconds at most).
        servers.spawn(external.stopped());
    }
    let features = json!({
        "embedded_broker": embedded,
        "external_broker": external_broker,
        "mqtt5": settings.mqtt_listen_v5.is_some(),
        "mqtt_tls": settings.mqtt_tls.is_some(),
        "mqtt_auth": !config.mqtt.users.is_empty(),
        "rules": config.rules.len(),
        "signal": !config.lps.disabled_endpoints.iter().any(|e| e == "signal"),
        "operator": operator_addr.is_some(),
        "sparkplug": config.sparkplug.enabled,
    });
    if embedded || external_broker {
        let telemetry = Telemetry::new(topics, publisher.clone());
        servers.spawn(telemetry::run(
            telemetry,
            store.clone(),
            features.clone(),
            shutdown.clone(),
        ));
    }

    // Sparkplug B edge node: its own MQTT client; NDEATH and DISCONNECT on shutdown.
    if let Some(broker) = crate::sparkplug::broker(&settings) {
        servers.spawn(crate::sparkplug::run(
            settings.clone(),
            broker,
            store.clone(),
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
        lps::router(lps_state, config.lps.max_body_bytes, metrics.clone()),
        shutdown.clone(),
    );
    if let Some(listener) = operator_listener {
        let token =
            (!config.operator.token.is_empty()).then(|| Arc::from(config.operator.token.as_str()));
        if token.is_none() {
            if operator_addr.is_some_and(|a| !a.ip().is_loopback()) {
                tracing::warn!("OPERATOR API WITHOUT A TOKEN on {operator_addr:?}: anyone who reaches it can restart apps and power the node off (operator.allow_unauthenticated = true)");
            } else {
                tracing::info!("operator API without a token: reachable from this machine only");
            }
        }
        let operator_state = OperatorState {
            store: store.clone(),
            metrics: metrics.clone(),
            publisher: publisher.clone(),
            profiles: Arc::new(config.profiles.clone()),
            schedules: board,
            token,
            protect_reads: config.operator.protect_reads,
            shutdown: shutdown.clone(),
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
            ready: Arc::new(json!({
                "lps": lps_addr.to_string(),
                "mqtt": settings.mqtt_listen.map(|a| a.to_string()),
                "features": features,
            })),
        };
        serve(
            &servers,
            "operator",
            listener,
            operator::router(operator_state),
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
        publisher,
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
