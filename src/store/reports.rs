//! How each kind of EVE report is laid out in the store.

use crate::state::{AppReport, ReportKind, Reports};
use serde_json::{json, Value};

pub fn save(reports: &Reports, kind: ReportKind) -> Result<Vec<u8>, serde_json::Error> {
    let value = match kind {
        ReportKind::Apps => serde_json::to_value(reports.apps.as_deref())?,
        ReportKind::Device => json!({
            "report": reports.device,
            "last_cmd_timestamp": reports.device_last_cmd_timestamp,
        }),
        ReportKind::Radio => serde_json::to_value(&reports.radio)?,
        ReportKind::Boot => serde_json::to_value(&reports.boot)?,
        ReportKind::Network => serde_json::to_value(&reports.network)?,
        ReportKind::Location => serde_json::to_value(&reports.location)?,
    };
    serde_json::to_vec(&value)
}

pub fn restore(reports: &mut Reports, kind: ReportKind, bytes: &[u8]) -> Result<(), String> {
    let e = |e: serde_json::Error| e.to_string();
    match kind {
        ReportKind::Apps => {
            reports.apps = serde_json::from_slice::<Option<Vec<AppReport>>>(bytes)
                .map_err(e)?
                .map(Into::into)
        }
        ReportKind::Device => {
            let v: Value = serde_json::from_slice(bytes).map_err(e)?;
            reports.device = Some(v["report"].clone()).filter(|r| !r.is_null());
            reports.device_last_cmd_timestamp = v["last_cmd_timestamp"].as_u64().unwrap_or(0);
        }
        ReportKind::Radio => reports.radio = serde_json::from_slice(bytes).map_err(e)?,
        ReportKind::Boot => reports.boot = serde_json::from_slice(bytes).map_err(e)?,
        ReportKind::Network => reports.network = serde_json::from_slice(bytes).map_err(e)?,
        ReportKind::Location => reports.location = serde_json::from_slice(bytes).map_err(e)?,
    }
    Ok(())
}
