//! Simulator options, the `--apps` syntax, deterministic identities and
//! EVE's timing (every interval divided by `speed`).

use std::time::Duration;

use rand::Rng;
use uuid::Uuid;

/// How the simulated node is set up.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// LPS base URL, e.g. `http://127.0.0.1:8888`.
    pub lps_url: String,
    /// The controller's `profile_server_token`; responses are checked against it.
    pub token: String,
    /// The app instances the controller deployed on the node.
    pub apps: Vec<AppSpec>,
    /// All intervals and execution durations are divided by this (1.0 = real EVE timing).
    pub speed: f64,
    /// Device UUID; a fixed, deterministic one when `None`.
    pub device_uuid: Option<String>,
    /// The controller's `global_profile` ("" = none).
    pub global_profile: String,
}

impl SimOptions {
    /// Options with real EVE timing, no apps and no global profile.
    pub fn new(lps_url: impl Into<String>, token: impl Into<String>) -> Self {
        SimOptions {
            lps_url: lps_url.into(),
            token: token.into(),
            apps: Vec::new(),
            speed: 1.0,
            device_uuid: None,
            global_profile: String::new(),
        }
    }
}

/// One app instance: display name plus its `profile_list` (empty = runs in every profile).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppSpec {
    pub name: String,
    pub profiles: Vec<String>,
}

impl AppSpec {
    /// Parses `"a,b@day,c@day+night"`: comma-separated apps, each `name` or
    /// `name@profile+profile`. Blank input gives no apps.
    pub fn parse_list(s: &str) -> Result<Vec<AppSpec>, String> {
        let mut apps: Vec<AppSpec> = Vec::new();
        if s.trim().is_empty() {
            return Ok(apps);
        }
        for item in s.split(',') {
            let app = Self::parse(item)?;
            // Names must be unique: app UUIDs are derived from them.
            if apps.iter().any(|a| a.name == app.name) {
                return Err(format!("app {:?} is listed twice", app.name));
            }
            apps.push(app);
        }
        Ok(apps)
    }

    /// Parses one `name` or `name@profile+profile`.
    pub fn parse(item: &str) -> Result<AppSpec, String> {
        let item = item.trim();
        let (name, profiles) = match item.split_once('@') {
            Some((name, list)) => {
                let mut profiles = Vec::new();
                for p in list.split('+') {
                    let p = p.trim();
                    if p.is_empty() {
                        return Err(format!(
                            "app {item:?}: empty profile name (expected name@day+night)"
                        ));
                    }
                    if !profiles.iter().any(|q| q == p) {
                        profiles.push(p.to_string());
                    }
                }
                (name.trim(), profiles)
            }
            None => (item, Vec::new()),
        };
        if name.is_empty() {
            return Err(format!(
                "empty app name in {item:?} (expected name or name@profile+profile)"
            ));
        }
        Ok(AppSpec {
            name: name.to_string(),
            profiles,
        })
    }
}

/// Namespace for the simulator's deterministic UUIDs (v5).
const SIM_NAMESPACE: Uuid = Uuid::from_u128(0x6c70_7362_7269_6467_652d_7369_6d00_0001);

/// The device UUID used when none is given.
pub fn default_device_uuid() -> String {
    Uuid::new_v5(&SIM_NAMESPACE, b"device").to_string()
}

/// An app's UUID, derived from its name so that runs and reboots agree.
pub fn app_uuid(name: &str) -> Uuid {
    Uuid::new_v5(&SIM_NAMESPACE, format!("app/{name}").as_bytes())
}

/// EVE's real durations (spec: eve-client-behavior.md §1), and the
/// execution times the simulator makes up for things EVE does physically.
pub(crate) mod real {
    use std::time::Duration;

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }
    const fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    pub const PROFILE: Duration = s(60);
    pub const RADIO: Duration = s(5);
    pub const APPINFO: Duration = s(60);
    pub const DEVINFO: Duration = s(60);
    pub const NETWORK: Duration = s(60);
    pub const APPBOOTINFO: Duration = s(60);
    pub const LOCATION: Duration = s(20);
    pub const LOCATION_THROTTLED: Duration = s(300);

    pub const SIGNAL_RATE: Duration = s(3);
    pub const SIGNAL_BACKOFF_INITIAL: Duration = s(1);
    pub const SIGNAL_BACKOFF_MAX: Duration = s(30);
    pub const SIGNAL_NOT_FOUND: Duration = s(3600);

    pub const REQUEST_TIMEOUT: Duration = s(120);
    pub const DIAL_TIMEOUT: Duration = s(10);

    // Made-up execution times ("realistic short delays").
    pub const APP_BOOT: Duration = ms(2000);
    pub const APP_HALT: Duration = ms(1500);
    pub const APP_RESTART: Duration = ms(3000);
    pub const APP_PURGE: Duration = ms(4000);
    pub const RADIO_APPLY: Duration = ms(1000);
    pub const REPORT_AGAIN: Duration = ms(1000);
    pub const REBOOT_DOWNTIME: Duration = s(8);
    /// Goes down even if the final devinfo POST never happens.
    pub const DOWN_FALLBACK: Duration = s(10);
}

/// Durations scaled by `speed`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    speed: f64,
}

impl Timing {
    /// Non-finite or non-positive speeds fall back to real time.
    pub fn new(speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Timing { speed }
    }

    pub fn scale(&self, d: Duration) -> Duration {
        Duration::from_secs_f64((d.as_secs_f64() / self.speed).min(1.0e9))
    }

    /// EVE's task ticker fires at a random point in [0.88, 1.1] of the interval.
    pub fn jittered(&self, d: Duration) -> Duration {
        self.scale(d).mul_f64(rand::rng().random_range(0.88..=1.1))
    }

    /// The location publisher uses [0.3, 1.0] of its interval.
    pub fn location_jittered(&self, d: Duration) -> Duration {
        self.scale(d).mul_f64(rand::rng().random_range(0.3..=1.0))
    }

    /// Network timeouts are scaled too, but never below a floor, so a fast
    /// simulation against a slow machine still gets its answers.
    pub fn timeout(&self, d: Duration, floor: Duration) -> Duration {
        self.scale(d).max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_app_lists() {
        let apps = AppSpec::parse_list(" plc , vision@day , batch@night+weekend ").unwrap();
        assert_eq!(
            apps,
            vec![
                AppSpec {
                    name: "plc".into(),
                    profiles: vec![]
                },
                AppSpec {
                    name: "vision".into(),
                    profiles: vec!["day".into()]
                },
                AppSpec {
                    name: "batch".into(),
                    profiles: vec!["night".into(), "weekend".into()]
                },
            ]
        );
        assert!(AppSpec::parse_list("").unwrap().is_empty());
        assert!(AppSpec::parse_list("a,,b").is_err());
        assert!(AppSpec::parse_list("a@").is_err());
        assert!(AppSpec::parse_list("@day").is_err());
        assert!(AppSpec::parse_list("a@day++night").is_err());
        assert!(AppSpec::parse_list("a,a@day").is_err());
    }

    #[test]
    fn identities_are_deterministic() {
        assert_eq!(app_uuid("plc"), app_uuid("plc"));
        assert_ne!(app_uuid("plc"), app_uuid("vision"));
        assert_eq!(default_device_uuid(), default_device_uuid());
        assert_eq!(app_uuid("plc").get_version_num(), 5);
    }

    #[test]
    fn timing_scales_and_jitters() {
        let t = Timing::new(10.0);
        assert_eq!(t.scale(Duration::from_secs(60)), Duration::from_secs(6));
        for _ in 0..100 {
            let j = t.jittered(Duration::from_secs(60));
            assert!(j >= Duration::from_millis(5279) && j <= Duration::from_millis(6601));
            let l = t.location_jittered(Duration::from_secs(20));
            assert!(l >= Duration::from_millis(599) && l <= Duration::from_millis(2001));
        }
        let second = Duration::from_secs(1);
        assert_eq!(Timing::new(0.0).scale(second), second);
        assert_eq!(Timing::new(f64::NAN).scale(second), second);
        assert_eq!(Timing::new(-3.0).scale(second), second);
    }
}
