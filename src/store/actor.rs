//! The store actor: sole owner of `State`. Takes inputs in batches, applies each, commits the
//! changed keys once per batch (group commit), and only then answers and publishes.

use super::disk::Disk;
use super::{Change, Clock, Reply, StoreError};
use crate::state::{apply, Effect, Input, Key, State};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub type Request = (Input, Option<oneshot::Sender<Result<Reply, StoreError>>>);

const BATCH: usize = 128;

pub struct Actor {
    pub state: State,
    pub disk: Disk,
    pub clock: Clock,
    pub inputs_rx: mpsc::Receiver<Request>,
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
            tokio::select! {
                n = self.inputs_rx.recv_many(&mut batch, BATCH) => if n == 0 { break },
                _ = tick.tick() => batch.push((Input::Tick, None)),
                _ = shutdown.cancelled() => break,
            }
            self.process(&mut batch);
        }
        tracing::debug!("store actor stopped");
    }

    fn process(&mut self, batch: &mut Vec<Request>) {
        let mut keys = BTreeSet::new();
        let mut change = Change::default();
        let mut replies = Vec::with_capacity(batch.len());
        for (input, reply_tx) in batch.drain(..) {
            let applied = apply(&mut self.state, input, self.clock.now());
            for effect in applied.effects {
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
            replies.push((reply_tx, applied.reply));
        }
        if let Err(err) = self.commit(&keys) {
            // Nothing in this batch is acknowledged; memory goes back to what is on disk.
            tracing::error!(%err, "store commit failed; the batch is refused");
            match self.disk.load(self.state.limits) {
                Ok(state) => self.state = state,
                Err(reload) => tracing::error!(%reload, "store reload failed"),
            }
            for (tx, _) in replies {
                if let Some(tx) = tx {
                    let _ = tx.send(Err(StoreError::Write(err.to_string())));
                }
            }
            return;
        }
        // Snapshot first: whoever gets a reply and then reads sees what was acknowledged.
        if !keys.is_empty() || !change.is_empty() {
            self.snapshot_tx.send_replace(Arc::new(self.state.clone()));
        }
        for (tx, reply) in replies {
            if let Some(tx) = tx {
                let _ = tx.send(Ok(reply));
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
        let started = std::time::Instant::now();
        let result = self.disk.write(keys, &self.state);
        self.write_latency.record(started.elapsed());
        result
    }
}
