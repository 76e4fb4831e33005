//! Primary host awareness: `spBv1.0/STATE/<host_id>` carries `{"online":bool,"timestamp":ms}`
//! (Sparkplug 3.0), retained by the host; a message older than the last one seen is ignored.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostState {
    pub online: bool,
    pub timestamp: u64,
}

pub fn topic(host_id: &str) -> String {
    format!("spBv1.0/STATE/{host_id}")
}

pub fn parse(payload: &[u8]) -> Result<HostState, String> {
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| {
        format!("STATE is not JSON ({e}); expected {{\"online\":true,\"timestamp\":<ms>}}")
    })?;
    match (v["online"].as_bool(), v["timestamp"].as_u64()) {
        (Some(online), Some(timestamp)) => Ok(HostState { online, timestamp }),
        _ => Err(format!(
            "STATE {v} lacks a boolean 'online' or an integer 'timestamp'"
        )),
    }
}

/// Follows one host's STATE: whether it is online now.
#[derive(Debug, Default)]
pub struct Host {
    last: Option<HostState>,
}

impl Host {
    /// Takes a STATE message; returns the new state, or `None` if it is older than the last one.
    pub fn update(&mut self, state: HostState) -> Option<HostState> {
        if self.last.is_some_and(|l| state.timestamp < l.timestamp) {
            return None;
        }
        self.last = Some(state);
        Some(state)
    }

    pub fn online(&self) -> bool {
        self.last.is_some_and(|l| l.online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_payloads_and_stale_messages() {
        let on = parse(br#"{"online":true,"timestamp":10}"#).unwrap();
        assert!(parse(b"ONLINE").unwrap_err().contains("not JSON"));
        assert!(parse(br#"{"online":"yes","timestamp":1}"#).is_err());
        let mut host = Host::default();
        assert!(!host.online());
        assert_eq!(host.update(on), Some(on));
        assert!(host.online());
        let stale = HostState {
            online: false,
            timestamp: 9,
        };
        assert_eq!(host.update(stale), None);
        assert!(host.online());
    }
}
