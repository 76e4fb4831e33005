//! `GET /api/events`: Server-Sent Events. `event: state` carries the full state (at connect, and
//! again if this stream fell behind the store's changes); after that `event: patch` carries only
//! the top-level parts (`eve`, `apps`, `profile`, ...) whose JSON changed, so that EVE's frequent
//! reports do not resend several KB each time. A burst of changes, and anything within
//! [`MIN_STATE_GAP`] of the last update, is coalesced into one. `event: event` carries each
//! `B/events` message as it happens. The stream ends when the gateway shuts down, so graceful
//! shutdown is never held up by a browser.

use super::OperatorState;
use crate::telemetry::views;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use futures::stream::Stream;
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How often an idle stream sends `event: ping`.
const PING_EVERY: Duration = Duration::from_secs(15);
/// At most one state or patch per this much time: EVE's reports (and MQTT-driven changes) can
/// come many times a second.
pub const MIN_STATE_GAP: Duration = Duration::from_millis(250);

/// What this stream's client holds: the parts of the state last sent to it.
struct Sent(Map<String, Value>);

impl Sent {
    /// The full state, remembered as sent.
    fn state(s: &OperatorState) -> (Sent, Event) {
        let full = full_map(s);
        let event = Event::default()
            .event("state")
            .data(Value::Object(full.clone()).to_string());
        (Sent(full), event)
    }

    /// The parts that differ from what was sent (none: no event), remembered as sent.
    fn patch(&mut self, s: &OperatorState) -> Option<Event> {
        let mut changed = Map::new();
        for (part, value) in full_map(s) {
            if self.0.get(&part) != Some(&value) {
                changed.insert(part.clone(), value.clone());
                self.0.insert(part, value);
            }
        }
        (!changed.is_empty()).then(|| {
            Event::default()
                .event("patch")
                .data(Value::Object(changed).to_string())
        })
    }
}

fn full_map(s: &OperatorState) -> Map<String, Value> {
    match views::full(&s.store.snapshot()) {
        Value::Object(parts) => parts,
        _ => Map::new(),
    }
}

pub async fn get_events(
    State(s): State<OperatorState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut changes = s.store.subscribe();
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    let shutdown = s.shutdown.clone();
    let streams = s.streams.clone();
    streams.spawn(async move {
        let (mut sent, first) = Sent::state(&s);
        if tx.send(Ok(first)).await.is_err() {
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
            // Fell behind: what the client holds is unknown, so it gets the whole state.
            let mut lagged = false;
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
                    Err(RecvError::Lagged(_)) => {
                        send_state = true;
                        lagged = true;
                    }
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
                let update = if lagged {
                    let (now_sent, full) = Sent::state(&s);
                    sent = now_sent;
                    Some(full)
                } else {
                    sent.patch(&s)
                };
                if let Some(update) = update {
                    if tx.send(Ok(update)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Sse::new(ReceiverStream::new(rx))
}
