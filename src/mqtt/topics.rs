//! Every topic string is built and parsed here.

use crate::command::Target;

#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

/// MQTT's limit on a topic name: its length is written in 16 bits.
pub const MAX_TOPIC_BYTES: usize = 65_535;
/// Longest topic level the gateway derives from EVE data. Longer names are cut and get a hash
/// suffix, so every topic we build stays far below [`MAX_TOPIC_BYTES`].
pub const MAX_LEVEL_BYTES: usize = 128;
/// Largest payload the gateway publishes; a larger one is replaced by a short notice.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Marks a level the gateway derived (cleaned, cut or disambiguated): never in a clean name.
const SUFFIX_MARK: char = '~';
/// Hex digits of the suffix: 40 bits, so distinct names practically never share one.
const SUFFIX_DIGITS: usize = 10;

/// FNV-1a, 64 bits: stable across runs, builds and platforms (std's hasher promises none of that).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn reserved(c: char) -> bool {
    matches!(c, '/' | '+' | '#' | SUFFIX_MARK) || c.is_control()
}

/// A name that is its own topic level: non-empty, short, no wildcard, separator, mark or
/// control character.
fn is_clean(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_LEVEL_BYTES && !name.chars().any(reserved)
}

/// `name` with reserved characters as `_`, cut to fit, then `~` and `digits` hex digits of `hash`.
fn suffixed(name: &str, hash: u64, digits: usize) -> String {
    let room = MAX_LEVEL_BYTES - 1 - digits;
    let mut level = String::with_capacity(MAX_LEVEL_BYTES);
    for c in name.chars().map(|c| if reserved(c) { '_' } else { c }) {
        if level.len() + c.len_utf8() > room {
            break;
        }
        level.push(c);
    }
    let hex = format!("{hash:016x}");
    level.push(SUFFIX_MARK);
    level.push_str(&hex[16 - digits..]);
    level
}

/// One topic level for a text from outside: the text itself when it is clean, otherwise the
/// cleaned, cut text plus `~` and a hash of the original, so distinct texts get distinct levels.
pub fn topic_level(name: &str) -> String {
    if is_clean(name) {
        name.to_string()
    } else {
        suffixed(name, stable_hash(name.as_bytes()), SUFFIX_DIGITS)
    }
}

/// The topic level of each app in `apps` (`(id, display name)`; an empty name shows the id),
/// unique within the list and independent of its order. A clean name that only one app has is
/// its own level; a name that needs cleaning or cutting gets a hash of the name; a name several
/// apps share gets a hash of each one's id.
pub fn app_levels(apps: &[(&str, &str)]) -> Vec<String> {
    fn shown<'a>(&(id, name): &(&'a str, &'a str)) -> &'a str {
        if name.is_empty() {
            id
        } else {
            name
        }
    }
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for app in apps {
        *counts.entry(shown(app)).or_default() += 1;
    }
    let mut levels: Vec<String> = apps
        .iter()
        .map(|app| {
            let name = shown(app);
            if counts[name] == 1 {
                topic_level(name)
            } else {
                let id = app.0.to_ascii_lowercase();
                suffixed(name, stable_hash(id.as_bytes()), SUFFIX_DIGITS)
            }
        })
        .collect();
    // Two different 40-bit suffixes colliding: widen those to 64 bits of id and name.
    let mut seen: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    for (i, level) in levels.iter().enumerate() {
        seen.entry(level.as_str()).or_default().push(i);
    }
    let clashes: Vec<usize> = seen
        .into_values()
        .filter(|ids| ids.len() > 1)
        .flatten()
        .collect();
    for i in clashes {
        let (id, name) = apps[i];
        let key = format!("{}\0{name}", id.to_ascii_lowercase());
        levels[i] = suffixed(shown(&apps[i]), stable_hash(key.as_bytes()), 16);
    }
    levels
}

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

    /// The filters the gateway subscribes to for commands.
    pub fn command_filters(&self) -> [String; 2] {
        [self.topic("+/set"), self.topic("app/+/set")]
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

    /// `B/response/<same relative topic>`.
    pub fn response_for(&self, command_topic: &str) -> String {
        let rel = self.relative(command_topic).unwrap_or(command_topic);
        format!("{}/response/{rel}", self.base)
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
    fn levels_are_bounded_and_distinct() {
        assert_eq!(topic_level("vision"), "vision");
        let long = "x".repeat(70_000);
        let level = topic_level(&long);
        assert_eq!(level.len(), MAX_LEVEL_BYTES);
        assert!(level.starts_with("xxx") && level.contains('~'), "{level}");
        assert_ne!(level, topic_level(&"x".repeat(70_001)));
        // Cutting never splits a character.
        let level = topic_level(&"é".repeat(100));
        assert!(level.len() <= MAX_LEVEL_BYTES);
        let set: std::collections::BTreeSet<String> =
            ["a/b", "a+b", "a#b", "a_b", "a~b", "a\u{1}b"]
                .iter()
                .map(|n| topic_level(n))
                .collect();
        assert_eq!(set.len(), 6, "{set:?}");
        assert!(set.contains("a_b"), "a clean name keeps its level");
        assert!(set.iter().all(|l| !l.contains(['/', '+', '#'])));
        assert_eq!(topic_level("a/b"), topic_level("a/b"), "stable");
    }

    #[test]
    fn app_levels_are_unique_and_independent_of_order() {
        let apps = [
            ("id-1", "a/b"),
            ("id-2", "a+b"),
            ("id-3", "a#b"),
            ("id-4", "a_b"),
            ("id-5", "twin"),
            ("id-6", "twin"),
            ("6F1C2A3E-0000-4000-8000-000000000009", ""),
        ];
        let levels = app_levels(&apps);
        let unique: std::collections::BTreeSet<&String> = levels.iter().collect();
        assert_eq!(unique.len(), apps.len(), "{levels:?}");
        assert_eq!(levels[3], "a_b");
        assert!(levels[4].starts_with("twin~") && levels[5].starts_with("twin~"));
        assert_eq!(levels[6], "6F1C2A3E-0000-4000-8000-000000000009");
        let mut reversed = apps;
        reversed.reverse();
        let mut again = app_levels(&reversed);
        again.reverse();
        assert_eq!(levels, again);
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
