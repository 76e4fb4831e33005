//! Every topic string is built and parsed here.

use crate::command::Target;
// Topic levels come from names (pure, so the state machine resolves apps by them too).
pub use crate::state::level::{app_levels, stable_hash, topic_level, MAX_LEVEL_BYTES};

#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

/// MQTT's limit on a topic name: its length is written in 16 bits.
pub const MAX_TOPIC_BYTES: usize = 65_535;
/// Largest payload the gateway publishes; a larger one is replaced by a short notice.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Matches an MQTT topic filter against a topic name; returns what each `+` matched (in order)
/// and, for a trailing `#`, the rest of the topic as one last capture.
pub fn filter_matches(filter: &str, topic: &str) -> Option<Vec<String>> {
    // Topics starting with $ are not matched by wildcards at the first level (MQTT 4.7.2).
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return None;
    }
    let mut captures = Vec::new();
    let mut levels = topic.split('/');
    for f in filter.split('/') {
        match f {
            "#" => {
                // `a/#` also matches `a` itself (the capture is then empty).
                let rest: Vec<&str> = levels.collect();
                captures.push(rest.join("/"));
                return Some(captures);
            }
            "+" => captures.push(levels.next()?.to_string()),
            literal => {
                if levels.next()? != literal {
                    return None;
                }
            }
        }
    }
    levels.next().is_none().then_some(captures)
}

/// Checks a subscription filter is well formed (wildcards only as whole levels, `#` last).
pub fn valid_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("the topic filter is empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err(format!(
                "'{filter}': '#' must be a whole level and the last one"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("'{filter}': '+' must be a whole level"));
        }
    }
    Ok(())
}

impl Topics {
    pub fn new(base: &str) -> Topics {
        Topics {
            base: base.trim_end_matches('/').to_string(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn topic(&self, relative: &str) -> String {
        format!("{}/{relative}", self.base)
    }

    /// `B/app/<level>`, for a level from [`app_levels`].
    pub fn app(&self, level: &str) -> String {
        format!("{}/app/{level}", self.base)
    }

    pub fn events(&self) -> String {
        self.topic("events")
    }

    /// The filters the gateway subscribes to for commands: the command topics and, around them,
    /// the likely mistypes (`B/apps/x/set`, `B/app/x/sett`, `B/profil/set`), so those get an
    /// error reply instead of silence. (`B/app/<level>` without `/set` is a state topic: catching
    /// it would echo every app update back to the gateway.)
    pub fn command_filters(&self) -> [String; 2] {
        [self.topic("+/set"), self.topic("+/+/+")]
    }

    /// Every command topic's relative part, for clearing retained copies and documentation.
    pub fn relative<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic.strip_prefix(self.base.as_str())?.strip_prefix('/')
    }

    /// The command target a topic under the base names (`profile/set`, `app/<name>/set` …).
    pub fn parse_command(&self, topic: &str) -> Option<Target> {
        let rel = self.relative(topic)?;
        let parts: Vec<&str> = rel.split('/').collect();
        match parts.as_slice() {
            ["profile", "set"] => Some(Target::Profile),
            ["device", "set"] => Some(Target::Device),
            ["radio", "set"] => Some(Target::Radio),
            ["network", "set"] => Some(Target::Network),
            ["app", name, "set"] if !name.is_empty() => Some(Target::App((*name).to_string())),
            _ => None,
        }
    }

    /// For a topic under the base that is not a command topic: the closest command topic
    /// (relative), unless the topic is one the gateway publishes itself (`B/response/…`,
    /// `B/events`, state), which is never answered (no loops).
    pub fn mistyped_command(&self, topic: &str) -> Option<String> {
        let rel = self.relative(topic)?;
        if self.parse_command(topic).is_some() || is_own_topic(rel) {
            return None;
        }
        let levels: Vec<&str> = rel.split('/').collect();
        let mut candidates: Vec<String> = ["profile/set", "device/set", "radio/set", "network/set"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        // `apps/vision/set`, `app/vision/sett`, `app/vision`: the second level names the app.
        if let Some(app) = levels.get(1).filter(|a| !a.is_empty()) {
            candidates.push(format!("app/{app}/set"));
        }
        candidates
            .into_iter()
            .min_by_key(|c| strsim::levenshtein(rel, c))
    }

    /// `B/response/<same relative topic>`.
    pub fn response_for(&self, command_topic: &str) -> String {
        let rel = self.relative(command_topic).unwrap_or(command_topic);
        format!("{}/response/{rel}", self.base)
    }
}

/// Relative topics the gateway publishes on itself: answering them would answer ourselves.
fn is_own_topic(rel: &str) -> bool {
    let levels: Vec<&str> = rel.split('/').collect();
    match levels.as_slice() {
        ["response" | "events", ..] | ["app", _] | ["eve" | "bridge", _] => true,
        [one] => matches!(
            *one,
            "device" | "apps" | "profile" | "radio" | "network" | "location" | "schedules"
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_command_topics_and_builds_responses() {
        let t = Topics::new("lps/edge");
        assert_eq!(
            t.parse_command("lps/edge/profile/set"),
            Some(Target::Profile)
        );
        assert_eq!(
            t.parse_command("lps/edge/app/vision/set"),
            Some(Target::App("vision".into()))
        );
        assert_eq!(t.parse_command("lps/edge/device/set"), Some(Target::Device));
        assert_eq!(t.parse_command("lps/edge/app/set"), None);
        assert_eq!(t.parse_command("lps/edge/apps"), None);
        assert_eq!(t.parse_command("other/profile/set"), None);
        assert_eq!(
            t.response_for("lps/edge/app/vision/set"),
            "lps/edge/response/app/vision/set"
        );
        assert_eq!(t.app("vision"), "lps/edge/app/vision");
    }

    #[test]
    fn mistyped_command_topics_get_the_closest_command_topic() {
        let t = Topics::new("B");
        for (typed, right) in [
            ("B/apps/vision/set", "app/vision/set"),
            ("B/app/vision/sett", "app/vision/set"),
            ("B/app/vision/restart", "app/vision/set"),
            ("B/profil/set", "profile/set"),
            ("B/radio/sett/x", "radio/set"),
            ("B/devices/set", "device/set"),
        ] {
            assert_eq!(t.mistyped_command(typed).as_deref(), Some(right), "{typed}");
        }
        for ours in [
            "B/response/profile/set",
            "B/response/app/vision/set",
            "B/events",
            "B/eve/state",
            "B/bridge/state",
            "B/app/vision",
            "B/profile/set",
            "B/app/vision/set",
            "other/apps/vision/set",
        ] {
            assert_eq!(t.mistyped_command(ours), None, "{ours}");
        }
    }

    #[test]
    fn filters_match_and_capture() {
        assert_eq!(
            filter_matches("ups/+/status", "ups/ups1/status"),
            Some(vec!["ups1".to_string()])
        );
        assert_eq!(filter_matches("ups/+/status", "ups/ups1/other"), None);
        assert_eq!(
            filter_matches("plant/#", "plant/line1/shift"),
            Some(vec!["line1/shift".to_string()])
        );
        assert_eq!(
            filter_matches("plant/#", "plant"),
            Some(vec![String::new()])
        );
        assert_eq!(filter_matches("a/b", "a/b"), Some(vec![]));
        assert_eq!(filter_matches("a/b", "a/b/c"), None);
        assert_eq!(filter_matches("#", "$SYS/x"), None);
        assert!(valid_filter("a/+/b/#").is_ok());
        assert!(valid_filter("a/b#").is_err());
        assert!(valid_filter("a/#/b").is_err());
        assert!(valid_filter("a+/b").is_err());
    }
}
