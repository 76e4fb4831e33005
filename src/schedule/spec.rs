//! One `[[schedules]]` entry checked and compiled: its cron pattern, its zone and its action
//! (the bridge-rule action, checked by the same parser), with the occurrence arithmetic the
//! planner needs. Times are Unix milliseconds; the zone turns them into wall-clock times.

use crate::config::{ActionConfig, ScheduleConfig};
use crate::rules::Action;
use crate::state::Intent;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// A checked schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// The pattern as written.
    pub cron_text: String,
    cron: Cron,
    pub zone: TimeZone,
    /// The zone's IANA name (or what the box's local zone is called).
    pub zone_name: String,
    intent: Intent,
    /// The action as carried out, for events and views.
    pub action: ActionConfig,
    pub enabled: bool,
}

/// The box's local zone: `TZ`, then `/etc/localtime`; UTC when neither names one.
fn local_zone() -> (TimeZone, String) {
    let zone = TimeZone::try_system().unwrap_or(TimeZone::UTC);
    let name = zone.iana_name().unwrap_or("local").to_string();
    (zone, name)
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

/// Checks one schedule; the error names what is wrong and what would be right.
pub fn compile_one(cfg: &ScheduleConfig) -> Result<Schedule, String> {
    if cfg.name.trim().is_empty() {
        return Err("a schedule needs a name".into());
    }
    let cron = parser().parse(cfg.cron.trim()).map_err(|e| {
        format!(
            "cron '{}': {e}; expected 5 fields: minute hour day-of-month month day-of-week, e.g. \"0 22 * * 1-5\"",
            cfg.cron
        )
    })?;
    let (zone, zone_name) = match &cfg.timezone {
        Some(name) => (
            TimeZone::get(name).map_err(|_| {
                format!("timezone '{name}' is not an IANA zone name such as \"Europe/Berlin\" or \"UTC\"")
            })?,
            name.clone(),
        ),
        None => local_zone(),
    };
    let action_cfg = match (&cfg.profile, &cfg.action) {
        (Some(profile), None) => ActionConfig {
            profile: Some(profile.clone()),
            ..ActionConfig::default()
        },
        (None, Some(action)) => action.clone(),
        (Some(_), Some(_)) => {
            return Err("give either profile = \"...\" or action = { ... }, not both".into())
        }
        (None, None) => {
            return Err(
                "nothing to do: give profile = \"night\" or action = { ... } (the actions of bridge rules)"
                    .into(),
            )
        }
    };
    // A schedule has no topic wildcards: `{1}` is refused, `{name}` stays text.
    let checked = Action::compile(&action_cfg, 0, "(a schedule has no topic)")?;
    let (intent, action) = checked.render(&[]);
    Ok(Schedule {
        name: cfg.name.clone(),
        cron_text: cfg.cron.clone(),
        cron,
        zone,
        zone_name,
        intent,
        action,
        enabled: cfg.enabled,
    })
}

/// Checks every schedule (names unique); start-up and `check-config` use this.
pub fn compile(configs: &[ScheduleConfig]) -> Result<Vec<Schedule>, String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(configs.len());
    for (i, cfg) in configs.iter().enumerate() {
        let label = if cfg.name.trim().is_empty() {
            format!("schedule #{}", i + 1)
        } else {
            format!("schedule '{}'", cfg.name)
        };
        let schedule = compile_one(cfg).map_err(|e| format!("{label}: {e}"))?;
        if !seen.insert(schedule.name.clone()) {
            return Err(format!(
                "{label}: the name is used twice; names must be unique"
            ));
        }
        out.push(schedule);
    }
    Ok(out)
}

impl Schedule {
    /// The intent one firing submits.
    pub fn intent(&self) -> Intent {
        self.intent.clone()
    }

    /// The profile this schedule sets, if it is a profile schedule.
    pub fn profile(&self) -> Option<&str> {
        match &self.intent {
            Intent::SetProfile { profile, .. } => Some(profile),
            _ => None,
        }
    }

    fn zoned(&self, unix_ms: i64) -> Option<Zoned> {
        Timestamp::from_millisecond(unix_ms)
            .ok()
            .map(|t| t.to_zoned(self.zone.clone()))
    }

    /// The latest entry at or before `unix_ms`.
    pub fn latest_at_or_before(&self, unix_ms: i64) -> Option<i64> {
        let at = self.zoned(unix_ms)?;
        self.cron
            .find_previous_occurrence(&at, true)
            .ok()
            .map(|z| z.timestamp().as_millisecond())
    }

    /// The first entry after `unix_ms`.
    pub fn next_after(&self, unix_ms: i64) -> Option<Zoned> {
        let at = self.zoned(unix_ms)?;
        self.cron.find_next_occurrence(&at, false).ok()
    }

    /// The next `n` entries after `unix_ms`, in the schedule's zone.
    pub fn next_n(&self, unix_ms: i64, n: usize) -> Vec<Zoned> {
        let mut out = Vec::with_capacity(n);
        let mut from = unix_ms;
        while out.len() < n {
            let Some(next) = self.next_after(from) else {
                break;
            };
            from = next.timestamp().as_millisecond();
            out.push(next);
        }
        out
    }
}

/// A wall-clock time with its offset (`2026-03-29T03:00:00+02:00`), as views show firings.
pub fn show(at: &Zoned) -> String {
    at.timestamp().display_with_offset(at.offset()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cron: &str, tz: Option<&str>) -> ScheduleConfig {
        ScheduleConfig {
            name: "s".into(),
            cron: cron.into(),
            timezone: tz.map(String::from),
            profile: Some("night".into()),
            action: None,
            enabled: true,
        }
    }

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn bad_cron_zone_and_action_are_worded() {
        let err = compile_one(&cfg("0 22 * *", None)).unwrap_err();
        assert!(err.contains("5 fields"), "{err}");
        let err = compile_one(&cfg("0 0 22 * * 1", None)).unwrap_err();
        assert!(err.contains("cron"), "{err}");
        let err = compile_one(&cfg("0 22 * * 1-5", Some("Europe/Berlinn"))).unwrap_err();
        assert!(err.contains("Europe/Berlinn"), "{err}");
        let mut c = cfg("0 22 * * 1-5", None);
        c.profile = None;
        assert!(compile_one(&c).unwrap_err().contains("nothing to do"));
        c.action = Some(ActionConfig {
            device: Some("explode".into()),
            ..ActionConfig::default()
        });
        let err = compile_one(&c).unwrap_err();
        assert!(err.contains("explode"), "{err}");
        c.action = Some(ActionConfig {
            app: Some("{1}".into()),
            command: Some("restart".into()),
            ..ActionConfig::default()
        });
        assert!(compile_one(&c).is_err(), "no wildcards to fill {{1}}");
        let two = [cfg("0 1 * * *", None), cfg("0 2 * * *", None)];
        assert!(compile(&two).unwrap_err().contains("twice"));
    }

    #[test]
    fn occurrences_follow_the_zone() {
        let s = compile_one(&cfg("0 22 * * 1-5", Some("Europe/Berlin"))).unwrap();
        // 2026-12-03 is a Thursday; 22:00 in Berlin is 21:00 UTC in winter.
        let now = ms("2026-12-03T12:00:00Z");
        let next: Vec<String> = s.next_n(now, 3).iter().map(show).collect();
        assert_eq!(
            next,
            [
                "2026-12-03T22:00:00+01:00",
                "2026-12-04T22:00:00+01:00",
                "2026-12-07T22:00:00+01:00"
            ]
        );
        assert_eq!(s.latest_at_or_before(now), Some(ms("2026-12-02T21:00:00Z")));
        assert_eq!(
            s.latest_at_or_before(ms("2026-12-02T21:00:30Z")),
            Some(ms("2026-12-02T21:00:00Z")),
            "an entry counts from its minute on"
        );
    }
}
