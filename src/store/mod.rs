//! The durable store: a handle to submit inputs and read snapshots, the actor that owns the
//! state, and the redb file in `store.dir`.

mod actor;
mod disk;
mod reports;

pub use disk::{StoreError, DB_FILE};

use crate::state::{Endpoint, Event, Input, Limits, Reply as StateReply, State, StateTopic};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub type Reply = StateReply;

/// What one batch changed: for telemetry, signal streams and event consumers.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub events: Vec<Event>,
    pub topics: BTreeSet<StateTopic>,
    pub signals: BTreeSet<Endpoint>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.topics.is_empty() && self.signals.is_empty()
    }
}

/// What became of an intent, as every way in (MQTT, REST, rules) reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum IntentOutcome {
    /// Durable; the reply JSON (command, desired state, note ...).
    Accepted(serde_json::Value),
    /// Refused by the state machine (unknown app, nothing to cancel ...): the reason.
    Rejected(String),
    /// Not stored (store failure, shutting down): the reason.
    Failed(String),
}

impl IntentOutcome {
    /// The reply's `Ok(accepted JSON)` or `Err(reason)`.
    pub fn into_result(self) -> Result<serde_json::Value, String> {
        match self {
            IntentOutcome::Accepted(v) => Ok(v),
            IntentOutcome::Rejected(why) | IntentOutcome::Failed(why) => Err(why),
        }
    }
}

/// Wall clock for timestamps, monotonic clock for timers.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    started: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            started: Instant::now(),
        }
    }

    pub fn now(&self) -> crate::state::Now {
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        crate::state::Now {
            unix_ns,
            mono_ms: self.started.elapsed().as_millis() as u64,
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Commit latency counters (for metrics).
#[derive(Debug, Default)]
pub struct WriteStats {
    pub commits: AtomicU64,
    pub total_us: AtomicU64,
    pub max_us: AtomicU64,
}

impl WriteStats {
    fn record(&self, took: Duration) {
        let us = took.as_micros() as u64;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }
}

/// A cheap, cloneable handle to the store actor.
#[derive(Clone)]
pub struct StoreHandle {
    inputs_tx: mpsc::Sender<actor::Request>,
    snapshot_rx: watch::Receiver<Arc<State>>,
    changes_tx: broadcast::Sender<Arc<Change>>,
    pub write_stats: Arc<WriteStats>,
}

impl StoreHandle {
    /// Submits an input and waits until it is applied and durable.
    pub async fn submit(&self, input: Input) -> Result<Reply, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inputs_tx
            .send((input, Some(tx)))
            .await
            .map_err(|_| StoreError::Write("the store is shutting down".into()))?;
        rx.await
            .map_err(|_| StoreError::Write("the store is shutting down".into()))?
    }

    /// Queues an input (in order) and returns where its durable reply will arrive.
    pub async fn enqueue(
        &self,
        input: Input,
    ) -> Result<oneshot::Receiver<Result<Reply, StoreError>>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inputs_tx
            .send((input, Some(tx)))
            .await
            .map_err(|_| StoreError::Write("the store is shutting down".into()))?;
        Ok(rx)
    }

    /// Queues an operator intent (in order, so intents apply in the order they arrived) and
    /// returns a future for its durable outcome, to be awaited elsewhere so the caller can go on.
    pub async fn intent(
        &self,
        intent: crate::state::Intent,
        source: String,
    ) -> impl std::future::Future<Output = IntentOutcome> + Send + 'static {
        let pending = self.enqueue(Input::Intent { intent, source }).await;
        async move {
            match pending {
                Ok(rx) => match rx.await {
                    Ok(Ok(StateReply::Accepted(acc))) => {
                        IntentOutcome::Accepted(serde_json::to_value(acc).unwrap_or_default())
                    }
                    Ok(Ok(StateReply::Rejected(why))) => IntentOutcome::Rejected(why),
                    Ok(Ok(other)) => {
                        IntentOutcome::Failed(format!("internal error: unexpected reply {other:?}"))
                    }
                    Ok(Err(err)) => IntentOutcome::Failed(format!("not accepted: {err}")),
                    Err(_) => {
                        IntentOutcome::Failed("not accepted: the gateway is shutting down".into())
                    }
                },
                Err(err) => IntentOutcome::Failed(format!("not accepted: {err}")),
            }
        }
    }

    /// Announces an event that changes no state (bridge rules), to the same consumers as the
    /// store's own events: `B/events` and the SSE stream.
    pub fn announce(&self, event: Event) {
        let _ = self.changes_tx.send(Arc::new(Change {
            events: vec![event],
            ..Change::default()
        }));
    }

    /// Whether the store actor is still running.
    pub fn is_alive(&self) -> bool {
        !self.inputs_tx.is_closed()
    }

    /// The latest state; never waits on the actor.
    pub fn snapshot(&self) -> Arc<State> {
        self.snapshot_rx.borrow().clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes_tx.subscribe()
    }

    pub fn watch(&self) -> watch::Receiver<Arc<State>> {
        self.snapshot_rx.clone()
    }
}

/// Resolves when the store actor has stopped (after its last commit).
pub struct StoreTask {
    done: oneshot::Receiver<()>,
}

impl std::future::Future for StoreTask {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.done).poll(cx).map(|_| ())
    }
}

/// Opens the store in `dir`, loads the state and starts the actor on its own thread.
pub fn start(
    dir: &Path,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(StoreHandle, StoreTask), StoreError> {
    let disk = disk::Disk::open(dir)?;
    let state = disk.load(limits)?;
    let (inputs_tx, inputs_rx) = mpsc::channel(1024);
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(state.clone()));
    let (changes_tx, _) = broadcast::channel(1024);
    let write_stats = Arc::new(WriteStats::default());
    let actor = actor::Actor {
        state,
        disk,
        clock: Clock::new(),
        inputs_rx,
        snapshot_tx,
        changes_tx: changes_tx.clone(),
        write_latency: write_stats.clone(),
    };
    // The actor fsyncs on every commit: it gets its own thread so no async worker ever blocks.
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(actor.run(shutdown)),
                Err(err) => tracing::error!(%err, "cannot start the store thread's runtime"),
            }
            let _ = done_tx.send(());
        })
        .map_err(|e| StoreError::Open(dir.to_path_buf(), e.to_string()))?;
    let task = StoreTask { done: done_rx };
    Ok((
        StoreHandle {
            inputs_tx,
            snapshot_rx,
            changes_tx,
            write_stats,
        },
        task,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{DeviceAction, Intent};

    fn limits() -> Limits {
        Limits::default()
    }

    #[tokio::test]
    async fn accepted_commands_and_counters_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let token = CancellationToken::new();
        let (store, task) = start(dir.path(), limits(), token.clone()).unwrap();
        let reply = store
            .submit(Input::Intent {
                intent: Intent::DeviceCommand {
                    action: DeviceAction::Reboot,
                },
                source: "t".into(),
            })
            .await
            .unwrap();
        let Reply::Accepted(acc) = reply else {
            panic!("{reply:?}")
        };
        let cmd = acc.command.unwrap();
        store
            .submit(Input::Intent {
                intent: Intent::SetProfile {
                    profile: "night".into(),
                },
                source: "t".into(),
            })
            .await
            .unwrap();
        token.cancel();
        task.await;
        drop(store);

        let (store, _task) = start(dir.path(), limits(), CancellationToken::new()).unwrap();
        let state = store.snapshot();
        assert_eq!(state.commands[&cmd.id].timestamp, cmd.timestamp);
        assert_eq!(state.meta.desired.profile.name, "night");
        assert_eq!(state.meta.last_timestamp, cmd.timestamp);
        let reply = store
            .submit(Input::Intent {
                intent: Intent::DeviceCommand {
                    action: DeviceAction::Shutdown,
                },
                source: "t".into(),
            })
            .await
            .unwrap();
        let Reply::Accepted(acc) = reply else {
            panic!()
        };
        let next = acc.command.unwrap();
        assert!(next.id > cmd.id && next.timestamp > cmd.timestamp);
    }

    #[test]
    fn a_second_process_cannot_open_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let _first = disk::Disk::open(dir.path()).unwrap();
        let err = disk::Disk::open(dir.path())
            .err()
            .expect("second open must fail");
        assert!(err.to_string().contains("cannot open store"), "{err}");
    }
}
