//! Where every spawned task belongs: one of three groups, by what ends it. `app` stops them in
//! that order (`app::stop`), so that what came in before shutdown is still answered.

use std::future::Future;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The gateway's tasks, by stop stage. Cheap to clone; every clone spawns into the same groups.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    /// Ways in: the HTTP servers and their streams, the MQTT ingress and link readers, rules,
    /// schedules. Stopped first: nothing new is taken in.
    pub input: Stage,
    /// Answers to what came in: a command's reply, a rule's, schedule's or Sparkplug write's
    /// outcome. Never cancelled; waited for once the ways in have stopped.
    pub replies: TaskTracker,
    /// What publishes out: telemetry, Sparkplug, the plant broker, broker-loss reports. Stopped
    /// once the replies are out, so the last state changes are published too.
    pub output: Stage,
}

/// A group of tasks and the token that asks them to stop.
#[derive(Clone, Debug, Default)]
pub struct Stage {
    pub stop: CancellationToken,
    pub tracker: TaskTracker,
}

impl Stage {
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Asks the group to stop; [`TaskTracker::wait`] then ends once its last task has.
    pub fn cancel(&self) {
        self.stop.cancel();
        self.tracker.close();
    }
}
