//! The gateway's in-process link to the embedded broker. Writing into the router is a blocking
//! channel send, so the writer lives on its own thread; reading is async.

use super::Outgoing;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish, PublishProperties};
use rumqttd::Notification;
use tokio::sync::mpsc;

/// An incoming publish on a subscribed topic.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: String,
    pub payload: bytes::Bytes,
    pub retain: bool,
    pub response_topic: Option<String>,
    pub correlation: Option<bytes::Bytes>,
}

/// Runs the writer thread: subscribes to `filters`, then publishes everything it is given.
pub fn spawn_writer(
    mut tx: LinkTx,
    filters: Vec<String>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("mqtt-link-writer".into())
        .spawn(move || {
            for filter in filters {
                if let Err(err) = tx.subscribe(filter.clone()) {
                    tracing::error!(%err, filter, "cannot subscribe the gateway link");
                }
            }
            while let Some(out) = outgoing.blocking_recv() {
                let properties = out.correlation.map(|c| PublishProperties {
                    correlation_data: Some(c),
                    ..PublishProperties::default()
                });
                let publish =
                    Publish::new(out.topic.into_bytes(), out.payload.to_vec(), out.retain);
                if let Err(err) =
                    futures::executor::block_on(tx.send(Packet::Publish(publish, properties)))
                {
                    tracing::error!(%err, "gateway link to the broker is gone");
                    break;
                }
            }
        })?;
    Ok(())
}

/// Forwards every publish the link receives, until the broker goes away.
pub async fn run_reader(mut rx: LinkRx, incoming: mpsc::Sender<Incoming>) {
    loop {
        match rx.next().await {
            Ok(Some(Notification::Forward(forward))) => {
                let props = forward.properties.unwrap_or_default();
                let msg = Incoming {
                    topic: String::from_utf8_lossy(&forward.publish.topic).into_owned(),
                    payload: forward.publish.payload.clone(),
                    retain: forward.publish.retain,
                    response_topic: props.response_topic,
                    correlation: props.correlation_data,
                };
                if incoming.send(msg).await.is_err() {
                    break;
                }
            }
            // The router stops scheduling a link whose buffer filled; ask for more.
            Ok(Some(Notification::Unschedule)) => {
                if rx.wake().await.is_err() {
                    break;
                }
            }
            Ok(Some(_)) | Ok(None) => {}
            Err(err) => {
                tracing::error!(%err, "gateway link reader stopped");
                break;
            }
        }
    }
}
