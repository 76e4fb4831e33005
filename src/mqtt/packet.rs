//! The few MQTT packets the front door (`door`) reads and writes: packet framing, CONNECT
//! (MQTT 3.1, 3.1.1 and 5), the topic of a PUBLISH, and CONNACK. Everything else passes through
//! unread. Input is untrusted: every length is checked, nothing panics.

use std::collections::HashMap;

pub const CONNECT: u8 = 1;
pub const PUBLISH: u8 = 3;

/// One complete packet at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// The first byte: packet type (high nibble) and flags.
    pub first: u8,
    /// Bytes of the fixed header (type byte and remaining length).
    pub header: usize,
    /// Bytes of the whole packet.
    pub len: usize,
}

impl Frame {
    pub fn kind(&self) -> u8 {
        self.first >> 4
    }
}

/// The packet at the start of `buf`: `Ok(None)` while it is incomplete, an error when its
/// length is malformed (more than 4 length bytes).
pub fn frame(buf: &[u8]) -> Result<Option<Frame>, String> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut remaining: usize = 0;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let header = 2 + i;
            let len = header + remaining;
            return Ok((buf.len() >= len).then_some(Frame { first, header, len }));
        }
    }
    Err("malformed packet length (more than 4 bytes)".into())
}

/// A variable byte integer (MQTT 5) at the start of `buf`: (value, bytes used).
fn varint(buf: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for i in 0..4 {
        let byte = *buf.get(i)?;
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads through a packet body, failing with a reason instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("{} is cut short", self.what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Two length bytes and that many bytes.
    fn binary(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    fn string(&mut self, field: &str) -> Result<String, String> {
        let bytes = self.binary()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{field} is not UTF-8"))
    }

    /// MQTT 5 properties: their length and bytes.
    fn properties(&mut self) -> Result<&'a [u8], String> {
        let (n, used) = varint(self.buf).ok_or_else(|| format!("{}: bad properties", self.what))?;
        self.take(used)?;
        self.take(n)
    }
}

/// What the door needs from a CONNECT.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    /// 3 (MQTT 3.1), 4 (3.1.1) or 5.
    pub level: u8,
    pub client_id: String,
    pub username: Option<String>,
    /// Only compared, never logged.
    pub password: Option<Vec<u8>>,
}

/// Parses a CONNECT packet's body (what follows the fixed header).
pub fn parse_connect(body: &[u8]) -> Result<Connect, String> {
    let mut r = Reader {
        buf: body,
        what: "CONNECT",
    };
    let name = r.binary()?;
    let level = r.u8()?;
    match (name, level) {
        (b"MQTT", 4 | 5) | (b"MQIsdp", 3) => {}
        (b"MQTT" | b"MQIsdp", other) => {
            return Err(format!("unsupported MQTT protocol level {other}"))
        }
        _ => return Err("not an MQTT CONNECT (protocol name)".into()),
    }
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err("CONNECT flags: reserved bit set".into());
    }
    let _keep_alive = r.u16()?;
    if level == 5 {
        r.properties()?;
    }
    let client_id = r.string("client id")?;
    if flags & 0x04 != 0 {
        if level == 5 {
            r.properties()?;
        }
        r.string("will topic")?;
        r.binary()?;
    }
    let username = if flags & 0x80 != 0 {
        Some(r.string("user name")?)
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(r.binary()?.to_vec())
    } else {
        None
    };
    Ok(Connect {
        level,
        client_id,
        username,
        password,
    })
}

/// The topic of a PUBLISH and whether its payload is empty; `aliases` holds an MQTT 5
/// connection's topic aliases. `None` when the packet cannot be read (the broker judges it).
pub fn publish_topic(
    frame: &Frame,
    packet: &[u8],
    v5: bool,
    aliases: &mut HashMap<u16, String>,
) -> Option<(String, bool)> {
    let mut r = Reader {
        buf: packet.get(frame.header..frame.len)?,
        what: "PUBLISH",
    };
    let mut topic = r.string("topic").ok()?;
    if (frame.first >> 1) & 0x03 != 0 {
        r.u16().ok()?;
    }
    if v5 {
        let props = r.properties().ok()?;
        if let Some(alias) = topic_alias(props) {
            if topic.is_empty() {
                topic = aliases.get(&alias)?.clone();
            } else {
                aliases.insert(alias, topic.clone());
            }
        }
    }
    Some((topic, r.buf.is_empty()))
}

/// The Topic Alias property (0x23) among MQTT 5 properties, if present and readable.
fn topic_alias(mut props: &[u8]) -> Option<u16> {
    while !props.is_empty() {
        let (id, used) = varint(props)?;
        props = props.get(used..)?;
        let skip = match id {
            0x23 => return Some(u16::from_be_bytes([*props.first()?, *props.get(1)?])),
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => 1,
            0x13 | 0x21 | 0x22 => 2,
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x0b => varint(props)?.1,
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1a | 0x1c | 0x1f => {
                2 + usize::from(u16::from_be_bytes([*props.first()?, *props.get(1)?]))
            }
            0x26 => {
                let key = 2 + usize::from(u16::from_be_bytes([*props.first()?, *props.get(1)?]));
                let value = props.get(key..key + 2)?;
                key + 2 + usize::from(u16::from_be_bytes([value[0], value[1]]))
            }
            _ => return None,
        };
        props = props.get(skip..)?;
    }
    None
}

/// Why the door refuses a CONNECT, as CONNACK codes of MQTT 3.1.1 and 5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// The listener speaks another protocol level.
    ProtocolVersion,
    IdentifierRejected,
    BadUserNameOrPassword,
    NotAuthorized,
}

impl Refusal {
    /// The CONNACK return code (3.1 / 3.1.1) and reason code (5).
    pub fn codes(self) -> (u8, u8) {
        match self {
            Refusal::ProtocolVersion => (1, 0x84),
            Refusal::IdentifierRejected => (2, 0x85),
            Refusal::BadUserNameOrPassword => (4, 0x86),
            Refusal::NotAuthorized => (5, 0x87),
        }
    }
}

/// A refusing CONNACK in the client's protocol level.
pub fn connack(level: u8, refusal: Refusal) -> Vec<u8> {
    let (v4, v5) = refusal.codes();
    if level == 5 {
        // Session present 0, reason, no properties.
        vec![0x20, 3, 0, v5, 0]
    } else {
        vec![0x20, 2, 0, v4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &[u8]) -> Vec<u8> {
        let mut out = (s.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(s);
        out
    }

    /// A CONNECT packet (fixed header included).
    fn connect(level: u8, id: &str, user: Option<&str>, pw: Option<&str>, will: bool) -> Vec<u8> {
        let name: &[u8] = if level == 3 { b"MQIsdp" } else { b"MQTT" };
        let mut flags = 0x02;
        flags |= if will { 0x04 } else { 0 };
        flags |= if user.is_some() { 0x80 } else { 0 };
        flags |= if pw.is_some() { 0x40 } else { 0 };
        let mut body = string(name);
        body.extend_from_slice(&[level, flags, 0, 60]);
        if level == 5 {
            body.extend_from_slice(&[5, 0x11, 0, 0, 0, 10]); // session expiry
        }
        body.extend(string(id.as_bytes()));
        if will {
            if level == 5 {
                body.push(0);
            }
            body.extend(string(b"will/topic"));
            body.extend(string(b"bye"));
        }
        if let Some(u) = user {
            body.extend(string(u.as_bytes()));
        }
        if let Some(p) = pw {
            body.extend(string(p.as_bytes()));
        }
        let mut out = vec![0x10, body.len() as u8];
        out.extend(body);
        out
    }

    fn parse(packet: &[u8]) -> Result<Connect, String> {
        let f = frame(packet)?.expect("complete");
        assert_eq!(f.kind(), CONNECT);
        parse_connect(&packet[f.header..f.len])
    }

    #[test]
    fn connect_of_each_level() {
        for level in [3, 4, 5] {
            let c = parse(&connect(level, "plc-1", Some("plc"), Some("pw"), true)).unwrap();
            assert_eq!(c.level, level);
            assert_eq!(c.client_id, "plc-1");
            assert_eq!(c.username.as_deref(), Some("plc"));
            assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
            let anon = parse(&connect(level, "", None, None, false)).unwrap();
            assert_eq!((anon.client_id.as_str(), anon.username), ("", None));
        }
    }

    #[test]
    fn bad_connects_are_explained_not_panics() {
        let good = connect(4, "id", Some("u"), Some("p"), false);
        // Every truncation of the body is an error, never a panic.
        for cut in 2..good.len() {
            let body = &good[2..cut];
            assert!(parse_connect(body).is_err(), "cut at {cut}");
        }
        let mut level9 = good.clone();
        level9[8] = 9;
        assert!(parse(&level9).unwrap_err().contains("level 9"));
        let mut http = good.clone();
        http[4..8].copy_from_slice(b"HTTP");
        assert!(parse(&http).unwrap_err().contains("protocol name"));
        let mut reserved = good;
        reserved[9] |= 1;
        assert!(parse(&reserved).unwrap_err().contains("reserved"));
    }

    #[test]
    fn frames_need_all_their_bytes() {
        assert_eq!(frame(&[]).unwrap(), None);
        assert_eq!(frame(&[0x30]).unwrap(), None);
        assert_eq!(frame(&[0x30, 3, 0, 1]).unwrap(), None);
        let f = frame(&[0x30, 3, 0, 1, b'a', 0xff]).unwrap().unwrap();
        assert_eq!((f.kind(), f.header, f.len), (PUBLISH, 2, 5));
        // 200 = 0xc8: two length bytes.
        let mut long = vec![0x30, 0xc8, 0x01];
        long.resize(3 + 200, 0);
        assert_eq!(frame(&long).unwrap().unwrap().len, 203);
        assert!(frame(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }

    fn publish(qos: u8, topic: &str, props: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
        let mut body = string(topic.as_bytes());
        if qos > 0 {
            body.extend_from_slice(&[0, 7]);
        }
        if let Some(p) = props {
            body.push(p.len() as u8);
            body.extend_from_slice(p);
        }
        body.extend_from_slice(payload);
        let mut out = vec![0x30 | (qos << 1), body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn publish_topics_and_aliases() {
        let mut aliases = HashMap::new();
        let p = publish(1, "lps/edge/profile/set", None, b"night");
        let f = frame(&p).unwrap().unwrap();
        assert_eq!(
            publish_topic(&f, &p, false, &mut aliases),
            Some(("lps/edge/profile/set".into(), false))
        );
        let p = publish(0, "a/b", None, b"");
        let f = frame(&p).unwrap().unwrap();
        assert_eq!(
            publish_topic(&f, &p, false, &mut aliases),
            Some(("a/b".into(), true))
        );
        // MQTT 5: a content type, then alias 3 set, then used with an empty topic.
        let props = [0x03, 0, 4, b'j', b's', b'o', b'n', 0x23, 0, 3];
        let p = publish(1, "lps/edge/device/set", Some(&props), b"{}");
        let f = frame(&p).unwrap().unwrap();
        assert_eq!(
            publish_topic(&f, &p, true, &mut aliases).unwrap().0,
            "lps/edge/device/set"
        );
        let p = publish(1, "", Some(&[0x23, 0, 3]), b"{}");
        let f = frame(&p).unwrap().unwrap();
        assert_eq!(
            publish_topic(&f, &p, true, &mut aliases).unwrap().0,
            "lps/edge/device/set"
        );
        let p = publish(1, "", Some(&[0x23, 0, 9]), b"{}");
        let f = frame(&p).unwrap().unwrap();
        assert_eq!(publish_topic(&f, &p, true, &mut aliases), None);
    }

    #[test]
    fn connacks_in_the_clients_level() {
        assert_eq!(connack(4, Refusal::NotAuthorized), vec![0x20, 2, 0, 5]);
        assert_eq!(
            connack(3, Refusal::BadUserNameOrPassword),
            vec![0x20, 2, 0, 4]
        );
        assert_eq!(
            connack(5, Refusal::IdentifierRejected),
            vec![0x20, 3, 0, 0x85, 0]
        );
        assert_eq!(connack(5, Refusal::NotAuthorized)[3], 0x87);
    }
}
