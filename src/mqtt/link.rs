//! The gateway's in-process link to the embedded broker. Writing into the router is a blocking
//! channel send, so the writer lives on its own thread; reading is async. Publishers never wait
//! for it: they hand messages over a bounded channel (see `Publisher`).

use super::Outgoing;
use crate::tasks::Stage;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish, PublishProperties};
use rumqttd::Notification;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// An incoming publish on a subscribed topic.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: String,
    pub payload: bytes::Bytes,
    pub retain: bool,
    pub response_topic: Option<String>,
    pub correlation: Option<bytes::Bytes>,
}

/// Subscribes the link to `filters` and waits for the router's acknowledgements, so that once
/// start-up returns no message on those topics can be missed.
pub fn subscribe(tx: &mut LinkTx, rx: &mut LinkRx, filters: &[String]) -> Result<(), String> {
    for filter in filters {
        tx.subscribe(filter.clone())
            .map_err(|e| format!("cannot subscribe {filter}: {e}"))?;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut acked = 0;
    while acked < filters.len() {
        match rx.recv_deadline(deadline) {
            Ok(Some(Notification::Unschedule)) => rx.ready().map_err(|e| e.to_string())?,
            // rumqttd does not export its Ack type; its packet form is public.
            Ok(Some(ack @ Notification::DeviceAck(_))) => {
                if let Some(Packet::SubAck(..)) = Option::<Packet>::from(ack) {
                    acked += 1;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(format!("no subscribe acknowledgement from the broker: {e}")),
        }
    }
    Ok(())
}

/// Builds a new link into the router under the given client id.
pub type Connect = Box<dyn Fn(&str) -> Result<(LinkTx, LinkRx), String> + Send>;

/// A fresh link id: unguessable, so no client can take the link over by reusing its id.
pub fn new_link_id() -> String {
    format!(
        "{}{}",
        super::auth::LINK_ID_PREFIX,
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether the gateway's link is in the router, for `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct LinkHealth {
    up: AtomicBool,
    /// Times the link was lost and built again.
    reconnects: AtomicU64,
    id: Mutex<String>,
}

impl LinkHealth {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }
    /// The link's current client id (tests use it to play an intruder).
    pub fn id(&self) -> String {
        self.id.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set_up(&self, id: &str) {
        *self.id.lock().unwrap_or_else(|p| p.into_inner()) = id.to_string();
        self.up.store(true, Ordering::Relaxed);
    }
}

/// Runs the link: a writer thread that publishes everything it is given, and a reader task that
/// forwards what the link receives. When the router drops the link (a client connected with its
/// id, or the router restarted it), the writer builds a new link under a new id, subscribes it
/// again (SUBACKs awaited), republishes the retained state, then goes on with what queued up
/// meanwhile in the bounded `outgoing` channel.
pub struct Running {
    pub connect: Connect,
    pub filters: Vec<String>,
    pub health: Arc<LinkHealth>,
    /// The retained state to restore after a relink.
    pub retained: Box<dyn Fn() -> Vec<Outgoing> + Send>,
}

/// Starts the link. Its readers run in `input` and end with it (or when the ingress is gone).
/// The writer is a thread (see below); the returned receiver resolves when it has ended.
pub fn spawn(
    link: Running,
    first: (String, LinkTx, LinkRx),
    mut outgoing: mpsc::Receiver<Outgoing>,
    incoming: mpsc::Sender<Incoming>,
    input: &Stage,
) -> std::io::Result<oneshot::Receiver<()>> {
    let handle = tokio::runtime::Handle::current();
    let lost = Arc::new(Notify::new());
    let (id, tx, rx) = first;
    link.health.set_up(&id);
    let input = input.clone();
    let reader = {
        let (incoming, lost, input) = (incoming.clone(), lost.clone(), input.clone());
        move |rx| run_reader(rx, incoming.clone(), lost.clone(), input.stop.clone())
    };
    input.tracker.spawn_on(reader(rx), &handle);
    let (done_tx, done_rx) = oneshot::channel();
    // A thread, not a task, because `LinkTx::send` blocks while the router's channel is full;
    // so it cannot be in a task tracker, and says when it ends through `done_tx` instead. Nothing
    // in rumqttd 0.20 ends it: the router never closes a local link's channel (its own loop
    // holds a sender to itself and runs until the process exits). It ends when `outgoing`
    // closes, i.e. [`super::Publisher::close`], after sending what was queued; or when the
    // link is lost once the ingress is gone (shutdown: no one would read a new link).
    std::thread::Builder::new()
        .name("mqtt-link-writer".into())
        .spawn(move || {
            let mut tx = tx;
            loop {
                let next = handle.block_on(async {
                    tokio::select! {
                        biased;
                        _ = lost.notified() => None,
                        out = outgoing.recv() => Some(out),
                    }
                });
                match next {
                    Some(None) => {
                        flush(&link);
                        break;
                    }
                    Some(Some(out)) => {
                        if send(&mut tx, out).is_err() {
                            // The router is gone or refuses this link: treat it as lost.
                            lost.notify_one();
                        }
                    }
                    None => {
                        link.health.up.store(false, Ordering::Relaxed);
                        let old = link.health.id();
                        tracing::error!(link = %old, "the gateway's link to the embedded broker was dropped (by a client with its id?); building a new one");
                        let Some((id, new_tx, rx)) = relink(&link, &incoming) else {
                            break;
                        };
                        tx = new_tx;
                        input.tracker.spawn_on(reader(rx), &handle);
                        link.health.reconnects.fetch_add(1, Ordering::Relaxed);
                        link.health.set_up(&id);
                        tracing::warn!(link = %id, "the gateway's link to the embedded broker is back, subscribed and retained state restored");
                    }
                }
            }
            let _ = done_tx.send(());
        })?;
    Ok(done_rx)
}

/// Returns once the router has routed what the link sent: the router takes events in the order
/// they arrive and serves connections in the order they became ready, so a subscription made
/// after the last publish and acknowledged means every subscriber of those publishes was served
/// first. On a link of its own (the reader is gone by now), to a topic nothing publishes on.
fn flush(link: &Running) {
    let id = new_link_id();
    let flushed = (link.connect)(&id)
        .and_then(|(mut tx, mut rx)| subscribe(&mut tx, &mut rx, &[format!("{id}/flush")]));
    if let Err(err) = flushed {
        tracing::warn!(%err, "cannot confirm that the embedded broker routed the last messages");
    }
}

/// Builds, subscribes and restores a new link, retrying with back-off (0.1 s to 5 s) until it
/// works; None once the ingress is gone (shutdown).
fn relink(link: &Running, incoming: &mpsc::Sender<Incoming>) -> Option<(String, LinkTx, LinkRx)> {
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        if incoming.is_closed() {
            return None;
        }
        let id = new_link_id();
        let attempt = (link.connect)(&id).and_then(|(mut tx, mut rx)| {
            subscribe(&mut tx, &mut rx, &link.filters)?;
            for out in (link.retained)() {
                send(&mut tx, out).map_err(|e| format!("cannot restore retained state: {e}"))?;
            }
            Ok((tx, rx))
        });
        match attempt {
            Ok((tx, rx)) => return Some((id, tx, rx)),
            Err(err) => {
                tracing::error!(%err, retry_in = ?wait, "cannot rebuild the gateway's link to the embedded broker");
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

fn send(tx: &mut LinkTx, out: Outgoing) -> Result<(), String> {
    let properties = out.correlation.map(|c| PublishProperties {
        correlation_data: Some(c),
        ..PublishProperties::default()
    });
    let publish = Publish::new(out.topic.into_bytes(), out.payload.to_vec(), out.retain);
    futures::executor::block_on(tx.send(Packet::Publish(publish, properties)))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Forwards every publish the link receives until `stop`; on losing the link, says so on `lost`.
async fn run_reader(
    mut rx: LinkRx,
    incoming: mpsc::Sender<Incoming>,
    lost: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            // Shutting down, not a lost link: no relink.
            _ = stop.cancelled() => return,
            next = rx.next() => next,
        };
        match next {
            Ok(Some(Notification::Forward(forward))) => {
                let props = forward.properties.unwrap_or_default();
                let msg = Incoming {
                    topic: String::from_utf8_lossy(&forward.publish.topic).into_owned(),
                    payload: forward.publish.payload.clone(),
                    retain: forward.publish.retain,
                    response_topic: props.response_topic,
                    correlation: props.correlation_data,
                };
                if incoming.send(msg).await.is_err() {
                    // The ingress stopped: shutting down, not a lost link.
                    return;
                }
            }
            // The router stops scheduling a link whose buffer filled; ask for more.
            Ok(Some(Notification::Unschedule)) => {
                if rx.wake().await.is_err() {
                    break;
                }
            }
            Ok(Some(Notification::Disconnect(..))) => break,
            Ok(Some(_)) | Ok(None) => {}
            Err(err) => {
                tracing::debug!(%err, "gateway link reader stopped");
                break;
            }
        }
    }
    lost.notify_one();
}
