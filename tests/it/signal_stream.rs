//! The signal stream: pending at connect, one line per change with bursts coalesced, paced like
//! EVE's limiter, and a clean end on shutdown.

use crate::common;

use common::store::{device_command, set_profile, set_radio};
use common::*;
use futures::StreamExt;
use lps_bridge::state::DeviceAction;
use serde_json::Value;
use std::time::Duration;

/// Reads NDJSON lines from a streaming response.
struct Lines {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl Lines {
    async fn open(gw: &TestGateway) -> Lines {
        let resp = eve_get(&gw.lps, "signal").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
        Lines {
            stream: resp.bytes_stream().boxed(),
            buf: Vec::new(),
        }
    }

    /// The next line, or None at the end of the stream; panics after `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("each line is JSON"));
            }
            match tokio::time::timeout(wait, self.stream.next())
                .await
                .expect("signal line in time")
            {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => panic!("stream error: {e}"),
                None => return None,
            }
        }
    }

    async fn silent_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.stream.next())
            .await
            .is_err()
    }
}

fn endpoints(v: &Value) -> Vec<String> {
    v["pendingChanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pending_at_connect_then_one_line_per_change() {
    let gw = TestGateway::start().await;
    set_profile(&gw, "night").await;
    device_command(&gw, DeviceAction::Reboot).await;
    let mut lines = Lines::open(&gw).await;
    let first = lines.next(patience()).await.unwrap();
    assert_eq!(
        endpoints(&first),
        vec!["CONFIG_ENDPOINT_LOCAL_PROFILE", "CONFIG_ENDPOINT_DEV_INFO"]
    );
    set_radio(&gw, true).await;
    assert_eq!(
        endpoints(&lines.next(patience()).await.unwrap()),
        vec!["CONFIG_ENDPOINT_RADIO"]
    );
    assert!(
        lines.silent_for(Duration::from_millis(300)).await,
        "no heartbeats"
    );
}

#[tokio::test]
async fn nothing_pending_means_no_first_line() {
    let gw = TestGateway::start().await;
    let mut lines = Lines::open(&gw).await;
    assert!(
        lines.silent_for(Duration::from_millis(300)).await,
        "an empty Signal is never sent"
    );
    assert!(
        gw.running().store.snapshot().eve.online,
        "the stream counts as EVE being seen"
    );
}

#[tokio::test]
async fn bursts_are_coalesced_and_paced() {
    // Burst 1, then one line per 500 ms: a burst of 6 changes must arrive in few lines, none lost.
    let gw = TestGateway::start_with(|c| {
        c.lps.signal_burst = 1;
        c.lps.signal_interval = Duration::from_millis(500);
    })
    .await;
    let mut lines = Lines::open(&gw).await;
    set_profile(&gw, "a").await;
    let first = lines.next(patience()).await.unwrap();
    assert_eq!(endpoints(&first), vec!["CONFIG_ENDPOINT_LOCAL_PROFILE"]);
    set_radio(&gw, true).await;
    device_command(&gw, DeviceAction::Reboot).await;
    set_profile(&gw, "b").await;
    set_radio(&gw, false).await;
    set_profile(&gw, "c").await;
    let second = lines.next(patience()).await.unwrap();
    let mut got = endpoints(&second);
    got.sort();
    assert_eq!(
        got,
        vec![
            "CONFIG_ENDPOINT_DEV_INFO",
            "CONFIG_ENDPOINT_LOCAL_PROFILE",
            "CONFIG_ENDPOINT_RADIO"
        ]
    );
    assert!(
        lines.silent_for(Duration::from_millis(700)).await,
        "five changes, one line"
    );
}

#[tokio::test]
async fn stream_ends_cleanly_on_shutdown() {
    let mut gw = TestGateway::start().await;
    let mut lines = Lines::open(&gw).await;
    let stopping = tokio::spawn(async move {
        gw.stop().await;
    });
    assert!(lines.next(patience()).await.is_none(), "EOF, not an error");
    tokio::time::timeout(patience(), stopping)
        .await
        .unwrap()
        .unwrap();
}
