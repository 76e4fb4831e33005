//! Naming an app: by display name or UUID, checked against EVE's last app report.

use super::model::{AppReport, AppTarget};
use super::refusal::{Refusal, LISTED_NAMES as LISTED_APPS};

/// A resolved app reference, with a note when it could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub target: AppTarget,
    pub note: Option<String>,
}

pub fn looks_like_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// How much of a name an error quotes.
const QUOTED_BYTES: usize = 80;

/// The topic level of each reported app (in report order): see [`super::level::app_levels`].
pub fn app_levels(apps: &[AppReport]) -> Vec<String> {
    let pairs: Vec<(&str, &str)> = apps
        .iter()
        .map(|a| (a.id.as_str(), a.name.as_str()))
        .collect();
    super::level::app_levels(&pairs)
}

/// `text` cut to [`QUOTED_BYTES`] (on a character boundary), marked when cut.
fn quote(text: &str) -> String {
    if text.len() <= QUOTED_BYTES {
        return text.to_string();
    }
    let mut end = QUOTED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// The first [`LISTED_APPS`] reported apps as a refusal lists them, and how many more there are.
fn known_list(apps: &[AppReport]) -> (Vec<String>, usize) {
    let levels = app_levels(apps);
    let names = apps
        .iter()
        .zip(&levels)
        .take(LISTED_APPS)
        .map(|(a, level)| {
            if *level == a.name {
                format!("{} ({})", quote(&a.name), a.id)
            } else {
                format!("{} ({}, topic app/{level})", quote(&a.name), a.id)
            }
        })
        .collect();
    (names, apps.len().saturating_sub(LISTED_APPS))
}

/// Resolves `reference` against `report`; before EVE's first report it is taken as given.
pub fn resolve_app(reference: &str, report: Option<&[AppReport]>) -> Result<Resolved, Refusal> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(Refusal::NoApp);
    }
    let Some(apps) = report else {
        let target = if looks_like_uuid(reference) {
            AppTarget {
                id: reference.to_ascii_lowercase(),
                name: String::new(),
            }
        } else {
            AppTarget {
                id: String::new(),
                name: reference.to_string(),
            }
        };
        return Ok(Resolved {
            target,
            note: Some(format!(
                "EVE has not reported its apps yet; '{reference}' is sent to EVE as given"
            )),
        });
    };
    let by_id: Vec<&AppReport> = apps
        .iter()
        .filter(|a| a.id.eq_ignore_ascii_case(reference))
        .collect();
    let mut by_name: Vec<&AppReport> = if by_id.is_empty() {
        apps.iter().filter(|a| a.name == reference).collect()
    } else {
        by_id
    };
    // The level of its `B/app/<level>` topic names an app too (how `app/<level>/set` arrives).
    if by_name.is_empty() {
        by_name.extend(
            apps.iter()
                .zip(app_levels(apps))
                .filter(|(_, level)| level == reference)
                .map(|(a, _)| a),
        );
    }
    match by_name.as_slice() {
        [one] => Ok(Resolved {
            target: AppTarget {
                id: one.id.to_ascii_lowercase(),
                name: one.name.clone(),
            },
            note: None,
        }),
        [] => {
            let (known, more) = known_list(apps);
            Err(Refusal::UnknownApp {
                app: quote(reference),
                known,
                more,
            })
        }
        many => Err(Refusal::AmbiguousApp {
            app: quote(reference),
            count: many.len(),
            ids: many
                .iter()
                .take(LISTED_APPS)
                .map(|a| a.id.clone())
                .collect(),
        }),
    }
}

/// Finds the reported app a target designates (by id, else by name).
pub fn find_report<'a>(target: &AppTarget, apps: &'a [AppReport]) -> Option<&'a AppReport> {
    if !target.id.is_empty() {
        apps.iter().find(|a| a.id.eq_ignore_ascii_case(&target.id))
    } else {
        let mut matches = apps.iter().filter(|a| a.name == target.name);
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, name: &str) -> AppReport {
        AppReport {
            id: id.into(),
            name: name.into(),
            last_cmd_timestamp: 0,
            info: serde_json::Value::Null,
        }
    }

    #[test]
    fn each_colliding_name_resolves_by_its_own_topic_level() {
        let apps: Vec<AppReport> = ["a/b", "a+b", "a#b", "a_b"]
            .iter()
            .enumerate()
            .map(|(i, n)| report(&format!("id-{i}"), n))
            .collect();
        let levels = app_levels(&apps);
        for (app, level) in apps.iter().zip(&levels) {
            let r = resolve_app(level, Some(&apps)).unwrap();
            assert_eq!(r.target.id, app.id, "{level}");
        }
        assert_eq!(levels[3], "a_b");
        let err = resolve_app("a_c", Some(&apps)).unwrap_err().to_string();
        assert!(err.contains("topic app/a_b~"), "{err}");
    }

    #[test]
    fn refusals_stay_short_with_huge_names_and_many_apps() {
        let mut apps: Vec<AppReport> = (0..10_000)
            .map(|i| report(&format!("id-{i}"), &format!("app-{i}")))
            .collect();
        apps.push(report("id-long", &"x".repeat(70_000)));
        let err = resolve_app("nope", Some(&apps)).unwrap_err();
        assert!(
            matches!(&err, Refusal::UnknownApp { more: 9981, .. }),
            "{err}"
        );
        let err = err.to_string();
        assert!(err.len() < 2_000, "{} bytes", err.len());
        assert!(err.contains("and 9981 more"), "{err}");
        let long = "x".repeat(70_000);
        let err = resolve_app(&format!("{long}y"), Some(&apps))
            .unwrap_err()
            .to_string();
        assert!(err.len() < 2_000);
        assert_eq!(
            resolve_app(&long, Some(&apps)).unwrap().target.id,
            "id-long"
        );
    }
}
