//! What is due now, given the wall clock and the durable profile-set time. Pure: the clock is
//! an argument, so restarts and clock steps are plain unit tests.
//!
//! The rules (README "Schedules"):
//! - Profile schedules are a level, not an edge: the profile should be the one the most recent
//!   due entry (of all profile schedules) set, unless a profile was set after that entry (by an
//!   operator, a rule or a schedule; the store keeps the set time durably). So a restart or a
//!   jump forward applies the latest missed entry once, and never a burst of older ones.
//! - A set time in the future (the clock went back after it) counts as set when the planner
//!   first saw it in the future, so the next entry after the step still applies.
//! - Other actions (app or device commands, radio) are edges: each fires when the clock passes
//!   one of its entries while the gateway runs, at most once per poll however far the clock
//!   jumped, and never twice for the same entry (after a step back). Entries that passed while
//!   the gateway was down are not replayed: a missed `reboot` replayed at every start would loop.

use super::spec::Schedule;

/// The desired profile as the store has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileNow {
    pub name: String,
    /// Unix ms of the last change (0 = never set).
    pub set_at_ms: u64,
}

/// A schedule to fire now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Index into the planner's schedules.
    pub index: usize,
    /// The entry it fires for (Unix ms).
    pub entry_ms: i64,
    /// The entry was not the latest poll's (a restart or a clock step passed it).
    pub missed: bool,
}

#[derive(Debug)]
pub struct Planner {
    schedules: Vec<Schedule>,
    last_poll_ms: Option<i64>,
    /// Per schedule, the last entry fired.
    last_fired: Vec<Option<i64>>,
    /// A future set time seen, and the time it counts as.
    clamp: Option<(u64, i64)>,
    /// Until when nothing can be due (the earliest next entry), and the profile then: polls
    /// before it with the same profile skip the occurrence searches.
    quiet_until: Option<(i64, ProfileNow)>,
}

impl Planner {
    pub fn new(schedules: Vec<Schedule>) -> Planner {
        let n = schedules.len();
        Planner {
            schedules,
            last_poll_ms: None,
            last_fired: vec![None; n],
            clamp: None,
            quiet_until: None,
        }
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    fn effective_set_ms(&mut self, profile: &ProfileNow, now_ms: i64) -> i64 {
        let set = profile.set_at_ms;
        match self.clamp {
            Some((seen, at)) if seen == set => at,
            _ if set as i64 > now_ms => {
                self.clamp = Some((set, now_ms));
                now_ms
            }
            _ => {
                self.clamp = None;
                set as i64
            }
        }
    }

    /// What to fire at `now_ms`. Call it often (every second); each call is cheap when nothing
    /// is due.
    pub fn poll(&mut self, now_ms: i64, profile: &ProfileNow) -> Vec<Due> {
        let first = self.last_poll_ms.is_none();
        let window_start = self.last_poll_ms.unwrap_or(now_ms);
        if let Some((until, seen)) = &self.quiet_until {
            if now_ms >= window_start && now_ms < *until && seen == profile {
                self.last_poll_ms = Some(now_ms);
                return Vec::new();
            }
        }
        self.last_poll_ms = Some(now_ms);
        let set_ms = self.effective_set_ms(profile, now_ms);
        let mut due = Vec::new();

        // The most recent profile entry of all; on a tie the later schedule in the file wins.
        let mut latest: Option<(usize, i64)> = None;
        for (i, s) in self.schedules.iter().enumerate() {
            if !s.enabled || s.profile().is_none() {
                continue;
            }
            if let Some(entry) = s.latest_at_or_before(now_ms) {
                if latest.is_none_or(|(_, at)| entry >= at) {
                    latest = Some((i, entry));
                }
            }
        }
        if let Some((i, entry)) = latest {
            let wanted = self.schedules[i].profile().unwrap_or_default();
            if entry > set_ms && wanted != profile.name && self.last_fired[i] != Some(entry) {
                self.last_fired[i] = Some(entry);
                due.push(Due {
                    index: i,
                    entry_ms: entry,
                    missed: first || entry <= window_start || now_ms - window_start > 60_000,
                });
            }
        }

        for (i, s) in self.schedules.iter().enumerate() {
            if !s.enabled || s.profile().is_some() {
                continue;
            }
            let Some(entry) = s.latest_at_or_before(now_ms) else {
                continue;
            };
            let fresh = entry > window_start && self.last_fired[i].is_none_or(|f| entry > f);
            if fresh {
                self.last_fired[i] = Some(entry);
                // Polls are a second apart; a gap of over a minute is a clock step or a stall.
                let missed = now_ms - window_start > 60_000;
                due.push(Due {
                    index: i,
                    entry_ms: entry,
                    missed,
                });
            }
        }
        let next = self
            .schedules
            .iter()
            .filter(|s| s.enabled)
            .filter_map(|s| s.next_after(now_ms))
            .map(|z| z.timestamp().as_millisecond())
            .min();
        // With something due the profile changes next: look again on the next poll.
        self.quiet_until = match next {
            Some(next) if due.is_empty() => Some((next, profile.clone())),
            None if due.is_empty() => Some((i64::MAX, profile.clone())),
            _ => None,
        };
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ActionConfig, ScheduleConfig};
    use jiff::Timestamp;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn profile_schedule(name: &str, cron: &str, profile: &str) -> ScheduleConfig {
        ScheduleConfig {
            name: name.into(),
            cron: cron.into(),
            timezone: Some("Europe/Berlin".into()),
            profile: Some(profile.into()),
            action: None,
            enabled: true,
        }
    }

    fn restart_schedule(cron: &str) -> ScheduleConfig {
        ScheduleConfig {
            name: "restart".into(),
            cron: cron.into(),
            timezone: Some("Europe/Berlin".into()),
            profile: None,
            action: Some(ActionConfig {
                app: Some("vision".into()),
                command: Some("restart".into()),
                ..ActionConfig::default()
            }),
            enabled: true,
        }
    }

    /// Night from 22:00, day from 06:00, on weekdays (Berlin); index 0 = night, 1 = day.
    fn shifts() -> Planner {
        Planner::new(
            super::super::compile(&[
                profile_schedule("night shift", "0 22 * * 1-5", "night"),
                profile_schedule("day shift", "0 6 * * 1-5", "day"),
            ])
            .unwrap(),
        )
    }

    fn set(name: &str, at: &str) -> ProfileNow {
        ProfileNow {
            name: name.into(),
            set_at_ms: ms(at) as u64,
        }
    }

    /// Applies what fired the way the store would (set time = when it fired).
    fn run(p: &mut Planner, profile: &mut ProfileNow, at: &str) -> Vec<Due> {
        let now = ms(at);
        let due = p.poll(now, profile);
        for d in &due {
            if let Some(name) = p.schedules()[d.index].profile() {
                *profile = ProfileNow {
                    name: name.into(),
                    set_at_ms: now as u64,
                };
            }
        }
        due
    }

    // 2026-12-01 is a Tuesday. Berlin is UTC+1 in December.

    #[test]
    fn an_entry_fires_when_the_clock_passes_it() {
        let mut p = shifts();
        let mut profile = set("day", "2026-12-01T05:00:01Z");
        assert!(run(&mut p, &mut profile, "2026-12-01T20:59:59Z").is_empty());
        let due = run(&mut p, &mut profile, "2026-12-01T21:00:00.400Z");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].index, 0);
        assert!(!due[0].missed);
        assert_eq!(profile.name, "night");
        assert!(run(&mut p, &mut profile, "2026-12-01T21:00:01.400Z").is_empty());
    }

    #[test]
    fn restart_between_entries_applies_the_missed_one_once() {
        // Down from 21:30 to 23:00 Berlin: the 22:00 entry is applied at start, once.
        let mut p = shifts();
        let mut profile = set("day", "2026-12-01T05:00:01Z");
        let due = run(&mut p, &mut profile, "2026-12-01T22:00:00Z");
        assert_eq!(due.len(), 1);
        assert!(due[0].missed);
        assert_eq!(profile.name, "night");
        assert!(run(&mut p, &mut profile, "2026-12-01T22:00:01Z").is_empty());

        // An operator set "day" at 22:30 (after the entry): a restart keeps it.
        let mut p = shifts();
        let mut profile = set("day", "2026-12-01T21:30:00Z");
        assert!(run(&mut p, &mut profile, "2026-12-01T22:00:00Z").is_empty());
        assert_eq!(profile.name, "day");
        // ... until the next entry (06:00 day: already day, nothing to do; 22:00 night).
        assert!(run(&mut p, &mut profile, "2026-12-02T05:00:00.5Z").is_empty());
        assert_eq!(run(&mut p, &mut profile, "2026-12-02T21:00:00.5Z").len(), 1);
        assert_eq!(profile.name, "night");

        // A box that never had a profile set takes the latest entry at its first start.
        let mut p = shifts();
        let mut profile = ProfileNow::default();
        assert_eq!(run(&mut p, &mut profile, "2026-12-02T08:00:00Z").len(), 1);
        assert_eq!(profile.name, "day");
    }

    #[test]
    fn a_jump_forward_of_days_fires_no_burst() {
        let mut p = Planner::new(
            super::super::compile(&[
                profile_schedule("night shift", "0 22 * * 1-5", "night"),
                profile_schedule("day shift", "0 6 * * 1-5", "day"),
                restart_schedule("*/5 * * * *"),
            ])
            .unwrap(),
        );
        let mut profile = set("day", "2026-12-01T05:00:01Z");
        assert!(run(&mut p, &mut profile, "2026-12-01T10:01:00Z").is_empty());
        // NTP steps the clock 2 days and 12 hours ahead (Thu 23:30 Berlin): of the ten entries
        // passed, the latest profile one (Thu 22:00, night) and one restart are applied.
        let due = run(&mut p, &mut profile, "2026-12-03T22:31:00Z");
        assert_eq!(due.len(), 2, "{due:?}");
        assert!(due.iter().all(|d| d.missed));
        assert_eq!(profile.name, "night");
        assert_eq!(due[0].entry_ms, ms("2026-12-03T21:00:00Z"));
        assert_eq!(due[1].entry_ms, ms("2026-12-03T22:30:00Z"));
        assert!(run(&mut p, &mut profile, "2026-12-03T22:31:01Z").is_empty());
        assert_eq!(run(&mut p, &mut profile, "2026-12-03T22:35:00.2Z").len(), 1);
    }

    #[test]
    fn a_jump_back_undoes_nothing_and_repeats_nothing() {
        let mut p = Planner::new(
            super::super::compile(&[
                profile_schedule("night shift", "0 22 * * 1-5", "night"),
                profile_schedule("day shift", "0 6 * * 1-5", "day"),
                restart_schedule("0 21 * * *"),
            ])
            .unwrap(),
        );
        let mut profile = set("day", "2026-12-01T05:00:01Z");
        assert!(run(&mut p, &mut profile, "2026-12-01T19:59:00Z").is_empty());
        assert_eq!(run(&mut p, &mut profile, "2026-12-01T20:00:00.3Z").len(), 1);
        assert_eq!(run(&mut p, &mut profile, "2026-12-01T21:00:00.3Z").len(), 1);
        assert_eq!(profile.name, "night");
        // Back two hours: the day entry of the morning is older than the set time.
        assert!(run(&mut p, &mut profile, "2026-12-01T19:00:00Z").is_empty());
        assert_eq!(profile.name, "night");
        // Passing 21:00 and 22:00 Berlin again repeats neither the restart nor the profile.
        assert!(run(&mut p, &mut profile, "2026-12-01T20:00:00.3Z").is_empty());
        assert!(run(&mut p, &mut profile, "2026-12-01T21:00:00.3Z").is_empty());
        // The next day goes on as usual.
        assert_eq!(run(&mut p, &mut profile, "2026-12-02T05:00:00.3Z").len(), 1);
        assert_eq!(profile.name, "day");
    }

    #[test]
    fn a_set_time_in_the_future_counts_from_the_step_back() {
        // Booted with the clock 5 hours ahead; an operator set "night" at (wrong) 10:00 Berlin.
        let mut p = shifts();
        let mut profile = set("night", "2026-12-02T09:00:00Z");
        assert!(run(&mut p, &mut profile, "2026-12-02T09:00:01Z").is_empty());
        // NTP steps back to 05:00: the 06:00 day entry still comes, and applies.
        assert!(run(&mut p, &mut profile, "2026-12-02T04:00:00Z").is_empty());
        assert_eq!(profile.name, "night");
        assert_eq!(run(&mut p, &mut profile, "2026-12-02T05:00:00.2Z").len(), 1);
        assert_eq!(profile.name, "day");
    }

    #[test]
    fn daylight_saving_changes_fire_once() {
        // Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (02:30 does not exist); 2026-10-25
        // 03:00 CEST -> 02:00 CET (02:30 happens twice).
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let mut fired = Vec::new();
        for (from, to) in [
            ("2026-03-28T23:00:00Z", "2026-03-29T04:00:00Z"),
            ("2026-10-24T22:00:00Z", "2026-10-25T04:00:00Z"),
        ] {
            let mut p =
                Planner::new(super::super::compile(&[restart_schedule("30 2 * * *")]).unwrap());
            let mut t = ms(from);
            while t <= ms(to) {
                for d in p.poll(t, &ProfileNow::default()) {
                    let at = Timestamp::from_millisecond(d.entry_ms).unwrap();
                    fired.push(super::super::show(&at.to_zoned(berlin.clone())));
                }
                t += 10_000;
            }
        }
        // The skipped half hour fires at its end (as cron does); the repeated one fires once.
        assert_eq!(
            fired,
            ["2026-03-29T03:00:00+02:00", "2026-10-25T02:30:00+02:00"]
        );

        // Profile entries keep their local time across the change: 06:00 is 04:00 UTC on the
        // Friday before (CEST) and 05:00 UTC on the Monday after (CET).
        let mut p = shifts();
        let mut profile = set("night", "2026-10-22T20:00:01Z");
        assert_eq!(run(&mut p, &mut profile, "2026-10-23T04:00:00.5Z").len(), 1);
        assert_eq!(profile.name, "day");
        profile = set("night", "2026-10-23T20:00:01Z");
        assert!(run(&mut p, &mut profile, "2026-10-26T04:59:59Z").is_empty());
        assert_eq!(run(&mut p, &mut profile, "2026-10-26T05:00:00.5Z").len(), 1);
        assert_eq!(profile.name, "day");
    }
}
