//! NCMD / DCMD metric writes → the same intents as the MQTT command topics. The one seam into the
//! command layer: a write becomes a command-topic payload, parsed by `command::parse` (same
//! validation, same wording), and goes to the store's durable intent path.

use super::payload::Written;
use crate::command::{self, Source, Target};
use crate::state::{Event, EventName, Intent};
use crate::store::StoreHandle;
use serde_json::json;
use tokio_util::task::TaskTracker;

/// The command a write to a writable metric stands for; `app` is the device id (topic level).
pub fn to_intent(app: Option<&str>, metric: &str, value: &Written) -> Result<Intent, String> {
    let (topic, body) = match (app, metric, value) {
        (None, "Profile/Desired", Written::Text(p)) => (Target::Profile, json!({ "profile": p })),
        (None, "Radio/Silence", Written::Bool(b)) => (Target::Radio, json!({ "radio_silence": b })),
        (None, "Commands/Shutdown" | "Commands/Poweroff" | "Commands/Reboot", Written::Bool(b)) => {
            trigger(*b, metric)?;
            let command = metric["Commands/".len()..].to_ascii_lowercase();
            (Target::Device, json!({ "command": command }))
        }
        (Some(app), "Boot Order", Written::Text(b)) => {
            (Target::App(app.into()), json!({ "boot": b }))
        }
        (Some(app), "Commands/Restart" | "Commands/Purge", Written::Bool(b)) => {
            trigger(*b, metric)?;
            let command = metric["Commands/".len()..].to_ascii_lowercase();
            (Target::App(app.into()), json!({ "command": command }))
        }
        (_, _, Written::Other(what)) => {
            return Err(format!("'{metric}' cannot be written with {what}"))
        }
        (_, "Profile/Desired" | "Boot Order", _) => {
            return Err(format!("'{metric}' is a String; write a string"))
        }
        (_, _, _) => return Err(format!("'{metric}' is a Boolean; write true or false")),
    };
    command::parse(&topic, body.to_string().as_bytes())
        .intent
        .map_err(|e| e.to_string())
}

fn trigger(value: bool, metric: &str) -> Result<(), String> {
    if value {
        Ok(())
    } else {
        Err(format!(
            "'{metric}' runs the command when written true; false does nothing"
        ))
    }
}

/// Submits an intent; logs the outcome and announces a refusal, without holding up the caller.
pub async fn submit(
    replies: &TaskTracker,
    store: &StoreHandle,
    topic: String,
    metric: String,
    intent: Intent,
) {
    let outcome = command::submit(store, intent, Source::Sparkplug).await;
    let store = store.clone();
    let aside = replies.clone();
    replies.spawn(async move {
        match outcome.await {
            Ok(reply) => {
                tracing::info!(%topic, %metric, reply = %reply, "Sparkplug write accepted");
            }
            Err(why) => refused(&aside, &store, &topic, &metric, &why.to_string()),
        }
    });
}

/// A write that changes nothing: logged and announced on `B/events`.
pub fn refused(replies: &TaskTracker, store: &StoreHandle, topic: &str, metric: &str, why: &str) {
    tracing::info!(%topic, %metric, error = %why, "Sparkplug write refused");
    let event = Event::new(
        EventName::SparkplugWriteRefused,
        json!({ "topic": topic, "metric": metric, "error": why }),
    );
    let store = store.clone();
    // Through `apply` like every event; aside, so a refusal never holds up the session loop.
    replies.spawn(async move { store.event(event).await });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AppAction, DeviceAction};

    #[test]
    fn writes_become_the_command_topics_intents() {
        assert_eq!(
            to_intent(None, "Profile/Desired", &Written::Text("night".into())),
            Ok(Intent::SetProfile {
                profile: "night".into(),
                force: false,
            })
        );
        assert!(matches!(
            to_intent(None, "Commands/Reboot", &Written::Bool(true)),
            Ok(Intent::DeviceCommand {
                action: DeviceAction::Reboot
            })
        ));
        assert!(matches!(
            to_intent(Some("vision"), "Commands/Restart", &Written::Bool(true)),
            Ok(Intent::AppCommand {
                action: AppAction::Restart,
                ..
            })
        ));
        let err = to_intent(None, "Commands/Reboot", &Written::Bool(false)).unwrap_err();
        assert!(err.contains("false does nothing"), "{err}");
        let err = to_intent(None, "Profile/Desired", &Written::Bool(true)).unwrap_err();
        assert!(err.contains("write a string"), "{err}");
        let err =
            to_intent(Some("a"), "Boot Order", &Written::Text("sideways".into())).unwrap_err();
        assert!(
            err.contains("sideways"),
            "the command layer's own refusal: {err}"
        );
        let err = to_intent(None, "Profile/Desired", &Written::Text(" night".into())).unwrap_err();
        assert!(err.contains("white space"), "{err}");
    }
}
