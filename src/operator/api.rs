//! REST handlers: reads come from the snapshot, mutations go through the same parser and the same
//! store path as MQTT commands, with the same error wording.

use super::OperatorState;
use crate::command::{self, reply_payload, CommandError, PayloadError, Target};
use crate::state::resolve::resolve_app;
use crate::state::Refusal;
use crate::store::NotStored;
use crate::telemetry::views;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "status": "error", "error": text.into() })),
    )
        .into_response()
}

pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such path; see /api/openapi.json")
}

/// A known path with another method: say which methods it takes (axum adds the `Allow` header).
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    // `{param}` in a route matches one path segment.
    let matches = |route: &str| {
        let (r, p): (Vec<&str>, Vec<&str>) =
            (route.split('/').collect(), path.split('/').collect());
        r.len() == p.len()
            && r.iter()
                .zip(&p)
                .all(|(r, p)| r == p || (r.starts_with('{') && !p.is_empty()))
    };
    let mut allowed: Vec<String> = Vec::new();
    for (m, route) in super::ROUTES {
        let m = m.to_ascii_uppercase();
        if matches(route) && !allowed.contains(&m) {
            allowed.push(m);
        }
    }
    if allowed.iter().any(|m| m == "GET") {
        allowed.push("HEAD".into());
    }
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({
            "status": "error",
            "error": format!("{method} is not allowed on {path}; use {}", allowed.join(" or ")),
            "allowed": allowed,
        })),
    )
        .into_response()
}

pub async fn get_state(State(s): State<OperatorState>) -> Json<Value> {
    Json(views::full(&s.store.snapshot()))
}

pub async fn get_eve(State(s): State<OperatorState>) -> Json<Value> {
    Json(views::eve(&s.store.snapshot()))
}

pub async fn get_device(State(s): State<OperatorState>) -> Json<Value> {
    Json(views::device(&s.store.snapshot()))
}

pub async fn get_apps(State(s): State<OperatorState>) -> Json<Value> {
    Json(Value::Array(
        views::apps(&s.store.snapshot())
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
    ))
}

pub async fn get_app(State(s): State<OperatorState>, Path(app): Path<String>) -> Response {
    let state = s.store.snapshot();
    let Some(apps) = state.reports.apps.as_deref() else {
        return error(StatusCode::NOT_FOUND, "EVE has not reported its apps yet");
    };
    match resolve_app(&app, Some(apps)) {
        Ok(r) => {
            let report = apps
                .iter()
                .find(|a| a.id.eq_ignore_ascii_case(&r.target.id));
            let info = report.map(|a| a.info.clone()).unwrap_or(Value::Null);
            Json(views::app(&state, &r.target.id, &r.target.name, &info)).into_response()
        }
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

pub async fn get_profile(State(s): State<OperatorState>) -> Json<Value> {
    Json(views::profile(&s.store.snapshot()))
}

pub async fn get_profiles(State(s): State<OperatorState>) -> Json<Value> {
    Json(json!(s.profiles.as_slice()))
}

/// Each schedule with its next firing and its last outcome (the same JSON as `B/schedules`).
pub async fn get_schedules(State(s): State<OperatorState>) -> Json<Value> {
    Json((*s.schedules.current()).clone())
}

pub async fn get_radio(State(s): State<OperatorState>) -> Json<Value> {
    Json(views::radio(&s.store.snapshot()))
}

pub async fn get_network(State(s): State<OperatorState>) -> Json<Value> {
    Json(views::network(&s.store.snapshot()))
}

pub async fn get_location(State(s): State<OperatorState>) -> Json<Value> {
    Json(views::location(&s.store.snapshot()))
}

#[derive(Deserialize)]
pub struct CommandsQuery {
    limit: Option<String>,
}

/// The command log, newest first.
pub async fn get_commands(
    State(s): State<OperatorState>,
    Query(q): Query<CommandsQuery>,
) -> Response {
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "limit must be a non-negative integer, e.g. ?limit=20",
            );
        }
    };
    let state = s.store.snapshot();
    Json(Value::Array(
        state
            .commands
            .values()
            .rev()
            .take(limit)
            .map(views::command)
            .collect(),
    ))
    .into_response()
}

pub async fn get_command(State(s): State<OperatorState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("'{id}' is not a command id (a positive integer)"),
        );
    };
    match s.store.snapshot().commands.get(&id) {
        Some(cmd) => Json(views::command(cmd)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no command {id} in the log")),
    }
}

pub async fn get_metrics(State(s): State<OperatorState>) -> Response {
    let now_ms = views::unix_ms_now();
    if let Some(n) = crate::metrics::established_connections(&s.mqtt_ports) {
        s.metrics
            .mqtt_connections
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }
    s.metrics.mqtt_messages_out.store(
        s.publisher.published(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut text = s
        .metrics
        .render(&s.store.snapshot(), &s.store.write_stats, now_ms);
    let facts = crate::metrics::BrokerFacts {
        link_up: s.publisher.link().map(|l| l.is_up()),
        link_reconnects: s.publisher.link().map_or(0, |l| l.reconnects()),
        publish_dropped: s.publisher.dropped(),
        sockets: s.publisher.socket_audits().await,
        fd_soft_limit: crate::descriptors::soft_limit(),
    };
    crate::metrics::render_broker(&mut text, &facts);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub async fn get_readyz(State(s): State<OperatorState>) -> Response {
    let mut body = (*s.ready).clone();
    let status = s.store.status();
    let store_ok = if !s.store.is_alive() {
        body["store"] = json!("closed");
        false
    } else if let Some(reason) = status.reason() {
        // Not ready while writes are refused: EVE is still served, but no command can be taken.
        body["store"] = json!("read-only");
        body["store_reason"] = json!(reason);
        false
    } else {
        body["store"] = json!("open");
        true
    };
    // Without its link into the embedded broker the gateway neither hears commands nor answers.
    let link_ok = match s.publisher.link() {
        Some(link) => {
            body["mqtt_link"] = json!(if link.is_up() { "up" } else { "down" });
            link.is_up()
        }
        None => true,
    };
    let code = if store_ok && link_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

pub async fn get_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

/// Parses like the MQTT topic, submits, and answers like the MQTT reply.
async fn mutate(s: &OperatorState, target: Target, body: &[u8]) -> Response {
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        command::Parsed {
            intent: Err(PayloadError::EmptyBody {
                expected: command::example(&target),
            }),
            transaction: None,
        }
    } else {
        command::parse(&target, body)
    };
    let result = match parsed.intent {
        Ok(intent) => {
            command::submit(&s.store, intent, command::Source::Rest)
                .await
                .await
        }
        Err(e) => Err(e.into()),
    };
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => command_status(e),
    };
    (status, Json(reply_payload(result, parsed.transaction))).into_response()
}

/// The one mapping of a command's "no" to an HTTP status. (Exhaustive, so a new one has to
/// choose.) Topics, retained messages and lanes are MQTT's; REST never meets them.
pub fn command_status(error: &CommandError) -> StatusCode {
    match error {
        CommandError::NotACommandTopic { .. } => StatusCode::NOT_FOUND,
        CommandError::Retained | CommandError::Payload(_) => StatusCode::BAD_REQUEST,
        CommandError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
        CommandError::Refused(refusal) => refusal_status(refusal),
        CommandError::NotStored(
            NotStored::ReadOnly { .. } | NotStored::ShuttingDown | NotStored::StoreFailed { .. },
        ) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The one mapping of a refusal to an HTTP status: the request was understood and changed
/// nothing. (Exhaustive, so a new refusal has to choose.)
pub fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::NoApp
        | Refusal::UnknownApp { .. }
        | Refusal::AmbiguousApp { .. }
        | Refusal::NothingToCancelApp { .. }
        | Refusal::DeviceCommandNotOpen { .. }
        | Refusal::NothingToCancelDevice
        | Refusal::UnknownProfile { .. }
        | Refusal::UnknownPorts { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

pub async fn post_profile(State(s): State<OperatorState>, body: Bytes) -> Response {
    mutate(&s, Target::Profile, &body).await
}

pub async fn post_app(
    State(s): State<OperatorState>,
    Path(app): Path<String>,
    body: Bytes,
) -> Response {
    mutate(&s, Target::App(app), &body).await
}

pub async fn post_device(State(s): State<OperatorState>, body: Bytes) -> Response {
    mutate(&s, Target::Device, &body).await
}

pub async fn post_radio(State(s): State<OperatorState>, body: Bytes) -> Response {
    mutate(&s, Target::Radio, &body).await
}

pub async fn post_network(State(s): State<OperatorState>, body: Bytes) -> Response {
    mutate(&s, Target::Network, &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_no_has_its_status() {
        let cases = [
            (CommandError::Payload(PayloadError::NotUtf8), 400),
            (CommandError::Retained, 400),
            (CommandError::Refused(Refusal::NothingToCancelDevice), 422),
            (CommandError::NotStored(NotStored::ShuttingDown), 503),
            (
                CommandError::NotStored(NotStored::ReadOnly {
                    reason: "disk full".into(),
                }),
                503,
            ),
            (CommandError::Busy { waiting: 1 }, 429),
        ];
        for (error, status) in cases {
            assert_eq!(command_status(&error).as_u16(), status, "{error:?}");
        }
    }
}
