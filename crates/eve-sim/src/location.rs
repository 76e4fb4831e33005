//! GNSS location (POST location): a fixed point at a plant with a small
//! random drift, from the cellular modem's GNSS receiver.

use rand::Rng;

use super::node::{now_timestamp, SimState};
use super::radio::MODEM;
use super::snapshot::SimLocation;
use eve_proto::info::{LocReliability, ZInfoLocation};

/// A plant near Essen, Germany.
const BASE_LAT: f64 = 51.4556;
const BASE_LON: f64 = 7.0116;
const BASE_ALT: f64 = 116.0;
/// How far the random walk may drift (degrees, about 20 m).
const MAX_DRIFT: f64 = 0.0002;

#[derive(Clone, Debug, Default)]
pub(crate) struct LocationState {
    drift_lat: f64,
    drift_lon: f64,
    /// After a 404: publish at most once per 5 minutes.
    pub throttled: bool,
    pub last: Option<SimLocation>,
}

impl LocationState {
    pub fn new() -> Self {
        LocationState::default()
    }

    pub fn after_boot(&mut self) {
        self.throttled = false;
    }

    /// Next fix: the base point plus a bounded random walk.
    pub fn next_fix(&mut self) -> ZInfoLocation {
        let mut rng = rand::rng();
        let step = MAX_DRIFT / 10.0;
        self.drift_lat =
            (self.drift_lat + rng.random_range(-step..=step)).clamp(-MAX_DRIFT, MAX_DRIFT);
        self.drift_lon =
            (self.drift_lon + rng.random_range(-step..=step)).clamp(-MAX_DRIFT, MAX_DRIFT);
        let fix = ZInfoLocation {
            latitude: BASE_LAT + self.drift_lat,
            longitude: BASE_LON + self.drift_lon,
            altitude: BASE_ALT + rng.random_range(-2.0..=2.0),
            utc_timestamp: Some(now_timestamp()),
            horizontal_reliability: LocReliability::High as i32,
            vertical_reliability: LocReliability::Medium as i32,
            horizontal_uncertainty: rng.random_range(2.5f32..=6.0),
            vertical_uncertainty: rng.random_range(4.0f32..=10.0),
            logicallabel: MODEM.to_string(),
        };
        self.last = Some(SimLocation {
            latitude: fix.latitude,
            longitude: fix.longitude,
            altitude: fix.altitude,
        });
        fix
    }
}

impl SimState {
    /// Status of a location POST: 200/201/204 end throttling, 404 starts it,
    /// anything else changes nothing.
    pub fn location_status(&mut self, status: Option<u16>) {
        match status {
            Some(200 | 201 | 204) => self.location.throttled = false,
            Some(404) => {
                if !self.location.throttled {
                    tracing::info!("sim: location throttled to once per 5 min (404)");
                }
                self.location.throttled = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::state_with;

    #[test]
    fn fixes_stay_near_the_plant() {
        let mut l = LocationState::new();
        for _ in 0..1000 {
            let f = l.next_fix();
            assert!((f.latitude - BASE_LAT).abs() <= MAX_DRIFT + 1e-12);
            assert!((f.longitude - BASE_LON).abs() <= MAX_DRIFT + 1e-12);
            assert_eq!(f.logicallabel, "modem0");
            assert!(f.utc_timestamp.is_some());
        }
    }

    #[test]
    fn throttle_follows_status() {
        let mut s = state_with("");
        s.location_status(Some(404));
        assert!(s.location.throttled);
        s.location_status(Some(500));
        assert!(s.location.throttled);
        s.location_status(None);
        assert!(s.location.throttled);
        s.location_status(Some(204));
        assert!(!s.location.throttled);
    }
}
