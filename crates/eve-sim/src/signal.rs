//! GET /api/v1/signal: one long-lived NDJSON stream of `Signal` messages,
//! each triggering immediate polls (EVE localcommand `signal.go`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::node::{Effect, SimState};
use super::options::real;
use super::runtime::{Node, Session};
use super::snapshot::Endpoint;
use eve_proto::profile::ConfigEndpoint;

/// A line this long (without its newline) ends the stream.
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// A message listing more endpoints is dropped.
pub(crate) const MAX_ENDPOINTS: usize = 32;
const RATE_BURST: u32 = 3;
const RECENT_KEPT: usize = 200;
/// EVE reconnects at once after a stream ends; this floor only keeps an LPS
/// that closes every stream immediately from spinning a core.
const RECONNECT_FLOOR: Duration = Duration::from_millis(100);

/// Decodes one NDJSON line (the codec is shared with the gateway, in `eve_proto::signal`).
pub(crate) use eve_proto::signal::parse_line as parse_signal_line;

/// Maps a `ConfigEndpoint` value to the poller it triggers.
pub(crate) fn endpoint_of(value: i32) -> Option<Endpoint> {
    match ConfigEndpoint::try_from(value).ok()? {
        ConfigEndpoint::LocalProfile => Some(Endpoint::LocalProfile),
        ConfigEndpoint::Radio => Some(Endpoint::Radio),
        ConfigEndpoint::AppInfo => Some(Endpoint::AppInfo),
        ConfigEndpoint::AppBootInfo => Some(Endpoint::AppBootInfo),
        ConfigEndpoint::DevInfo => Some(Endpoint::DevInfo),
        ConfigEndpoint::Network => Some(Endpoint::Network),
        ConfigEndpoint::Unspecified => None,
    }
}

/// Splits a byte stream into lines like Go's `bufio.Scanner` (ScanLines,
/// 64 KiB buffer): `\n` ends a line, a trailing `\r` is dropped.
#[derive(Default)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Complete lines in the new data, and whether a line was too long
    /// (which ends the stream after the lines before it).
    pub fn push(&mut self, chunk: &[u8]) -> (Vec<Vec<u8>>, bool) {
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let line = &self.buf[start..start + pos];
            if line.len() >= MAX_LINE {
                return (lines, true);
            }
            lines.push(drop_cr(line).to_vec());
            start += pos + 1;
        }
        self.buf.drain(..start);
        let too_long = self.buf.len() >= MAX_LINE;
        (lines, too_long)
    }

    /// At EOF the scanner still returns a final unterminated line.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buf);
        (!rest.is_empty()).then(|| drop_cr(&rest).to_vec())
    }
}

fn drop_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Token bucket like `rate.NewLimiter(rate.Every(interval), burst)`: starts
/// full, one token per `interval`.
#[derive(Clone, Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimiter {
    pub fn new(interval: Duration, burst: u32) -> Self {
        RateLimiter {
            interval,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: None,
        }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            let per = self.interval.as_secs_f64().max(f64::MIN_POSITIVE);
            self.tokens = (self.tokens + elapsed / per).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl SimState {
    /// One line of the stream: parse, size limit, rate limit, trigger.
    pub fn handle_signal_line(
        &mut self,
        limiter: &mut RateLimiter,
        line: &[u8],
        now: Instant,
    ) -> Vec<Effect> {
        if line.is_empty() {
            return Vec::new();
        }
        self.signal.lines += 1;
        let values = match parse_signal_line(line) {
            Ok(v) => v,
            Err(why) => {
                self.signal.malformed += 1;
                let shown = String::from_utf8_lossy(&line[..line.len().min(256)]).into_owned();
                tracing::warn!(error = %why, line = %shown, "sim: signal: decode failed");
                return Vec::new();
            }
        };
        if values.len() > MAX_ENDPOINTS {
            self.signal.too_many_endpoints += 1;
            tracing::warn!(
                count = values.len(),
                "sim: signal dropped (too many endpoints)"
            );
            return Vec::new();
        }
        if !limiter.allow(now) {
            self.signal.rate_limited += 1;
            tracing::warn!("sim: signal dropped by rate limit");
            return Vec::new();
        }
        self.signal.accepted += 1;
        let names = values
            .iter()
            .map(|&v| {
                ConfigEndpoint::try_from(v)
                    .map(|e| e.as_str_name().to_string())
                    .unwrap_or_else(|_| v.to_string())
            })
            .collect::<Vec<_>>();
        tracing::debug!(endpoints = ?names, "sim: signal");
        self.signal.recent.push(names);
        if self.signal.recent.len() > RECENT_KEPT {
            self.signal.recent.remove(0);
        }
        let mut effects = Vec::new();
        for ep in values.into_iter().filter_map(endpoint_of) {
            let e = Effect::Trigger(ep);
            if !effects.contains(&e) {
                effects.push(e);
            }
        }
        effects
    }
}

enum Opened {
    Stream(reqwest::Response),
    NotFound,
    Failed,
}

async fn open(node: &Node) -> Opened {
    let result = node.http.open_stream(Endpoint::Signal).await;
    node.update(|s| {
        s.signal.connects += 1;
        let c = s.counters(Endpoint::Signal);
        c.requests += 1;
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        let key = status.map_or_else(|| "error".to_string(), |st| st.to_string());
        *c.statuses.entry(key).or_default() += 1;
        c.last_status = status;
        match &result {
            Ok(r) if r.status().as_u16() == 200 => c.consecutive_failures = 0,
            Ok(r) => {
                let why = format!("unexpected status {}", r.status().as_u16());
                s.note_failure(Endpoint::Signal, &why);
            }
            Err(e) => s.note_failure(Endpoint::Signal, &e.message),
        }
    });
    match result {
        Ok(r) if r.status().as_u16() == 200 => Opened::Stream(r),
        Ok(r) if r.status().as_u16() == 404 => Opened::NotFound,
        _ => Opened::Failed,
    }
}

/// Reads the stream until it ends (EOF, error, or a too-long line).
async fn read_stream(node: &Arc<Node>, resp: reqwest::Response, limiter: &mut RateLimiter) {
    node.update(|s| s.signal.streams_opened += 1);
    let mut body = resp.bytes_stream();
    let mut splitter = LineSplitter::default();
    loop {
        let Some(chunk) = body.next().await else {
            if let Some(line) = splitter.finish() {
                node.apply(|s| s.handle_signal_line(limiter, &line, Instant::now()));
            }
            tracing::debug!("sim: signal stream ended");
            return;
        };
        let Ok(chunk) = chunk else {
            tracing::debug!("sim: signal stream broke");
            return;
        };
        let (lines, too_long) = splitter.push(&chunk);
        for line in lines {
            node.apply(|s| s.handle_signal_line(limiter, &line, Instant::now()));
        }
        if too_long {
            node.update(|s| s.signal.too_long += 1);
            tracing::warn!("sim: signal line longer than 64 KiB; reconnecting");
            return;
        }
    }
}

/// The signal task of one boot: connect, read, reconnect, back off.
pub(crate) async fn run(node: Arc<Node>, session: Arc<Session>) {
    let t = node.timing;
    // The limiter outlives single streams, as EVE's does.
    let mut limiter = RateLimiter::new(t.scale(real::SIGNAL_RATE), RATE_BURST);
    let initial = t.scale(real::SIGNAL_BACKOFF_INITIAL);
    let mut backoff = initial;
    loop {
        let opened = tokio::select! {
            _ = session.token.cancelled() => return,
            o = open(&node) => o,
        };
        let wait = match opened {
            Opened::Stream(resp) => {
                tokio::select! {
                    _ = session.token.cancelled() => return,
                    _ = read_stream(&node, resp, &mut limiter) => {}
                }
                backoff = initial;
                RECONNECT_FLOOR
            }
            Opened::NotFound => {
                backoff = initial;
                t.scale(real::SIGNAL_NOT_FOUND)
            }
            Opened::Failed => {
                let w = backoff;
                backoff = (backoff * 2).min(t.scale(real::SIGNAL_BACKOFF_MAX));
                w
            }
        };
        tokio::select! {
            _ = session.token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::state_with;

    #[test]
    fn splits_lines_like_go_scanner() {
        let mut s = LineSplitter::default();
        let (lines, long) = s.push(b"{\"a\":1}\r\n\n{\"b\"");
        assert_eq!(lines, vec![b"{\"a\":1}".to_vec(), Vec::new()]);
        assert!(!long);
        let (lines, _) = s.push(b":2}\n{\"c\":3}");
        assert_eq!(lines, vec![b"{\"b\":2}".to_vec()]);
        assert_eq!(s.finish(), Some(b"{\"c\":3}".to_vec()));
        assert_eq!(s.finish(), None);

        // A line of MAX_LINE - 1 bytes fits; MAX_LINE does not.
        let mut s = LineSplitter::default();
        let mut ok = vec![b'x'; MAX_LINE - 1];
        ok.push(b'\n');
        assert_eq!(s.push(&ok), (vec![vec![b'x'; MAX_LINE - 1]], false));
        let (lines, long) = s.push(&vec![b'y'; MAX_LINE]);
        assert!(lines.is_empty());
        assert!(long);
    }

    #[test]
    fn rate_limiter_bursts_three_then_one_per_interval() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(Duration::from_secs(3), 3);
        assert!(l.allow(t0));
        assert!(l.allow(t0));
        assert!(l.allow(t0));
        assert!(!l.allow(t0));
        assert!(!l.allow(t0 + Duration::from_secs(2)));
        assert!(l.allow(t0 + Duration::from_secs(3)));
        assert!(!l.allow(t0 + Duration::from_secs(4)));
        // Refills up to the burst only.
        let later = t0 + Duration::from_secs(300);
        assert!(l.allow(later) && l.allow(later) && l.allow(later));
        assert!(!l.allow(later));
    }

    #[test]
    fn signal_lines_trigger_polls() {
        let mut s = state_with("");
        let mut l = RateLimiter::new(Duration::from_secs(3), 3);
        let now = Instant::now();
        let e = s.handle_signal_line(
            &mut l,
            br#"{"pendingChanges":["CONFIG_ENDPOINT_DEV_INFO","CONFIG_ENDPOINT_DEV_INFO",1,0,9]}"#,
            now,
        );
        assert_eq!(
            e,
            vec![
                Effect::Trigger(Endpoint::DevInfo),
                Effect::Trigger(Endpoint::LocalProfile)
            ]
        );
        assert!(s.handle_signal_line(&mut l, b"", now).is_empty());
        assert!(s.handle_signal_line(&mut l, b"garbage", now).is_empty());
        let many = format!(r#"{{"pendingChanges":[{}]}}"#, vec!["1"; 33].join(","));
        assert!(s
            .handle_signal_line(&mut l, many.as_bytes(), now)
            .is_empty());
        // Two more pass the bucket, the fourth is dropped.
        let radio = br#"{"pendingChanges":["CONFIG_ENDPOINT_RADIO"]}"#;
        assert_eq!(s.handle_signal_line(&mut l, radio, now).len(), 1);
        assert_eq!(s.handle_signal_line(&mut l, radio, now).len(), 1);
        assert!(s.handle_signal_line(&mut l, radio, now).is_empty());
        assert_eq!(s.signal.lines, 6);
        assert_eq!(s.signal.malformed, 1);
        assert_eq!(s.signal.too_many_endpoints, 1);
        assert_eq!(s.signal.rate_limited, 1);
        assert_eq!(s.signal.accepted, 3);
        assert_eq!(s.signal.recent[0][0], "CONFIG_ENDPOINT_DEV_INFO");
    }
}
