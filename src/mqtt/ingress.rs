//! Command topics → intents → the store → one reply per command.

use super::link::Incoming;
use super::topics::Topics;
use super::{Outgoing, Publisher};
use crate::command::{self, reply_payload, CommandError, Parsed};
use crate::store::StoreHandle;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

fn send_reply(publisher: &Publisher, topics: &Topics, msg: &Incoming, body: &Value) {
    let payload = bytes::Bytes::from(body.to_string());
    let reply_topic = topics.response_for(&msg.topic);
    // A command topic near MQTT's limit has no valid reply topic: the broker would write a
    // truncated length and every subscriber would read garbage.
    if reply_topic.len() <= super::topics::MAX_TOPIC_BYTES {
        publisher.publish(Outgoing::message(reply_topic, payload.clone()));
    } else {
        tracing::warn!(
            bytes = msg.topic.len(),
            "command topic too long for a reply topic; no reply on B/response"
        );
    }
    if let Some(response_topic) = &msg.response_topic {
        publisher.publish(Outgoing {
            topic: response_topic.clone(),
            payload,
            retain: false,
            correlation: msg.correlation.clone(),
        });
    }
}

/// Where messages on non-command topics go (bridge rules): the filters and the channel.
pub type RuleRoute = (Vec<String>, mpsc::Sender<Incoming>);

/// Commands handed to the store and not yet answered. Enough for full group commits, few enough
/// that a newly arrived command from someone else is next in line within one batch.
pub const MAX_IN_FLIGHT: usize = 256;
/// Commands one lane may hold waiting for the store; beyond that a command is refused at once
/// with a "busy" reply, so one flooding publisher cannot hold up the reading of everyone else's.
pub const LANE_LIMIT: usize = 25_000;
/// Commands all lanes together may hold; beyond that the gateway stops reading from the broker
/// (back-pressure, nothing refused) until the store catches up.
pub const MAX_WAITING: usize = 50_000;

/// A parsed command waiting for its turn at the store.
struct Job {
    msg: Incoming,
    intent: crate::state::Intent,
    transaction: Option<Value>,
}

/// Commands waiting for the store, one FIFO lane per sender as far as MQTT lets us tell senders
/// apart, served round-robin. rumqttd's local link does not say which client published a message,
/// so a lane is the MQTT 5 response topic when there is one (a client's own) and the command
/// topic otherwise: a flood on one topic cannot delay a command on another by more than one
/// command per busy lane.
#[derive(Default)]
struct Lanes {
    lanes: HashMap<String, VecDeque<Job>>,
    /// Lanes with waiting jobs, in serving order.
    turn: VecDeque<String>,
    waiting: usize,
}

impl Lanes {
    fn key(msg: &Incoming) -> String {
        match &msg.response_topic {
            Some(rt) => format!("response:{rt}"),
            None => format!("topic:{}", msg.topic),
        }
    }

    /// Queues a job; gives it back when its lane is full.
    fn push(&mut self, job: Job) -> Option<Job> {
        let key = Self::key(&job.msg);
        let lane = self.lanes.entry(key.clone()).or_default();
        if lane.len() >= LANE_LIMIT {
            return Some(job);
        }
        if lane.is_empty() {
            self.turn.push_back(key);
        }
        lane.push_back(job);
        self.waiting += 1;
        None
    }

    /// The next job in round-robin order.
    fn pop(&mut self) -> Option<Job> {
        let key = self.turn.pop_front()?;
        let lane = self.lanes.get_mut(&key)?;
        let job = lane.pop_front();
        if lane.is_empty() {
            self.lanes.remove(&key);
        } else {
            self.turn.push_back(key);
        }
        if job.is_some() {
            self.waiting -= 1;
        }
        job
    }

    fn is_empty(&self) -> bool {
        self.waiting == 0
    }
}

/// What to do with one incoming message: a command to queue, or nothing more (ignored, or
/// already answered).
fn admit(
    msg: Incoming,
    topics: &Topics,
    publisher: &Publisher,
    metrics: &crate::metrics::Metrics,
) -> Option<Job> {
    metrics
        .mqtt_messages_in
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Empty is what clearing a retained message looks like, ours included: never a command.
    if msg.payload.is_empty() {
        return None;
    }
    let Some(target) = topics.parse_command(&msg.topic) else {
        mistyped(&msg, topics, publisher);
        return None;
    };
    // A retained command would fire again after every reconnect: refuse it and delete it.
    publisher.publish(Outgoing::clear_retained(msg.topic.clone()));
    if msg.retain {
        tracing::warn!(topic = %msg.topic, "retained command refused");
        let body = reply_payload(Err(CommandError::Retained), None);
        send_reply(publisher, topics, &msg, &body);
        return None;
    }
    let Parsed {
        intent,
        transaction,
    } = command::parse(&target, &msg.payload);
    match intent {
        Ok(intent) => Some(Job {
            msg,
            intent,
            transaction,
        }),
        Err(error) => {
            tracing::info!(topic = %msg.topic, %error, "command refused");
            send_reply(
                publisher,
                topics,
                &msg,
                &reply_payload(Err(error.into()), transaction),
            );
            None
        }
    }
}

/// A message under the base topic that is no command topic (`B/apps/vision/set`,
/// `B/app/vision/sett`): logged and answered with the closest command topic, never dropped
/// silently. The gateway's own topics are not answered (see [`Topics::mistyped_command`]).
fn mistyped(msg: &Incoming, topics: &Topics, publisher: &Publisher) {
    let Some(right) = topics.mistyped_command(&msg.topic) else {
        return;
    };
    let right = topics.topic(&right);
    // One line per call site and second at most after a burst (`logging`), whoever floods.
    tracing::info!(topic = %msg.topic, did_you_mean = %right, "message on an unknown command topic refused");
    let error = CommandError::NotACommandTopic {
        topic: msg.topic.clone(),
        did_you_mean: right,
        base: topics.base().to_string(),
    };
    // Echo the transaction as a command reply would, when the payload has one.
    let transaction = serde_json::from_slice::<Value>(&msg.payload)
        .ok()
        .and_then(|v| v.get("transaction").cloned());
    send_reply(
        publisher,
        topics,
        msg,
        &reply_payload(Err(error), transaction),
    );
}

/// What the ingress needs besides its input: where commands go and replies come out.
pub struct Ingress {
    pub store: StoreHandle,
    pub topics: Topics,
    pub publisher: Publisher,
    pub rules: Option<RuleRoute>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// `input.stop` ends the reading; replies run on `replies`.
    pub tasks: crate::tasks::Tasks,
}

/// Handles command messages until every broker link closes or `tasks.input.stop`; hands rule
/// topics to the rules. Reading, parsing and refusing run ahead of the store; accepted commands
/// go to the store round-robin across lanes, at most [`MAX_IN_FLIGHT`] at a time. On stop it
/// reads nothing more but still hands every command it already read to the store: their replies
/// run on `tasks.replies`, which the stop order waits for.
pub async fn run(ingress: Ingress, mut incoming: mpsc::Receiver<Incoming>) {
    let Ingress {
        store,
        topics,
        publisher,
        rules,
        metrics,
        tasks,
    } = ingress;
    let stop = tasks.input.stop.clone();
    let replies = tasks.replies;
    let mut lanes = Lanes::default();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut open = true;
    while open || !lanes.is_empty() {
        tokio::select! {
            // Reading first: a command is in its lane before the next one is handed over.
            biased;
            _ = stop.cancelled(), if open => {
                open = false;
                continue;
            }
            got = incoming.recv(), if open && lanes.waiting < MAX_WAITING => {
                let Some(msg) = got else {
                    open = false;
                    continue;
                };
                if let Some((filters, rules_tx)) = &rules {
                    if filters
                        .iter()
                        .any(|f| super::topics::filter_matches(f, &msg.topic).is_some())
                    {
                        let _ = rules_tx.send(msg.clone()).await;
                    }
                }
                if super::state_guard::check(&msg, &topics, &publisher, &metrics) {
                    continue;
                }
                // The door took a fair-share permit for this one: each way out gives it back.
                let gated = super::fair_share::is_gated(&topics, &msg.topic, msg.payload.is_empty());
                let Some(job) = admit(msg, &topics, &publisher, &metrics) else {
                    if gated {
                        publisher.command_done();
                    }
                    continue;
                };
                if let Some(job) = lanes.push(job) {
                    tracing::warn!(topic = %job.msg.topic, "command refused: its lane is full");
                    let body = reply_payload(
                        Err(CommandError::Busy { waiting: LANE_LIMIT }),
                        job.transaction,
                    );
                    send_reply(&publisher, &topics, &job.msg, &body);
                    publisher.command_done();
                }
            }
            permit = in_flight.clone().acquire_owned(), if !lanes.is_empty() => {
                let Ok(permit) = permit else { break };
                if let Some(job) = lanes.pop() {
                    dispatch(job, permit, &store, &publisher, &topics, &replies).await;
                }
                continue;
            }
        }
        // During a flood the reading branch is always ready: feed the store here too, as far as
        // free slots allow, so the store never idles while commands wait.
        while !lanes.is_empty() {
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                break;
            };
            if let Some(job) = lanes.pop() {
                dispatch(job, permit, &store, &publisher, &topics, &replies).await;
            }
        }
    }
}

/// Hands one command to the store (in order) and answers it once durable, without waiting here:
/// the store commits in batches.
async fn dispatch(
    job: Job,
    permit: tokio::sync::OwnedSemaphorePermit,
    store: &StoreHandle,
    publisher: &Publisher,
    topics: &Topics,
    replies: &tokio_util::task::TaskTracker,
) {
    let Job {
        msg,
        intent,
        transaction,
    } = job;
    let outcome = command::submit(store, intent, command::Source::Mqtt).await;
    let publisher = publisher.clone();
    let topics = topics.clone();
    replies.spawn(async move {
        let result = outcome.await;
        drop(permit);
        publisher.command_done();
        send_reply(
            &publisher,
            &topics,
            &msg,
            &reply_payload(result, transaction),
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(topic: &str, response: Option<&str>, n: u64) -> Job {
        Job {
            msg: Incoming {
                topic: topic.into(),
                payload: bytes::Bytes::new(),
                retain: false,
                response_topic: response.map(str::to_string),
                correlation: None,
            },
            intent: crate::state::Intent::CancelDevice { id: Some(n) },
            transaction: None,
        }
    }

    fn n(job: Job) -> u64 {
        match job.intent {
            crate::state::Intent::CancelDevice { id: Some(n) } => n,
            _ => unreachable!(),
        }
    }

    #[test]
    fn lanes_serve_round_robin_keep_order_and_bound_each_lane() {
        let mut lanes = Lanes::default();
        for i in 0..5 {
            assert!(lanes.push(job("b/app/flood/set", None, i)).is_none());
        }
        assert!(lanes.push(job("b/app/other/set", None, 100)).is_none());
        assert!(lanes
            .push(job("b/app/flood/set", Some("client-9/replies"), 200))
            .is_none());
        let order: Vec<u64> = std::iter::from_fn(|| lanes.pop()).map(n).collect();
        assert_eq!(order, vec![0, 100, 200, 1, 2, 3, 4]);
        assert!(lanes.is_empty());
        for i in 0..LANE_LIMIT as u64 {
            assert!(lanes.push(job("b/app/flood/set", None, i)).is_none());
        }
        assert!(lanes.push(job("b/app/flood/set", None, 0)).is_some());
        assert!(lanes.push(job("b/device/set", None, 0)).is_none());
        assert_eq!(lanes.waiting, LANE_LIMIT + 1);
    }
}
