//! Paces signal lines like EVE's limiter (a burst, then one per interval) so that EVE never drops
//! one: what cannot go out yet is merged into the next line.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Pacer {
    burst: f64,
    interval: Duration,
    tokens: f64,
    at: Instant,
}

impl Pacer {
    pub fn new(burst: u32, interval: Duration, now: Instant) -> Pacer {
        Pacer {
            burst: burst.max(1) as f64,
            interval,
            tokens: burst.max(1) as f64,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if self.interval.is_zero() {
            self.tokens = self.burst;
        } else {
            let gained =
                now.saturating_duration_since(self.at).as_secs_f64() / self.interval.as_secs_f64();
            self.tokens = (self.tokens + gained).min(self.burst);
        }
        self.at = now;
    }

    /// How long until a line may go out (zero = now).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            self.interval.mul_f64(1.0 - self.tokens)
        }
    }

    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let t0 = Instant::now();
        let mut p = Pacer::new(3, Duration::from_secs(3), t0);
        for _ in 0..3 {
            assert_eq!(p.wait(t0), Duration::ZERO);
            p.take(t0);
        }
        let w = p.wait(t0);
        assert!(
            w > Duration::from_millis(2990) && w <= Duration::from_secs(3),
            "{w:?}"
        );
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(p.wait(t1), Duration::ZERO);
        p.take(t1);
        assert!(p.wait(t1) > Duration::ZERO);
    }

    #[test]
    fn zero_interval_never_waits() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1, Duration::ZERO, t0);
        for _ in 0..10 {
            assert_eq!(p.wait(t0), Duration::ZERO);
            p.take(t0);
        }
    }
}
