//! What EVE reports, as the tests send it: the apps `vision` and `logger`, and a device.

use lps_bridge::eve::info::{ZDeviceState, ZSwState};
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList, LocalDevInfo};

pub const VISION: &str = "6f1c2a3e-0000-4000-8000-000000000001";
pub const LOGGER: &str = "6f1c2a3e-0000-4000-8000-000000000002";

/// The app `vision`, version 1, running.
pub fn vision() -> LocalAppInfo {
    LocalAppInfo {
        id: VISION.into(),
        name: "vision".into(),
        version: "1".into(),
        state: ZSwState::Running as i32,
        ..Default::default()
    }
}

/// The app `logger`, running.
pub fn logger() -> LocalAppInfo {
    LocalAppInfo {
        id: LOGGER.into(),
        name: "logger".into(),
        state: ZSwState::Running as i32,
        ..Default::default()
    }
}

/// An app report with `vision` alone.
pub fn vision_report() -> LocalAppInfoList {
    LocalAppInfoList {
        apps_info: vec![vision()],
    }
}

/// A device report: the device `uuid`, online.
pub fn device_online(uuid: &str) -> LocalDevInfo {
    LocalDevInfo {
        device_uuid: uuid.into(),
        state: ZDeviceState::ZdeviceStateOnline as i32,
        ..Default::default()
    }
}
