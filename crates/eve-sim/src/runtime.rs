//! The running node: shared state behind a lock, the effect executor
//! (timers, immediate polls) and the supervisor that owns power: it starts
//! one session of pollers per boot and ends it on reboot or poweroff.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::device::DownKind;
use super::http::Http;
use super::node::{Effect, SimState};
use super::options::{real, Timing};
use super::snapshot::{Endpoint, SimSnapshot};
use super::{pollers, signal};

/// Everything that lives for one boot: the pollers' cancellation and their
/// immediate-poll triggers (fresh per boot, so no trigger leaks across).
pub(crate) struct Session {
    pub token: CancellationToken,
    triggers: Vec<Notify>,
}

impl Session {
    fn new(token: CancellationToken) -> Self {
        Session {
            token,
            triggers: Endpoint::ALL.iter().map(|_| Notify::new()).collect(),
        }
    }

    pub fn trigger(&self, ep: Endpoint) -> &Notify {
        &self.triggers[ep as usize]
    }
}

pub(crate) struct Node {
    state: Mutex<SimState>,
    snap: watch::Sender<SimSnapshot>,
    session: Mutex<Arc<Session>>,
    /// Wakes the supervisor when the node should go down.
    down: Notify,
    pub http: Http,
    pub timing: Timing,
}

impl Node {
    pub fn new(state: SimState, http: Http, root: &CancellationToken) -> Arc<Self> {
        let timing = state.timing;
        let (snap, _) = watch::channel(state.snapshot());
        Arc::new(Node {
            state: Mutex::new(state),
            snap,
            session: Mutex::new(Arc::new(Session::new(root.child_token()))),
            down: Notify::new(),
            http,
            timing,
        })
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic elsewhere must not take the simulator down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> watch::Receiver<SimSnapshot> {
        self.snap.subscribe()
    }

    pub fn read<R>(&self, f: impl FnOnce(&SimState) -> R) -> R {
        f(&self.lock())
    }

    /// Mutates the state and publishes a new snapshot.
    pub fn update<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let mut state = self.lock();
        let r = f(&mut state);
        self.snap.send_replace(state.snapshot());
        r
    }

    /// Runs a transition and executes its effects.
    pub fn apply(self: &Arc<Self>, f: impl FnOnce(&mut SimState) -> Vec<Effect>) {
        let effects = self.update(f);
        self.exec(effects);
    }

    fn session(&self) -> Arc<Session> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_session(&self, s: Arc<Session>) {
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// Timers are tied to the current boot: a reboot cancels them.
    fn later(
        self: &Arc<Self>,
        session: &Arc<Session>,
        after: std::time::Duration,
        f: impl FnOnce(&Arc<Node>) + Send + 'static,
    ) {
        let node = self.clone();
        let token = session.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                // A timer of a boot that already ended must not fire.
                biased;
                _ = token.cancelled() => {}
                _ = tokio::time::sleep(after) => f(&node),
            }
        });
    }

    pub fn exec(self: &Arc<Self>, effects: Vec<Effect>) {
        if effects.is_empty() {
            return;
        }
        let session = self.session();
        for e in effects {
            match e {
                Effect::Trigger(ep) => session.trigger(ep).notify_one(),
                Effect::TriggerAfter(ep, after) => {
                    let s = session.clone();
                    self.later(&session, after, move |_| s.trigger(ep).notify_one());
                }
                Effect::FinishAppOp { app, seq, after } => {
                    self.later(&session, after, move |n| {
                        n.apply(|s| s.finish_app_op(app, seq))
                    });
                }
                Effect::FinishRadioChange { seq, after } => {
                    self.later(&session, after, move |n| {
                        n.apply(|s| s.finish_radio_change(seq))
                    });
                }
                Effect::GoDownAfter(after) => {
                    self.later(&session, after, |n| n.apply(|s| s.request_down()));
                }
                Effect::GoDown => self.down.notify_one(),
            }
        }
    }
}

/// Owns the node's power. Returns when `root` is cancelled.
pub(crate) async fn supervise(node: Arc<Node>, root: CancellationToken) {
    let mut booting_after_reboot = false;
    loop {
        let session = Arc::new(Session::new(root.child_token()));
        node.set_session(session.clone());
        let mut tasks = JoinSet::new();
        for ep in pollers::POLLED {
            tasks.spawn(pollers::run(node.clone(), ep, session.clone()));
        }
        tasks.spawn(signal::run(node.clone(), session.clone()));
        if booting_after_reboot {
            node.apply(|s| s.boot_after_reboot());
        }
        // At every boot EVE's UpdateLpsConfig sees the LPS address appear
        // and polls every endpoint at once (location has no trigger).
        node.exec(
            pollers::POLLED
                .into_iter()
                .filter(|&ep| ep != Endpoint::Location)
                .map(Effect::Trigger)
                .collect(),
        );

        let going_down = loop {
            tokio::select! {
                _ = root.cancelled() => break false,
                _ = node.down.notified() => {
                    if node.read(|s| s.dev.down_requested) {
                        break true;
                    }
                }
            }
        };
        session.token.cancel();
        while tasks.join_next().await.is_some() {}
        if !going_down {
            return;
        }

        match node.read(|s| s.dev.going_down()) {
            Some(DownKind::Reboot) => {
                tracing::info!("sim: node is rebooting");
                tokio::select! {
                    _ = root.cancelled() => return,
                    _ = tokio::time::sleep(node.timing.scale(real::REBOOT_DOWNTIME)) => {}
                }
                booting_after_reboot = true;
            }
            Some(DownKind::Poweroff) | None => {
                node.update(|s| s.powered_off = true);
                tracing::info!("sim: node powered off; it stays silent");
                root.cancelled().await;
                return;
            }
        }
    }
}
