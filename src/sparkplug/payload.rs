//! Sparkplug B payloads: our own `proto/sparkplug/sparkplug_b.proto` (prost), the metric values
//! the edge node sends, and the metric writes it reads from NCMD / DCMD.

use prost::Message;

/// Types generated from `proto/sparkplug/sparkplug_b.proto`.
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/sparkplug_b.rs"));
}

use pb::payload::{metric, Metric};
pub use pb::DataType;

/// One metric value as the edge node reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Text(String),
    Double(f64),
    /// Milliseconds since the Unix epoch.
    DateTime(u64),
    Int64(i64),
    /// Not known (yet): sent with `is_null` and the metric's datatype.
    Null(DataType),
}

impl Value {
    pub fn datatype(&self) -> DataType {
        match self {
            Value::Bool(_) => DataType::Boolean,
            Value::Text(_) => DataType::String,
            Value::Double(_) => DataType::Double,
            Value::DateTime(_) => DataType::DateTime,
            Value::Int64(_) => DataType::Int64,
            Value::Null(t) => *t,
        }
    }

    fn proto(&self) -> Option<metric::Value> {
        Some(match self {
            Value::Bool(b) => metric::Value::BooleanValue(*b),
            Value::Text(s) => metric::Value::StringValue(s.clone()),
            Value::Double(d) => metric::Value::DoubleValue(*d),
            Value::DateTime(ms) => metric::Value::LongValue(*ms),
            // Int64 travels as its two's complement in the uint64 field.
            Value::Int64(i) => metric::Value::LongValue(*i as u64),
            Value::Null(_) => return None,
        })
    }
}

/// A metric in a birth (`name` set) or in data (alias only), with its datatype either way, so a
/// host that missed the birth can still read the value.
pub fn metric(name: Option<&str>, alias: Option<u64>, value: &Value, at_ms: u64) -> Metric {
    let proto = value.proto();
    Metric {
        name: name.map(str::to_string),
        alias,
        timestamp: Some(at_ms),
        datatype: Some(value.datatype() as u32),
        is_null: proto.is_none().then_some(true),
        value: proto,
        ..Default::default()
    }
}

/// An encoded payload; `seq` is absent only in NDEATH.
pub fn encode(seq: Option<u8>, at_ms: u64, metrics: Vec<Metric>) -> Vec<u8> {
    pb::Payload {
        timestamp: Some(at_ms),
        metrics,
        seq: seq.map(u64::from),
        ..Default::default()
    }
    .encode_to_vec()
}

/// NDEATH (the MQTT Will): only the `bdSeq` metric, no `seq`.
pub fn ndeath(bd_seq: u64, at_ms: u64) -> Vec<u8> {
    encode(
        None,
        at_ms,
        vec![metric(
            Some(BD_SEQ),
            None,
            &Value::Int64(bd_seq as i64),
            at_ms,
        )],
    )
}

pub const BD_SEQ: &str = "bdSeq";

/// The value of one metric write in an NCMD / DCMD.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    Bool(bool),
    Text(String),
    /// A value of a kind no writable metric takes (numbers, bytes, null): what it was.
    Other(&'static str),
}

/// One metric write: by name, by alias, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub name: Option<String>,
    pub alias: Option<u64>,
    pub value: Written,
}

/// Reads the metric writes of an NCMD / DCMD payload; a payload that is not Sparkplug B protobuf
/// is an error saying so.
pub fn decode_writes(bytes: &[u8]) -> Result<Vec<Write>, String> {
    let payload = pb::Payload::decode(bytes)
        .map_err(|e| format!("the payload is not a Sparkplug B protobuf payload ({e})"))?;
    Ok(payload
        .metrics
        .into_iter()
        .map(|m| {
            let value = match (m.is_null, m.value) {
                (Some(true), _) | (_, None) => Written::Other("a null value"),
                (_, Some(metric::Value::BooleanValue(b))) => Written::Bool(b),
                (_, Some(metric::Value::StringValue(s))) => Written::Text(s),
                (_, Some(metric::Value::BytesValue(_))) => Written::Other("bytes"),
                (_, Some(_)) => Written::Other("a number"),
            };
            Write {
                name: m.name.filter(|n| !n.is_empty()),
                alias: m.alias,
                value,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_round_trip_with_their_datatypes() {
        let bytes = encode(
            Some(7),
            1_000,
            vec![
                metric(Some("a"), Some(1), &Value::Bool(true), 1_000),
                metric(None, Some(2), &Value::Text("x".into()), 1_000),
                metric(Some("c"), Some(3), &Value::Null(DataType::Double), 1_000),
                metric(Some("d"), Some(4), &Value::Int64(-1), 1_000),
            ],
        );
        let p = pb::Payload::decode(bytes.as_slice()).unwrap();
        assert_eq!((p.seq, p.timestamp), (Some(7), Some(1_000)));
        assert_eq!(p.metrics[0].datatype, Some(DataType::Boolean as u32));
        assert_eq!(p.metrics[1].name, None);
        assert_eq!(p.metrics[1].datatype, Some(12));
        assert_eq!(p.metrics[2].is_null, Some(true));
        assert_eq!(p.metrics[2].value, None);
        assert_eq!(p.metrics[3].value, Some(metric::Value::LongValue(u64::MAX)));
        let writes = decode_writes(&bytes).unwrap();
        assert_eq!(writes[0].value, Written::Bool(true));
        assert_eq!(writes[1].alias, Some(2));
        assert_eq!(writes[1].value, Written::Text("x".into()));
        assert_eq!(writes[2].value, Written::Other("a null value"));
        assert_eq!(writes[3].value, Written::Other("a number"));
    }

    #[test]
    fn ndeath_has_only_bdseq_and_no_seq() {
        let p = pb::Payload::decode(ndeath(3, 5).as_slice()).unwrap();
        assert_eq!(p.seq, None);
        assert_eq!(p.metrics.len(), 1);
        assert_eq!(p.metrics[0].name.as_deref(), Some("bdSeq"));
        assert_eq!(p.metrics[0].datatype, Some(DataType::Int64 as u32));
        assert_eq!(p.metrics[0].value, Some(metric::Value::LongValue(3)));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let err = decode_writes(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(err.contains("not a Sparkplug B"), "{err}");
    }
}
