//! The EVE-facing Local Profile Server API (plain HTTP, protobuf bodies).
//!
//! - `GET  /api/v1/local_profile` → 200 `LocalProfile` (the desired profile; "" = no override)
//! - `POST /api/v1/radio`         `RadioStatus` → 204, or 200 `RadioConfig` once an operator set it
//! - `POST /api/v1/appinfo`       `LocalAppInfoList` → 200 `LocalAppCmdList` while commands are open, else 204
//! - `POST /api/v1/appbootinfo`   `AppBootInfoList` → 204, or 200 `AppBootConfigList` (full state)
//! - `POST /api/v1/devinfo`       `LocalDevInfo` → 200 `LocalDevCmd` (one at a time), else 204
//! - `POST /api/v1/location`      `ZInfoLocation` → 200
//! - `POST /api/v1/network`       `NetworkInfo` → 204, or 200 `LocalNetworkConfig` (full state)
//! - `GET  /api/v1/signal`        NDJSON stream of `Signal`
//!
//! Handlers only decode, submit an input to the store and encode the reply it computed; the
//! 200/204 decision is made by the state machine. 400 for an undecodable body, 413 over
//! `lps.max_body_bytes`, 404 only for endpoints disabled in config, 500 only while the gateway
//! shuts down. While the store cannot write, answers come from what is durable (see
//! `store::actor`), so EVE keeps getting its pending commands.

pub mod convert;
mod handlers;
mod pacer;
pub mod respond;
pub mod signal;

use crate::eve::Endpoint;
use crate::store::StoreHandle;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the handlers share.
#[derive(Clone)]
pub struct LpsState {
    pub store: StoreHandle,
    pub token: Arc<str>,
    pub disabled: Arc<BTreeSet<Endpoint>>,
    pub shutdown: CancellationToken,
    /// Where each signal stream's task runs (the stop order waits for them).
    pub streams: tokio_util::task::TaskTracker,
    pub signal_burst: u32,
    pub signal_interval: Duration,
    /// Logged once: a POST whose Content-Type is not EVE's.
    pub warned_content_type: Arc<AtomicBool>,
}

/// Counts every request by endpoint and status for `/metrics`.
async fn count(
    axum::extract::State(metrics): axum::extract::State<Arc<crate::metrics::Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let endpoint = request
        .uri()
        .path()
        .strip_prefix("/api/v1/")
        .and_then(Endpoint::from_name);
    let response = next.run(request).await;
    metrics.count_eve(endpoint, response.status().as_u16());
    response
}

pub fn router(
    state: LpsState,
    max_body_bytes: usize,
    metrics: Arc<crate::metrics::Metrics>,
) -> Router {
    Router::new()
        .route(
            Endpoint::LocalProfile.path(),
            get(handlers::get_local_profile),
        )
        .route(Endpoint::Radio.path(), post(handlers::post_radio))
        .route(Endpoint::AppInfo.path(), post(handlers::post_appinfo))
        .route(
            Endpoint::AppBootInfo.path(),
            post(handlers::post_appbootinfo),
        )
        .route(Endpoint::DevInfo.path(), post(handlers::post_devinfo))
        .route(Endpoint::Location.path(), post(handlers::post_location))
        .route(Endpoint::Network.path(), post(handlers::post_network))
        .route(Endpoint::Signal.path(), get(handlers::get_signal))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(metrics, count))
        .with_state(state)
}
