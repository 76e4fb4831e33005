//! The embedded broker's front door: we bind `mqtt.listen` (and `mqtt.listen_v5`) ourselves,
//! read each connection's CONNECT, and either refuse it with a CONNACK that says why (and a log
//! line naming peer, client id and user) or connect it to rumqttd, which listens on an internal
//! loopback port, and copy bytes both ways. rumqttd alone would close the socket on a failed
//! login without any CONNACK, and it cannot tell a loopback client from a network one.
//!
//! The rules (Mosquitto 2's): with no `mqtt.users`, anonymous clients may connect from loopback
//! only, unless `mqtt.allow_anonymous = true`; with users, every client logs in. Reserved and
//! other users' client ids are refused (`auth`). rumqttd keeps its own user check on the
//! internal port as a second one.
//!
//! Latency: TCP_NODELAY on both legs, and after every read from a client TCP_QUICKACK on its
//! socket: a default (Nagle) client holds its next PUBLISH until its last small packet is
//! ACKed, and Linux would delay that ACK by up to 40 ms. Client-to-broker bytes are forwarded
//! as soon as a packet is complete (only command PUBLISHes wait, for their fair share);
//! broker-to-client bytes are copied as they come.

use super::auth::Users;
use super::fair_share::{self, FairShare};
use super::packet::{self, Connect, Refusal};
use super::topics::Topics;
use crate::descriptors;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Descriptors kept free for everything but the door's accept loop (EVE's API, the store).
/// An accepted client costs one descriptor until it is admitted, then three (its socket, our
/// leg to rumqttd and rumqttd's end of it).
pub const RESERVE: u64 = 64;
/// How often a paused accept loop looks again.
const RESERVE_RECHECK: Duration = Duration::from_millis(50);
/// Bytes read from a socket at once. Only a connection with bytes to read holds such a buffer:
/// an idle one waits for readiness with none (1,000 idle clients held 24 MiB of buffers before).
const READ_CHUNK: usize = 16 * 1024;
/// Connections of one door that are on their way to rumqttd (connected, no CONNACK yet). rumqttd
/// accepts one at a time (registering each with its router) and its listener's backlog is 128:
/// past that, the kernel drops the handshake's last ACK, our leg looks connected but waits for
/// SYN-ACK retransmissions (1 s, 2 s, 4 s, ...) and the client's descriptors linger for seconds
/// after it left. Clients beyond this many wait here instead, where a client that leaves is
/// closed at once.
const HANDSHAKES: usize = 64;
/// Room for the first read (a CONNECT is usually a few dozen bytes; more is read if needed).
const CONNECT_CHUNK: usize = 512;

/// Who may connect, and what the door needs to judge it.
pub struct Policy {
    pub users: Users,
    pub allow_anonymous: bool,
    /// Tests only (`MqttConfig::test_loopback_is_remote`): judge loopback peers as remote.
    pub loopback_is_remote: bool,
    pub connect_timeout: Duration,
    /// Larger packets close the connection (rumqttd would refuse them too).
    pub max_packet: usize,
    pub topics: Topics,
    pub fair: FairShare,
}

/// One door: the protocol level it speaks and where rumqttd listens for it.
struct Door {
    label: String,
    level: u8,
    internal: SocketAddr,
    policy: Arc<Policy>,
    sockets: Arc<Sockets>,
    handshakes: tokio::sync::Semaphore,
}

/// Whether a peer counts as local for the anonymous rule (an IPv4-mapped IPv6 loopback too).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Decides a CONNECT: `Ok` to let it in, or the refusal and why (for the log).
pub fn judge(
    policy: &Policy,
    level: u8,
    peer_is_local: bool,
    c: &Connect,
) -> Result<(), (Refusal, String)> {
    if c.level != level {
        let speaks = if level == 5 { "MQTT 5" } else { "MQTT 3.1.1" };
        return Err((
            Refusal::ProtocolVersion,
            format!(
                "protocol level {} on a listener that speaks {speaks} (level {level}); use mqtt.listen for 3.1.1 and mqtt.listen_v5 for 5",
                c.level
            ),
        ));
    }
    // The gateway's own clients (the Sparkplug edge node) log in as GATEWAY_USER, users or not.
    let gateway = c.username.as_deref() == Some(super::auth::GATEWAY_USER);
    if super::auth::is_reserved(&c.client_id) && !gateway {
        return Err((
            Refusal::IdentifierRejected,
            format!(
                "client id '{}' is reserved for the gateway's own link",
                c.client_id
            ),
        ));
    }
    if policy.users.is_empty() && !gateway {
        if peer_is_local || policy.allow_anonymous {
            return Ok(());
        }
        return Err((
            Refusal::NotAuthorized,
            "anonymous clients may connect from loopback only; configure [[mqtt.users]] or set mqtt.allow_anonymous = true".into(),
        ));
    }
    let Some(user) = &c.username else {
        return Err((
            Refusal::NotAuthorized,
            "no user name: every client must log in while [[mqtt.users]] are configured".into(),
        ));
    };
    let password = c.password.as_deref().unwrap_or_default();
    let password = std::str::from_utf8(password).unwrap_or_default();
    if !policy.users.check(user, password) {
        return Err((
            Refusal::BadUserNameOrPassword,
            "wrong user name or password".into(),
        ));
    }
    policy
        .users
        .client_id_allowed(user, &c.client_id)
        .map_err(|why| (Refusal::IdentifierRejected, why))
}

/// What the door's connections hold, for the socket audit in `/metrics`.
#[derive(Default)]
pub struct Sockets {
    /// Per connection: its client socket and, once admitted, our leg to rumqttd.
    open: Mutex<HashMap<u64, (i32, Option<i32>)>>,
    next: AtomicU64,
    quick_acks: AtomicU64,
}

impl Sockets {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (i32, Option<i32>)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (client sockets, sockets of either leg without TCP_NODELAY, quick ACKs sent).
    pub fn audit(&self) -> (u64, u64, u64) {
        let open = self.open();
        let without = open
            .values()
            .flat_map(|(client, inner)| std::iter::once(*client).chain(*inner))
            .filter(|&fd| descriptors::tcp_socket(fd).is_some_and(|s| !s.nodelay))
            .count();
        (
            open.len() as u64,
            without as u64,
            self.quick_acks.load(Ordering::Relaxed),
        )
    }
}

/// Removes a connection from the audit when its task ends.
struct Registered<'a> {
    sockets: &'a Sockets,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.sockets.open().remove(&self.id);
    }
}

/// Starts a door on `listener` (bound by the caller, so a bind error is reported at start) for
/// rumqttd at `internal`. Needs a tokio runtime.
pub fn spawn(
    label: &str,
    listener: std::net::TcpListener,
    level: u8,
    internal: SocketAddr,
    policy: Arc<Policy>,
) -> std::io::Result<Arc<Sockets>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let sockets = Arc::new(Sockets::default());
    let door = Arc::new(Door {
        label: label.into(),
        level,
        internal,
        policy,
        sockets: sockets.clone(),
        handshakes: tokio::sync::Semaphore::new(HANDSHAKES),
    });
    // Not in the stop stages (src/tasks.rs): the door's connections carry the last replies to
    // subscribers, so like the broker behind them they live until the process ends.
    tokio::spawn(accept_loop(listener, door));
    Ok(sockets)
}

async fn accept_loop(listener: tokio::net::TcpListener, door: Arc<Door>) {
    let limit = descriptors::soft_limit().unwrap_or(u64::MAX);
    // An admitted client costs three descriptors (see RESERVE).
    let mut reserve = descriptors::Reserve::new(limit, RESERVE, 3);
    loop {
        // Meanwhile new clients wait in the kernel's backlog; held ones time out.
        if !reserve.admit(|| descriptors::open_count().unwrap_or(0)) {
            tokio::time::sleep(RESERVE_RECHECK).await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(connection(stream, peer, door.clone()));
            }
            Err(e) => {
                // E.g. out of descriptors after all: pause instead of spinning on it.
                tracing::warn!(listener = %door.label, error = %e, "MQTT accept failed");
                tokio::time::sleep(RESERVE_RECHECK).await;
            }
        }
    }
}

/// Reads until `buf` starts with a complete packet; `None` on close, error or oversize.
async fn first_packet(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<packet::Frame, String> {
    loop {
        if let Some(frame) = packet::frame(buf)? {
            return Ok(frame);
        }
        if buf.len() > max {
            return Err(format!("first packet larger than {max} bytes"));
        }
        buf.reserve(CONNECT_CHUNK);
        match client.read_buf(buf).await {
            Ok(0) => return Err("closed before CONNECT".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

async fn connection(mut client: TcpStream, peer: SocketAddr, door: Arc<Door>) {
    if let Err(e) = client.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY: connection closed");
        return;
    }
    let id = door.sockets.next.fetch_add(1, Ordering::Relaxed);
    door.sockets.open().insert(id, (client.as_raw_fd(), None));
    let _registered = Registered {
        sockets: &door.sockets,
        id,
    };
    let policy = &door.policy;
    let mut buf = Vec::new();
    let frame = match tokio::time::timeout(
        policy.connect_timeout,
        first_packet(&mut client, &mut buf, policy.max_packet),
    )
    .await
    {
        Ok(Ok(frame)) => frame,
        Ok(Err(why)) => {
            tracing::debug!(listener = %door.label, %peer, "MQTT connection closed: {why}");
            return;
        }
        Err(_) => {
            tracing::debug!(listener = %door.label, %peer, timeout = ?policy.connect_timeout, "MQTT connection closed: no CONNECT in time (mqtt.connect_timeout)");
            return;
        }
    };
    let parsed = if frame.kind() == packet::CONNECT {
        packet::parse_connect(&buf[frame.header..frame.len])
    } else {
        Err(format!(
            "first packet is of type {}, not CONNECT",
            frame.kind()
        ))
    };
    let connect = match parsed {
        Ok(c) => c,
        Err(why) => {
            tracing::warn!(listener = %door.label, %peer, "MQTT connection refused: {why}");
            return;
        }
    };
    let local = is_loopback(peer.ip()) && !policy.loopback_is_remote;
    if let Err((refusal, why)) = judge(policy, door.level, local, &connect) {
        let (v4, v5) = refusal.codes();
        let code = if connect.level == 5 { v5 } else { v4 };
        tracing::warn!(
            listener = %door.label,
            %peer,
            client_id = %connect.client_id,
            user = connect.username.as_deref().unwrap_or("(anonymous)"),
            connack = code,
            "MQTT CONNECT refused: {why}"
        );
        let _ = client
            .write_all(&packet::connack(connect.level, refusal))
            .await;
        let _ = client.shutdown().await;
        return;
    }
    let Some(handshake) = wait_for_handshake(&mut client, &mut buf, &door).await else {
        tracing::debug!(listener = %door.label, %peer, client_id = %connect.client_id, "MQTT connection closed before it reached the broker");
        return;
    };
    let inner = match TcpStream::connect(door.internal).await {
        Ok(inner) => inner,
        Err(e) => {
            tracing::error!(listener = %door.label, %peer, internal = %door.internal, error = %e, "cannot reach the embedded broker's internal listener");
            return;
        }
    };
    if inner.set_nodelay(true).is_err() {
        return;
    }
    if let Some(entry) = door.sockets.open().get_mut(&id) {
        entry.1 = Some(inner.as_raw_fd());
    }
    let client_fd = client.as_raw_fd();
    let (client_rx, mut client_tx) = client.into_split();
    let (mut inner_rx, mut inner_tx) = inner.into_split();
    let down = async {
        // The first bytes back are the CONNACK: rumqttd has accepted, the next client may go.
        let mut first = [0u8; 64];
        let n = inner_rx.read(&mut first).await.unwrap_or(0);
        drop(handshake);
        if n == 0 || client_tx.write_all(&first[..n]).await.is_err() {
            return;
        }
        let _ = downstream(&mut inner_rx, &mut client_tx).await;
    };
    let up = async {
        if let Err(why) = upstream(client_rx, &mut inner_tx, buf, client_fd, &door).await {
            tracing::debug!(listener = %door.label, %peer, client_id = %connect.client_id, "MQTT connection closed: {why}");
        }
        // The broker sees the end after every byte before it (a DISCONNECT, say).
        let _ = inner_tx.shutdown().await;
    };
    tokio::pin!(down);
    tokio::select! {
        // The broker closed (a kick, a keep-alive timeout): so does the client.
        _ = &mut down => {}
        // The client closed: the broker closes in turn, after reading all it was sent.
        _ = up => down.await,
    }
}

/// Waits for a place among the connections on their way to rumqttd (`HANDSHAKES`), reading
/// what the client sends meanwhile into `buf` (it goes to the broker after the CONNECT). `None`
/// when the client closes or errs first, or sends more than a packet's worth while it waits.
async fn wait_for_handshake<'a>(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    door: &'a Door,
) -> Option<tokio::sync::SemaphorePermit<'a>> {
    let acquire = door.handshakes.acquire();
    tokio::pin!(acquire);
    loop {
        if buf.len() > door.policy.max_packet.saturating_mul(2) {
            return acquire.await.ok();
        }
        buf.reserve(CONNECT_CHUNK);
        tokio::select! {
            permit = &mut acquire => return permit.ok(),
            read = client.read_buf(buf) => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
        }
    }
}

/// Client to broker: whole packets as soon as they are complete; each command PUBLISH waits for
/// its fair share first. `buf` starts with the CONNECT (and whatever came with it).
async fn upstream(
    client: tokio::net::tcp::OwnedReadHalf,
    inner: &mut tokio::net::tcp::OwnedWriteHalf,
    mut buf: Vec<u8>,
    client_fd: i32,
    door: &Door,
) -> Result<(), String> {
    let policy = &door.policy;
    let v5 = door.level == 5;
    let mut aliases = HashMap::new();
    let write = |e: std::io::Error| format!("broker write failed: {e}");
    loop {
        let (mut start, mut pos) = (0, 0);
        while let Some(frame) = packet::frame(&buf[pos..])? {
            if frame.kind() == packet::PUBLISH {
                let bytes = &buf[pos..pos + frame.len];
                let gated = packet::publish_topic(&frame, bytes, v5, &mut aliases).is_some_and(
                    |(topic, empty)| fair_share::is_gated(&policy.topics, &topic, empty),
                );
                if gated {
                    inner.write_all(&buf[start..pos]).await.map_err(write)?;
                    start = pos;
                    policy.fair.acquire().await;
                }
            }
            pos += frame.len;
        }
        inner.write_all(&buf[start..pos]).await.map_err(write)?;
        buf.drain(..pos);
        if buf.len() > policy.max_packet {
            return Err(format!("packet larger than {} bytes", policy.max_packet));
        }
        if buf.is_empty() {
            // Nothing pending: wait without a buffer (see READ_CHUNK).
            buf = Vec::new();
        }
        let read = |e: std::io::Error| format!("client read failed: {e}");
        client.readable().await.map_err(read)?;
        buf.reserve(READ_CHUNK);
        match client.try_read_buf(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                if descriptors::ack_now(client_fd) {
                    door.sockets.quick_acks.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A spurious wake-up: wait again.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(read(e)),
        }
    }
}

/// Broker to client, as `tokio::io::copy` but holding a buffer only while bytes arrive: it is
/// taken when the broker's leg is readable and given back once that leg has nothing more.
async fn downstream(
    inner: &mut tokio::net::tcp::OwnedReadHalf,
    client: &mut tokio::net::tcp::OwnedWriteHalf,
) -> std::io::Result<()> {
    loop {
        inner.readable().await?;
        let mut chunk = Vec::with_capacity(READ_CHUNK);
        loop {
            match inner.try_read_buf(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    client.write_all(&chunk).await?;
                    chunk.clear();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Combinations of `[mqtt]` the door cannot honour, explained.
pub fn check_policy(
    cfg: &crate::config::MqttConfig,
    tls: Option<SocketAddr>,
) -> Result<(), String> {
    if cfg.allow_anonymous && !cfg.users.is_empty() {
        return Err("mqtt.allow_anonymous = true cannot be combined with [[mqtt.users]] (with users every client logs in); remove one of them".into());
    }
    // TLS clients reach rumqttd directly, where a loopback peer cannot be told from another.
    if let Some(addr) = tls {
        if cfg.users.is_empty() && !cfg.allow_anonymous && !is_loopback(addr.ip()) {
            return Err(format!("mqtt.tls listens on {addr} without [[mqtt.users]]: anonymous TLS clients cannot be limited to loopback; configure [[mqtt.users]] or set mqtt.allow_anonymous = true"));
        }
    }
    Ok(())
}

/// What `run` should log once about who can connect: `None` when nothing needs saying.
pub fn startup_note(users: usize, allow_anonymous: bool, listen: SocketAddr) -> Option<String> {
    if users > 0 {
        return None;
    }
    if allow_anonymous {
        return Some(format!("the embedded broker on {listen} accepts anonymous clients from anywhere (mqtt.allow_anonymous = true): anyone who reaches it can send commands; configure [[mqtt.users]] to require a login"));
    }
    (!is_loopback(listen.ip())).then(|| format!("the embedded broker on {listen} has no [[mqtt.users]]: only clients on this machine (loopback) can connect; configure [[mqtt.users]], or set mqtt.allow_anonymous = true to let anonymous network clients in"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MqttUser;

    fn policy(users: &[(&str, &str)], allow_anonymous: bool) -> Policy {
        let users: Vec<MqttUser> = users
            .iter()
            .map(|(n, p)| MqttUser {
                name: n.to_string(),
                password: Some(p.to_string()),
                password_hash: None,
            })
            .collect();
        Policy {
            users: Users::new(&users).unwrap(),
            allow_anonymous,
            loopback_is_remote: false,
            connect_timeout: Duration::from_secs(1),
            max_packet: 1024,
            topics: Topics::new("lps/edge"),
            fair: FairShare::new(1),
        }
    }

    fn connect(level: u8, id: &str, login: Option<(&str, &str)>) -> Connect {
        Connect {
            level,
            client_id: id.into(),
            username: login.map(|(u, _)| u.to_string()),
            password: login.map(|(_, p)| p.as_bytes().to_vec()),
        }
    }

    /// The buffer-on-demand copy delivers every byte in order, across many wake-ups and reads
    /// larger than its chunk, and ends when the broker's leg closes.
    #[tokio::test]
    async fn downstream_copies_every_byte_and_ends_on_close() {
        let pair = || async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            (a, l.accept().await.unwrap().0)
        };
        let (mut broker, inner) = pair().await;
        let (client, mut reader) = pair().await;
        let (mut inner_rx, _inner_tx) = inner.into_split();
        let (_client_rx, mut client_tx) = client.into_split();
        let copy = tokio::spawn(async move { downstream(&mut inner_rx, &mut client_tx).await });
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for (n, part) in sent.chunks(3_001).enumerate() {
            broker.write_all(part).await.unwrap();
            if n % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        drop(broker);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert!(copy.await.unwrap().is_ok());
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "bytes out of order or changed");
    }

    #[test]
    fn loopback_peers() {
        for local in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(local.parse().unwrap()), "{local}");
        }
        for remote in [
            "10.0.0.5",
            "192.168.1.2",
            "::ffff:10.0.0.5",
            "fe80::1",
            "0.0.0.0",
        ] {
            assert!(!is_loopback(remote.parse().unwrap()), "{remote}");
        }
    }

    #[test]
    fn anonymous_only_from_loopback_unless_allowed() {
        let closed = policy(&[], false);
        assert_eq!(judge(&closed, 4, true, &connect(4, "a", None)), Ok(()));
        let (refusal, why) = judge(&closed, 4, false, &connect(4, "a", None)).unwrap_err();
        assert_eq!(refusal, Refusal::NotAuthorized);
        assert!(why.contains("mqtt.allow_anonymous = true") && why.contains("mqtt.users"));
        // A made-up login is no way around it.
        assert!(judge(&closed, 4, false, &connect(4, "a", Some(("x", "y")))).is_err());
        let open = policy(&[], true);
        assert_eq!(judge(&open, 4, false, &connect(4, "a", None)), Ok(()));
    }

    #[test]
    fn logins_and_client_ids() {
        let p = policy(&[("plc", "pw")], false);
        assert_eq!(
            judge(&p, 4, false, &connect(4, "plc-1", Some(("plc", "pw")))),
            Ok(())
        );
        let bad = judge(&p, 4, true, &connect(4, "plc-1", Some(("plc", "nope")))).unwrap_err();
        assert_eq!(bad.0, Refusal::BadUserNameOrPassword);
        let anon = judge(&p, 4, true, &connect(4, "plc-1", None)).unwrap_err();
        assert_eq!(
            anon.0,
            Refusal::NotAuthorized,
            "with users even loopback logs in"
        );
        let other = judge(&p, 4, true, &connect(4, "scada", Some(("plc", "pw")))).unwrap_err();
        assert_eq!(other.0, Refusal::IdentifierRejected);
        for reserved in ["lps-bridge", "lps-bridge-link-x"] {
            for policy in [&p, &policy(&[], true)] {
                let r = judge(policy, 4, true, &connect(4, reserved, None)).unwrap_err();
                assert_eq!(r.0, Refusal::IdentifierRejected);
                assert!(r.1.contains("reserved"));
            }
        }
    }

    #[test]
    fn the_listener_speaks_one_level() {
        let p = policy(&[], true);
        let r = judge(&p, 4, true, &connect(5, "a", None)).unwrap_err();
        assert_eq!(r.0, Refusal::ProtocolVersion);
        assert!(r.1.contains("mqtt.listen_v5"));
        assert!(judge(&p, 5, true, &connect(4, "a", None)).is_err());
        assert_eq!(judge(&p, 5, true, &connect(5, "a", None)), Ok(()));
    }

    #[test]
    fn impossible_policies_are_refused() {
        let mut cfg = crate::config::MqttConfig::default();
        let any: SocketAddr = "0.0.0.0:8883".parse().unwrap();
        assert!(check_policy(&cfg, Some(any))
            .unwrap_err()
            .contains("mqtt.users"));
        assert!(check_policy(&cfg, Some("127.0.0.1:8883".parse().unwrap())).is_ok());
        cfg.allow_anonymous = true;
        assert!(check_policy(&cfg, Some(any)).is_ok());
        cfg.users.push(MqttUser {
            name: "plc".into(),
            password: Some("pw".into()),
            password_hash: None,
        });
        assert!(check_policy(&cfg, None)
            .unwrap_err()
            .contains("cannot be combined"));
    }

    #[test]
    fn startup_notes() {
        let any: SocketAddr = "0.0.0.0:1883".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:1883".parse().unwrap();
        assert!(startup_note(0, false, any)
            .unwrap()
            .contains("only clients on this machine"));
        assert_eq!(startup_note(0, false, lo), None);
        assert!(startup_note(0, true, lo).unwrap().contains("anyone"));
        assert_eq!(startup_note(1, false, any), None);
    }

    /// A raw MQTT 3.1.1 CONNECT with clean session and keep-alive 60 s.
    fn raw_connect(id: &str) -> Vec<u8> {
        let mut body = b"\x00\x04MQTT\x04\x02\x00\x3c".to_vec();
        body.extend((id.len() as u16).to_be_bytes());
        body.extend(id.as_bytes());
        let mut packet = vec![0x10, body.len() as u8];
        packet.extend(body);
        packet
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("gave up waiting for {what}");
    }

    #[tokio::test]
    async fn clients_beyond_the_handshake_limit_wait_in_the_door_and_leave_at_once() {
        // A "broker" that never accepts: its backlog takes the door's legs, nothing answers.
        let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sockets = spawn(
            "test",
            listener,
            4,
            broker.local_addr().unwrap(),
            Arc::new(policy(&[], true)),
        )
        .unwrap();
        let legs = |s: &Sockets| s.open().values().filter(|(_, i)| i.is_some()).count();
        let mut clients = Vec::new();
        for n in 0..HANDSHAKES + 30 {
            let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            c.write_all(&raw_connect(&format!("c{n}"))).await.unwrap();
            clients.push(c);
        }
        until("every client in the door", || {
            sockets.open().len() == HANDSHAKES + 30
        })
        .await;
        // Only HANDSHAKES connections went on to the broker; they wait for its CONNACK.
        until("the legs to the broker", || legs(&sockets) == HANDSHAKES).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(legs(&sockets), HANDSHAKES);
        // The waiting clients leave: the door lets go of them without the broker's help.
        drop(clients.split_off(HANDSHAKES));
        until("the waiting clients closed", || {
            sockets.open().len() == HANDSHAKES
        })
        .await;
        drop(broker);
    }
}
