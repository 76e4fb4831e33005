//! The durable store: a handle to submit inputs and read snapshots, the actor that owns the
//! state, and the redb file in `store.dir`.

mod actor;
mod disk;
mod fault;
mod reports;
mod request;

pub use disk::{StoreError, DB_FILE};
pub use fault::{RETRY_FIRST, RETRY_MAX};

use crate::state::{
    Announce, Endpoint, Event, Input, IntentReply, Limits, Origin, State, StateTopic, Submission,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

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
    /// Refused by the state machine (unknown app, nothing to cancel ...).
    Rejected(crate::state::Refusal),
    /// Not stored: nothing changed.
    Failed(NotStored),
}

/// Why an intent the state machine would take was not stored; the text says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStored {
    /// Writes are refused until the store heals (`StoreError::ReadOnly`'s reason).
    ReadOnly {
        reason: String,
    },
    ShuttingDown,
    /// Any other store error, as the store words it.
    StoreFailed {
        reason: String,
    },
}

impl From<StoreError> for NotStored {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ReadOnly(reason) => NotStored::ReadOnly { reason },
            StoreError::ShuttingDown => NotStored::ShuttingDown,
            other => NotStored::StoreFailed {
                reason: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for NotStored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotStored::ReadOnly { reason } => {
                write!(f, "not accepted: {}", StoreError::ReadOnly(reason.clone()))
            }
            NotStored::ShuttingDown => {
                write!(f, "not accepted: {}", StoreError::ShuttingDown)
            }
            NotStored::StoreFailed { reason } => write!(f, "not accepted: {reason}"),
        }
    }
}

impl std::error::Error for NotStored {}

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

/// Commit latency and fault counters (for metrics).
#[derive(Debug, Default)]
pub struct WriteStats {
    pub commits: AtomicU64,
    pub total_us: AtomicU64,
    pub max_us: AtomicU64,
    /// Times the store turned read-only (a failed commit, or a start without write access).
    pub failures: AtomicU64,
    /// Times it became writable again without a restart.
    pub reopens: AtomicU64,
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
    /// EVE's requests: served before intents.
    eve_tx: mpsc::Sender<request::Request>,
    /// Operator intents and everything else; bounded, so a flood waits here, not in memory.
    inputs_tx: mpsc::Sender<request::Request>,
    snapshot_rx: watch::Receiver<Arc<State>>,
    changes_tx: broadcast::Sender<Arc<Change>>,
    pub write_stats: Arc<WriteStats>,
}

impl StoreHandle {
    /// Submits an input and waits until it is applied and durable (or, for EVE's requests
    /// while the store is read-only, answered from what is durable).
    pub async fn submit<I: Input>(&self, input: I) -> Result<I::Reply, StoreError> {
        let rx = self.enqueue(input).await?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Queues an input (in order) and returns where its durable reply will arrive.
    pub async fn enqueue<I: Input>(
        &self,
        input: I,
    ) -> Result<oneshot::Receiver<Result<I::Reply, StoreError>>, StoreError> {
        let (request, rx) = request::with_reply(input);
        let queue = match I::ORIGIN {
            Origin::Eve => &self.eve_tx,
            _ => &self.inputs_tx,
        };
        queue
            .send(request)
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        Ok(rx)
    }

    /// Queues an operator intent (in order, so intents apply in the order they arrived) and
    /// returns a future for its durable outcome, to be awaited elsewhere so the caller can go on.
    pub async fn intent(
        &self,
        intent: crate::state::Intent,
        source: String,
    ) -> impl std::future::Future<Output = IntentOutcome> + Send + 'static {
        let pending = self.enqueue(Submission { intent, source }).await;
        async move {
            match pending {
                Ok(rx) => match rx.await {
                    Ok(Ok(IntentReply::Accepted(acc))) => {
                        IntentOutcome::Accepted(serde_json::to_value(acc).unwrap_or_default())
                    }
                    Ok(Ok(IntentReply::Rejected(why))) => IntentOutcome::Rejected(why),
                    Ok(Err(err)) => IntentOutcome::Failed(err.into()),
                    Err(_) => IntentOutcome::Failed(NotStored::ShuttingDown),
                },
                Err(err) => IntentOutcome::Failed(err.into()),
            }
        }
    }

    /// Queues an event that changes no state (bridge rules, MQTT losses) as an input, in order
    /// with intents: it goes through `apply` to `B/events` and the SSE stream. Nobody waits for
    /// it; once the store has stopped it is dropped.
    pub async fn event(&self, event: Event) {
        let _ = self
            .inputs_tx
            .send(request::unanswered(Announce(event)))
            .await;
    }

    /// Whether the store actor is still running.
    pub fn is_alive(&self) -> bool {
        !self.inputs_tx.is_closed()
    }

    /// Whether writes are taken now, and if not why (also in every snapshot as `store`).
    pub fn status(&self) -> crate::state::StoreStatus {
        self.snapshot_rx.borrow().store.clone()
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

/// Opens the store in `dir`, loads the state and starts the actor on its own thread. A store
/// that cannot be written starts read-only (serving what is on disk) and heals by itself; only
/// a store that cannot be read at all is an error.
pub fn start(
    dir: &Path,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(StoreHandle, StoreTask), StoreError> {
    start_with(
        dir,
        limits,
        fault::Backoff::new(RETRY_FIRST, RETRY_MAX),
        shutdown,
    )
}

fn start_with(
    dir: &Path,
    limits: Limits,
    backoff: fault::Backoff,
    shutdown: CancellationToken,
) -> Result<(StoreHandle, StoreTask), StoreError> {
    let (disk, state, refused) = match disk::Disk::open(dir)? {
        disk::Opened::Writable(disk) => {
            let state = disk.load(limits)?;
            (Some(disk), state, None)
        }
        disk::Opened::ReadOnly(disk, why) => {
            let state = match &disk {
                Some(disk) => disk.load(limits)?,
                None => State::new(limits),
            };
            (disk, state, Some(why.fault_reason(dir)))
        }
    };
    let (eve_tx, eve_rx) = mpsc::channel(256);
    let (inputs_tx, inputs_rx) = mpsc::channel(1024);
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(state.clone()));
    let (changes_tx, _) = broadcast::channel(1024);
    let write_stats = Arc::new(WriteStats::default());
    let mut actor = actor::Actor {
        durable: Arc::new(state.clone()),
        state,
        disk,
        dir: dir.to_path_buf(),
        clock: Clock::new(),
        backoff,
        retry_at: None,
        eve_rx,
        intents_rx: inputs_rx,
        snapshot_tx,
        changes_tx: changes_tx.clone(),
        write_latency: write_stats.clone(),
    };
    if let Some(reason) = refused {
        tracing::error!(%reason, "store opened read-only: serving what is on disk, refusing writes until it can write again");
        actor.enter_fault(reason);
    }
    // The actor fsyncs on every commit: it gets its own thread so no async worker ever blocks.
    // It ends on `shutdown`; `StoreTask` resolves then (the last step of `app`'s stop order).
    // Timers only, no I/O driver: the store does no async I/O, and an idle store then parks on
    // a futex (woken directly) instead of in epoll_wait (woken through an eventfd).
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_time()
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
            eve_tx,
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
            .submit(Submission {
                intent: Intent::DeviceCommand {
                    action: DeviceAction::Reboot,
                },
                source: "t".into(),
            })
            .await
            .unwrap();
        let IntentReply::Accepted(acc) = reply else {
            panic!("{reply:?}")
        };
        let cmd = acc.command.unwrap();
        store
            .submit(Submission {
                intent: Intent::SetProfile {
                    profile: "night".into(),
                    force: false,
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
            .submit(Submission {
                intent: Intent::DeviceCommand {
                    action: DeviceAction::Shutdown,
                },
                source: "t".into(),
            })
            .await
            .unwrap();
        let IntentReply::Accepted(acc) = reply else {
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

    /// Blocks the probe write (a directory where the probe file goes), which the store must
    /// take as "cannot write" the way it takes a full or read-only disk.
    fn block_writes(dir: &Path) {
        std::fs::create_dir(dir.join("lps-bridge.probe")).unwrap();
    }

    fn unblock_writes(dir: &Path) {
        std::fs::remove_dir(dir.join("lps-bridge.probe")).unwrap();
    }

    fn reboot() -> Submission {
        Submission {
            intent: Intent::DeviceCommand {
                action: DeviceAction::Reboot,
            },
            source: "t".into(),
        }
    }

    #[tokio::test]
    async fn starts_read_only_serves_eve_and_heals_after_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let token = CancellationToken::new();
        let (store, task) = start(dir.path(), limits(), token.clone()).unwrap();
        store
            .submit(Submission {
                intent: Intent::SetProfile {
                    profile: "night".into(),
                    force: false,
                },
                source: "t".into(),
            })
            .await
            .unwrap();
        token.cancel();
        task.await;
        drop(store);

        block_writes(dir.path());
        let backoff = fault::Backoff::new(Duration::from_millis(20), Duration::from_millis(80));
        let (store, _task) =
            start_with(dir.path(), limits(), backoff, CancellationToken::new()).unwrap();
        let mut changes = store.subscribe();
        let status = store.status();
        let reason = status.reason().expect("read-only at start").to_string();
        assert!(
            reason.contains(&dir.path().display().to_string()),
            "{reason}"
        );
        assert_eq!(store.write_stats.failures.load(Ordering::Relaxed), 1);
        // EVE gets what is on disk; the profile is not marked fetched (that write is dropped).
        for _ in 0..2 {
            let reply = store
                .submit(crate::state::poll::LocalProfile)
                .await
                .unwrap();
            assert_eq!(reply, "night");
            assert!(!store.snapshot().meta.desired.profile.fetched);
        }
        let err = store.submit(reboot()).await.unwrap_err();
        assert!(matches!(err, StoreError::ReadOnly(_)), "{err:?}");
        assert_eq!(err.to_string(), format!("the store cannot write: {reason}"));
        assert!(store.snapshot().commands.is_empty());

        // Retries (every 20-80 ms here) fail while blocked; none of them counts as a new fault.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!store.status().is_writable());
        assert_eq!(store.write_stats.failures.load(Ordering::Relaxed), 1);

        unblock_writes(dir.path());
        let recovered = loop {
            let change = tokio::time::timeout(Duration::from_secs(10), changes.recv())
                .await
                .expect("store_recovered within 10 s")
                .unwrap();
            if let Some(e) = change
                .events
                .iter()
                .find(|e| e.event == crate::state::EventName::StoreRecovered)
            {
                break e.clone();
            }
        };
        assert!(recovered.data.contains_key("read_only_ms"));
        assert!(store.status().is_writable());
        assert_eq!(store.write_stats.reopens.load(Ordering::Relaxed), 1);
        let IntentReply::Accepted(acc) = store.submit(reboot()).await.unwrap() else {
            panic!("accepted after healing")
        };
        assert!(acc.command.is_some());
        assert_eq!(store.snapshot().meta.desired.profile.name, "night");
    }

    #[test]
    fn a_store_that_cannot_be_read_does_not_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), b"not a redb file at all").unwrap();
        block_writes(dir.path());
        let err = start(dir.path(), limits(), CancellationToken::new())
            .err()
            .expect("nothing readable: refuse to start");
        let text = err.to_string();
        assert!(text.contains("reading it failed too"), "{text}");
    }

    #[tokio::test]
    async fn an_empty_directory_that_cannot_be_written_starts_empty_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        block_writes(dir.path());
        let (store, _task) = start(dir.path(), limits(), CancellationToken::new()).unwrap();
        assert!(!store.status().is_writable());
        let reply = store
            .submit(crate::state::poll::LocalProfile)
            .await
            .unwrap();
        assert_eq!(reply, "");
    }

    #[tokio::test]
    async fn eve_requests_are_served_before_queued_intents() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _task) = start(dir.path(), limits(), CancellationToken::new()).unwrap();
        // Fill the intent queue, then ask as EVE: EVE's answer must not wait for all of them.
        let mut pending = Vec::new();
        for _ in 0..600 {
            pending.push(store.enqueue(reboot()).await.unwrap());
        }
        let eve = store
            .enqueue(crate::state::poll::LocalProfile)
            .await
            .unwrap();
        eve.await.unwrap().unwrap();
        let mut waiting = Vec::new();
        for mut rx in pending {
            match rx.try_recv() {
                Ok(reply) => {
                    reply.unwrap();
                }
                Err(_) => waiting.push(rx),
            }
        }
        assert!(
            !waiting.is_empty(),
            "EVE's request waited for all 600 queued intents"
        );
        for rx in waiting {
            rx.await.unwrap().unwrap();
        }
    }
}
