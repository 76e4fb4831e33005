//! One task per polled endpoint: a jittered ticker, an immediate trigger
//! and the session's cancellation; each poll is one HTTP exchange whose
//! result goes into the state as EVE would handle it.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use super::http::{decode, HttpError, Reply, INVALID_TOKEN};
use super::node::SimState;
use super::options::real;
use super::runtime::{Node, Session};
use super::snapshot::Endpoint;
use eve_proto::profile::{
    AppBootConfigList, LocalAppCmdList, LocalDevCmd, LocalNetworkConfig, LocalProfile, RadioConfig,
};

/// The endpoints that have a poller (signal has its own stream task).
pub(crate) const POLLED: [Endpoint; 7] = [
    Endpoint::LocalProfile,
    Endpoint::Radio,
    Endpoint::AppInfo,
    Endpoint::AppBootInfo,
    Endpoint::DevInfo,
    Endpoint::Network,
    Endpoint::Location,
];

pub(crate) async fn run(node: Arc<Node>, ep: Endpoint, session: Arc<Session>) {
    // EVE's appbootinfo task polls as soon as it starts; the supervisor
    // also triggers every poller at boot.
    if ep == Endpoint::AppBootInfo {
        tokio::select! {
            _ = session.token.cancelled() => return,
            _ = poll(&node, ep) => {}
        }
    }
    loop {
        let wait = interval(&node, ep);
        tokio::select! {
            _ = session.token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = session.trigger(ep).notified() => {}
        }
        tokio::select! {
            _ = session.token.cancelled() => return,
            _ = poll(&node, ep) => {}
        }
    }
}

fn interval(node: &Node, ep: Endpoint) -> Duration {
    let t = node.timing;
    match ep {
        Endpoint::LocalProfile => t.jittered(real::PROFILE),
        Endpoint::Radio => t.jittered(real::RADIO),
        Endpoint::AppInfo => t.jittered(real::APPINFO),
        Endpoint::AppBootInfo => t.jittered(real::APPBOOTINFO),
        Endpoint::DevInfo => t.jittered(real::DEVINFO),
        Endpoint::Network => t.jittered(real::NETWORK),
        Endpoint::Location if node.read(|s| s.location.throttled) => {
            t.scale(real::LOCATION_THROTTLED)
        }
        Endpoint::Location => t.location_jittered(real::LOCATION),
        // Not polled: the stream task in signal.rs owns it.
        Endpoint::Signal => Duration::MAX,
    }
}

async fn poll(node: &Arc<Node>, ep: Endpoint) {
    match ep {
        Endpoint::LocalProfile => poll_profile(node).await,
        Endpoint::Radio => poll_radio(node).await,
        Endpoint::AppInfo => poll_appinfo(node).await,
        Endpoint::AppBootInfo => poll_appbootinfo(node).await,
        Endpoint::DevInfo => poll_devinfo(node).await,
        Endpoint::Network => poll_network(node).await,
        Endpoint::Location => poll_location(node).await,
        Endpoint::Signal => {}
    }
}

/// What a poll got, after EVE's per-endpoint status switch.
enum Outcome<M> {
    Body(M),
    NoContent,
    Failed,
}

/// Counts one exchange in the endpoint's counters.
fn record(s: &mut SimState, ep: Endpoint, result: &Result<Reply, HttpError>) {
    let c = s.counters(ep);
    c.requests += 1;
    let status = match result {
        Ok(r) => Some(r.status),
        Err(e) => e.status,
    };
    let key = status.map_or_else(|| "error".to_string(), |s| s.to_string());
    *c.statuses.entry(key).or_default() += 1;
    c.last_status = status;
    tracing::debug!(endpoint = ep.name(), status = ?status, "sim: LPS exchange");
    match result {
        Ok(_) => c.consecutive_failures = 0,
        // 404 on the POST endpoints is only logged by EVE (spec §1).
        Err(e) => s.note_failure(ep, &e.message),
    }
}

/// Checks the token of a 200 body; a mismatch means "ignore the response".
fn token_ok(node: &Node, ep: Endpoint, token: &str) -> bool {
    node.update(|s| {
        if token == s.token {
            return true;
        }
        s.counters(ep).token_mismatches += 1;
        s.note_failure(ep, INVALID_TOKEN);
        false
    })
}

/// One GET: `body_codes` carry a body to decode; 204 is "no change"
/// only if `no_content_ok`; anything else is a failure.
async fn get<M: Message + Default>(
    node: &Node,
    ep: Endpoint,
    body_codes: &[u16],
    no_content_ok: bool,
) -> Outcome<M> {
    let result = node.http.get(ep).await;
    finish(node, ep, result, body_codes, no_content_ok)
}

/// One POST; 204 is "no change".
async fn post<Req: Message, M: Message + Default>(
    node: &Node,
    ep: Endpoint,
    req: &Req,
    body_codes: &[u16],
) -> Outcome<M> {
    let result = node.http.post(ep, req).await;
    finish(node, ep, result, body_codes, true)
}

fn finish<M: Message + Default>(
    node: &Node,
    ep: Endpoint,
    result: Result<Reply, HttpError>,
    body_codes: &[u16],
    no_content_ok: bool,
) -> Outcome<M> {
    node.update(|s| {
        record(s, ep, &result);
        let Ok(reply) = result else {
            return Outcome::Failed;
        };
        if body_codes.contains(&reply.status) {
            return match decode::<M>(&reply) {
                Ok(m) => Outcome::Body(m),
                Err(why) => {
                    s.note_failure(ep, &why);
                    Outcome::Failed
                }
            };
        }
        if reply.status == 204 && no_content_ok {
            return Outcome::NoContent;
        }
        s.note_failure(ep, &format!("wrong response status code: {}", reply.status));
        Outcome::Failed
    })
}

/// GET local_profile: only 200 counts; anything else keeps the last profile.
async fn poll_profile(node: &Arc<Node>) {
    let out: Outcome<LocalProfile> = get(node, Endpoint::LocalProfile, &[200], false).await;
    if let Outcome::Body(lp) = out {
        if token_ok(node, Endpoint::LocalProfile, &lp.server_token) {
            node.apply(|s| s.apply_local_profile(&lp.local_profile));
        }
    }
}

/// POST radio, unless a radio change is still being applied.
async fn poll_radio(node: &Arc<Node>) {
    let Some(status) = node.update(|s| (!s.radio_busy()).then(|| s.build_radio_status())) else {
        return;
    };
    let out: Outcome<RadioConfig> = post(node, Endpoint::Radio, &status, &[200, 201]).await;
    // The token is checked even for an empty body.
    if let Outcome::Body(cfg) = out {
        if token_ok(node, Endpoint::Radio, &cfg.server_token) {
            node.apply(|s| s.apply_radio_config(cfg.radio_silence));
        }
    }
}

/// POST appinfo; a 200 without commands is a 204 (no token check).
async fn poll_appinfo(node: &Arc<Node>) {
    let info = node.read(|s| s.build_appinfo());
    let out: Outcome<LocalAppCmdList> = post(node, Endpoint::AppInfo, &info, &[200, 201]).await;
    if let Outcome::Body(list) = out {
        if !list.app_commands.is_empty() && token_ok(node, Endpoint::AppInfo, &list.server_token) {
            node.apply(|s| s.apply_app_commands(&list.app_commands));
        }
    }
}

/// POST devinfo; after the final report of a reboot/poweroff the node goes down.
async fn poll_devinfo(node: &Arc<Node>) {
    let (info, final_report) = node.read(|s| (s.build_devinfo(), s.dev.ready_down));
    let out: Outcome<LocalDevCmd> = post(node, Endpoint::DevInfo, &info, &[200, 201]).await;
    if let Outcome::Body(cmd) = out {
        if token_ok(node, Endpoint::DevInfo, &cmd.server_token) {
            node.apply(|s| s.apply_dev_cmd(&cmd));
        }
    }
    if final_report {
        node.apply(|s| s.request_down());
    }
}

/// POST appbootinfo; the token is checked even for an empty list.
async fn poll_appbootinfo(node: &Arc<Node>) {
    let info = node.read(|s| s.build_appbootinfo());
    let out: Outcome<AppBootConfigList> =
        post(node, Endpoint::AppBootInfo, &info, &[200, 201]).await;
    if let Outcome::Body(list) = out {
        if token_ok(node, Endpoint::AppBootInfo, &list.server_token) {
            node.apply(|s| s.apply_boot_config(&list.app_configs));
        }
    }
}

/// POST network; the token is checked when applying.
async fn poll_network(node: &Arc<Node>) {
    let info = node.read(|s| s.build_network_info());
    let out: Outcome<LocalNetworkConfig> = post(node, Endpoint::Network, &info, &[200, 201]).await;
    let body = match out {
        Outcome::Body(cfg) => Some(cfg),
        _ => None,
    };
    node.apply(|s| s.apply_network_reply(body.as_ref()));
}

/// POST location; no body is parsed, only the status matters.
async fn poll_location(node: &Arc<Node>) {
    let fix = node.update(|s| s.location.next_fix());
    let result = node.http.post(Endpoint::Location, &fix).await;
    node.update(|s| {
        record(s, Endpoint::Location, &result);
        let status = match &result {
            Ok(r) => Some(r.status),
            Err(e) => e.status,
        };
        if let Some(st) = status.filter(|st| !matches!(st, 200 | 201 | 204 | 404)) {
            if result.is_ok() {
                s.note_failure(
                    Endpoint::Location,
                    &format!("wrong response status code: {st}"),
                );
            }
        }
        s.location_status(status);
    });
}
