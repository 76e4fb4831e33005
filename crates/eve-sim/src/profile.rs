//! Profile semantics (EVE zedmanager `effectiveActivateCurrentProfile`) and
//! the local_profile response handling.

use super::node::{Effect, SimState};
use super::snapshot::Endpoint;

/// The current profile: the local one when non-empty, else the global one.
pub(crate) fn current_profile<'a>(local: &'a str, global: &'a str) -> &'a str {
    if local.is_empty() {
        global
    } else {
        local
    }
}

/// Whether an app with `app_profiles` runs under `current`: always when no
/// profile is current or the app lists none, else only if listed.
pub(crate) fn profile_allows(current: &str, app_profiles: &[String]) -> bool {
    current.is_empty() || app_profiles.is_empty() || app_profiles.iter().any(|p| p == current)
}

impl SimState {
    /// A valid 200 from GET local_profile (token already checked). An empty
    /// profile clears the local override.
    pub fn apply_local_profile(&mut self, profile: &str) -> Vec<Effect> {
        if profile == self.local_profile {
            return Vec::new();
        }
        let before = self.effective_profile().to_string();
        self.local_profile = profile.to_string();
        self.receive(
            Endpoint::LocalProfile,
            format!("profile:{profile}"),
            None,
            0,
        );
        tracing::info!(
            from = %before,
            to = %self.effective_profile(),
            "sim: effective profile changed"
        );
        self.reconcile_apps()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::{settle, state_with};
    use eve_proto::info::ZSwState;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn profile_rule() {
        assert_eq!(current_profile("", "global"), "global");
        assert_eq!(current_profile("night", "global"), "night");
        assert_eq!(current_profile("", ""), "");

        assert!(profile_allows("", &v(&["day"])));
        assert!(profile_allows("day", &v(&[])));
        assert!(profile_allows("day", &v(&["day", "night"])));
        assert!(!profile_allows("night", &v(&["day"])));
    }

    #[test]
    fn profile_switch_halts_and_boots_apps() {
        let mut s = state_with("day");
        let effects = s.apply_local_profile("night");
        // Transitions start at once and are reported.
        assert_eq!(s.apps[1].state, ZSwState::Halting);
        assert_eq!(s.apps[2].state, ZSwState::Booting);
        assert_eq!(s.apps[0].state, ZSwState::Running);
        assert!(effects.contains(&Effect::Trigger(Endpoint::AppInfo)));
        settle(&mut s, effects);
        assert_eq!(s.apps[1].state, ZSwState::Halted);
        assert_eq!(s.apps[2].state, ZSwState::Running);
        assert_eq!(s.effective_profile(), "night");
        assert_eq!(s.received.len(), 1);
        assert_eq!(s.received[0].command, "profile:night");

        // Same profile again: nothing happens, nothing recorded.
        assert!(s.apply_local_profile("night").is_empty());
        assert_eq!(s.received.len(), 1);

        // Empty clears the override: back to the global profile.
        let effects = s.apply_local_profile("");
        settle(&mut s, effects);
        assert_eq!(s.effective_profile(), "day");
        assert_eq!(s.apps[1].state, ZSwState::Running);
        assert_eq!(s.apps[2].state, ZSwState::Halted);
    }
}
