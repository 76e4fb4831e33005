//! EVE simulator: an EVE-OS node that talks to an LPS exactly as EVE's
//! `LocalCmdAgent` does (see `spec/eve-client-behavior.md`): protobuf
//! polls with jittered intervals, token checks, command dedupe, profile
//! switching, device commands (shutdown, poweroff, reboot, collect-info),
//! boot order, network overrides, GNSS location and the signal stream.
//!
//! It is the other end of the gateway's end-to-end tests and of `lps-bridge
//! simulate-eve` / `demo` (re-exported there as `lps_bridge::simulator`). Everything it does is visible in a
//! [`SimSnapshot`], published on every change.
//!
//! ```no_run
//! # async fn demo() {
//! use eve_sim::{self as simulator, AppSpec, SimOptions};
//! let mut opts = SimOptions::new("http://127.0.0.1:8888", "secret");
//! opts.apps = AppSpec::parse_list("plc,vision@day,batch@night").unwrap();
//! opts.speed = 20.0;
//! let sim = simulator::spawn(opts);
//! let _ = sim
//!     .wait_for(|s| s.effective_profile == "night", std::time::Duration::from_secs(10))
//!     .await;
//! sim.stop().await;
//! # }
//! ```

mod apps;
mod boot;
mod device;
mod http;
mod location;
mod network;
mod node;
mod options;
mod pollers;
mod profile;
mod radio;
mod runtime;
mod signal;
mod snapshot;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use options::{AppSpec, SimOptions};
pub use snapshot::{
    CollectInfo, Endpoint, EndpointCounters, ReceivedCommand, SignalStats, SimApp, SimAppCommand,
    SimLocation, SimNetwork, SimSnapshot,
};

use node::SimState;
use runtime::Node;

/// A running simulated node. Dropping it stops the node too.
pub struct SimHandle {
    node: Arc<Node>,
    rx: watch::Receiver<SimSnapshot>,
    root: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Starts a simulated node (needs a tokio runtime); returns at once.
pub fn spawn(opts: SimOptions) -> SimHandle {
    let state = SimState::new(&opts);
    let http = http::Http::new(&opts.lps_url, &state.timing);
    let root = CancellationToken::new();
    let node = Node::new(state, http, &root);
    let rx = node.subscribe();
    let task = tokio::spawn(runtime::supervise(node.clone(), root.clone()));
    SimHandle {
        node,
        rx,
        root,
        task: Some(task),
    }
}

impl SimHandle {
    /// The current state.
    pub fn snapshot(&self) -> SimSnapshot {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<SimSnapshot> {
        self.node.subscribe()
    }

    /// Waits until `pred` holds; on timeout (or if the node stopped) returns
    /// the last snapshot as the error.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&SimSnapshot) -> bool,
        timeout: Duration,
    ) -> Result<SimSnapshot, SimSnapshot> {
        let mut rx = self.rx.clone();
        let found = match tokio::time::timeout(timeout, rx.wait_for(|s| pred(s))).await {
            Ok(Ok(snap)) => Some(snap.clone()),
            _ => None,
        };
        found.ok_or_else(|| rx.borrow().clone())
    }

    /// The controller deletes an app (by display name), as when it leaves the edge node's
    /// deployment: EVE stops reporting it at once. Returns whether the app was there.
    pub fn remove_app(&self, name: &str) -> bool {
        let mut found = false;
        self.node.apply(|s| {
            let (was, effects) = s.remove_app(name);
            found = was;
            effects
        });
        found
    }

    /// Ends all of the node's tasks.
    pub async fn stop(mut self) {
        self.root.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.root.cancel();
    }
}

/// Runs a simulated node until `shutdown` completes, logging what it does.
pub async fn run(opts: SimOptions, shutdown: impl Future<Output = ()>) {
    let apps: Vec<String> = opts
        .apps
        .iter()
        .map(|a| {
            if a.profiles.is_empty() {
                a.name.clone()
            } else {
                format!("{}@{}", a.name, a.profiles.join("+"))
            }
        })
        .collect();
    let sim = spawn(opts.clone());
    let first = sim.snapshot();
    tracing::info!(
        lps = %opts.lps_url,
        device = %first.device_uuid,
        apps = %apps.join(","),
        profile = %first.effective_profile,
        speed = opts.speed,
        "EVE simulator started"
    );
    let mut rx = sim.subscribe();
    tokio::pin!(shutdown);
    let powered_off = tokio::select! {
        _ = &mut shutdown => false,
        r = rx.wait_for(|s| s.powered_off) => r.is_ok(),
    };
    if powered_off {
        tracing::info!("EVE simulator: the node powered off; waiting for shutdown");
        shutdown.await;
    }
    sim.stop().await;
    tracing::info!("EVE simulator stopped");
}
