//! One handler per LPS endpoint: decode → submit → encode.

use super::respond::{self, PROTO_CONTENT_TYPE};
use super::{convert, signal, LpsState};
use crate::eve::info::ZInfoLocation;
use crate::eve::profile::{
    AppBootInfoList, LocalAppInfoList, LocalDevInfo, LocalProfile, NetworkInfo, RadioStatus,
};
use crate::eve::Endpoint;
use crate::state::{poll, Input};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use prost::Message;
use std::sync::atomic::Ordering;

/// Checks the endpoint is enabled and the body decodes; the error is the finished response.
fn decode<M: Message + Default>(
    state: &LpsState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<M, Box<Response>> {
    enabled(state, endpoint)?;
    let endpoint = endpoint.name();
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            tracing::warn!(endpoint, "request body over lps.max_body_bytes refused");
            Box::new(respond::error(
                status,
                format!("{endpoint}: request body is larger than lps.max_body_bytes"),
            ))
        } else {
            Box::new(respond::error(
                status,
                format!("{endpoint}: cannot read request body: {rejection}"),
            ))
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(PROTO_CONTENT_TYPE)
        && !state.warned_content_type.swap(true, Ordering::Relaxed)
    {
        // EVE always sends its type; the body is what matters, so accept and say so once.
        tracing::warn!(
            endpoint,
            content_type,
            "POST without Content-Type {PROTO_CONTENT_TYPE}; accepted (logged once)"
        );
    }
    M::decode(body).map_err(|err| {
        tracing::warn!(endpoint, %err, "undecodable protobuf body");
        Box::new(respond::error(
            StatusCode::BAD_REQUEST,
            format!(
                "{endpoint}: body is not a valid {}: {err}",
                std::any::type_name::<M>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("message")
            ),
        ))
    })
}

/// 404 for an endpoint `lps.disabled_endpoints` lists.
fn enabled(state: &LpsState, endpoint: Endpoint) -> Result<(), Box<Response>> {
    if state.disabled.contains(&endpoint) {
        return Err(Box::new(respond::error(
            StatusCode::NOT_FOUND,
            format!("endpoint {endpoint} is disabled in config"),
        )));
    }
    Ok(())
}

/// The store's answer to one of EVE's requests, typed by the request.
async fn submit<I: Input>(state: &LpsState, request: I) -> Result<I::Reply, Box<Response>> {
    state.store.submit(request).await.map_err(|err| {
        tracing::error!(%err, "store refused an EVE request");
        Box::new(respond::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("store unavailable: {err}"),
        ))
    })
}

macro_rules! try_response {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return *response,
        }
    };
}

pub async fn get_local_profile(State(state): State<LpsState>) -> Response {
    try_response!(enabled(&state, Endpoint::LocalProfile));
    let profile = try_response!(submit(&state, poll::LocalProfile).await);
    respond::ok(&LocalProfile {
        local_profile: profile,
        server_token: state.token.to_string(),
    })
}

pub async fn post_radio(
    State(state): State<LpsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let msg: RadioStatus = try_response!(decode(&state, Endpoint::Radio, &headers, body));
    match try_response!(submit(&state, convert::radio_request(&msg)).await) {
        Some(silence) => respond::ok(&convert::radio_config(&state.token, silence)),
        None => respond::no_content(),
    }
}

pub async fn post_appinfo(
    State(state): State<LpsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let msg: LocalAppInfoList = try_response!(decode(&state, Endpoint::AppInfo, &headers, body));
    let list = try_response!(submit(&state, convert::app_info_request(&msg)).await);
    if list.is_empty() {
        respond::no_content()
    } else {
        respond::ok(&convert::app_commands(&state.token, &list))
    }
}

pub async fn post_appbootinfo(
    State(state): State<LpsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let msg: AppBootInfoList = try_response!(decode(&state, Endpoint::AppBootInfo, &headers, body));
    match try_response!(submit(&state, convert::app_boot_request(&msg)).await) {
        Some(entries) => respond::ok(&convert::boot_configs(&state.token, &entries)),
        None => respond::no_content(),
    }
}

pub async fn post_devinfo(
    State(state): State<LpsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let msg: LocalDevInfo = try_response!(decode(&state, Endpoint::DevInfo, &headers, body));
    match try_response!(submit(&state, convert::dev_info_request(&msg)).await) {
        Some((timestamp, action)) => {
            respond::ok(&convert::dev_command(&state.token, timestamp, action))
        }
        None => respond::no_content(),
    }
}

pub async fn post_location(
    State(state): State<LpsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let msg: ZInfoLocation = try_response!(decode(&state, Endpoint::Location, &headers, body));
    try_response!(submit(&state, convert::location_request(&msg)).await);
    respond::ok_empty()
}

pub async fn post_network(
    State(state): State<LpsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let msg: NetworkInfo = try_response!(decode(&state, Endpoint::Network, &headers, body));
    match try_response!(submit(&state, convert::network_request(&msg)).await) {
        Some(ports) => respond::ok(&convert::network_config(&state.token, &ports)),
        None => respond::no_content(),
    }
}

pub async fn get_signal(State(state): State<LpsState>) -> Response {
    try_response!(enabled(&state, Endpoint::Signal));
    try_response!(submit(&state, poll::Signal).await);
    signal::stream(state)
}
