//! The edge node's Sparkplug state for one MQTT session: bdSeq, seq, what each birth declared and
//! what was last reported (DATA by exception), device aliases. Pure: returns the messages to send.

use super::metrics::{self, DEVICE, DEVICE_ALIAS_BLOCK, DEVICE_ALIAS_START, NODE};
use super::payload::{self, Value};
use crate::state::State;
use std::collections::BTreeMap;

/// One message to publish (QoS 0, not retained, as Sparkplug wants for everything but NDEATH).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Device {
    alias_base: u64,
    /// What the last DBIRTH / DDATA reported; `None` while the device is dead (DDEATH sent).
    last: Option<Vec<Value>>,
}

#[derive(Debug)]
pub struct Node {
    group: String,
    pub id: String,
    pub bd_seq: u64,
    /// The seq of the last message sent (NBIRTH resets it to 0).
    seq: u8,
    /// Node metrics of the last NBIRTH / NDATA; `None` until births were sent.
    last: Option<Vec<Value>>,
    devices: BTreeMap<String, Device>,
    next_block: u64,
}

impl Node {
    pub fn new(group: &str, id: &str, bd_seq: u64) -> Node {
        Node {
            group: group.into(),
            id: id.into(),
            bd_seq,
            seq: 0,
            last: None,
            devices: BTreeMap::new(),
            next_block: 0,
        }
    }

    pub fn topic(&self, kind: &str) -> String {
        format!("spBv1.0/{}/{kind}/{}", self.group, self.id)
    }

    fn device_topic(&self, kind: &str, device: &str) -> String {
        format!("spBv1.0/{}/{kind}/{}/{device}", self.group, self.id)
    }

    pub fn is_born(&self) -> bool {
        self.last.is_some()
    }

    fn next_seq(&mut self) -> u8 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// The alias base of a device (assigned on first sight, kept for the session).
    pub fn device_alias_base(&self, device: &str) -> Option<u64> {
        self.devices.get(device).map(|d| d.alias_base)
    }

    /// Whether the device is alive (born and not dead).
    pub fn device_alive(&self, device: &str) -> bool {
        self.devices.get(device).is_some_and(|d| d.last.is_some())
    }

    /// The Will for this session's CONNECT.
    pub fn ndeath(&self, at_ms: u64) -> Message {
        Message {
            topic: self.topic("NDEATH"),
            payload: payload::ndeath(self.bd_seq, at_ms),
        }
    }

    /// NBIRTH (seq 0, this session's bdSeq, Rebirth = false, every node metric) then a DBIRTH
    /// per app: at session start and on a Rebirth request.
    pub fn births(&mut self, state: &State, at_ms: u64) -> Vec<Message> {
        let values = metrics::node_values(state, self.bd_seq);
        let metrics = NODE
            .iter()
            .zip(&values)
            .enumerate()
            .map(|(i, (spec, v))| {
                payload::metric(Some(spec.name), Some(metrics::node_alias(i)), v, at_ms)
            })
            .collect();
        self.seq = 0;
        let mut out = vec![Message {
            topic: self.topic("NBIRTH"),
            payload: payload::encode(Some(0), at_ms, metrics),
        }];
        self.last = Some(values);
        for d in self.devices.values_mut() {
            d.last = None;
        }
        for (device, values) in metrics::devices(state) {
            out.push(self.dbirth(&device, values, at_ms));
        }
        out
    }

    fn dbirth(&mut self, device: &str, values: Vec<Value>, at_ms: u64) -> Message {
        let next_block = &mut self.next_block;
        let entry = self.devices.entry(device.to_string()).or_insert_with(|| {
            let base = DEVICE_ALIAS_START + *next_block * DEVICE_ALIAS_BLOCK;
            *next_block += 1;
            Device {
                alias_base: base,
                last: None,
            }
        });
        let base = entry.alias_base;
        let metrics = DEVICE
            .iter()
            .zip(&values)
            .enumerate()
            .map(|(i, (spec, v))| payload::metric(Some(spec.name), Some(base + i as u64), v, at_ms))
            .collect();
        entry.last = Some(values);
        let seq = self.next_seq();
        Message {
            topic: self.device_topic("DBIRTH", device),
            payload: payload::encode(Some(seq), at_ms, metrics),
        }
    }

    /// What changed since the last report: NDATA, then DBIRTH / DDATA / DDEATH per app. Nothing
    /// before the births.
    pub fn changes(&mut self, state: &State, at_ms: u64) -> Vec<Message> {
        let Some(last) = self.last.clone() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let values = metrics::node_values(state, self.bd_seq);
        let changed: Vec<_> = values
            .iter()
            .enumerate()
            .filter(|(i, v)| last.get(*i) != Some(v))
            .map(|(i, v)| payload::metric(None, Some(metrics::node_alias(i)), v, at_ms))
            .collect();
        if !changed.is_empty() {
            let seq = self.next_seq();
            out.push(Message {
                topic: self.topic("NDATA"),
                payload: payload::encode(Some(seq), at_ms, changed),
            });
            self.last = Some(values);
        }
        let now: BTreeMap<String, Vec<Value>> = metrics::devices(state).into_iter().collect();
        let gone: Vec<String> = self
            .devices
            .iter()
            .filter(|(id, d)| d.last.is_some() && !now.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for device in gone {
            if let Some(d) = self.devices.get_mut(&device) {
                d.last = None;
            }
            let seq = self.next_seq();
            out.push(Message {
                topic: self.device_topic("DDEATH", &device),
                payload: payload::encode(Some(seq), at_ms, Vec::new()),
            });
        }
        for (device, values) in now {
            let previous = self.devices.get(&device).and_then(|d| d.last.clone());
            match previous {
                None => out.push(self.dbirth(&device, values, at_ms)),
                Some(previous) => {
                    let base = self.devices[&device].alias_base;
                    let changed: Vec<_> = values
                        .iter()
                        .enumerate()
                        .filter(|(i, v)| previous.get(*i) != Some(v))
                        .map(|(i, v)| payload::metric(None, Some(base + i as u64), v, at_ms))
                        .collect();
                    if changed.is_empty() {
                        continue;
                    }
                    if let Some(d) = self.devices.get_mut(&device) {
                        d.last = Some(values);
                    }
                    let seq = self.next_seq();
                    out.push(Message {
                        topic: self.device_topic("DDATA", &device),
                        payload: payload::encode(Some(seq), at_ms, changed),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AppReport, Limits};
    use prost::Message as _;

    fn seq(m: &Message) -> Option<u64> {
        payload::pb::Payload::decode(m.payload.as_slice())
            .unwrap()
            .seq
    }

    fn with_apps(names: &[&str]) -> State {
        let mut s = State::new(Limits::default());
        s.reports.apps = Some(
            names
                .iter()
                .map(|n| AppReport {
                    id: format!("id-{n}"),
                    name: n.to_string(),
                    info: serde_json::json!({ "state": "RUNNING" }),
                    last_cmd_timestamp: 0,
                })
                .collect(),
        );
        s
    }

    #[test]
    fn seq_runs_from_the_birth_and_devices_die_and_come_back() {
        let mut node = Node::new("g", "n", 3);
        assert!(
            node.changes(&with_apps(&["a"]), 1).is_empty(),
            "nothing before births"
        );
        let births = node.births(&with_apps(&["a", "b/c"]), 1);
        assert_eq!(births[0].topic, "spBv1.0/g/NBIRTH/n");
        // A name with `/` gets its topic level, as in the MQTT topics.
        assert!(births[2].topic.starts_with("spBv1.0/g/DBIRTH/n/b_c"));
        let bc = births[2].topic.rsplit('/').next().unwrap().to_string();
        assert_eq!(
            births.iter().map(seq).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2)]
        );
        assert!(
            node.changes(&with_apps(&["a", "b/c"]), 2).is_empty(),
            "by exception"
        );
        let out = node.changes(&with_apps(&["a"]), 3);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, format!("spBv1.0/g/DDEATH/n/{bc}"));
        assert_eq!(seq(&out[0]), Some(3));
        assert!(!node.device_alive(&bc));
        let base = node.device_alias_base(&bc);
        let out = node.changes(&with_apps(&["a", "b/c"]), 4);
        assert_eq!(out[0].topic, format!("spBv1.0/g/DBIRTH/n/{bc}"));
        assert_eq!(node.device_alias_base(&bc), base, "aliases kept");
        // seq wraps 255 → 0.
        node.seq = 255;
        let out = node.changes(&with_apps(&["a"]), 5);
        assert_eq!(seq(&out[0]), Some(0));
        // A rebirth starts again at 0 with the same bdSeq.
        let births = node.births(&with_apps(&["a"]), 6);
        assert_eq!(seq(&births[0]), Some(0));
        let p = payload::pb::Payload::decode(births[0].payload.as_slice()).unwrap();
        assert_eq!(p.metrics[0].name.as_deref(), Some("bdSeq"));
        assert_eq!(
            p.metrics[0].value,
            Some(payload::pb::payload::metric::Value::LongValue(3))
        );
    }
}
