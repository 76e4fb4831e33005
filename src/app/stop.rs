//! The stop order, in one place.

use crate::mqtt::{EmbeddedLink, Publisher};
use crate::store::{StoreHandle, StoreTask};
use crate::tasks::Tasks;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long stopping may take in all; a stage still running then is left behind (logged).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A started gateway: where it listens and how to stop it.
pub struct Running {
    pub lps_addr: SocketAddr,
    pub operator_addr: Option<SocketAddr>,
    pub mqtt_addr: Option<SocketAddr>,
    pub store: StoreHandle,
    /// What the gateway publishes through, and its embedded broker link's health.
    pub publisher: Publisher,
    pub(super) tasks: Tasks,
    pub(super) embedded: Option<EmbeddedLink>,
    pub(super) store_stop: CancellationToken,
    pub(super) store_task: StoreTask,
}

/// Waits for `stage` until `deadline`; says so when it had to give up.
async fn until(deadline: Instant, stage: &str, done: impl Future<Output = ()>) {
    if tokio::time::timeout_at(deadline, done).await.is_err() {
        tracing::warn!(
            stage,
            "did not stop within the stop timeout ({STOP_TIMEOUT:?}); going on without it"
        );
    }
}

impl Running {
    /// Stops in order, within [`STOP_TIMEOUT`] in all:
    /// 1. the ways in: HTTP servers (requests in progress finish), event and signal streams,
    ///    the MQTT ingress (it reads nothing more, but hands the store every command it read),
    ///    rules, schedules;
    /// 2. the replies to what came in: every accepted command's reply is published;
    /// 3. the publishers: telemetry (the last changes included), Sparkplug (NDEATH), the plant
    ///    broker (offline state, DISCONNECT); then the replies to writes made meanwhile;
    /// 4. the embedded broker's link hands the router everything queued;
    /// 5. the store, which commits what it holds and closes.
    ///
    /// The embedded broker itself (rumqttd's router and our listener threads) has no stop: it
    /// delivers what the link gave it while the process lives, and ends with it.
    pub async fn stop(self) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        let tasks = self.tasks;
        tasks.input.cancel();
        until(deadline, "ways in", tasks.input.tracker.wait()).await;
        // Nothing spawns replies any more but Sparkplug (stage 3): closing only lets `wait`
        // end; a later spawn is still tracked and waited for below.
        tasks.replies.close();
        until(deadline, "replies", tasks.replies.wait()).await;
        tasks.output.cancel();
        until(deadline, "publishers", tasks.output.tracker.wait()).await;
        until(deadline, "replies", tasks.replies.wait()).await;
        self.publisher.close();
        if let Some(link) = self.embedded {
            until(deadline, "embedded broker link", link.drained()).await;
        }
        self.store_stop.cancel();
        until(deadline, "store", self.store_task).await;
    }
}
