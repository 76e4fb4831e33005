//! What EVE has yet to pick up: the first line of every signal stream.

use super::effect::Endpoint;
use super::machine::State;
use super::model::{Outcome, Serve};
use std::collections::BTreeSet;

pub fn pending_endpoints(state: &State) -> BTreeSet<Endpoint> {
    let mut set = BTreeSet::new();
    let desired = &state.meta.desired;
    if desired.profile.set_at_ms != 0 && !desired.profile.fetched {
        set.insert(Endpoint::LocalProfile);
    }
    if desired.radio.serve != Serve::Unset && desired.radio.outcome == Outcome::Pending {
        set.insert(Endpoint::Radio);
    }
    // A stalled command is still served but no longer signalled: EVE has shown it ignores it.
    let signalled = |c: &&super::model::Command| c.lifecycle != super::model::Lifecycle::Stalled;
    if state.open_app_commands().any(|c| signalled(&c)) {
        set.insert(Endpoint::AppInfo);
    }
    if desired.boot.serve != Serve::Unset && desired.boot.outcome == Outcome::Pending {
        set.insert(Endpoint::AppBootInfo);
    }
    if state
        .open_device_commands()
        .next()
        .is_some_and(|c| signalled(&c))
    {
        set.insert(Endpoint::DevInfo);
    }
    if desired.network.serve != Serve::Unset && desired.network.outcome == Outcome::Pending {
        set.insert(Endpoint::Network);
    }
    set
}
