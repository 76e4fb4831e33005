//! File descriptors: the process limit, and the socket facts (local port, listening, TCP_NODELAY) the broker's listeners need about their own
//! descriptors. Linux only; elsewhere every query answers "unknown".

/// Raises the soft limit on open files to the hard limit (a default systemd unit gives 1024
/// while allowing far more). Returns (soft, hard) after the attempt.
pub fn raise_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some((lim.rlim_cur, lim.rlim_max))
}

/// The current soft limit on open files.
pub fn soft_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_cur)
}

/// How many descriptors the calling thread's table holds (listing /proc costs O(open)).
pub fn open_count() -> Option<u64> {
    Some(std::fs::read_dir("/proc/thread-self/fd").ok()?.count() as u64)
}

/// Accepts allowed between two counts at most, however much room there is.
pub const MAX_UNCOUNTED: u64 = 64;

/// An accept loop's share of the descriptors: it keeps `reserve` free below `limit` for the
/// rest of the process. Counting the open descriptors lists /proc (O(open)), so counting on
/// every accept made n connections cost O(n²); instead a count grants a budget of accepts that
/// fits the free room even if each costs `per_accept` descriptors (capped at
/// [`MAX_UNCOUNTED`]), and the next count comes when it is spent. Descriptors the rest of the
/// process opens meanwhile come out of the reserve, which is what it is for.
#[derive(Debug)]
pub struct Reserve {
    limit: u64,
    reserve: u64,
    per_accept: u64,
    budget: u64,
}

impl Reserve {
    pub fn new(limit: u64, reserve: u64, per_accept: u64) -> Reserve {
        Reserve {
            limit,
            reserve,
            per_accept: per_accept.max(1),
            budget: 0,
        }
    }

    /// Whether one more socket may be accepted; `count` gives the open descriptors when a
    /// count is due (the budget is spent). After a `false` the next call counts again.
    pub fn admit(&mut self, count: impl FnOnce() -> u64) -> bool {
        if self.budget == 0 {
            let free = self
                .limit
                .saturating_sub(self.reserve)
                .saturating_sub(count());
            self.budget = (free / self.per_accept).min(MAX_UNCOUNTED);
            if self.budget == 0 {
                return false;
            }
        }
        self.budget -= 1;
        true
    }
}

/// The descriptors open in the calling thread's table.
pub fn own_fds() -> Option<Vec<i32>> {
    let dir = std::fs::read_dir("/proc/thread-self/fd").ok()?;
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    Some(fds)
}

/// A TCP socket's facts, if `fd` is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TcpSocket {
    pub local_port: u16,
    pub listening: bool,
    pub nodelay: bool,
}

fn int_opt(fd: i32, level: i32, name: i32) -> Option<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`; a non-socket fd gives an error.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

/// Looks at `fd`: `None` unless it is a TCP stream socket with an IP address.
pub fn tcp_socket(fd: i32) -> Option<TcpSocket> {
    if int_opt(fd, libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return None;
    }
    // SAFETY: sockaddr_storage is plain data, large enough for any address getsockname writes.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `addr`.
    if unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } != 0
    {
        return None;
    }
    let port = match addr.ss_family as i32 {
        // SAFETY: the family says which address struct the storage holds.
        libc::AF_INET => unsafe {
            (*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()).sin_port
        },
        libc::AF_INET6 => unsafe {
            (*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()).sin6_port
        },
        _ => return None,
    };
    Some(TcpSocket {
        local_port: u16::from_be(port),
        listening: int_opt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? != 0,
        nodelay: int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0,
    })
}

/// Sets TCP_NODELAY on `fd`.
pub fn set_nodelay(fd: i32) -> bool {
    set_tcp_option(fd, libc::TCP_NODELAY)
}

/// Sends a pending delayed ACK on `fd` now (TCP_QUICKACK; the kernel may delay again later).
pub fn ack_now(fd: i32) -> bool {
    set_tcp_option(fd, libc::TCP_QUICKACK)
}

fn set_tcp_option(fd: i32, option: libc::c_int) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `one` only; on a descriptor that is not a TCP socket it fails.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            option,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// What one listener's descriptor table holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SocketAudit {
    pub listener: String,
    /// Descriptors open in the process.
    pub fds: u64,
    /// Accepted sockets on the listener's port.
    pub clients: u64,
    pub clients_without_nodelay: u64,
    /// Times a client socket was told to send its pending ACK at once (TCP_QUICKACK).
    pub quick_acks: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn accepted_sockets_inherit_nodelay_from_their_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let facts = tcp_socket(listener.as_raw_fd()).unwrap();
        assert!(facts.listening && facts.local_port == port && !facts.nodelay);
        assert!(set_nodelay(listener.as_raw_fd()));
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let facts = tcp_socket(accepted.as_raw_fd()).unwrap();
        assert!(!facts.listening && facts.local_port == port);
        assert!(
            facts.nodelay,
            "Linux copies TCP_NODELAY to accepted sockets"
        );
        assert!(own_fds().unwrap().contains(&accepted.as_raw_fd()));
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(tcp_socket(file.as_raw_fd()), None);
    }

    #[test]
    fn the_reserve_counts_once_per_budget_and_keeps_its_room() {
        // Plenty of room: 1,000 accepts cost 16 counts, not 1,000.
        let mut reserve = Reserve::new(1_000_000, 64, 3);
        let mut counts = 0;
        let admitted = (0..1000)
            .filter(|_| {
                reserve.admit(|| {
                    counts += 1;
                    100
                })
            })
            .count();
        assert_eq!(
            (admitted, counts),
            (1000, 1000 / MAX_UNCOUNTED as usize + 1)
        );

        // Near the limit: 1024 - 64 - 900 = 60 free descriptors are 20 accepts of 3 each,
        // then a count finds no room (each accept really took 3) and refuses.
        let mut reserve = Reserve::new(1024, 64, 3);
        let mut open = 900;
        let mut counts = 0;
        let mut admitted = 0;
        while reserve.admit(|| {
            counts += 1;
            open
        }) {
            admitted += 1;
            open += 3;
        }
        assert_eq!((admitted, counts, open), (20, 2, 960));
        assert!(open + 64 <= 1024, "the reserve stays free");
        // Connections closed: the refusal is not sticky, the next call counts again.
        open = 500;
        assert!(reserve.admit(|| open));
        assert!(open_count().unwrap() >= 3, "stdio at least");
    }
}
