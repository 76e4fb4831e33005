//! Naming an app: by display name or UUID, checked against EVE's last app report.

use super::model::{AppReport, AppTarget};

/// A resolved app reference, with a note when it could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub target: AppTarget,
    pub note: Option<String>,
}

pub fn looks_like_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

fn known_list(apps: &[AppReport]) -> String {
    if apps.is_empty() {
        return "EVE reported no apps".into();
    }
    let names: Vec<String> = apps
        .iter()
        .map(|a| format!("{} ({})", a.name, a.id))
        .collect();
    format!("known apps: {}", names.join(", "))
}

/// Resolves `reference` against `report`; before EVE's first report it is taken as given.
pub fn resolve_app(reference: &str, report: Option<&[AppReport]>) -> Result<Resolved, String> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err("an app must be named by display name or UUID".into());
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
    let by_name: Vec<&AppReport> = if by_id.is_empty() {
        apps.iter().filter(|a| a.name == reference).collect()
    } else {
        by_id
    };
    match by_name.as_slice() {
        [one] => Ok(Resolved {
            target: AppTarget {
                id: one.id.to_ascii_lowercase(),
                name: one.name.clone(),
            },
            note: None,
        }),
        [] => Err(format!("unknown app '{reference}'; {}", known_list(apps))),
        many => {
            let ids: Vec<&str> = many.iter().map(|a| a.id.as_str()).collect();
            Err(format!(
                "ambiguous app '{reference}': {} apps have that name; use one of their UUIDs: {}",
                many.len(),
                ids.join(", ")
            ))
        }
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
