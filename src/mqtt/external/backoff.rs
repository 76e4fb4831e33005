//! Reconnect delays: 1 s, doubling up to a cap, back to the start after a successful connect.
//! rumqttc reconnects on the very next `poll()` after an error, so the pause is ours.

use std::time::Duration;

/// The first delay after a failure (shorter only when the cap is shorter).
pub const FIRST: Duration = Duration::from_secs(1);

pub use crate::backoff::Backoff;

/// Up to 10 % shorter, so that a fleet of gateways does not reconnect in lockstep when a plant
/// broker comes back.
pub fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(1.0 - rand::random::<f64>() * 0.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn doubles_from_one_second_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(FIRST, Duration::from_secs(60));
        let got: Vec<Duration> = (0..9).map(|_| b.next_delay()).collect();
        assert_eq!(got, secs(&[1, 2, 4, 8, 16, 32, 60, 60, 60]));
        b.reset();
        let got: Vec<Duration> = (0..3).map(|_| b.next_delay()).collect();
        assert_eq!(got, secs(&[1, 2, 4]));
    }

    #[test]
    fn cap_that_is_not_a_power_of_two_is_reached_exactly() {
        let mut b = Backoff::new(FIRST, Duration::from_secs(5));
        let got: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(got, secs(&[1, 2, 4, 5, 5]));
    }

    #[test]
    fn cap_below_one_second_is_the_only_delay() {
        let cap = Duration::from_millis(300);
        let mut b = Backoff::new(FIRST, cap);
        assert_eq!(b.next_delay(), cap);
        assert_eq!(b.next_delay(), cap);
        b.reset();
        assert_eq!(b.next_delay(), cap);
    }

    #[test]
    fn jitter_only_shortens_by_up_to_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10));
            assert!(
                d <= Duration::from_secs(10) && d >= Duration::from_secs(9),
                "{d:?}"
            );
        }
    }
}
