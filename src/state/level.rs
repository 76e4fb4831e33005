//! Topic levels derived from names from outside (EVE's app names): bounded, free of MQTT's
//! reserved characters, and unique among the apps. Pure, so both the state machine (which
//! resolves an app by its level) and the MQTT topic builder use the same mapping.

/// Longest topic level the gateway derives from EVE data. Longer names are cut and get a hash
/// suffix, so every topic we build stays far below MQTT's 65,535-byte topic limit.
pub const MAX_LEVEL_BYTES: usize = 128;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
