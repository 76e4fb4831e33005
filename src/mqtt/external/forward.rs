//! Publishes from the plant broker on their way to the shared ingress channel, and their
//! acknowledgements.
//!
//! The client runs with manual acks: a QoS 1 publish is acknowledged only once ingress has taken
//! it. rumqttc's automatic ack goes out as soon as the packet is read, so a command flood faster
//! than the store filled our buffer and the excess was dropped although the broker had been told
//! it was delivered (10 x 1,000 commands through Mosquitto: about 5,000 answered, the rest
//! acknowledged and lost). Unacknowledged, the rest stays with the broker, which sends no more
//! than its in-flight window (Mosquitto's `max_inflight_messages`, 20 by default) ahead of our
//! acks. That window is what bounds the queue here, so QoS 1 is never dropped; QoS 0 has no window
//! and is dropped once [`CAPACITY`] messages wait.

use super::{bump, ExternalStatus};
use crate::mqtt::Incoming;
use rumqttc::{AsyncClient, Publish, QoS};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// QoS 0 publishes waiting for ingress beyond which a new one is dropped.
pub const CAPACITY: usize = 4096;

/// One publish from the plant broker, and the ack it is owed.
pub struct Forwarded {
    msg: Incoming,
    /// The packet id to acknowledge and the connection (its ConnAck count) it came on.
    ack: Option<(u64, Publish)>,
}

/// The event loop task's end: never waits.
pub struct Inlet {
    tx: mpsc::UnboundedSender<Forwarded>,
    waiting: Arc<AtomicUsize>,
    status: Arc<watch::Sender<ExternalStatus>>,
}

/// The forwarder task's end.
pub struct Outlet {
    rx: mpsc::UnboundedReceiver<Forwarded>,
    waiting: Arc<AtomicUsize>,
    status: watch::Receiver<ExternalStatus>,
    client: AsyncClient,
    /// Messages waiting in our queue for the plant broker (set by the publisher task).
    backlog: Arc<AtomicUsize>,
}

/// Outgoing messages waiting beyond which acks (and so new commands) are held back: each command
/// makes about four messages for the plant broker, and the queue drops what finds it full.
const BACKLOG_LIMIT: usize = crate::mqtt::SINK_CAPACITY / 4;

pub fn channel(
    status: Arc<watch::Sender<ExternalStatus>>,
    client: AsyncClient,
    backlog: Arc<AtomicUsize>,
) -> (Inlet, Outlet) {
    let (tx, rx) = mpsc::unbounded_channel();
    let waiting = Arc::new(AtomicUsize::new(0));
    let outlet = Outlet {
        rx,
        waiting: waiting.clone(),
        status: status.subscribe(),
        client,
        backlog,
    };
    (
        Inlet {
            tx,
            waiting,
            status,
        },
        outlet,
    )
}

impl Inlet {
    /// Queues a publish read by the event loop (which must keep polling, so this never waits).
    pub fn receive(&self, p: Publish) {
        let ack = (p.qos != QoS::AtMostOnce).then(|| {
            // Only the QoS and packet id matter to `AsyncClient::ack`.
            let mut ack = Publish::new("", p.qos, Vec::<u8>::new());
            ack.pkid = p.pkid;
            (self.status.borrow().connections, ack)
        });
        if ack.is_none() && self.waiting.load(Ordering::Relaxed) >= CAPACITY {
            let dropped = bump(&self.status, |s| &mut s.dropped_incoming);
            if dropped.is_power_of_two() {
                tracing::warn!(
                    topic = %p.topic,
                    dropped,
                    "command ingress is too far behind: dropped a QoS 0 publish from the plant broker"
                );
            }
            return;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let msg = Incoming {
            topic: p.topic,
            payload: p.payload,
            retain: p.retain,
            response_topic: None,
            correlation: None,
        };
        // Closed only when the forwarder has stopped: shutting down.
        let _ = self.tx.send(Forwarded { msg, ack });
    }
}

impl Outlet {
    /// Hands each publish to ingress (waiting for room), then acknowledges it if it is owed an
    /// ack on the connection that is still up. An ack for a lost connection is not sent: the
    /// broker knows nothing of that packet id any more (clean session).
    pub async fn run(mut self, to: mpsc::Sender<Incoming>) {
        while let Some(Forwarded { msg, ack }) = self.rx.recv().await {
            let handed = to.send(msg).await;
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            if handed.is_err() {
                break;
            }
            let Some((connection, publish)) = ack else {
                continue;
            };
            let current = |s: &ExternalStatus| s.connected && s.connections == connection;
            if !current(&self.status.borrow()) {
                continue;
            }
            // Pace intake on the way out: while replies pile up, the broker keeps the commands.
            while self.backlog.load(Ordering::Relaxed) > BACKLOG_LIMIT
                && current(&self.status.borrow())
            {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            // The ack waits its turn in rumqttc's request channel behind our publishes; give up
            // when the connection it belongs to goes.
            tokio::select! {
                _ = self.client.ack(&publish) => {}
                _ = self.status.wait_for(|s| !current(s)) => {}
            }
        }
    }
}
