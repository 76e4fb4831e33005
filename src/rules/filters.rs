//! Subscriptions without overlap. A broker delivers a message once per matching subscription of
//! a client (rumqttd does, and MQTT 3.1.1 allows it), so a rule filter such as `lps/edge/#` next
//! to the command filters would make every command arrive, and run, twice, and two overlapping
//! rule filters would replay plant messages out of order. `disjoint_cover` turns the wanted
//! filters into a set where no two overlap and every wanted filter is covered; messages are then
//! routed by the exact filters (command topics by parsing, rules by `Engine::filters`).

/// Whether some topic matches both filters. Wildcards at the first level do not match topics
/// starting with `$` (MQTT 4.7.2).
pub fn overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    if dollar_vs_wildcard(&a, &b) || dollar_vs_wildcard(&b, &a) {
        return false;
    }
    overlap_levels(&a, &b)
}

fn is_dollar(levels: &[&str]) -> bool {
    levels.first().is_some_and(|l| l.starts_with('$'))
}

fn is_wild(level: &str) -> bool {
    level == "+" || level == "#"
}

fn dollar_vs_wildcard(a: &[&str], b: &[&str]) -> bool {
    is_dollar(a) && b.first().is_some_and(|l| is_wild(l))
}

fn overlap_levels(a: &[&str], b: &[&str]) -> bool {
    match (a.first(), b.first()) {
        (None, None) => true,
        // `x/#` also matches `x`.
        (Some(&"#"), _) | (_, Some(&"#")) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(x), Some(y)) => {
            (*x == "+" || *y == "+" || x == y) && overlap_levels(&a[1..], &b[1..])
        }
    }
}

/// Whether every topic `specific` matches is matched by `general` too.
pub fn contains(general: &str, specific: &str) -> bool {
    let g: Vec<&str> = general.split('/').collect();
    let s: Vec<&str> = specific.split('/').collect();
    if g.first().is_some_and(|l| is_wild(l)) && is_dollar(&s) {
        return false;
    }
    contains_levels(&g, &s)
}

fn contains_levels(g: &[&str], s: &[&str]) -> bool {
    match (g.first(), s.first()) {
        (Some(&"#"), _) => true,
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(_), Some(&"#")) => false,
        (Some(&"+"), Some(_)) => contains_levels(&g[1..], &s[1..]),
        (Some(x), Some(y)) => x == y && contains_levels(&g[1..], &s[1..]),
    }
}

/// The most specific filter that contains two overlapping filters: equal levels are kept,
/// differing ones become `+`, and from the first `#` (or where one filter ends) on, `#`.
fn join(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    let mut out: Vec<&str> = Vec::new();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) if *x != "#" && *y != "#" => {
                out.push(if x == y { x } else { "+" });
            }
            _ => {
                out.push("#");
                break;
            }
        }
    }
    out.join("/")
}

/// A set of filters, no two overlapping, that covers every filter given (order of first
/// appearance kept where possible). Subscribe to these instead of the wanted filters.
pub fn disjoint_cover(filters: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    for filter in filters {
        add(&mut out, filter);
    }
    out
}

fn add(out: &mut Vec<String>, filter: String) {
    if out.iter().any(|g| contains(g, &filter)) {
        return;
    }
    out.retain(|g| !contains(&filter, g));
    match out.iter().position(|g| overlap(g, &filter)) {
        Some(pos) => {
            let other = out.remove(pos);
            add(out, join(&other, &filter));
        }
        None => out.push(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::topics::filter_matches;

    fn cover(list: &[&str]) -> Vec<String> {
        disjoint_cover(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn overlap_and_containment() {
        assert!(overlap("a/+/c", "a/b/+"));
        assert!(overlap("a/#", "a"));
        assert!(overlap("#", "x/y"));
        assert!(!overlap("a/+/c", "a/b/d"));
        assert!(!overlap("a/b", "a/b/c"));
        assert!(!overlap("+/x", "$SYS/x"));
        assert!(overlap("$SYS/+", "$SYS/x"));
        assert!(contains("a/#", "a"));
        assert!(contains("a/#", "a/+/c/#"));
        assert!(contains("+/+", "a/b"));
        assert!(!contains("a/+", "a/#"));
        assert!(!contains("a/b", "a/+"));
        assert!(!contains("#", "$SYS/x"));
        assert!(!contains("a/+", "a"));
    }

    #[test]
    fn a_broad_rule_filter_absorbs_the_command_filters() {
        assert_eq!(
            cover(&["lps/edge/+/set", "lps/edge/app/+/set", "lps/edge/#"]),
            vec!["lps/edge/#"]
        );
        assert_eq!(
            cover(&["lps/edge/+/set", "lps/edge/app/+/set", "plant/line1/shift"]),
            vec!["lps/edge/+/set", "lps/edge/app/+/set", "plant/line1/shift"],
            "disjoint filters stay as they are"
        );
        assert_eq!(cover(&["ups/+/status", "ups/#"]), vec!["ups/#"]);
        assert_eq!(cover(&["a/b", "a/b"]), vec!["a/b"]);
    }

    #[test]
    fn partial_overlaps_are_joined() {
        assert_eq!(cover(&["a/+/c", "a/b/+"]), vec!["a/+/+"]);
        assert_eq!(cover(&["x/y/#", "x/+/z"]), vec!["x/+/#"]);
        assert_eq!(cover(&["x", "x/#"]), vec!["x/#"]);
        // A join can create a new overlap: resolved until none is left.
        assert_eq!(cover(&["a/b/c", "a/+/d", "a/b/+"]), vec!["a/+/+"]);
        assert_eq!(cover(&["$SYS/x", "+/x"]), vec!["$SYS/x", "+/x"]);
    }

    #[test]
    fn the_cover_is_disjoint_and_complete() {
        let wanted = [
            "lps/edge/+/set",
            "lps/edge/app/+/set",
            "lps/edge/eve/state",
            "lps/edge/+/state",
            "plant/line1/shift",
            "plant/+/mode",
            "ups/+/status",
            "ups/ups1/#",
            "plc/line1/+/fault",
            "plc/+/vision/+",
            "$SYS/broker/uptime",
        ];
        let got = cover(&wanted);
        for (i, a) in got.iter().enumerate() {
            for b in &got[i + 1..] {
                assert!(!overlap(a, b), "{a} and {b} overlap in {got:?}");
            }
        }
        for w in wanted {
            assert!(
                got.iter().any(|g| contains(g, w)),
                "{w} not covered by {got:?}"
            );
        }
        let topics = [
            "lps/edge/device/set",
            "lps/edge/app/vision/set",
            "lps/edge/eve/state",
            "plant/line1/shift",
            "plant/line2/mode",
            "ups/ups1/status",
            "ups/ups1/a/b",
            "plc/line1/vision/fault",
            "$SYS/broker/uptime",
        ];
        for t in topics {
            let n = got
                .iter()
                .filter(|f| filter_matches(f, t).is_some())
                .count();
            assert_eq!(n, 1, "{t} is delivered {n} times by {got:?}");
        }
    }
}
