//! App boot order (appbootinfo): the LPS cache and the effective order.
//! The simulator has no controller or device-property boot order, so
//! without an LPS entry an app reports UNSPECIFIED from source UNSPECIFIED.

use super::apps::{find_app, parse_app_ref};
use super::node::{Effect, SimState};
use super::snapshot::Endpoint;
use eve_proto::common::BootOrder;
use eve_proto::profile::{AppBootConfig, AppBootInfo, AppBootInfoList, BootOrderSource};

fn boot_order_name(order: i32) -> String {
    BootOrder::try_from(order)
        .map(|o| o.as_str_name().to_string())
        .unwrap_or_else(|_| order.to_string())
}

impl SimState {
    /// Effective boot order of app `i` and where it comes from (LPS wins).
    pub fn effective_boot(&self, i: usize) -> (i32, BootOrderSource) {
        match self.boot_cache.get(&self.apps[i].id) {
            Some(&order) if order != BootOrder::Unspecified as i32 => (order, BootOrderSource::Lps),
            _ => (BootOrder::Unspecified as i32, BootOrderSource::Unspecified),
        }
    }

    /// A 200 from POST appbootinfo with a good token: the full desired state
    /// (EVE `processReceivedAppBootConfig`). Listed apps get their order,
    /// UNSPECIFIED deletes the entry, cached apps not listed are reset.
    pub fn apply_boot_config(&mut self, configs: &[AppBootConfig]) -> Vec<Effect> {
        let before: Vec<_> = (0..self.apps.len())
            .map(|i| self.effective_boot(i))
            .collect();
        let mut seen = Vec::new();
        for (n, c) in configs.iter().enumerate() {
            let id = match parse_app_ref(&c.id, &c.displayname) {
                Ok(id) => id,
                Err(why) => {
                    tracing::warn!(index = n, reason = ?why, "sim: boot config skipped");
                    continue;
                }
            };
            let Some(i) = find_app(&self.apps, id, &c.displayname) else {
                tracing::warn!(index = n, "sim: boot config for unknown app skipped");
                continue;
            };
            let uuid = self.apps[i].id;
            seen.push(uuid);
            if c.usb_boot == BootOrder::Unspecified as i32 {
                self.boot_cache.remove(&uuid);
            } else {
                self.boot_cache.insert(uuid, c.usb_boot);
            }
        }
        self.boot_cache.retain(|id, _| seen.contains(id));

        let mut changed = false;
        for (i, old) in before.into_iter().enumerate() {
            let new = self.effective_boot(i);
            if new != old {
                changed = true;
                let name = self.apps[i].name.clone();
                self.receive(
                    Endpoint::AppBootInfo,
                    format!("boot_order:{}", boot_order_name(new.0)),
                    Some(name),
                    0,
                );
            }
        }
        // EVE's ApplyAppBootConfig posts appbootinfo again when the
        // effective order changed, so the LPS sees it applied.
        if changed {
            vec![Effect::Trigger(Endpoint::AppBootInfo)]
        } else {
            Vec::new()
        }
    }

    pub fn build_appbootinfo(&self) -> AppBootInfoList {
        AppBootInfoList {
            apps_boot_info: (0..self.apps.len())
                .filter(|&i| !self.apps[i].removed)
                .map(|i| {
                    let (order, source) = self.effective_boot(i);
                    AppBootInfo {
                        id: self.apps[i].id.to_string(),
                        displayname: self.apps[i].name.clone(),
                        boot_order: order,
                        source: source as i32,
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::state_with;

    fn cfg(id: &str, name: &str, order: BootOrder) -> AppBootConfig {
        AppBootConfig {
            id: id.to_string(),
            displayname: name.to_string(),
            usb_boot: order as i32,
        }
    }

    fn orders(s: &SimState) -> Vec<(i32, BootOrderSource)> {
        (0..s.apps.len()).map(|i| s.effective_boot(i)).collect()
    }

    const UNSET: (i32, BootOrderSource) = (0, BootOrderSource::Unspecified);

    #[test]
    fn full_state_semantics() {
        let mut s = state_with("");
        let day_id = s.apps[1].id.to_string();
        let e = s.apply_boot_config(&[
            cfg("", "plc", BootOrder::Usb),
            cfg(&day_id, "day", BootOrder::Nousb),
            cfg("", "nosuchapp", BootOrder::Usb),
            cfg("bad-uuid", "night", BootOrder::Usb),
        ]);
        assert_eq!(e, vec![Effect::Trigger(Endpoint::AppBootInfo)]);
        assert_eq!(
            orders(&s),
            vec![
                (BootOrder::Usb as i32, BootOrderSource::Lps),
                (BootOrder::Nousb as i32, BootOrderSource::Lps),
                UNSET,
            ]
        );
        assert_eq!(s.received.len(), 2);

        // Same content again behaves like 204.
        let e = s.apply_boot_config(&[
            cfg("", "plc", BootOrder::Usb),
            cfg(&day_id, "", BootOrder::Nousb),
        ]);
        assert!(e.is_empty());
        assert_eq!(s.received.len(), 2);

        // `day` not listed: reset; plc UNSPECIFIED: deleted.
        let e = s.apply_boot_config(&[cfg("", "plc", BootOrder::Unspecified)]);
        assert_eq!(e.len(), 1);
        assert_eq!(orders(&s), vec![UNSET, UNSET, UNSET]);
        assert!(s.boot_cache.is_empty());

        // Empty list clears everything.
        s.apply_boot_config(&[cfg("", "night", BootOrder::Usb)]);
        assert_eq!(s.boot_cache.len(), 1);
        s.apply_boot_config(&[]);
        assert!(s.boot_cache.is_empty());
    }

    #[test]
    fn appbootinfo_reports_every_app() {
        let mut s = state_with("day");
        s.apply_boot_config(&[cfg("", "night", BootOrder::Usb)]);
        let list = s.build_appbootinfo();
        assert_eq!(list.apps_boot_info.len(), 3);
        assert_eq!(list.apps_boot_info[2].boot_order, BootOrder::Usb as i32);
        assert_eq!(list.apps_boot_info[2].source, BootOrderSource::Lps as i32);
        assert_eq!(
            list.apps_boot_info[0].source,
            BootOrderSource::Unspecified as i32
        );
    }
}
