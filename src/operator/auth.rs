//! Bearer-token checks: always for mutations when a token is set, for reads with `protect_reads`.
//! The token comes in the `Authorization` header; `?token=` only on the SSE stream.

use super::OperatorState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

/// Whether a request may carry the token as `?token=`: only the SSE stream, since EventSource
/// cannot set headers. Anywhere else the token would end up in URLs, proxy and access logs.
fn query_token_allowed(request: &Request) -> bool {
    request.method() == axum::http::Method::GET && request.uri().path() == "/api/events"
}

fn authorized(state: &OperatorState, request: &Request) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    let header_token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let given = header_token
        .or_else(|| {
            if !query_token_allowed(request) {
                return None;
            }
            let query = request.uri().query()?;
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "token")
                .map(|(_, value)| value.into_owned())
        })
        .unwrap_or_default();
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

fn refuse() -> Response {
    let body = json!({ "status": "error", "error": "missing or wrong bearer token: send Authorization: Bearer <operator.token> (the ?token= query parameter is accepted only on GET /api/events)" });
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

pub async fn require_for_writes(
    State(state): State<OperatorState>,
    request: Request,
    next: Next,
) -> Response {
    if authorized(&state, &request) {
        next.run(request).await
    } else {
        refuse()
    }
}

pub async fn require_for_reads(
    State(state): State<OperatorState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.protect_reads || authorized(&state, &request) {
        next.run(request).await
    } else {
        refuse()
    }
}
