//! The store actor: sole owner of `State`. Takes inputs in batches, applies each, commits the
//! changed keys once per batch (group commit), and only then answers and publishes.
//!
//! EVE's requests arrive on their own channel and are taken first, so a flood of operator
//! intents never queues in front of EVE's polls (still one writer, one commit per batch).
//!
//! When a commit fails the store turns read-only: nothing in that batch is acknowledged, the
//! state goes back to what is on disk, intents are refused with the reason, and EVE's requests
//! are answered from the durable state (what they would have changed is dropped, so a lifecycle
//! step such as "delivered" happens again on EVE's next request). Meanwhile the actor reopens
//! the database with back-off and reloads it; the first success makes it writable again.

use super::disk::{Disk, StoreError};
use super::fault::Backoff;
use super::request::{self, Request};
use super::{Change, Clock};
use crate::state::{
    apply, Announce, Effect, Event, EventName, Key, Origin, State, StateTopic, StoreStatus, Tick,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 128;

pub struct Actor {
    pub state: State,
    /// What is on disk (the last state loaded or committed): where a failed batch goes back to.
    pub durable: Arc<State>,
    /// `None` while the database is closed after a fault.
    pub disk: Option<Disk>,
    pub dir: PathBuf,
    pub clock: Clock,
    pub backoff: Backoff,
    /// When to try reopening; `Some` exactly while the store is read-only.
    pub retry_at: Option<Instant>,
    pub eve_rx: mpsc::Receiver<Request>,
    pub intents_rx: mpsc::Receiver<Request>,
    pub snapshot_tx: watch::Sender<Arc<State>>,
    pub changes_tx: broadcast::Sender<Arc<Change>>,
    pub write_latency: Arc<super::WriteStats>,
}

impl Actor {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch: Vec<Request> = Vec::with_capacity(BATCH);
        loop {
            let retry_at = self.retry_at;
            let retry = async move {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // Biased: EVE first, then intents; the timers only when neither is waiting.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                got = self.eve_rx.recv() => match got {
                    Some(request) => batch.push(request),
                    None => break,
                },
                got = self.intents_rx.recv() => match got {
                    Some(request) => batch.push(request),
                    None => break,
                },
                _ = retry => {
                    self.reopen();
                    continue;
                }
                _ = tick.tick() => batch.push(request::unanswered(Tick)),
            }
            // Fill the rest of the batch, EVE's requests before intents.
            while batch.len() < BATCH {
                match self.eve_rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            while batch.len() < BATCH {
                match self.intents_rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.process(&mut batch);
        }
        tracing::debug!("store actor stopped");
    }

    fn process(&mut self, batch: &mut Vec<Request>) {
        if !self.state.store.is_writable() {
            self.serve_read_only(batch.drain(..));
            return;
        }
        let mut keys = BTreeSet::new();
        let mut change = Change::default();
        let mut applied = Vec::with_capacity(batch.len());
        for mut request in batch.drain(..) {
            for effect in request.apply(&mut self.state, self.clock.now()) {
                match effect {
                    Effect::Persist(key) => {
                        keys.insert(key);
                    }
                    Effect::Event(event) => change.events.push(event),
                    Effect::Publish(topic) => {
                        change.topics.insert(topic);
                    }
                    Effect::Signal(endpoint) => {
                        change.signals.insert(endpoint);
                    }
                }
            }
            applied.push(request);
        }
        if let Err(err) = self.commit(&keys) {
            // Nothing in this batch is acknowledged; memory goes back to what is on disk.
            let reason = err.fault_reason(&self.dir);
            tracing::error!(%reason, "store commit failed; the batch is refused and the store is read-only until it can write again");
            self.rollback();
            self.enter_fault(reason);
            let mut again = Vec::new();
            for request in applied {
                match request.origin() {
                    // EVE's requests are answered again, read-only.
                    Origin::Eve => again.push(request),
                    // An intent: not acknowledged, whatever `apply` answered.
                    Origin::Operator => request.refuse(self.refusal()),
                    Origin::Clock | Origin::Outside => {}
                }
            }
            self.serve_read_only(again.into_iter());
            return;
        }
        self.committed(keys, change, applied);
    }

    fn committed(&mut self, keys: BTreeSet<Key>, change: Change, replies: Vec<Request>) {
        // Snapshot first: whoever gets a reply and then reads sees what was acknowledged.
        if !keys.is_empty() || !change.is_empty() {
            let snapshot = Arc::new(self.state.clone());
            if !keys.is_empty() {
                self.durable = snapshot.clone();
            }
            self.snapshot_tx.send_replace(snapshot);
        }
        for request in replies {
            request.answer();
        }
        if !change.is_empty() {
            let _ = self.changes_tx.send(Arc::new(change));
        }
    }

    fn refusal(&self) -> StoreError {
        StoreError::ReadOnly(self.state.store.reason().unwrap_or_default().to_string())
    }

    /// While the store cannot write: intents are refused; EVE is answered from the durable
    /// state, and whatever its request would have changed is dropped (only the EVE link,
    /// which is never persisted, is kept).
    fn serve_read_only(&mut self, batch: impl Iterator<Item = Request>) {
        let mut change = Change::default();
        let mut replies = Vec::new();
        for mut request in batch {
            if request.origin() == Origin::Operator {
                request.refuse(self.refusal());
                continue;
            }
            // Announced events change nothing: they go out read-only too.
            let announced = request.origin() == Origin::Outside;
            let mut persisted = false;
            for effect in request.apply(&mut self.state, self.clock.now()) {
                match effect {
                    Effect::Persist(_) => persisted = true,
                    Effect::Event(event) if announced || is_eve_link_event(&event) => {
                        change.events.push(event)
                    }
                    Effect::Publish(StateTopic::Eve) => {
                        change.topics.insert(StateTopic::Eve);
                    }
                    _ => {}
                }
            }
            if persisted {
                self.rollback();
            }
            replies.push(request);
        }
        if !change.is_empty() {
            self.snapshot_tx.send_replace(Arc::new(self.state.clone()));
        }
        for request in replies {
            request.answer();
        }
        if !change.is_empty() {
            let _ = self.changes_tx.send(Arc::new(change));
        }
    }

    /// Puts the durable state back, keeping what is never persisted (EVE link, store status).
    fn rollback(&mut self) {
        let eve = std::mem::take(&mut self.state.eve);
        let store = std::mem::take(&mut self.state.store);
        self.state = (*self.durable).clone();
        self.state.eve = eve;
        self.state.store = store;
    }

    /// The store turns read-only: say so once (log, event, metrics) and schedule a reopen.
    pub fn enter_fault(&mut self, reason: String) {
        // Close the database now: redb refuses every write after an I/O error until reopened,
        // and the reopen needs its lock.
        self.disk = None;
        self.write_latency.failures.fetch_add(1, Ordering::Relaxed);
        let since_ms = self.clock.now().unix_ms();
        self.state.store = StoreStatus::ReadOnly {
            reason: reason.clone(),
            since_ms,
        };
        self.schedule_retry();
        self.snapshot_tx.send_replace(Arc::new(self.state.clone()));
        self.publish_event(
            EventName::StoreFailed,
            json!({ "reason": reason, "dir": self.dir.display().to_string() }),
        );
    }

    fn schedule_retry(&mut self) {
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + delay);
    }

    /// One attempt to make the store writable again: reopen, reload, and go on from disk.
    fn reopen(&mut self) {
        self.retry_at = None;
        // Release the read-only copy's lock first: the writable open takes it.
        self.disk = None;
        let opened = Disk::open_writable(&self.dir).and_then(|disk| {
            disk.load(self.state.limits.clone())
                .map(|state| (disk, state))
        });
        match opened {
            Ok((disk, loaded)) => {
                let since_ms = match &self.state.store {
                    StoreStatus::ReadOnly { since_ms, .. } => *since_ms,
                    StoreStatus::Writable => 0,
                };
                self.disk = Some(disk);
                self.durable = Arc::new(loaded);
                self.rollback();
                self.state.store = StoreStatus::Writable;
                self.backoff.reset();
                let read_only_ms = self.clock.now().unix_ms().saturating_sub(since_ms);
                tracing::info!(
                    dir = %self.dir.display(),
                    read_only_ms,
                    "store writable again"
                );
                self.snapshot_tx.send_replace(Arc::new(self.state.clone()));
                self.write_latency.reopens.fetch_add(1, Ordering::Relaxed);
                self.publish_event(
                    EventName::StoreRecovered,
                    json!({
                        "dir": self.dir.display().to_string(),
                        "read_only_ms": read_only_ms,
                    }),
                );
            }
            Err(err) => {
                let reason = err.fault_reason(&self.dir);
                self.schedule_retry();
                let retry_in_ms = self
                    .retry_at
                    .map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64)
                    .unwrap_or(0);
                tracing::warn!(%reason, retry_in_ms, "store still cannot write");
                if let StoreStatus::ReadOnly { reason: old, .. } = &mut self.state.store {
                    if *old != reason {
                        *old = reason;
                        self.snapshot_tx.send_replace(Arc::new(self.state.clone()));
                    }
                }
            }
        }
    }

    /// The store's own events are inputs like any other: through `apply`, then out the way of
    /// every state event (`B/events` and SSE).
    fn publish_event(&mut self, name: EventName, data: serde_json::Value) {
        let announce = Announce(Event::new(name, data));
        let applied = apply(&mut self.state, announce, self.clock.now());
        let mut change = Change::default();
        for effect in applied.effects {
            if let Effect::Event(event) = effect {
                change.events.push(event);
            }
        }
        if !change.is_empty() {
            let _ = self.changes_tx.send(Arc::new(change));
        }
    }

    fn commit(&self, keys: &BTreeSet<Key>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let Some(disk) = &self.disk else {
            return Err(self.refusal());
        };
        let started = std::time::Instant::now();
        let result = disk.write(keys, &self.state);
        self.write_latency.record(started.elapsed());
        result
    }
}

fn is_eve_link_event(event: &Event) -> bool {
    matches!(event.event, EventName::EveOnline | EventName::EveOffline)
}
