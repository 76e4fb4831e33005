//! The API documents against the code:
//! - `docs/openapi.json` documents exactly the router's `ROUTES`, and is what `/api/openapi.json`
//!   serves;
//! - `docs/asyncapi.yaml` documents every topic the gateway publishes or subscribes to: checked
//!   against `Topics` (the code's one place for topic strings), against `EventName::ALL`, and
//!   against every topic a real gateway publishes while EVE reports and clients send
//!   commands (and every documented topic must show up there too);
//! - `examples/node-red/lps-bridge-flow.json` is a well-formed flow whose topics and command
//!   payloads the gateway accepts.
//! - README.md names every LPS endpoint (`eve::Endpoint::ALL`), event (`EventName::ALL`) and
//!   command source (`command::Source::ALL`) by its wire name.

use crate::common;

use lps_bridge::telemetry::publish::state_topic_name;

use common::mqtt::Probe;
use common::*;
use lps_bridge::command::{Source, Target};
use lps_bridge::config::Config;
use lps_bridge::eve::info::ZInfoLocation;
use lps_bridge::eve::profile::{
    AppBootInfoList, LocalAppInfo, LocalAppInfoList, LocalDevInfo, NetworkInfo, RadioStatus,
};
use lps_bridge::eve::Endpoint;
use lps_bridge::mqtt::topics::{filter_matches, Topics};
use lps_bridge::state::{EventName, StateTopic};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use yaml_rust2::{Yaml, YamlLoader};

const B: &str = "lps/edge";

fn repo_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ------------------------------------------------------------------------------------ OpenAPI

fn openapi() -> Value {
    serde_json::from_str(lps_bridge::operator::OPENAPI)
        .unwrap_or_else(|e| panic!("docs/openapi.json is not valid JSON: {e}"))
}

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Both directions, with a message that says which side lacks what.
fn assert_same_set(what: &str, documented: &BTreeSet<String>, actual: &BTreeSet<String>) {
    let undocumented: Vec<&String> = actual.difference(documented).collect();
    let phantom: Vec<&String> = documented.difference(actual).collect();
    assert!(
        undocumented.is_empty() && phantom.is_empty(),
        "{what}:\n  in the code but not documented: {undocumented:?}\n  documented but not in the code: {phantom:?}"
    );
}

#[test]
fn openapi_documents_exactly_the_routes() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if HTTP_METHODS.contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}: no responses"
                );
            }
        }
    }
    let routed: BTreeSet<String> = lps_bridge::operator::ROUTES
        .iter()
        .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
        .collect();
    assert_eq!(
        routed.len(),
        lps_bridge::operator::ROUTES.len(),
        "ROUTES lists a route twice"
    );
    assert_same_set(
        "docs/openapi.json `paths` vs operator::ROUTES",
        &documented,
        &routed,
    );
}

#[test]
fn openapi_path_parameters_refs_and_operation_ids_are_consistent() {
    let doc = openapi();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|l| l.strip_prefix('{')?.strip_suffix('}'))
            .map(String::from)
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(item["parameters"].as_array().into_iter().flatten())
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            assert_same_set(
                &format!("path parameters of {method} {path}"),
                &declared,
                &in_path,
            );
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
        }
    }
    for reference in refs(&doc) {
        assert!(
            resolve(&doc, &reference).is_some(),
            "docs/openapi.json: dangling $ref {reference}"
        );
    }
    // The two documents agree on the events the store emits.
    let asyncapi_events = documented_events(&asyncapi());
    for name in doc["components"]["schemas"]["Event"]["properties"]["event"]["enum"]
        .as_array()
        .unwrap()
    {
        assert!(
            asyncapi_events.contains(name.as_str().unwrap()),
            "openapi Event {name} is not an event of docs/asyncapi.yaml"
        );
    }
}

/// Every `$ref` string in a document.
fn refs(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => out.extend(refs(v)),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| out.extend(refs(v))),
        _ => {}
    }
    out
}

/// Resolves a local `#/a/b` reference.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Follows `$ref`s until a value that is not one.
fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(r) = value.get("$ref").and_then(Value::as_str) {
        value = resolve(doc, r).unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    value
}

// ----------------------------------------------------------------------------------- AsyncAPI

fn yaml_to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .map(|f| json!(f))
            .unwrap_or_else(|_| json!(s)),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(list) => Value::Array(list.iter().map(yaml_to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect::<Map<String, Value>>(),
        ),
        Yaml::Null => Value::Null,
        Yaml::Alias(_) | Yaml::BadValue => panic!("docs/asyncapi.yaml: unsupported YAML ({y:?})"),
    }
}

fn asyncapi() -> Value {
    let text = repo_file("docs/asyncapi.yaml");
    let docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("docs/asyncapi.yaml is not valid YAML: {e}"));
    assert_eq!(docs.len(), 1, "docs/asyncapi.yaml holds one document");
    let doc = yaml_to_json(&docs[0]);
    assert!(
        doc["asyncapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "AsyncAPI 3.x expected"
    );
    for reference in refs(&doc) {
        assert!(
            resolve(&doc, &reference).is_some(),
            "docs/asyncapi.yaml: dangling $ref {reference}"
        );
    }
    doc
}

/// The documented channel addresses (channels with a null address, the user-defined plant topics
/// and MQTT 5 response topics, are not topic names and are left out).
fn addresses(doc: &Value) -> BTreeMap<String, String> {
    doc["channels"]
        .as_object()
        .expect("channels")
        .iter()
        .filter_map(|(id, ch)| Some((ch["address"].as_str()?.to_string(), id.clone())))
        .collect()
}

fn is_param(level: &str) -> bool {
    level.len() > 2 && level.starts_with('{') && level.ends_with('}')
}

/// Whether a topic name is an instance of a documented address: `{base}` is the default base,
/// every other `{param}` stands for one non-empty topic level.
fn address_matches(address: &str, topic: &str) -> bool {
    let address = address.replace("{base}", B);
    let a: Vec<&str> = address.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    a.len() == t.len()
        && a.iter()
            .zip(&t)
            .all(|(a, t)| a == t || (is_param(a) && !t.is_empty()))
}

/// The channel a topic name belongs to, if any.
fn channel_of<'a>(addresses: &'a BTreeMap<String, String>, topic: &str) -> Option<&'a str> {
    addresses
        .iter()
        .find(|(address, _)| address_matches(address, topic))
        .map(|(_, id)| id.as_str())
}

/// A documented address with its parameters filled in (`{base}` = the default base).
fn example_topic(address: &str) -> String {
    address
        .replace("{base}", B)
        .split('/')
        .map(|l| if is_param(l) { "x" } else { l })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a subscription filter covers at least one documented channel.
fn filter_covers_a_channel(addresses: &BTreeMap<String, String>, filter: &str) -> bool {
    addresses
        .keys()
        .any(|a| filter_matches(filter, &example_topic(a)).is_some())
}

/// `retain` of the gateway's `send` operations, per channel id.
fn sent_retained(doc: &Value) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for op in doc["operations"].as_object().unwrap().values() {
        if op["action"] != "send" {
            continue;
        }
        let channel = op["channel"]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/channels/"))
            .expect("an operation's channel is a $ref to #/channels/...");
        let retain = op["bindings"]["mqtt"]["retain"].as_bool().unwrap_or(false);
        *out.entry(channel.to_string()).or_insert(false) |= retain;
    }
    out
}

/// The event names documented for `{base}/events`: every `event` property's enum in its messages.
fn documented_events(doc: &Value) -> BTreeSet<String> {
    fn collect(doc: &Value, value: &Value, out: &mut BTreeSet<String>) {
        let value = deref(doc, value);
        match value {
            Value::Object(map) => {
                if let Some(list) = map
                    .get("properties")
                    .and_then(|p| p.get("event"))
                    .and_then(|e| e.get("enum"))
                    .and_then(Value::as_array)
                {
                    out.extend(list.iter().filter_map(|v| v.as_str().map(String::from)));
                }
                map.values().for_each(|v| collect(doc, v, out));
            }
            Value::Array(list) => list.iter().for_each(|v| collect(doc, v, out)),
            _ => {}
        }
    }
    let events = addresses(doc)
        .into_iter()
        .find(|(address, _)| address == "{base}/events")
        .map(|(_, id)| id)
        .expect("a channel {base}/events");
    let mut out = BTreeSet::new();
    collect(doc, &doc["channels"][&events]["messages"], &mut out);
    out
}

/// The relative topic of each command, spelled out for every variant (a new variant does not
/// compile until it is added here and, through the test, to the document).
fn command_relative(c: &Target) -> String {
    match c {
        Target::Profile => "profile/set".into(),
        Target::App(app) => format!("app/{app}/set"),
        Target::Device => "device/set".into(),
        Target::Radio => "radio/set".into(),
        Target::Network => "network/set".into(),
    }
}

fn all_commands() -> Vec<Target> {
    vec![
        Target::Profile,
        Target::App("vision".into()),
        Target::Device,
        Target::Radio,
        Target::Network,
    ]
}

#[test]
fn asyncapi_documents_every_topic_of_the_topics_module() {
    let doc = asyncapi();
    let addresses = addresses(&doc);
    let t = Topics::new(B);
    let mut missing = Vec::new();
    let mut need = |topic: String, why: &str| {
        if channel_of(&addresses, &topic).is_none() {
            missing.push(format!("{topic} ({why})"));
        }
    };
    need(t.events(), "Topics::events");
    need(t.app("vision"), "Topics::app");
    need(
        t.app(&lps_bridge::mqtt::topics::topic_level("a/b+c#")),
        "Topics::app with a name made one level",
    );
    need(
        t.topic("bridge/state"),
        "bridge state, external broker's Will",
    );
    need(t.topic("bridge/info"), "bridge info");
    for s in StateTopic::ALL {
        need(t.topic(state_topic_name(s)), "a state topic");
    }
    for c in all_commands() {
        let topic = t.topic(&command_relative(&c));
        assert_eq!(t.parse_command(&topic), Some(c.clone()), "{topic}");
        need(topic.clone(), "a command topic");
        need(t.response_for(&topic), "its reply topic");
    }
    assert!(
        missing.is_empty(),
        "topics the code uses but docs/asyncapi.yaml has no channel for:\n  {}",
        missing.join("\n  ")
    );
    // The per-app address names its parameter as `Topics::app` fills it.
    assert!(addresses.contains_key(&t.app("{name}").replace(B, "{base}")));

    // Subscriptions: each command filter covers documented channels, and every documented channel
    // under them is a command the gateway parses and answers on its response channel.
    for filter in t.command_filters() {
        assert!(
            filter_covers_a_channel(&addresses, &filter),
            "the gateway subscribes to {filter}, which covers no documented channel"
        );
        for address in addresses.keys() {
            let topic = example_topic(address);
            if filter_matches(&filter, &topic).is_none() {
                continue;
            }
            // The filters also catch mistyped command topics (answered with the closest one);
            // a documented channel there is a command, or one of the gateway's own (unanswered).
            if t.parse_command(&topic).is_some() {
                assert!(channel_of(&addresses, &t.response_for(&topic)).is_some());
            } else {
                assert_eq!(
                    t.mistyped_command(&topic),
                    None,
                    "{address} is under the command filter {filter}: neither a command nor the gateway's own"
                );
            }
        }
    }
    // Rule topics are user-defined: documented as a channel without an address.
    assert!(
        doc["channels"]
            .as_object()
            .unwrap()
            .values()
            .any(|c| c["address"].is_null()
                && c["description"]
                    .as_str()
                    .unwrap_or("")
                    .contains("[[rules]]")),
        "a channel with address null for the plant topics of [[rules]]"
    );
    // Retained state is documented as retained; commands, events and replies as not.
    let retained = sent_retained(&doc);
    for s in StateTopic::ALL {
        let id = channel_of(&addresses, &t.topic(state_topic_name(s))).unwrap();
        assert_eq!(retained.get(id), Some(&true), "{id} is retained");
    }
    let events = channel_of(&addresses, &t.events()).unwrap();
    assert_eq!(
        retained.get(events),
        Some(&false),
        "events are not retained"
    );
    for c in all_commands() {
        let topic = t.topic(&command_relative(&c));
        let reply = channel_of(&addresses, &t.response_for(&topic)).unwrap();
        assert_eq!(retained.get(reply), Some(&false), "{reply} is not retained");
    }
}

/// Every event name the code can emit.
fn events_in_code() -> BTreeSet<String> {
    EventName::ALL
        .iter()
        .map(|e| e.as_str().to_string())
        .collect()
}

#[test]
fn asyncapi_documents_every_event_the_code_emits() {
    let in_code = events_in_code();
    assert_same_set(
        "event names on {base}/events (docs/asyncapi.yaml vs src/)",
        &documented_events(&asyncapi()),
        &in_code,
    );
}

// --------------------------------------------------------------- AsyncAPI vs a running gateway

const RULES: &str = r#"
[[rules]]
name = "shift"
topic = "plant/docs/shift"
payload = "night"
action = { profile = "night" }

[[rules]]
name = "ups"
topic = "plant/docs/ups"
payload = "battery"
hold = "60s"
action = { device = "poweroff" }

[[rules]]
name = "fault"
topic = "plant/docs/+/fault"
payload = "1"
action = { app = "{1}", command = "restart" }
"#;

fn apps(last_cmd_timestamp: u64) -> LocalAppInfoList {
    LocalAppInfoList {
        apps_info: vec![
            LocalAppInfo {
                id: "6f1c2a3e-0000-4000-8000-000000000001".into(),
                name: "vision".into(),
                version: "1".into(),
                state: 7,
                last_cmd_timestamp,
                ..Default::default()
            },
            LocalAppInfo {
                id: "6f1c2a3e-0000-4000-8000-000000000002".into(),
                name: "cam/1".into(),
                version: "2".into(),
                state: 7,
                ..Default::default()
            },
        ],
    }
}

#[tokio::test]
async fn every_topic_a_running_gateway_uses_is_documented_and_vice_versa() {
    let doc = asyncapi();
    let addresses = addresses(&doc);
    let retained_channels = sent_retained(&doc);
    let events = documented_events(&doc);
    let rules = Config::from_toml(RULES).unwrap().rules;
    // A schedule that does not fire here (New Year; one-shot actions are not replayed at start),
    // so that `{base}/schedules` is published.
    let schedules = Config::from_toml(
        "[[schedules]]\nname = \"new year\"\ncron = \"0 0 1 1 *\"\ntimezone = \"UTC\"\naction = { radio_silence = false }\n",
    )
    .unwrap()
    .schedules;
    let gw = TestGateway::start_with(move |c| {
        c.rules = rules;
        c.schedules = schedules;
    })
    .await;

    let mut probe = Probe::connect(gw.mqtt_port, &[&format!("{B}/#")]).await;
    // The gateway's broker link subscribes before it publishes: from here rules see messages.
    probe.expect(&format!("{B}/bridge/state"), |_| true).await;

    // EVE reports everything it reports.
    eve_post(&gw.lps, "appinfo", &apps(0)).await;
    eve_post(
        &gw.lps,
        "devinfo",
        &LocalDevInfo {
            device_uuid: "dev-1".into(),
            state: 1,
            ..Default::default()
        },
    )
    .await;
    eve_post(&gw.lps, "appbootinfo", &AppBootInfoList::default()).await;
    eve_post(&gw.lps, "radio", &RadioStatus::default()).await;
    eve_post(&gw.lps, "network", &NetworkInfo::default()).await;
    eve_post(
        &gw.lps,
        "location",
        &ZInfoLocation {
            latitude: 51.45,
            longitude: 7.01,
            ..Default::default()
        },
    )
    .await;
    probe
        .expect(
            &format!("{B}/app/{}", lps_bridge::mqtt::topics::topic_level("cam/1")),
            |v| v["name"] == "cam/1",
        )
        .await;

    // Every command, an error, and a retained command.
    let ok = |r: &Value| assert_eq!(r["status"], "ok", "{r}");
    ok(&probe
        .command(B, "profile/set", r#"{"profile":"night"}"#)
        .await);
    let restart = probe
        .command(B, "app/vision/set", r#"{"command":"restart"}"#)
        .await;
    ok(&restart);
    ok(&probe
        .command(B, "app/vision/set", r#"{"boot":"usb"}"#)
        .await);
    ok(&probe
        .command(B, "device/set", r#"{"command":"reboot"}"#)
        .await);
    ok(&probe.command(B, "device/set", r#"{"cancel":true}"#).await);
    ok(&probe
        .command(B, "radio/set", r#"{"radio_silence":true}"#)
        .await);
    ok(&probe
        .command(
            B,
            "network/set",
            r#"{"ports":[{"logical_label":"eth1","mtu":1400}]}"#,
        )
        .await);
    let r = probe
        .command(B, "app/visoin/set", r#"{"command":"restart"}"#)
        .await;
    assert_eq!(r["status"], "error", "{r}");
    // Published retained: carried out (it arrived live), and the gateway deletes the retained copy.
    probe
        .publish_retained(&format!("{B}/radio/set"), r#"{"radio_silence":false}"#)
        .await;
    probe
        .expect(&format!("{B}/response/radio/set"), |v| {
            v["desired"]["radio_silence"] == false
        })
        .await;
    probe
        .expect_msg(&format!("{B}/radio/set"), |m| m.payload.is_empty())
        .await;

    // EVE takes the restart and completes it.
    eve_post(&gw.lps, "appinfo", &apps(0)).await;
    let ts: u64 = restart["command"]["timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    eve_post(&gw.lps, "appinfo", &apps(ts)).await;
    probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "command_completed"
        })
        .await;

    // Plant topics through the rules: fired, failed, hold started and cancelled.
    probe.publish("plant/docs/shift", "night").await;
    probe
        .expect(&format!("{B}/events"), |v| v["event"] == "rule_fired")
        .await;
    probe.publish("plant/docs/ghost/fault", "1").await;
    probe
        .expect(&format!("{B}/events"), |v| v["event"] == "rule_failed")
        .await;
    probe.publish("plant/docs/ups", "battery").await;
    probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "rule_hold_started"
        })
        .await;
    probe.publish("plant/docs/ups", "mains").await;
    probe
        .expect(&format!("{B}/events"), |v| {
            v["event"] == "rule_hold_cancelled"
        })
        .await;

    // Every state topic, as the test's mirror of publish.rs names it, was published.
    for s in StateTopic::ALL {
        probe
            .expect_msg(&format!("{B}/{}", state_topic_name(s)), |_| true)
            .await;
    }
    probe.expect(&format!("{B}/bridge/info"), |_| true).await;
    // A last reply: everything published before it has been received.
    ok(&probe.command(B, "profile/set", r#"{"profile":""}"#).await);

    let mut undocumented = BTreeSet::new();
    let mut wrongly_retained = BTreeSet::new();
    let mut unknown_events = BTreeSet::new();
    let mut seen_channels = BTreeSet::new();
    for m in &probe.seen {
        match channel_of(&addresses, &m.topic) {
            Some(id) => {
                seen_channels.insert(id.to_string());
                // A message that arrives retained must be on a channel documented as retained.
                if m.retain && !m.payload.is_empty() && retained_channels.get(id) != Some(&true) {
                    wrongly_retained.insert(m.topic.clone());
                }
            }
            None => {
                undocumented.insert(m.topic.clone());
            }
        }
        if m.topic == format!("{B}/events") {
            let name = m.json()["event"].as_str().unwrap_or("").to_string();
            if !events.contains(&name) {
                unknown_events.insert(name);
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "topics the gateway used that docs/asyncapi.yaml has no channel for: {undocumented:?}"
    );
    assert!(
        wrongly_retained.is_empty(),
        "retained on channels not documented as retained: {wrongly_retained:?}"
    );
    assert!(
        unknown_events.is_empty(),
        "events not documented: {unknown_events:?}"
    );
    let documented: BTreeSet<String> = addresses.values().cloned().collect();
    let phantom: Vec<&String> = documented.difference(&seen_channels).collect();
    assert!(
        phantom.is_empty(),
        "channels documented in docs/asyncapi.yaml that the gateway never used here: {phantom:?}"
    );

    // The operator API serves the repo's OpenAPI document.
    if let Some(addr) = gw.running().operator_addr {
        let served = reqwest::get(format!("http://{addr}/api/openapi.json"))
            .await
            .unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(served.text().await.unwrap(), repo_file("docs/openapi.json"));
    }
}

// -------------------------------------------------------------------------------------- README

#[test]
fn readme_names_every_endpoint_event_and_source() {
    let readme = repo_file("README.md");
    let mut missing = Vec::new();
    for e in Endpoint::ALL {
        let (get, post) = (format!("`GET {e}`"), format!("`POST {e}`"));
        if !readme.contains(&get) && !readme.contains(&post) {
            missing.push(format!("LPS endpoint {get} or {post}"));
        }
    }
    for e in EventName::ALL {
        if !readme.contains(&format!("`{e}`")) {
            missing.push(format!("event `{e}`"));
        }
    }
    for s in Source::ALL {
        // A named kind as the README writes it: `rule:<name>`.
        let wire = match s {
            Source::Rule(_) => Source::Rule("<name>".into()),
            Source::Schedule(_) => Source::Schedule("<name>".into()),
            other => other.clone(),
        };
        if !readme.contains(&format!("`{wire}`")) {
            missing.push(format!("command source `{wire}`"));
        }
    }
    assert!(missing.is_empty(), "README.md does not name: {missing:#?}");
}

// ------------------------------------------------------------------------------------ Node-RED

/// Every node a node's outputs are wired to.
fn wires(node: &Value) -> Vec<&str> {
    let outputs = node["wires"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    outputs
        .iter()
        .flat_map(|o| o.as_array().map(Vec::as_slice).unwrap_or(&[]))
        .map(|t| t.as_str().expect("a wire is a node id"))
        .collect()
}

#[test]
fn node_red_flow_is_wired_and_speaks_the_documented_api() {
    let flow: Value = serde_json::from_str(&repo_file("examples/node-red/lps-bridge-flow.json"))
        .expect("the flow is valid JSON");
    let nodes = flow.as_array().expect("a flow is a flat array of nodes");
    let mut by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    for n in nodes {
        let id = n["id"].as_str().expect("every node has an id");
        assert!(by_id.insert(id, n).is_none(), "node id {id} twice");
        assert!(n["type"].is_string(), "node {id} has a type");
    }
    let doc = asyncapi();
    let addresses = addresses(&doc);
    let topics = Topics::new(B);
    let type_of = |id: &str| by_id.get(id).and_then(|n| n["type"].as_str()).unwrap_or("");
    let mut used = BTreeSet::new();
    for n in nodes {
        let id = n["id"].as_str().unwrap();
        let kind = n["type"].as_str().unwrap();
        if let Some(tab) = n["z"].as_str() {
            assert_eq!(type_of(tab), "tab", "node {id}: z={tab} is not a tab");
        }
        for target in wires(n) {
            assert!(
                by_id.contains_key(target),
                "node {id} wired to missing {target}"
            );
        }
        if kind == "mqtt in" || kind == "mqtt out" {
            let broker = n["broker"].as_str().unwrap_or("");
            assert_eq!(
                type_of(broker),
                "mqtt-broker",
                "node {id} ({kind}): broker {broker:?} is not an mqtt-broker node"
            );
            let topic = n["topic"].as_str().unwrap_or("");
            assert!(!topic.is_empty(), "node {id} ({kind}) has no topic");
            used.insert(topic.to_string());
            if kind == "mqtt in" {
                assert!(
                    filter_covers_a_channel(&addresses, topic),
                    "mqtt in {topic}: no documented channel"
                );
            } else {
                assert!(
                    channel_of(&addresses, topic).is_some(),
                    "mqtt out {topic}: no documented channel"
                );
                let command = topics
                    .parse_command(topic)
                    .unwrap_or_else(|| panic!("mqtt out {topic} is not a command topic"));
                assert_eq!(n["retain"], "false", "commands must not be retained: {id}");
                // What the injects wired to it send is a command the gateway accepts.
                for inject in nodes
                    .iter()
                    .filter(|i| i["type"] == "inject" && wires(i).contains(&id))
                {
                    let payload = inject["payload"].as_str().unwrap_or("");
                    let bytes = match inject["payloadType"].as_str() {
                        Some("json") => serde_json::from_str::<Value>(payload)
                            .expect("a json inject payload parses")
                            .to_string(),
                        Some("str") => payload.to_string(),
                        other => panic!("inject {}: payloadType {other:?}", inject["id"]),
                    };
                    let parsed = lps_bridge::command::parse(&command, bytes.as_bytes());
                    assert!(
                        !bytes.is_empty() && parsed.intent.is_ok(),
                        "inject {} sends {bytes:?} to {topic}: {:?}",
                        inject["name"],
                        parsed.intent
                    );
                }
            }
        }
    }
    for needed in [
        "lps/edge/profile/set",
        "lps/edge/app/vision/set",
        "lps/edge/apps",
        "lps/edge/response/#",
        "lps/edge/events",
    ] {
        assert!(used.contains(needed), "the flow uses {needed}");
    }
    // The status under the EVE node is the word online/offline (the whole JSON would be cut off).
    let eve_in = nodes
        .iter()
        .find(|n| n["type"] == "mqtt in" && n["topic"] == "lps/edge/eve/state")
        .expect("the flow subscribes to lps/edge/eve/state");
    assert_eq!(
        eve_in["datatype"], "json",
        "parsed, so payload.state exists"
    );
    for target in wires(eve_in) {
        let status = by_id[target];
        if status["type"] == "debug" && status["tostatus"] == true {
            assert_eq!(status["statusType"], "msg");
            assert_eq!(status["statusVal"], "payload.state");
        }
    }
    // Credentials are never in an exported flow; the README says where to enter them.
    for n in nodes.iter().filter(|n| n["type"] == "mqtt-broker") {
        assert!(n.get("credentials").is_none() && n.get("password").is_none());
    }
}

// -------------------------------------------------------------------------------------- Docker

#[test]
fn docker_image_config_build_command_and_copied_files_hold_together() {
    use lps_bridge::config::{ENV_OPERATOR_TOKEN, ENV_SERVER_TOKEN};
    let dockerfile = repo_file("docker/Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();

    // CI builds the same release binary with the same command (no Docker engine there).
    const BUILD: &str = "cargo build --release --locked";
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("RUN") && l.contains(BUILD)),
        "docker/Dockerfile runs `{BUILD}`"
    );
    assert!(
        repo_file(".ci/run").lines().any(|l| l.trim() == BUILD),
        ".ci/run runs `{BUILD}` like docker/Dockerfile"
    );

    // The container config: valid once the operator token comes from the environment, refused
    // without it (the operator API listens on all interfaces).
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docker/lps-bridge.toml");
    let config = Config::load(Some(&path)).expect("docker/lps-bridge.toml parses");
    assert_eq!(config.operator.listen, "0.0.0.0:8080");
    assert_eq!(config.store.dir, PathBuf::from("/var/lib/lps-bridge"));
    assert!(config.operator.token.is_empty() && config.lps.server_token.is_empty());
    let err = config.clone().validate().unwrap_err().to_string();
    assert!(err.contains("operator.token"), "{err}");
    let mut with_env = config;
    with_env.apply_env(|k| {
        (k == ENV_OPERATOR_TOKEN || k == ENV_SERVER_TOKEN).then(|| "secret".to_string())
    });
    let settings = with_env
        .validate()
        .expect("valid with the tokens from the environment");
    let ports: BTreeSet<u16> = [
        Some(settings.lps_listen),
        settings.mqtt_listen,
        settings.operator_listen,
    ]
    .into_iter()
    .flatten()
    .map(|a| a.port())
    .collect();
    let exposed: BTreeSet<u16> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    assert_eq!(
        exposed, ports,
        "EXPOSE matches the container config's ports"
    );
    assert!(dockerfile.contains("COPY docker/lps-bridge.toml /etc/lps-bridge/lps-bridge.toml"));
    assert!(dockerfile.contains(r#"CMD ["run", "--config", "/etc/lps-bridge/lps-bridge.toml"]"#));

    // Every file the build compiles in lies under what the builder stage copies.
    let copied: Vec<String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    // The gateway's sources and the workspace crates' (their build scripts too).
    let mut dirs = vec![root.join("src"), root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("target") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for mac in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(mac) {
                let rest = &text[at + mac.len()..];
                let included = &rest[..rest.find('"').unwrap()];
                let full = file.parent().unwrap().join(included);
                let full = full.canonicalize().unwrap_or(full);
                let relative = full.strip_prefix(&root).unwrap_or(&full);
                assert!(
                    copied.iter().any(|c| relative.starts_with(c)),
                    "{} includes {}, which docker/Dockerfile does not copy (it copies {copied:?})",
                    file.display(),
                    relative.display()
                );
            }
        }
    }
}
