//! Responses on the EVE side: every body is `application/x-proto-binary`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;

pub use eve_proto::PROTO_CONTENT_TYPE;

fn with_proto_type(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROTO_CONTENT_TYPE),
    );
    response
}

pub fn ok<M: Message>(msg: &M) -> Response {
    with_proto_type(StatusCode::OK, msg.encode_to_vec())
}

pub fn ok_empty() -> Response {
    with_proto_type(StatusCode::OK, Vec::new())
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// An error with a short text reason (still labelled as the API's content type).
pub fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut text: String = reason.into();
    text.push('\n');
    with_proto_type(status, text.into_bytes())
}
