//! `GET /api/v1/signal`: an NDJSON stream telling EVE which endpoints to poll now. The first line
//! lists everything pending at connect; then one line per change, bursts coalesced and paced;
//! each line flushed on its own; no heartbeats; the stream ends cleanly on shutdown.

use super::pacer::Pacer;
use super::LpsState;
use crate::state::{pending_endpoints, Endpoint};
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Instant;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// One NDJSON line in protobuf's canonical JSON (`{"pendingChanges":[...]}`), by the codec the
/// simulator reads with.
pub fn line(endpoints: &BTreeSet<Endpoint>) -> Bytes {
    let endpoints = endpoints.iter().filter_map(|e| e.config_endpoint());
    Bytes::from(eve_proto::signal::encode_line(endpoints))
}

pub fn stream(state: LpsState) -> Response {
    // Subscribe before reading the snapshot so no change falls between the two.
    let mut changes = state.store.subscribe();
    let mut pending = pending_endpoints(&state.store.snapshot());
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(8);
    let shutdown = state.shutdown.clone();
    let mut pacer = Pacer::new(state.signal_burst, state.signal_interval, Instant::now());
    let streams = state.streams.clone();
    streams.spawn(async move {
        loop {
            if !pending.is_empty() {
                let wait = pacer.wait(Instant::now());
                if wait.is_zero() {
                    pacer.take(Instant::now());
                    let out = line(&std::mem::take(&mut pending));
                    if tx.send(Ok(out)).await.is_err() {
                        break;
                    }
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = shutdown.cancelled() => break,
                    _ = tx.closed() => break,
                    got = changes.recv() => if !absorb(got, &mut pending, &state) { break },
                }
            } else {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tx.closed() => break,
                    got = changes.recv() => if !absorb(got, &mut pending, &state) { break },
                }
            }
            // Coalesce whatever else is already queued into the same line.
            loop {
                match changes.try_recv() {
                    Ok(change) => pending.extend(change.signals.iter().copied()),
                    Err(TryRecvError::Lagged(_)) => {
                        pending.extend(pending_endpoints(&state.store.snapshot()))
                    }
                    Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// Merges one received change; false when the store is gone.
fn absorb(
    got: Result<std::sync::Arc<crate::store::Change>, RecvError>,
    pending: &mut BTreeSet<Endpoint>,
    state: &LpsState,
) -> bool {
    match got {
        Ok(change) => {
            pending.extend(change.signals.iter().copied());
            true
        }
        // Fell behind: what is pending now covers everything missed.
        Err(RecvError::Lagged(_)) => {
            pending.extend(pending_endpoints(&state.store.snapshot()));
            true
        }
        Err(RecvError::Closed) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_canonical_json() {
        let set: BTreeSet<Endpoint> = [Endpoint::Network, Endpoint::AppInfo].into_iter().collect();
        assert_eq!(
            line(&set),
            Bytes::from(
                "{\"pendingChanges\":[\"CONFIG_ENDPOINT_APP_INFO\",\"CONFIG_ENDPOINT_NETWORK\"]}\n"
            )
        );
    }
}
