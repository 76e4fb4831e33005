//! HTTP to the LPS the way EVE's `SendLocal` does it: protobuf bodies,
//! `X-Request-Id`, a fresh connection per request, 200/201/204/304 as
//! success, and the Content-Type rule for bodies.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;

use super::options::{real, Timing};
use super::snapshot::Endpoint;

pub(crate) use eve_proto::PROTO_CONTENT_TYPE;
/// What EVE records when a 200 body carries the wrong token.
pub(crate) const INVALID_TOKEN: &str = "invalid token submitted by LPS";
/// EVE reads bodies without a limit; the simulator stops somewhere sane.
const MAX_BODY: usize = 16 << 20;

/// A response that passed EVE's transport rules.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// A failed exchange: transport error, non-success status, bad header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HttpError {
    pub status: Option<u16>,
    pub message: String,
}

impl HttpError {
    fn transport(e: impl std::fmt::Display) -> Self {
        HttpError {
            status: None,
            message: e.to_string(),
        }
    }
}

/// `SendLocal`'s status rule.
pub(crate) fn is_success(status: u16) -> bool {
    matches!(status, 200 | 201 | 204 | 304)
}

/// When a body came back (not 204, not empty) it must be protobuf.
pub(crate) fn check_content_type(
    status: u16,
    content_type: Option<&str>,
    body_len: usize,
) -> Result<(), String> {
    if status == 204 || body_len == 0 {
        return Ok(());
    }
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if media.eq_ignore_ascii_case(PROTO_CONTENT_TYPE) {
        Ok(())
    } else {
        Err(format!(
            "response header error: Content-Type {media:?}, expected {PROTO_CONTENT_TYPE}"
        ))
    }
}

pub(crate) fn decode<M: Message + Default>(reply: &Reply) -> Result<M, String> {
    M::decode(reply.body.clone()).map_err(|e| format!("cannot decode response body: {e}"))
}

/// The LPS base URL: `http://` is added when no scheme is given.
pub(crate) fn base_url(lps_url: &str) -> String {
    let url = lps_url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

pub(crate) struct Http {
    base: String,
    /// Polls: whole-request timeout; no idle connections kept.
    client: reqwest::Client,
    /// The signal stream: no overall timeout.
    stream: reqwest::Client,
}

fn build_client(timeout: Option<Duration>, connect: Duration) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(connect)
        .user_agent("Go-http-client/1.1");
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "sim: HTTP client setup failed, using defaults");
        reqwest::Client::new()
    })
}

impl Http {
    pub fn new(lps_url: &str, timing: &Timing) -> Self {
        let connect = timing.timeout(real::DIAL_TIMEOUT, Duration::from_secs(2));
        let whole = timing.timeout(real::REQUEST_TIMEOUT, Duration::from_secs(5));
        Http {
            base: base_url(lps_url),
            client: build_client(Some(whole), connect),
            stream: build_client(None, connect),
        }
    }

    fn url(&self, ep: Endpoint) -> String {
        format!("{}{}", self.base, ep.path())
    }

    pub async fn post<M: Message>(&self, ep: Endpoint, msg: &M) -> Result<Reply, HttpError> {
        let req = self
            .client
            .post(self.url(ep))
            .header("Content-Type", PROTO_CONTENT_TYPE)
            .header("X-Request-Id", uuid::Uuid::new_v4().to_string())
            .body(msg.encode_to_vec());
        Self::finish(req.send().await).await
    }

    pub async fn get(&self, ep: Endpoint) -> Result<Reply, HttpError> {
        let req = self
            .client
            .get(self.url(ep))
            .header("X-Request-Id", uuid::Uuid::new_v4().to_string());
        Self::finish(req.send().await).await
    }

    /// Opens a long-lived GET; the caller looks at the status itself.
    pub async fn open_stream(&self, ep: Endpoint) -> Result<reqwest::Response, HttpError> {
        self.stream
            .get(self.url(ep))
            .header("X-Request-Id", uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .map_err(HttpError::transport)
    }

    async fn finish(sent: reqwest::Result<reqwest::Response>) -> Result<Reply, HttpError> {
        let resp = sent.map_err(HttpError::transport)?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_body(resp).await.map_err(|message| HttpError {
            status: Some(status),
            message,
        })?;
        if !is_success(status) {
            return Err(HttpError {
                status: Some(status),
                message: format!("wrong response status code: {status}"),
            });
        }
        check_content_type(status, content_type.as_deref(), body.len()).map_err(|message| {
            HttpError {
                status: Some(status),
                message,
            }
        })?;
        Ok(Reply { status, body })
    }
}

async fn read_body(resp: reqwest::Response) -> Result<Bytes, String> {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("reading response body: {e}"))?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(format!("response body larger than {MAX_BODY} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_rule() {
        assert!(check_content_type(200, Some(PROTO_CONTENT_TYPE), 5).is_ok());
        assert!(check_content_type(200, Some("Application/X-Proto-Binary; charset=x"), 5).is_ok());
        assert!(check_content_type(200, Some("application/json"), 5).is_err());
        assert!(check_content_type(200, None, 5).is_err());
        // No body, or 204: nothing to check.
        assert!(check_content_type(200, None, 0).is_ok());
        assert!(check_content_type(204, Some("text/plain"), 5).is_ok());
    }

    #[test]
    fn success_codes() {
        for s in [200, 201, 204, 304] {
            assert!(is_success(s));
        }
        for s in [202, 400, 404, 500] {
            assert!(!is_success(s));
        }
    }

    #[test]
    fn base_urls() {
        assert_eq!(base_url("http://127.0.0.1:8888/"), "http://127.0.0.1:8888");
        assert_eq!(base_url("10.1.1.1:8888"), "http://10.1.1.1:8888");
    }
}
