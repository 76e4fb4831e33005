//! The schedules task: polls the wall clock every `poll_every`, submits what the planner says is
//! due (source `schedule:<name>`), reports `schedule_fired` / `schedule_failed` on `B/events`,
//! and keeps the board (`GET /api/schedules`, retained `B/schedules`) up to date.

use super::planner::{Planner, ProfileNow};
use super::spec::{show, Schedule};
use crate::command::Source;
use crate::mqtt::{Outgoing, Publisher};
use crate::state::{Event, EventName};
use crate::store::StoreHandle;
use crate::tasks::Tasks;
use jiff::Timestamp;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The wall clock as Unix ms; the system clock outside tests.
pub type WallClock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> WallClock {
    Arc::new(|| Timestamp::now().as_millisecond())
}

/// What the dashboard, the API and `B/schedules` show: one entry per schedule.
#[derive(Clone)]
pub struct Board {
    rx: watch::Receiver<Arc<Value>>,
}

impl Board {
    /// A board of schedules that never fire (no task): their next firings from the clock now.
    pub fn fixed(schedules: &[Schedule]) -> Board {
        let (_tx, rx) = watch::channel(Arc::new(view(schedules, now_ms(), &[])));
        Board { rx }
    }

    pub fn current(&self) -> Arc<Value> {
        self.rx.borrow().clone()
    }
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// The last firing of one schedule, for the board.
#[derive(Debug, Clone)]
struct Last {
    entry: String,
    result: Result<(), crate::command::CommandError>,
}

fn entry_text(schedule: &Schedule, entry_ms: i64) -> String {
    Timestamp::from_millisecond(entry_ms)
        .map(|t| show(&t.to_zoned(schedule.zone.clone())))
        .unwrap_or_default()
}

/// The board's JSON: `[{name, cron, timezone, action, enabled, next, last}]`.
fn view(schedules: &[Schedule], now_ms: i64, last: &[Option<Last>]) -> Value {
    Value::Array(
        schedules
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let next = s.enabled.then(|| s.next_after(now_ms)).flatten();
                let last = last.get(i).cloned().flatten().map(|l| match l.result {
                    Ok(()) => json!({ "entry": l.entry, "status": "ok" }),
                    Err(e) => {
                        json!({ "entry": l.entry, "status": "error", "error": e.to_string() })
                    }
                });
                json!({
                    "name": s.name,
                    "cron": s.cron_text,
                    "timezone": s.zone_name,
                    "action": s.action,
                    "enabled": s.enabled,
                    "next": next.as_ref().map(show),
                    "last": last,
                })
            })
            .collect(),
    )
}

/// Runs in `tasks.input` until its stop; each firing's outcome is awaited on `tasks.replies`.
/// `topic` is the retained `B/schedules` topic.
pub fn spawn(
    planner: Planner,
    store: StoreHandle,
    publisher: Publisher,
    topic: String,
    clock: WallClock,
    poll_every: Duration,
    tasks: &Tasks,
) -> (Board, tokio::task::JoinHandle<()>) {
    let now = clock();
    let initial = Arc::new(view(planner.schedules(), now, &[]));
    let (tx, rx) = watch::channel(initial);
    let handle = tasks.input.spawn(run(
        planner,
        store,
        publisher,
        topic,
        clock,
        poll_every,
        tx,
        tasks.clone(),
    ));
    (Board { rx }, handle)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut planner: Planner,
    store: StoreHandle,
    publisher: Publisher,
    topic: String,
    clock: WallClock,
    poll_every: Duration,
    board: watch::Sender<Arc<Value>>,
    tasks: Tasks,
) {
    let shutdown = tasks.input.stop.clone();
    tracing::info!(schedules = planner.schedules().len(), "schedules running");
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Last)>();
    let mut last: Vec<Option<Last>> = vec![None; planner.schedules().len()];
    let mut shown: Option<Arc<Value>> = None;
    // The board changes when a firing ends, a next entry passes, or the clock steps back.
    let mut refresh = true;
    let mut refresh_at = i64::MAX;
    let mut previous = i64::MIN;
    let mut interval = tokio::time::interval(poll_every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
            Some((i, outcome)) = done_rx.recv() => {
                last[i] = Some(outcome);
                refresh = true;
            }
        }
        let now = clock();
        refresh |= now >= refresh_at || now < previous;
        previous = now;
        let profile = {
            let state = store.snapshot();
            let p = &state.meta.desired.profile;
            ProfileNow {
                name: p.name.clone(),
                set_at_ms: p.set_at_ms,
            }
        };
        for due in planner.poll(now, &profile) {
            let schedule = &planner.schedules()[due.index];
            let entry = entry_text(schedule, due.entry_ms);
            let name = schedule.name.clone();
            let action = serde_json::to_value(&schedule.action).unwrap_or(Value::Null);
            tracing::info!(schedule = name, entry, missed = due.missed, %action, "schedule due");
            let outcome =
                super::fire::submit(&store, schedule.intent(), Source::Schedule(name.clone()))
                    .await;
            let store = store.clone();
            let done = done_tx.clone();
            let index = due.index;
            let missed = due.missed;
            // The durable answer is awaited aside so that an fsync never delays the next poll.
            tasks.replies.spawn(async move {
                let result = outcome.await;
                let fields =
                    json!({ "schedule": name, "entry": entry, "missed": missed, "action": action });
                let mut fields = fields.as_object().cloned().unwrap_or_default();
                match &result {
                    Ok(reply) => {
                        tracing::info!(schedule = name, %reply, "schedule fired");
                        fields.insert("result".into(), reply.clone());
                        store
                            .event(Event::new(EventName::ScheduleFired, Value::Object(fields)))
                            .await;
                    }
                    Err(error) => {
                        tracing::warn!(schedule = name, %error, "schedule could not act");
                        fields.insert("error".into(), json!(error.to_string()));
                        store
                            .event(Event::new(EventName::ScheduleFailed, Value::Object(fields)))
                            .await;
                    }
                }
                let _ = done.send((
                    index,
                    Last {
                        entry,
                        result: result.map(|_| ()),
                    },
                ));
            });
        }
        if !refresh {
            continue;
        }
        refresh = false;
        refresh_at = planner
            .schedules()
            .iter()
            .filter(|s| s.enabled)
            .filter_map(|s| s.next_after(now))
            .map(|z| z.timestamp().as_millisecond())
            .min()
            .unwrap_or(i64::MAX);
        let current = Arc::new(view(planner.schedules(), now, &last));
        if shown.as_deref() != Some(&*current) {
            let payload =
                crate::telemetry::publish::bounded_payload(&current, "GET /api/schedules");
            publisher.publish(Outgoing::retained(topic.clone(), payload));
            board.send_replace(current.clone());
            shown = Some(current);
        }
    }
    tracing::debug!("schedules stopped");
}
