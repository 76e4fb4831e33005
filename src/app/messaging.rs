//! MQTT at start-up: the embedded broker, the plant broker, the ingress and the rules task.

use super::Core;
use crate::mqtt::{self, topics::Topics, EmbeddedLink, Publisher};
use tokio::sync::mpsc;

/// The started MQTT side.
pub(super) struct Mqtt {
    pub topics: Topics,
    pub publisher: Publisher,
    /// The embedded broker's link, when that broker runs.
    pub embedded: Option<EmbeddedLink>,
    /// Whether a plant broker is configured.
    pub external: bool,
}

/// Every broker feeds one ingress; rule topics are handed on from there to the rules task.
pub(super) fn start(core: &Core, rules: crate::rules::Engine) -> anyhow::Result<Mqtt> {
    let (settings, tasks) = (&core.settings, &core.tasks);
    let config = &settings.config;
    let topics = Topics::new(&config.mqtt.base_topic);
    let publisher = Publisher::default();
    let (incoming_tx, incoming_rx) = mpsc::channel(1024);
    let rule_filters = rules.filters();
    // No two subscriptions may overlap: a broker delivers a message once per matching one.
    let filters = crate::rules::disjoint_cover(
        topics
            .command_filters()
            .into_iter()
            .chain(rule_filters.iter().cloned())
            .chain(mqtt::state_guard::filters(&topics)),
    );
    mqtt::state_guard::register(&topics, &publisher);
    let losses = mqtt::LossReport {
        metrics: core.metrics.clone(),
        store: core.store.clone(),
    };
    let embedded = mqtt::start_embedded(
        settings,
        &publisher,
        filters.clone(),
        incoming_tx.clone(),
        losses,
        tasks,
    )?;
    let external = match &config.mqtt.external {
        Some(ext) => {
            // A publisher: it goes on until the replies are out, then says goodbye.
            let handle = mqtt::external::spawn(
                ext,
                &topics,
                filters,
                &publisher,
                incoming_tx,
                tasks.output.stop.clone(),
            )?;
            // Stopping waits for the retained offline state and DISCONNECT (a few seconds).
            tasks.output.spawn(handle.stopped());
            true
        }
        None => false,
    };
    let rule_route = if rule_filters.is_empty() {
        None
    } else {
        let (rules_tx, rules_rx) = mpsc::channel(1024);
        tasks.input.spawn(crate::rules::run(
            rules,
            rules_rx,
            core.store.clone(),
            tasks.clone(),
        ));
        Some((rule_filters, rules_tx))
    };
    let ingress = mqtt::Ingress {
        store: core.store.clone(),
        topics: topics.clone(),
        publisher: publisher.clone(),
        rules: rule_route,
        metrics: core.metrics.clone(),
        tasks: tasks.clone(),
    };
    tasks.input.spawn(mqtt::run_ingress(ingress, incoming_rx));
    Ok(Mqtt {
        topics,
        publisher,
        embedded,
        external,
    })
}
