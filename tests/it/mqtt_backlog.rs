//! No silent MQTT loss: the embedded broker's backlog carries a 20,000-command reply flood and a
//! QoS 1 fan-in to a subscriber that falls behind; beyond a (deliberately tiny) backlog, what the
//! broker drops is counted in /metrics per client and filter and announced on `B/events`.
//! Counts only; the timings of the same loads are in examples/bench.rs.

use crate::common;

use common::load::{self, Clock, Subscriber};
use common::mqtt::Probe;
use common::reports::vision_report;
use common::{eve_post, TestGateway, B};
use rumqttc::QoS;
use std::time::Duration;

/// No new message for this long after the publishers finished means nothing more will come.
const IDLE: Duration = Duration::from_secs(20);
const PATIENCE: Duration = Duration::from_secs(300);

async fn metrics(gw: &TestGateway) -> String {
    let addr = gw.running().operator_addr.expect("operator API");
    common::metrics_text(&format!("http://{addr}")).await
}

fn sample(text: &str, name: &str, client: &str, filter: &str) -> Option<u64> {
    let prefix = format!("{name}{{client=\"{client}\",filter=\"{filter}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reply_of_a_20000_command_flood_reaches_a_qos1_subscriber() {
    // The jump counter needs the tracing layer the binary installs (TestGateway does too).
    common::install_log_layers();
    let gw = TestGateway::start().await;
    let status = eve_post(&gw.lps, "appinfo", &vision_report())
        .await
        .status();
    assert!(status.is_success(), "{status}");
    let clock = Clock::new();
    let filter = format!("{B}/response/#");
    let mut replies = Subscriber::connect(
        gw.mqtt_port,
        "replies",
        &filter,
        QoS::AtLeastOnce,
        clock,
        false,
    )
    .await
    .unwrap();
    let (clients, per_client) = (10, 2000);
    let flood = load::flood(
        &load::Publishers {
            port: gw.mqtt_port,
            prefix: "flood".into(),
            clients,
            per_client,
            qos: QoS::AtLeastOnce,
            clock,
            patience: PATIENCE,
        },
        |_| format!("{B}/app/vision/set"),
        load::restart_command,
    )
    .await;
    assert_eq!(
        flood.acked,
        clients * per_client,
        "the broker acknowledged every command"
    );
    let got = replies.collect(clients * per_client, IDLE).await;
    assert_eq!(
        got.distinct,
        clients * per_client,
        "every command's reply reached the QoS 1 subscriber on {filter}"
    );
    let text = metrics(&gw).await;
    assert!(
        text.contains("lps_bridge_mqtt_cursor_jumps_all_total 0"),
        "no cursor jump: {}",
        text.lines()
            .filter(|l| l.contains("mqtt_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos1_fan_in_reaches_a_subscriber_that_falls_behind_complete() {
    // The jump counter needs the tracing layer the binary installs (TestGateway does too).
    common::install_log_layers();
    let gw = TestGateway::start().await;
    let clock = Clock::new();
    let topic = "plant/line1/temperature";
    let mut sub = Subscriber::connect(
        gw.mqtt_port,
        "fan-in",
        topic,
        QoS::AtLeastOnce,
        clock,
        false,
    )
    .await
    .unwrap();
    // 40,000 × 64 B is 3.4 MB of backlog at 84 counted bytes each: beyond the 2 MiB the old
    // 1 MiB × 2 log held (which delivered 24,000 of 100,000). The benchmark runs 100,000.
    let (clients, per_client) = (10, 4000);
    let flood = load::flood(
        &load::Publishers {
            port: gw.mqtt_port,
            prefix: "plant".into(),
            clients,
            per_client,
            qos: QoS::AtLeastOnce,
            clock,
            patience: PATIENCE,
        },
        move |_| topic.to_string(),
        |c, seq, sent| load::padded(c, seq, sent, 64),
    )
    .await;
    assert_eq!(flood.acked, clients * per_client);
    let got = sub.collect(clients * per_client, IDLE).await;
    assert_eq!(
        got.distinct,
        clients * per_client,
        "every QoS 1 message delivered"
    );
    let text = metrics(&gw).await;
    assert_eq!(
        sample(
            &text,
            "lps_bridge_mqtt_messages_lost_total",
            "fan-in",
            topic
        ),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_a_tiny_backlog_the_drop_is_counted_and_announced() {
    // The jump counter needs the tracing layer the binary installs (TestGateway does too).
    common::install_log_layers();
    let gw = TestGateway::start_with(|c| {
        c.mqtt.segment_bytes = 64 * 1024;
        c.mqtt.segment_count = 2;
    })
    .await;
    let mut events = Probe::connect(gw.mqtt_port, &[&format!("{B}/events")]).await;
    let clock = Clock::new();
    let topic = "plant/line2/counter";
    let client = "slow-reader";
    // Paused: it reads nothing while 5,000 × 100 B (520 KB) go by a 64–128 KiB log.
    let mut slow = Subscriber::connect(gw.mqtt_port, client, topic, QoS::AtLeastOnce, clock, true)
        .await
        .unwrap();
    let sent = 5000;
    let flood = load::flood(
        &load::Publishers {
            port: gw.mqtt_port,
            prefix: "burst".into(),
            clients: 1,
            per_client: sent,
            qos: QoS::AtLeastOnce,
            clock,
            patience: PATIENCE,
        },
        move |_| topic.to_string(),
        |c, seq, t| load::padded(c, seq, t, 100),
    )
    .await;
    assert_eq!(flood.acked, sent);
    slow.resume();
    let got = slow.collect(sent, Duration::from_secs(5)).await;
    assert!(
        got.distinct < sent,
        "the tiny backlog must drop some: got all {sent}"
    );

    let event = events
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "mqtt_messages_lost" && v["client"] == client
        })
        .await;
    assert_eq!(event["filter"], topic);
    assert!(event["jumps"].as_u64().unwrap() >= 1, "{event}");
    // Counted exactly: what arrived plus what was counted lost is what was sent.
    let counted = common::eventually("the lost count in /metrics", || async {
        let text = metrics(&gw).await;
        let lost = sample(&text, "lps_bridge_mqtt_messages_lost_total", client, topic)?;
        (lost as usize + got.distinct >= sent).then_some(lost)
    })
    .await;
    assert_eq!(
        counted as usize + got.distinct,
        sent,
        "lost {counted} + delivered {}",
        got.distinct
    );
    let text = metrics(&gw).await;
    assert!(sample(&text, "lps_bridge_mqtt_cursor_jumps_total", client, topic).unwrap() >= 1);
}
