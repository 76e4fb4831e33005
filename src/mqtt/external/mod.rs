//! The gateway as a client of a plant broker (`[mqtt.external]`), beside or instead of the
//! embedded broker: commands in on the same filters, everything the Publisher sends out.
//!
//! Three tasks:
//! - the **event loop** task owns rumqttc's `EventLoop` and does nothing but poll it (rumqttc
//!   only makes progress while polled, and a cancelled `poll` can lose a packet it was
//!   writing): it hands incoming publishes to the forwarder without waiting, reconnects with capped exponential backoff (rumqttc has none of its own) and
//!   logs once per outage;
//! - the **publisher** task drains the Publisher sink into rumqttc's request channel, waiting
//!   for room while connected (the sink, `SINK_CAPACITY` messages, is the buffer for a burst:
//!   dropping at a full request channel lost replies of a command flood; while disconnected a
//!   message is dropped, counted, and retained state is resent on every reconnect) and, after
//!   every ConnAck, resubscribes, publishes the retained birth (after the subscriptions, so
//!   "online" means commands are heard) and republishes the full retained state; on shutdown it publishes the retained offline state and disconnects;
//! - the **forwarder** task feeds incoming publishes into the shared ingress channel and only
//!   then acknowledges them (manual acks, see [`forward`]): the broker holds back what we have
//!   not taken yet instead of us dropping it.
//!
//! The Last Will is `B/bridge/state` = `{"state":"offline"}`, retained, QoS 1. A broker that is
//! down at start-up or goes away later never blocks or fails the gateway.

mod backoff;
mod forward;
mod options;

pub use options::{mqtt_options, parse_url, BrokerUrl};

use super::topics::Topics;
use super::{Incoming, Outgoing, Publisher};
use crate::config::ExternalBroker;
use backoff::Backoff;
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Requests rumqttc buffers between our tasks and its event loop.
const REQUEST_CAPACITY: usize = 1024;
/// How long the goodbye (offline state, DISCONNECT) may take after shutdown.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);
/// A retained republish waits this long for room in a full request channel before dropping.
const RESYNC_PATIENCE: Duration = Duration::from_secs(5);

/// A config problem, found before any connection attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalError {
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// What the connection to the plant broker is doing, for metrics, health and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalStatus {
    /// Between a ConnAck and the next connection error.
    pub connected: bool,
    /// Successful connects (ConnAcks) since start.
    pub connections: u64,
    /// Connects after the first one: `connections - 1` once connected at all.
    pub reconnects: u64,
    /// Connection attempts and connections that failed.
    pub failures: u64,
    /// Messages not sent to the plant broker: disconnected, request channel full, or too large.
    pub dropped_outgoing: u64,
    /// QoS 0 publishes from the plant broker dropped because ingress was too far behind (QoS 1
    /// ones are never dropped: they are acknowledged once ingress has them).
    pub dropped_incoming: u64,
}

/// The running client: its status, and a way to wait for it to finish after shutdown.
pub struct ExternalHandle {
    status: watch::Receiver<ExternalStatus>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
}

impl ExternalHandle {
    pub fn status(&self) -> ExternalStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<ExternalStatus> {
        self.status.clone()
    }

    /// Resolves once the client has stopped: after the shutdown token is cancelled, it waits
    /// for the goodbye (offline state and DISCONNECT) to be written, at most a few seconds.
    /// Fit for a `TaskTracker`.
    pub async fn stopped(self) {
        self.shutdown.cancelled().await;
        let deadline = tokio::time::Instant::now() + GOODBYE_GRACE + Duration::from_secs(1);
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

/// Checks `[mqtt.external]` completely (URL, settings, TLS files), without connecting.
pub fn check(cfg: &ExternalBroker) -> Result<(), ExternalError> {
    options::mqtt_options(cfg, "lps-bridge/bridge/state").map(drop)
}

/// Starts the client. Returns at once: connecting happens in the background, and a broker that
/// cannot be reached is retried forever with backoff. Must be called inside a tokio runtime.
pub fn spawn(
    cfg: &ExternalBroker,
    topics: &Topics,
    filters: Vec<String>,
    publisher: &Publisher,
    incoming: mpsc::Sender<Incoming>,
    shutdown: CancellationToken,
) -> Result<ExternalHandle, ExternalError> {
    let state_topic = topics.topic("bridge/state");
    let (options, url) = options::mqtt_options(cfg, &state_topic)?;
    let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
    let (status_tx, status_rx) = watch::channel(ExternalStatus::default());
    let status_tx = Arc::new(status_tx);
    let session = Arc::new(Notify::new());
    let backlog = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (inlet, outlet) = forward::channel(status_tx.clone(), client.clone(), backlog.clone());

    let link = Link {
        url: url.to_string(),
        status: status_tx.clone(),
        session: session.clone(),
        forward: inlet,
        backoff: Backoff::new(backoff::FIRST, cfg.backoff_max),
        shutdown: shutdown.clone(),
    };
    let out = Out {
        client,
        status: status_tx,
        state_topic,
        filters,
        publisher: publisher.clone(),
        max_packet: cfg.max_packet_bytes,
        warned_drop: false,
        backlog,
    };
    let sink = publisher.add_sink();
    tracing::info!(url = %url, client_id = %cfg.client_id, "connecting to the plant MQTT broker");
    // Owned by the handle: `stopped` joins them (or aborts them after the grace), and the
    // app tracks `stopped`.
    let tasks = vec![
        tokio::spawn(link.run(eventloop)),
        tokio::spawn(out.run(sink, session, shutdown.clone())),
        tokio::spawn(outlet.run(incoming)),
    ];
    Ok(ExternalHandle {
        status: status_rx,
        tasks,
        shutdown,
    })
}

/// The event loop side.
struct Link {
    url: String,
    status: Arc<watch::Sender<ExternalStatus>>,
    session: Arc<Notify>,
    forward: forward::Inlet,
    backoff: Backoff,
    shutdown: CancellationToken,
}

/// One outage: when it began, how many attempts failed, for the single log line at its end.
struct Outage {
    since: Instant,
    failures: u64,
}

impl Link {
    async fn run(mut self, mut eventloop: EventLoop) {
        let mut connected = false;
        let mut ever_connected = false;
        let mut outage: Option<Outage> = None;
        // Set when shutdown is seen while connected: the goodbye must be written by then.
        let mut stop_at: Option<tokio::time::Instant> = None;
        loop {
            if self.shutdown.is_cancelled() {
                if !connected {
                    break;
                }
                stop_at.get_or_insert_with(|| tokio::time::Instant::now() + GOODBYE_GRACE);
            }
            let event = tokio::select! {
                event = eventloop.poll() => event,
                // Not connected: a connection attempt in progress is simply abandoned. Connected:
                // keep polling so the publisher task's goodbye gets written, up to the grace.
                _ = self.shutdown.cancelled(), if stop_at.is_none() => continue,
                _ = sleep_until(stop_at), if stop_at.is_some() => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if self.shutdown.is_cancelled() {
                        // Dropping the connection without DISCONNECT fires the Will (offline).
                        break;
                    }
                    connected = true;
                    self.backoff.reset();
                    self.status.send_modify(|s| {
                        s.connected = true;
                        s.connections += 1;
                        s.reconnects = s.connections - 1;
                    });
                    match outage.take() {
                        Some(o) if ever_connected => tracing::info!(
                            url = %self.url,
                            after = %humantime::format_duration(round(o.since.elapsed())),
                            failed_attempts = o.failures,
                            "reconnected to the plant MQTT broker"
                        ),
                        Some(o) => tracing::info!(
                            url = %self.url,
                            after = %humantime::format_duration(round(o.since.elapsed())),
                            failed_attempts = o.failures,
                            "connected to the plant MQTT broker"
                        ),
                        None => {
                            tracing::info!(url = %self.url, "connected to the plant MQTT broker")
                        }
                    }
                    ever_connected = true;
                    self.session.notify_one();
                }
                Ok(Event::Incoming(Packet::Publish(p))) => self.forward.receive(p),
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                    if self.shutdown.is_cancelled() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    if connected {
                        connected = false;
                        self.status.send_modify(|s| s.connected = false);
                    }
                    if self.shutdown.is_cancelled() {
                        break;
                    }
                    bump(&self.status, |s| &mut s.failures);
                    let delay = self.backoff.next_delay();
                    match &mut outage {
                        None => {
                            outage = Some(Outage {
                                since: Instant::now(),
                                failures: 1,
                            });
                            tracing::warn!(
                                url = %self.url,
                                error = %err,
                                retry_in = %humantime::format_duration(round(delay)),
                                "plant MQTT broker {}; retrying with backoff (logged once per outage)",
                                if ever_connected { "connection lost" } else { "not reachable" },
                            );
                        }
                        Some(o) => {
                            o.failures += 1;
                            tracing::debug!(url = %self.url, error = %err, retry_in = ?delay, "plant MQTT broker still not reachable");
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff::jittered(delay)) => {}
                        _ = self.shutdown.cancelled() => break,
                    }
                }
            }
        }
        self.status.send_modify(|s| s.connected = false);
        tracing::debug!(url = %self.url, "plant MQTT broker client stopped");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whole milliseconds, for logs.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Adds one to a counter; returns the new value.
fn bump(
    status: &watch::Sender<ExternalStatus>,
    field: impl FnOnce(&mut ExternalStatus) -> &mut u64,
) -> u64 {
    let mut now = 0;
    status.send_modify(|s| {
        let f = field(s);
        *f += 1;
        now = *f;
    });
    now
}

/// The publishing side.
struct Out {
    client: AsyncClient,
    status: Arc<watch::Sender<ExternalStatus>>,
    state_topic: String,
    filters: Vec<String>,
    publisher: Publisher,
    max_packet: usize,
    warned_drop: bool,
    /// `sink.len()` for the forwarder's pacing.
    backlog: Arc<std::sync::atomic::AtomicUsize>,
}

/// What a request attempt came to.
enum Sent {
    Yes,
    /// Not sendable (bad topic, too large) or the channel stayed full: dropped.
    Dropped,
    /// Disconnected or stopped: stop this resync, the next ConnAck starts another.
    Abandon,
}

impl Out {
    async fn run(
        mut self,
        mut sink: mpsc::Receiver<Outgoing>,
        session: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        let mut sink_open = true;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = session.notified() => {
                    tokio::select! {
                        _ = self.resync() => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
                out = sink.recv(), if sink_open => match out {
                    Some(out) => {
                        self.backlog.store(sink.len(), std::sync::atomic::Ordering::Relaxed);
                        self.send(out, &shutdown).await
                    }
                    None => sink_open = false,
                },
            }
        }
        self.goodbye(&mut sink);
    }

    fn connected(&self) -> bool {
        self.status.borrow().connected
    }

    fn drop_one(&mut self, topic: &str, why: &str) {
        let dropped = bump(&self.status, |s| &mut s.dropped_outgoing);
        if !self.warned_drop || dropped.is_power_of_two() {
            self.warned_drop = true;
            tracing::warn!(topic, dropped, "not sent to the plant MQTT broker: {why}");
        }
    }

    /// Whether a publish can be sent at all (rumqttc drops the whole connection on a packet
    /// above its limit, and refuses wildcard topics).
    fn sendable(&mut self, topic: &str, payload_len: usize) -> bool {
        if topic.is_empty() || topic.contains(['+', '#']) {
            self.drop_one(topic, "not a valid topic name");
            return false;
        }
        // Fixed header (1 + up to 4), topic length (2), packet id (2).
        if topic.len() + payload_len + 9 > self.max_packet {
            self.drop_one(topic, "larger than mqtt.external.max_packet_bytes");
            return false;
        }
        true
    }

    /// One message from the Publisher: waits for room in the request channel while connected;
    /// dropped and counted if the connection is lost meanwhile. On shutdown it gets one try,
    /// like the rest of the queue in `goodbye`.
    async fn send(&mut self, out: Outgoing, shutdown: &CancellationToken) {
        if !self.accepts(&out) {
            return;
        }
        let mut status = self.status.subscribe();
        let publish = self.client.publish(
            out.topic.clone(),
            QoS::AtLeastOnce,
            out.retain,
            out.payload.to_vec(),
        );
        // `None`: stopping, `Some(None)`: sent, `Some(Some(why))`: dropped.
        let waited = tokio::select! {
            sent = publish => Some(sent.err().map(|_| "the client has stopped")),
            _ = status.wait_for(|s| !s.connected) => Some(Some("connection lost while waiting for room in the request queue")),
            _ = shutdown.cancelled() => None,
        };
        match waited {
            Some(None) => {}
            Some(Some(why)) => self.drop_one(&out.topic, why),
            None => self.send_now(out),
        }
    }

    /// Whether `out` goes to the plant broker at all; counts it as dropped if not.
    fn accepts(&mut self, out: &Outgoing) -> bool {
        // A reply carrying MQTT 5 correlation data is for one client of the embedded broker.
        if out.correlation.is_some() {
            return false;
        }
        if !self.connected() {
            // Retained state is republished in full on reconnect; replies and events of an
            // outage cannot be delivered by a clean session anyway.
            bump(&self.status, |s| &mut s.dropped_outgoing);
            return false;
        }
        self.sendable(&out.topic, out.payload.len())
    }

    /// [`Out::send`] without waiting: sent if there is room, else dropped and counted.
    fn send_now(&mut self, out: Outgoing) {
        if !self.accepts(&out) {
            return;
        }
        if self
            .client
            .try_publish(
                out.topic.as_str(),
                QoS::AtLeastOnce,
                out.retain,
                out.payload.to_vec(),
            )
            .is_err()
        {
            self.drop_one(&out.topic, "the request queue is full");
        }
    }

    /// After a ConnAck: subscriptions, birth, the full retained state. Waits for room in the
    /// request channel (the event loop drains it while connected), never while disconnected.
    async fn resync(&mut self) {
        let client = self.client.clone();
        let state_topic = self.state_topic.clone();
        for filter in self.filters.clone() {
            if let Sent::Abandon = self
                .request(&filter, || {
                    client.try_subscribe(filter.as_str(), QoS::AtLeastOnce)
                })
                .await
            {
                return;
            }
        }
        // Birth after the subscriptions: the broker handles one connection's packets in order, so
        // whoever sees "online" can already be heard (a command sent on it is not missed).
        if let Sent::Abandon = self
            .request(&state_topic, || {
                client.try_publish(
                    state_topic.as_str(),
                    QoS::AtLeastOnce,
                    true,
                    options::ONLINE.to_vec(),
                )
            })
            .await
        {
            return;
        }
        let retained = self.publisher.retained();
        let count = retained.len();
        for out in retained {
            // Our own birth was just sent.
            if out.topic == self.state_topic || !self.sendable(&out.topic, out.payload.len()) {
                continue;
            }
            if let Sent::Abandon = self
                .request(&out.topic, || {
                    client.try_publish(
                        out.topic.as_str(),
                        QoS::AtLeastOnce,
                        true,
                        out.payload.to_vec(),
                    )
                })
                .await
            {
                return;
            }
        }
        tracing::debug!(
            retained = count,
            filters = self.filters.len(),
            "plant broker: birth, subscriptions and retained state sent"
        );
    }

    async fn request(
        &mut self,
        what: &str,
        mut attempt: impl FnMut() -> Result<(), rumqttc::ClientError>,
    ) -> Sent {
        let give_up = tokio::time::Instant::now() + RESYNC_PATIENCE;
        loop {
            if !self.connected() {
                return Sent::Abandon;
            }
            if attempt().is_ok() {
                return Sent::Yes;
            }
            if tokio::time::Instant::now() >= give_up {
                self.drop_one(what, "the request queue stayed full");
                return Sent::Dropped;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// On shutdown: what is still queued (last replies), the retained offline state, DISCONNECT.
    /// A clean DISCONNECT discards the Will, hence the explicit offline publish.
    fn goodbye(&mut self, sink: &mut mpsc::Receiver<Outgoing>) {
        if !self.connected() {
            return;
        }
        while let Ok(out) = sink.try_recv() {
            self.send_now(out);
        }
        let offline = self.client.try_publish(
            self.state_topic.as_str(),
            QoS::AtLeastOnce,
            true,
            options::OFFLINE.to_vec(),
        );
        if offline.is_err() || self.client.try_disconnect().is_err() {
            // The event loop task gives up after the grace and drops the connection, which
            // fires the Will: the broker publishes the same offline state.
            tracing::warn!("plant MQTT broker: request queue full at shutdown; relying on the Will for the offline state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cfg(url: &str) -> ExternalBroker {
        options::test_config(url, Duration::from_millis(200))
    }

    #[test]
    fn check_reports_the_first_problem_with_its_key() {
        assert!(check(&cfg("mqtt://127.0.0.1:1883")).is_ok());
        let e = check(&cfg("tcp://x")).unwrap_err();
        assert!(
            e.to_string().starts_with("mqtt.external.url: 'tcp://x'"),
            "{e}"
        );
        let mut c = cfg("mqtts://broker");
        c.ca_file = Some("/nonexistent/ca.pem".into());
        let e = check(&c).unwrap_err().to_string();
        assert!(
            e.starts_with("mqtt.external.ca_file: cannot read /nonexistent/ca.pem: "),
            "{e}"
        );
    }

    /// A broker that is not there: spawn returns at once, the client keeps retrying (counted)
    /// without blocking anything, messages are dropped and counted, and shutdown ends it.
    #[tokio::test]
    async fn unreachable_broker_never_blocks_and_stops_on_shutdown() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // closed again: nothing listens there
        let publisher = Publisher::default();
        let (tx, _rx) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let handle = spawn(
            &cfg(&format!("mqtt://127.0.0.1:{port}")),
            &Topics::new("lps/edge"),
            Topics::new("lps/edge").command_filters().to_vec(),
            &publisher,
            tx,
            shutdown.clone(),
        )
        .unwrap();
        let mut watch = handle.watch();
        tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|s| s.failures >= 3))
            .await
            .expect("retries with a short backoff")
            .unwrap();
        publisher.publish(Outgoing::retained(
            "lps/edge/profile".into(),
            Bytes::from_static(b"{}"),
        ));
        tokio::time::timeout(
            Duration::from_secs(5),
            watch.wait_for(|s| s.dropped_outgoing >= 1),
        )
        .await
        .expect("dropped while disconnected")
        .unwrap();
        assert!(!handle.status().connected);
        assert_eq!(handle.status().connections, 0);
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), handle.stopped())
            .await
            .expect("stops promptly when not connected");
    }
}
