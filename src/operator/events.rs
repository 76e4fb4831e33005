//! `GET /api/events`: Server-Sent Events. `event: state` carries the full state (first at
//! connect, then after changes: a burst, and anything within [`MIN_STATE_GAP`] of the last one,
//! is coalesced into one); `event: event` carries each `B/events` message as it happens. The stream
//! ends when the gateway shuts down, so graceful shutdown is never held up by a browser.

use super::OperatorState;
use crate::telemetry::views;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use futures::stream::Stream;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How often an idle stream sends `event: ping`.
const PING_EVERY: Duration = Duration::from_secs(15);
/// At most one full state per this much time: EVE's reports (and MQTT-driven changes) can come
/// many times a second, and each state is several KB.
pub const MIN_STATE_GAP: Duration = Duration::from_millis(250);

fn state_event(s: &OperatorState) -> Event {
    Event::default()
        .event("state")
        .data(views::full(&s.store.snapshot()).to_string())
}

pub async fn get_events(
    State(s): State<OperatorState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut changes = s.store.subscribe();
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    let shutdown = s.shutdown.clone();
    let streams = s.streams.clone();
    streams.spawn(async move {
        if tx.send(Ok(state_event(&s))).await.is_err() {
            return;
        }
        // A visible heartbeat (comments never reach the page): lets the dashboard notice a
        // half-open connection that would otherwise look live forever.
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut last_state = tokio::time::Instant::now();
        loop {
            let got = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tx.closed() => break,
                _ = ping.tick() => {
                    if tx.send(Ok(Event::default().event("ping").data(views::rfc3339_ms(views::unix_ms_now())))).await.is_err() {
                        break;
                    }
                    continue;
                }
                got = changes.recv() => got,
            };
            let mut send_state = false;
            let mut next = Some(got);
            let mut waited = false;
            // Coalesce a burst: every event goes out, the full state only once.
            loop {
                let Some(got) = next.take() else {
                    // Too soon after the last state: wait out the gap, then take what came.
                    let due = last_state + MIN_STATE_GAP;
                    if send_state && !waited && tokio::time::Instant::now() < due {
                        waited = true;
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep_until(due) => {}
                        }
                        next = match changes.try_recv() {
                            Ok(change) => Some(Ok(change)),
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                                Some(Err(RecvError::Lagged(n)))
                            }
                            Err(_) => None,
                        };
                        continue;
                    }
                    break;
                };
                match got {
                    Ok(change) => {
                        // The store's health is part of the state the dashboard shows.
                        send_state |= !change.topics.is_empty()
                            || change.events.iter().any(|e| e.event.is_store());
                        for event in &change.events {
                            let body = views::event(event, views::unix_ms_now());
                            let sse = Event::default().event("event").data(body.to_string());
                            if tx.send(Ok(sse)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => send_state = true,
                    Err(RecvError::Closed) => return,
                }
                next = match changes.try_recv() {
                    Ok(change) => Some(Ok(change)),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                        Some(Err(RecvError::Lagged(n)))
                    }
                    Err(_) => None,
                };
            }
            if send_state {
                last_state = tokio::time::Instant::now();
                if tx.send(Ok(state_event(&s))).await.is_err() {
                    return;
                }
            }
        }
    });
    Sse::new(ReceiverStream::new(rx))
}
