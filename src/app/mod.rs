//! Wiring only: [`prepare`] checks the config and compiles what needs compiling, binding
//! nothing; [`start`] opens the store, binds the listeners and starts each subsystem with what
//! `prepare` produced; [`Running::stop`] stops them in order (see `stop.rs`).

mod http;
mod messaging;
mod outputs;
mod stop;

pub use stop::{Running, STOP_TIMEOUT};

use crate::config::{Config, ConfigError, Settings};
use crate::metrics::Metrics;
use crate::state::Limits;
use crate::store::{self, StoreHandle};
use crate::tasks::Tasks;
use anyhow::Context;
use serde_json::{json, Value};
use std::sync::Arc;

/// A config checked the way start-up needs it, with what each subsystem compiled from it.
#[derive(Debug)]
pub struct Prepared {
    pub settings: Settings,
    /// `[[rules]]` compiled.
    pub rules: crate::rules::Engine,
    /// `[[schedules]]` compiled.
    pub schedules: Vec<crate::schedule::Schedule>,
}

/// The config's own checks, then each subsystem's `prepare`, binding nothing. `run`, `demo` and
/// `check-config` all come through here; `start` takes the result as it is.
pub fn prepare(config: Config) -> Result<Prepared, ConfigError> {
    let settings = config.validate()?;
    crate::mqtt::prepare(&settings.config.mqtt)?;
    let rules = crate::rules::prepare(&settings.config.rules)?;
    let schedules = crate::schedule::prepare(&settings.config.schedules)?;
    Ok(Prepared {
        settings,
        rules,
        schedules,
    })
}

/// What every step of [`start`] after the store shares.
struct Core {
    settings: Settings,
    store: StoreHandle,
    metrics: Arc<Metrics>,
    tasks: Tasks,
}

/// Starts everything; returns once all listeners are bound.
pub async fn start(prepared: Prepared) -> anyhow::Result<Running> {
    let Prepared {
        settings,
        rules,
        schedules,
    } = prepared;
    let store_stop = tokio_util::sync::CancellationToken::new();
    let (store, store_task) = open_store(&settings, store_stop.clone())?;
    let core = Core {
        settings,
        store,
        metrics: Arc::new(Metrics::default()),
        tasks: Tasks::default(),
    };
    // Bound before the broker starts, so a taken port fails start-up with nothing running.
    let listeners = http::bind(&core.settings).await?;
    let mqtt = messaging::start(&core, rules)?;
    let board = outputs::schedules(&core, &mqtt, schedules);
    let features = features(&core.settings, &mqtt, listeners.operator_addr.is_some());
    outputs::telemetry(&core, &mqtt, features.clone());
    outputs::sparkplug(&core);
    http::serve_lps(&core, listeners.lps);
    let operator_addr = listeners.operator_addr;
    if let Some(operator) = listeners.operator {
        let ready = json!({
            "lps": listeners.lps_addr.to_string(),
            "mqtt": core.settings.mqtt_listen.map(|a| a.to_string()),
            "features": features,
        });
        http::serve_operator(&core, &mqtt, board, operator, ready);
    }
    let config = &core.settings.config;
    if config.lps.server_token.is_empty() {
        tracing::warn!("lps.server_token is empty: EVE accepts our answers only if its profile_server_token is empty too");
    }
    tracing::info!(lps = %listeners.lps_addr, operator = ?operator_addr, mqtt = ?core.settings.mqtt_listen, store = %config.store.dir.display(), "lps-bridge running");
    Ok(Running {
        lps_addr: listeners.lps_addr,
        operator_addr,
        mqtt_addr: core.settings.mqtt_listen,
        store: core.store,
        publisher: mqtt.publisher,
        tasks: core.tasks,
        embedded: mqtt.embedded,
        store_stop,
        store_task,
    })
}

/// The store, opened with the limits the config sets.
fn open_store(
    settings: &Settings,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<(StoreHandle, store::StoreTask)> {
    let config = &settings.config;
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
    store::start(&config.store.dir, limits, stop)
        .with_context(|| format!("cannot open the store in {}", config.store.dir.display()))
}

/// What is switched on, as `/readyz` and telemetry report it.
fn features(settings: &Settings, mqtt: &messaging::Mqtt, operator: bool) -> Value {
    let config = &settings.config;
    json!({
        "embedded_broker": mqtt.embedded.is_some(),
        "external_broker": mqtt.external,
        "mqtt5": settings.mqtt_listen_v5.is_some(),
        "mqtt_tls": settings.mqtt_tls.is_some(),
        "mqtt_auth": !config.mqtt.users.is_empty(),
        "rules": config.rules.len(),
        "signal": !config.lps.disabled_endpoints.iter().any(|e| e == "signal"),
        "operator": operator,
        "sparkplug": config.sparkplug.enabled,
    })
}

/// Runs until `signal` resolves, then shuts down in order.
pub async fn run(
    prepared: Prepared,
    signal: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let running = start(prepared).await?;
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
