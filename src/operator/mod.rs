//! Operator HTTP (default 127.0.0.1:8080): the dashboard, the JSON REST API, live updates over
//! Server-Sent Events, Prometheus metrics and health checks.
//!
//! - `GET /` and `/assets/*`: the dashboard (served from the binary)
//! - `GET /api/state` and `/api/{eve,device,apps,apps/{app},profile,profiles,schedules,radio,network,location,commands,commands/{id}}`
//! - `POST /api/{profile,apps/{app},device,radio,network}`: the same bodies and errors as the MQTT command topics
//! - `GET /api/events`: SSE (`event` for `B/events` messages, `state` for the full state at
//!   connect, `patch` for the parts that changed)
//! - `GET /api/openapi.json`, `GET /metrics`, `GET /healthz`, `GET /readyz`
//!
//! Mutations need `Authorization: Bearer <operator.token>` when a token is configured; reads too
//! with `operator.protect_reads`.

mod api;
mod auth;
mod dashboard;
mod events;

use crate::config::ProfileEntry;
use crate::metrics::Metrics;
use crate::store::StoreHandle;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The OpenAPI document of this API, kept in the repo and served as is.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

#[derive(Clone)]
pub struct OperatorState {
    pub store: StoreHandle,
    pub metrics: Arc<Metrics>,
    pub publisher: crate::mqtt::Publisher,
    pub profiles: Arc<Vec<ProfileEntry>>,
    /// The schedules and their next firings (`GET /api/schedules`).
    pub schedules: crate::schedule::Board,
    pub token: Option<Arc<str>>,
    pub protect_reads: bool,
    pub shutdown: CancellationToken,
    /// Where each event stream's task runs (the stop order waits for them).
    pub streams: tokio_util::task::TaskTracker,
    /// What `/readyz` reports beside the store.
    pub ready: Arc<serde_json::Value>,
    /// The embedded broker's listening ports, for the connections gauge.
    pub mqtt_ports: Arc<Vec<u16>>,
}

pub fn router(state: OperatorState) -> Router {
    let reads = Router::new()
        .route("/api/state", get(api::get_state))
        .route("/api/eve", get(api::get_eve))
        .route("/api/device", get(api::get_device))
        .route("/api/apps", get(api::get_apps))
        .route("/api/apps/{app}", get(api::get_app))
        .route("/api/profile", get(api::get_profile))
        .route("/api/profiles", get(api::get_profiles))
        .route("/api/schedules", get(api::get_schedules))
        .route("/api/radio", get(api::get_radio))
        .route("/api/network", get(api::get_network))
        .route("/api/location", get(api::get_location))
        .route("/api/commands", get(api::get_commands))
        .route("/api/commands/{id}", get(api::get_command))
        .route("/api/events", get(events::get_events))
        .route("/metrics", get(api::get_metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_for_reads,
        ));
    let writes = Router::new()
        .route("/api/profile", post(api::post_profile))
        .route("/api/apps/{app}", post(api::post_app))
        .route("/api/device", post(api::post_device))
        .route("/api/radio", post(api::post_radio))
        .route("/api/network", post(api::post_network))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_for_writes,
        ));
    let open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(api::get_readyz))
        .route("/api/openapi.json", get(api::get_openapi))
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset));
    reads
        .merge(writes)
        .merge(open)
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
}

/// Every (method, path) the router serves, for the OpenAPI check.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/state"),
    ("get", "/api/eve"),
    ("get", "/api/device"),
    ("get", "/api/apps"),
    ("get", "/api/apps/{app}"),
    ("get", "/api/profile"),
    ("get", "/api/profiles"),
    ("get", "/api/schedules"),
    ("get", "/api/radio"),
    ("get", "/api/network"),
    ("get", "/api/location"),
    ("get", "/api/commands"),
    ("get", "/api/commands/{id}"),
    ("get", "/api/events"),
    ("get", "/metrics"),
    ("post", "/api/profile"),
    ("post", "/api/apps/{app}"),
    ("post", "/api/device"),
    ("post", "/api/radio"),
    ("post", "/api/network"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/api/openapi.json"),
    ("get", "/"),
    ("get", "/assets/{file}"),
];
