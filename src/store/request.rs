//! What the store actor queues: an input together with the sender for its own reply type.
//!
//! Each request is an `Asked<I>` boxed as a [`Job`]: the input's type fixes the reply's, so a
//! caller gets exactly the reply it asked for and the actor, which treats all inputs alike
//! (apply, commit, answer), never looks at a reply.

use super::disk::StoreError;
use crate::state::{apply, Effect, Input, Now, Origin, State};
use tokio::sync::oneshot;

/// Where one input's reply goes: `Ok` once applied and durable (or, for EVE's requests while the
/// store cannot write, answered from what is durable), else why not.
pub type ReplyTx<R> = oneshot::Sender<Result<R, StoreError>>;
pub type ReplyRx<R> = oneshot::Receiver<Result<R, StoreError>>;

/// One queued input, whatever its type.
pub type Request = Box<dyn Job>;

pub trait Job: Send {
    /// Decides the queue and what a store that cannot write does with it.
    fn origin(&self) -> Origin;
    /// Applies the input and holds the reply until [`Job::answer`]. EVE's requests keep their
    /// input, so that after a failed commit they can be applied again, read-only.
    fn apply(&mut self, state: &mut State, now: Now) -> Vec<Effect>;
    /// Sends the held reply (if anyone waits).
    fn answer(self: Box<Self>);
    /// Sends `err` instead of a reply (if anyone waits).
    fn refuse(self: Box<Self>, err: StoreError);
}

struct Asked<I: Input> {
    input: Option<I>,
    reply: Option<I::Reply>,
    tx: Option<ReplyTx<I::Reply>>,
}

/// A request and where its reply will arrive.
pub fn with_reply<I: Input>(input: I) -> (Request, ReplyRx<I::Reply>) {
    let (tx, rx) = oneshot::channel();
    let asked = Asked {
        input: Some(input),
        reply: None,
        tx: Some(tx),
    };
    (Box::new(asked), rx)
}

/// A request nobody waits for (the clock, announced events).
pub fn unanswered<I: Input>(input: I) -> Request {
    Box::new(Asked {
        input: Some(input),
        reply: None,
        tx: None,
    })
}

impl<I: Input> Job for Asked<I> {
    fn origin(&self) -> Origin {
        I::ORIGIN
    }

    fn apply(&mut self, state: &mut State, now: Now) -> Vec<Effect> {
        let input = match I::ORIGIN {
            Origin::Eve => self.input.clone(),
            _ => self.input.take(),
        };
        let Some(input) = input else {
            return Vec::new();
        };
        let applied = apply(state, input, now);
        self.reply = Some(applied.reply);
        applied.effects
    }

    fn answer(self: Box<Self>) {
        if let (Some(tx), Some(reply)) = (self.tx, self.reply) {
            let _ = tx.send(Ok(reply));
        }
    }

    fn refuse(self: Box<Self>, err: StoreError) {
        if let Some(tx) = self.tx {
            let _ = tx.send(Err(err));
        }
    }
}
