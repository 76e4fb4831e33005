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

/// Subscribes the link to `filters` and waits for the router's acknowledgements, so that once
/// start-up returns no message on those topics can be missed.
pub fn subscribe(tx: &mut LinkTx, rx: &mut LinkRx, filters: &[String]) -> Result<(), String> {
    for filter in filters {
        tx.subscribe(filter.clone())
            .map_err(|e| format!("cannot subscribe {filter}: {e}"))?;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut acked = 0;
    while acked < filters.len() {
        match rx.recv_deadline(deadline) {
            Ok(Some(Notification::Unschedule)) => rx.ready().map_err(|e| e.to_string())?,
            // rumqttd does not export its Ack type; its packet form is public.
            Ok(Some(ack @ Notification::DeviceAck(_))) => {
                if let Some(Packet::SubAck(..)) = Option::<Packet>::from(ack) {
                    acked += 1;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(format!("no subscribe acknowledgement from the broker: {e}")),
        }
    }
    Ok(())
}

/// Runs the writer thread: publishes everything it is given.
pub fn spawn_writer(
    mut tx: LinkTx,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("mqtt-link-writer".into())
        .spawn(move || {
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
