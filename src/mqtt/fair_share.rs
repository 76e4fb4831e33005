//! Fair share of the command path between MQTT clients: the front door (`door`) takes one
//! permit per command PUBLISH before forwarding it, and ingress gives one back when it has
//! finished a command. The semaphore is FIFO and each connection waits for at most one permit
//! at a time (it reads nothing more from its client meanwhile), so waiting connections are
//! served round-robin: a command from a quiet client has at most [`PERMITS`] commands in
//! flight and one per other waiting client ahead of it, however many a flooding client sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Commands between the door and their reply: as many as ingress hands the store at once, so
/// the store still commits full batches.
pub const PERMITS: usize = super::ingress::MAX_IN_FLIGHT;
/// A permit not given back by then (a command lost on the way, or one ingress never saw) is
/// returned anyway, so lost messages cannot shrink the capacity.
pub const RETURN_AFTER: Duration = Duration::from_secs(5);

struct Inner {
    permits: Semaphore,
    /// When each permit now out was taken, oldest first.
    out: Mutex<VecDeque<Instant>>,
}

#[derive(Clone)]
pub struct FairShare {
    inner: Arc<Inner>,
}

impl Default for FairShare {
    fn default() -> Self {
        FairShare::new(PERMITS)
    }
}

/// Whether a PUBLISH on `topic` is a command the gateway will answer: the door gates exactly
/// these, and ingress gives back a permit for exactly these (an empty payload is a retained
/// clear, never a command).
pub fn is_gated(topics: &super::topics::Topics, topic: &str, payload_empty: bool) -> bool {
    !payload_empty && topics.parse_command(topic).is_some()
}

impl FairShare {
    pub fn new(permits: usize) -> FairShare {
        FairShare {
            inner: Arc::new(Inner {
                permits: Semaphore::new(permits),
                out: Mutex::new(VecDeque::new()),
            }),
        }
    }

    fn out(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        self.inner.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a permit, in arrival order.
    pub async fn acquire(&self) {
        if let Ok(permit) = self.inner.permits.acquire().await {
            permit.forget();
            self.out().push_back(Instant::now());
        }
    }

    /// A command finished: gives back one permit, if one is out (never more than were taken).
    pub fn done(&self) {
        if self.out().pop_front().is_some() {
            self.inner.permits.add_permits(1);
        }
    }

    /// Gives back the permits out for longer than `RETURN_AFTER` at `now`; returns how many.
    pub fn expire(&self, now: Instant) -> usize {
        let mut out = self.out();
        let mut n = 0;
        while out
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= RETURN_AFTER)
        {
            out.pop_front();
            n += 1;
        }
        drop(out);
        self.inner.permits.add_permits(n);
        n
    }

    /// Permits out now.
    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.out().len()
    }

    /// Permits free now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.inner.permits.available_permits()
    }

    /// Runs [`FairShare::expire`] every second while this share exists.
    pub fn spawn_expiry(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let expired = FairShare { inner }.expire(Instant::now());
                if expired > 0 {
                    tracing::warn!(
                        expired,
                        "MQTT fair share: command permits not given back within {RETURN_AFTER:?} were returned (commands lost on the way to ingress?)"
                    );
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_go_round_robin_and_are_never_over_released() {
        let fair = FairShare::new(2);
        fair.acquire().await;
        fair.acquire().await;
        assert_eq!((fair.available(), fair.outstanding()), (0, 2));
        // Three waiters queue in order: a flooder (a), then b, then a again.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for who in ["a", "b", "a2"] {
            let (fair, order) = (fair.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                fair.acquire().await;
                order.lock().unwrap().push(who);
            }));
            // Let it queue before the next one.
            tokio::task::yield_now().await;
        }
        // Each done() lets exactly the next waiter in.
        for served in 1..=3 {
            fair.done();
            while order.lock().unwrap().len() < served {
                tokio::task::yield_now().await;
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec!["a", "b", "a2"]);
        assert_eq!((fair.available(), fair.outstanding()), (0, 2));
        for _ in 0..5 {
            fair.done();
        }
        assert_eq!(
            (fair.available(), fair.outstanding()),
            (2, 0),
            "more done() than permits out gives back only what was out"
        );
    }

    #[tokio::test]
    async fn a_permit_never_given_back_returns_after_a_while() {
        let fair = FairShare::new(1);
        fair.acquire().await;
        let now = Instant::now();
        assert_eq!(fair.expire(now), 0);
        assert_eq!(fair.expire(now + RETURN_AFTER), 1);
        assert_eq!((fair.available(), fair.outstanding()), (1, 0));
        fair.done();
        assert_eq!(
            fair.available(),
            1,
            "a late done() after expiry releases nothing"
        );
    }
}
