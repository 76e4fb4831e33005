//! The gateway's store from the inside: intents submitted directly, and the state read back.

use super::TestGateway;
use lps_bridge::state::{DeviceAction, Intent, Submission};

/// Submits `intent` to the store (source `test`) and waits until it is applied.
pub async fn intent(gw: &TestGateway, intent: Intent) {
    gw.running()
        .store
        .submit(Submission {
            intent,
            source: "test".into(),
        })
        .await
        .unwrap();
}

/// The profile the gateway currently wants EVE to run.
pub fn desired_profile(gw: &TestGateway) -> String {
    gw.running()
        .store
        .snapshot()
        .meta
        .desired
        .profile
        .name
        .clone()
}

/// Submits [`Intent::SetProfile`].
pub async fn set_profile(gw: &TestGateway, profile: &str) {
    intent(
        gw,
        Intent::SetProfile {
            profile: profile.into(),
            force: false,
        },
    )
    .await;
}

/// Submits [`Intent::SetRadio`].
pub async fn set_radio(gw: &TestGateway, radio_silence: bool) {
    intent(gw, Intent::SetRadio { radio_silence }).await;
}

/// Submits [`Intent::DeviceCommand`].
pub async fn device_command(gw: &TestGateway, action: DeviceAction) {
    intent(gw, Intent::DeviceCommand { action }).await;
}
