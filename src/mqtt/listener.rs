//! One listener of the embedded broker on a thread of our own (rumqttd's `Broker::start` would
//! start it on a thread we cannot reach). The plain listeners are internal (127.0.0.1, an
//! ephemeral port) behind our front door (`door`), which binds `mqtt.listen` itself; the TLS
//! listener is rumqttd's own, on `mqtt.tls.listen`. That thread gives rumqttd 0.20 what it lacks:
//! - TCP_NODELAY: rumqttd never sets it, so a reply written right after a PUBACK waited for the
//!   peer's delayed ACK (~40 ms). rumqttd binds its listener inside `Server::start`, so once it
//!   listens we find that socket among this thread's descriptors and set the option on it; Linux
//!   copies it to every socket the listener accepts. Sockets accepted before that are set too.
//!   Behind the door the peer is the door, whose leg has TCP_NODELAY too: no stall either way.
//! - immediate ACKs (TLS listener only; the door does this for its clients): TCP_NODELAY removes
//!   our half of the stall; the other half is the client's Nagle algorithm (rumqttc's default),
//!   which holds its next PUBLISH until we ACK its last small packet (e.g. the PUBACK of a
//!   reply), and Linux delays that ACK by up to 40 ms hoping to piggyback it. rumqttd gives no
//!   hook after a read, but all its connections run on this thread's runtime: just before the
//!   thread parks (every ready socket has been read), we set TCP_QUICKACK on the listener's
//!   client sockets, which sends any pending ACK at once. Cost: one setsockopt per client socket
//!   per park; the socket list is read again after every accept (and every second, for closed
//!   ones).
//! - an audit of its sockets for `/metrics` (and the test that the option is on every one),
//!   merged with the door's for a listener behind one.
//! - a descriptor reserve: rumqttd accepts until the process runs out of descriptors (and then
//!   spins on "Too many open files"), after which EVE's API cannot accept either. Its accept
//!   loop is only polled while a reserve of descriptors stays free (a smaller one behind the
//!   door, which keeps the larger one, so that a client the door admitted gets through);
//!   meanwhile new connections wait in the kernel's backlog and the ones it holds time out
//!   (`mqtt.connect_timeout`).

use crate::descriptors;
use rumqttd::protocol::Protocol;
use rumqttd::{LinkType, Server};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Descriptors kept free for everything but a direct (TLS) listener's accept loop.
pub const RESERVE: u64 = super::door::RESERVE;
/// The same for an internal listener behind the door (the door keeps the larger reserve).
pub const INTERNAL_RESERVE: u64 = super::door::RESERVE / 2;
/// How often a paused accept loop looks again.
const RESERVE_RECHECK: Duration = Duration::from_millis(50);

/// Polls `inner` (rumqttd's accept loop) only while the process has `reserve` descriptors free
/// below its soft limit. On the TLS listener each poll of that loop accepts at most one socket
/// (it pauses after each accept, `broker::server`), so the reserve is kept within one descriptor.
/// The internal listeners have no pause; there a poll accepts at most the door's
/// `HANDSHAKES` connections, whose descriptors the door's own reserve has already counted.
struct Reserved<F> {
    inner: Pin<Box<F>>,
    acks: Arc<AckSweep>,
    /// Counts descriptors once per budget, not on every poll (see `descriptors::Reserve`).
    reserve: descriptors::Reserve,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<F: Future> Future for Reserved<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        loop {
            if let Some(pause) = self.pause.as_mut() {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.pause = None;
            }
            if self
                .reserve
                .admit(|| descriptors::open_count().unwrap_or(0))
            {
                self.acks.stale.store(true, Ordering::Relaxed);
                return self.inner.as_mut().poll(cx);
            }
            self.pause = Some(Box::pin(tokio::time::sleep(RESERVE_RECHECK)));
        }
    }
}

/// How often the list of client sockets to ACK is read again, besides after every accept.
const ACK_SOCKETS_REFRESH: Duration = Duration::from_secs(1);

/// Sends pending delayed ACKs on the listener's client sockets (see the module comment).
struct AckSweep {
    port: u16,
    sockets: Mutex<(Option<Instant>, Vec<i32>)>,
    /// Set when the accept loop ran (a socket may have been accepted): refresh at the next sweep.
    stale: std::sync::atomic::AtomicBool,
    /// Client sockets told to ACK at once, over all sweeps (for the audit).
    acked: AtomicU64,
}

impl AckSweep {
    fn sweep(&self) {
        let mut guard = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let (refreshed, fds) = &mut *guard;
        let stale = self.stale.swap(false, Ordering::Relaxed);
        if stale || refreshed.is_none_or(|at| at.elapsed() >= ACK_SOCKETS_REFRESH) {
            *fds = descriptors::own_fds()
                .unwrap_or_default()
                .into_iter()
                .filter(|&fd| {
                    descriptors::tcp_socket(fd)
                        .is_some_and(|s| s.local_port == self.port && !s.listening)
                })
                .collect();
            *refreshed = Some(Instant::now());
        }
        // A descriptor closed since the refresh fails harmlessly (or ACKs another socket).
        let acked = fds.iter().filter(|&&fd| descriptors::ack_now(fd)).count();
        self.acked.fetch_add(acked as u64, Ordering::Relaxed);
    }
}

pub use crate::descriptors::SocketAudit;

/// Asks a listener thread for its audit (and the door in front of it, if any).
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<oneshot::Sender<SocketAudit>>,
    front: Option<Arc<super::door::Sockets>>,
}

impl Auditor {
    /// The listener is behind a door: its clients are the door's.
    pub fn with_front(mut self, front: Arc<super::door::Sockets>) -> Auditor {
        self.front = Some(front);
        self
    }

    pub async fn audit(&self) -> Option<SocketAudit> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(tx).ok()?;
        let mut audit = tokio::time::timeout(Duration::from_secs(2), rx)
            .await
            .ok()?
            .ok()?;
        if let Some(front) = &self.front {
            // Either leg without TCP_NODELAY would stall replies; the clients are the door's.
            let (clients, without, quick_acks) = front.audit();
            audit.clients = clients;
            audit.clients_without_nodelay += without;
            audit.quick_acks = quick_acks;
        }
        Some(audit)
    }
}

/// Starts `server` (which listens on `port`) on its own thread; returns once it listens with
/// TCP_NODELAY set, or why it could not. `direct`: clients connect to it themselves (TLS), so
/// it needs the ACK sweep and the full reserve; otherwise it is behind the door.
pub fn spawn<P>(
    name: &str,
    port: u16,
    mut server: Server<P>,
    direct: bool,
) -> Result<Auditor, String>
where
    P: Protocol + Clone + Send + 'static,
{
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let (audit_tx, mut audit_rx) = mpsc::channel::<oneshot::Sender<SocketAudit>>(8);
    let label = name.to_string();
    let acks = Arc::new(AckSweep {
        port,
        sockets: Mutex::new((None, Vec::new())),
        acked: AtomicU64::new(0),
        stale: std::sync::atomic::AtomicBool::new(true),
    });
    // A thread (rumqttd's server needs a runtime of its own here), so not in a task tracker.
    // It ends when every `Auditor` is gone (the last `Publisher` clone): the audit loop ends,
    // the runtime drops, and with it the listening socket and the connections.
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // Not in a private descriptor table (unshare(CLONE_FILES)), tried: the router thread
            // wakes this runtime through its eventfd by number, which must mean the same here.
            let sweep = acks.clone();
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all();
            if direct {
                builder.on_thread_park(move || sweep.sweep());
            }
            let runtime = match builder.build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("no runtime for {label}: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let serve = Reserved {
                    inner: Box::pin(server.start(LinkType::Remote)),
                    acks: acks.clone(),
                    reserve: descriptors::Reserve::new(
                        descriptors::soft_limit().unwrap_or(u64::MAX),
                        if direct { RESERVE } else { INTERNAL_RESERVE },
                        1,
                    ),
                    pause: None,
                };
                tokio::pin!(serve);
                let watch = async {
                    let outcome = set_nodelay_on_listener(port).await;
                    let failed = outcome.is_err();
                    let _ = ready_tx.send(outcome);
                    if failed {
                        return;
                    }
                    while let Some(reply) = audit_rx.recv().await {
                        let mut audit = audit(&label, port);
                        audit.quick_acks = acks.acked.load(Ordering::Relaxed);
                        let _ = reply.send(audit);
                    }
                };
                tokio::select! {
                    result = &mut serve => {
                        let why = match result {
                            Ok(()) => "stopped".to_string(),
                            Err(e) => e.to_string(),
                        };
                        tracing::error!(listener = %label, %why, "embedded MQTT listener stopped");
                        let _ = ready_tx.send(Err(why));
                    }
                    _ = watch => {}
                }
            });
        })
        .map_err(|e| format!("cannot start thread {name}: {e}"))?;
    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(Auditor {
            tx: audit_tx,
            front: None,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the listener did not start within 10 s".into()),
    }
}

/// Waits (up to 10 s) until rumqttd's listening socket on `port` exists in this thread's table,
/// then sets TCP_NODELAY on it and on anything it already accepted. Runs on the listener's
/// single-threaded runtime, so rumqttd's code cannot close descriptors meanwhile.
async fn set_nodelay_on_listener(port: u16) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Lets `Server::start` bind; it binds in its first poll.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let Some(fds) = descriptors::own_fds() else {
            return Err("cannot list descriptors in /proc/thread-self/fd".into());
        };
        let ours: Vec<(i32, descriptors::TcpSocket)> = fds
            .into_iter()
            .filter_map(|fd| Some((fd, descriptors::tcp_socket(fd)?)))
            .filter(|(_, s)| s.local_port == port)
            .collect();
        if ours.iter().any(|(_, s)| s.listening) {
            for (fd, socket) in ours {
                if !socket.nodelay && !descriptors::set_nodelay(fd) {
                    return Err(format!("cannot set TCP_NODELAY on port {port}"));
                }
            }
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the broker did not listen on port {port} within 10 s"
            ));
        }
    }
}

fn audit(listener: &str, port: u16) -> SocketAudit {
    let fds = descriptors::own_fds().unwrap_or_default();
    let mut out = SocketAudit {
        listener: listener.into(),
        fds: fds.len() as u64,
        ..SocketAudit::default()
    };
    for socket in fds.into_iter().filter_map(descriptors::tcp_socket) {
        if socket.local_port == port && !socket.listening {
            out.clients += 1;
            out.clients_without_nodelay += u64::from(!socket.nodelay);
        }
    }
    out
}
