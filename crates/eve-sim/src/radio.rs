//! Radio silence (POST radio): one cellular modem `modem0`.

use super::node::{Effect, SimState};
use super::options::real;
use super::snapshot::Endpoint;
use eve_proto::info::{
    SimType, ZCellularControlProtocol, ZCellularModuleInfo, ZCellularOperatingState,
    ZCellularProvider, ZSimcardInfo,
};
use eve_proto::metrics::{
    CellularMetric, CellularPacketStats, CellularSignalStrength, NetworkStats,
};
use eve_proto::profile::{CellularStatus, RadioStatus};

pub(crate) const MODEM: &str = "modem0";

#[derive(Clone, Debug, Default)]
pub(crate) struct RadioState {
    /// Last desired state from the LPS (persisted on EVE).
    pub desired: Option<bool>,
    /// Radio silence actually in effect.
    pub applied: bool,
    /// A change is being applied (NIM has not confirmed it yet).
    pub in_progress: Option<u64>,
    pub config_error: String,
    /// Simulated traffic counters.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl RadioState {
    /// EVE re-applies the persisted radio config at boot.
    pub fn after_boot(&mut self) {
        self.in_progress = None;
        self.applied = self.desired.unwrap_or(false);
    }
}

impl SimState {
    /// While a change is in progress EVE does not POST radio.
    pub fn radio_busy(&self) -> bool {
        self.radio.in_progress.is_some()
    }

    /// A 200 from POST radio with a good token: the complete desired state.
    pub fn apply_radio_config(&mut self, radio_silence: bool) -> Vec<Effect> {
        if self.radio.desired != Some(radio_silence) {
            self.radio.desired = Some(radio_silence);
            self.receive(
                Endpoint::Radio,
                format!("radio_silence:{radio_silence}"),
                None,
                0,
            );
        }
        if radio_silence == self.radio.applied || self.radio.in_progress.is_some() {
            return Vec::new();
        }
        let seq = self.next_seq();
        self.radio.in_progress = Some(seq);
        vec![Effect::FinishRadioChange {
            seq,
            after: self.timing.scale(real::RADIO_APPLY),
        }]
    }

    /// NIM applied the requested state; the network status change makes EVE
    /// POST radio again.
    pub fn finish_radio_change(&mut self, seq: u64) -> Vec<Effect> {
        if self.radio.in_progress != Some(seq) {
            return Vec::new();
        }
        self.radio.in_progress = None;
        self.radio.applied = self.radio.desired.unwrap_or(false);
        tracing::info!(
            radio_silence = self.radio.applied,
            "sim: radio state applied"
        );
        vec![Effect::Trigger(Endpoint::Radio)]
    }

    pub fn build_radio_status(&mut self) -> RadioStatus {
        let silent = self.radio.applied;
        if !silent {
            self.radio.rx_bytes += 48_000 + rand::random_range(0..16_000u64);
            self.radio.tx_bytes += 12_000 + rand::random_range(0..8_000u64);
        }
        let module = ZCellularModuleInfo {
            name: "cdc-wdm0".to_string(),
            imei: "353533101234567".to_string(),
            firmware_version: "SWI9X50C_01.14.03.00".to_string(),
            model: "EM7565".to_string(),
            operating_state: if silent {
                ZCellularOperatingState::RadioOff
            } else {
                ZCellularOperatingState::OnlineAndConnected
            } as i32,
            control_protocol: ZCellularControlProtocol::Qmi as i32,
            manufacturer: "Sierra Wireless".to_string(),
        };
        let sim = ZSimcardInfo {
            name: "1".to_string(),
            cell_module_name: module.name.clone(),
            imsi: "262011234567890".to_string(),
            iccid: "89490200001234567890".to_string(),
            state: "present".to_string(),
            slot_number: 1,
            slot_activated: true,
            r#type: SimType::Physical as i32,
        };
        let provider = ZCellularProvider {
            plmn: "262-01".to_string(),
            description: "Telekom.de".to_string(),
            current_serving: !silent,
            roaming: false,
            forbidden: false,
        };
        let signal = if silent {
            CellularSignalStrength::default()
        } else {
            CellularSignalStrength {
                rssi: -67 + rand::random_range(-3..=3),
                rsrq: -9,
                rsrp: -95 + rand::random_range(-3..=3),
                snr: 12,
            }
        };
        let stats = |bytes: u64| NetworkStats {
            total_packets: bytes / 600,
            errors: 0,
            drops: 0,
            total_bytes: bytes,
        };
        RadioStatus {
            radio_silence: silent,
            config_error: self.radio.config_error.clone(),
            cellular_status: vec![CellularStatus {
                logicallabel: MODEM.to_string(),
                module: Some(module),
                sim_cards: vec![sim],
                providers: vec![provider],
                config_error: String::new(),
                probe_error: String::new(),
            }],
            cellular_metrics: vec![CellularMetric {
                logicallabel: MODEM.to_string(),
                signal_strength: Some(signal),
                packet_stats: Some(CellularPacketStats {
                    rx: Some(stats(self.radio.rx_bytes)),
                    tx: Some(stats(self.radio.tx_bytes)),
                }),
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::{settle, state_with};

    #[test]
    fn desired_state_applies_after_a_delay() {
        let mut s = state_with("");
        assert!(!s.build_radio_status().radio_silence);
        let e = s.apply_radio_config(true);
        assert!(s.radio_busy());
        assert!(!s.radio.applied, "not yet");
        let rest = settle(&mut s, e);
        assert_eq!(rest, vec![Effect::Trigger(Endpoint::Radio)]);
        assert!(s.radio.applied);
        let status = s.build_radio_status();
        assert!(status.radio_silence);
        assert_eq!(
            status.cellular_status[0]
                .module
                .as_ref()
                .unwrap()
                .operating_state,
            ZCellularOperatingState::RadioOff as i32
        );
        assert_eq!(s.received.len(), 1);

        // Same desired state: nothing. `false` lifts the silence.
        assert!(s.apply_radio_config(true).is_empty());
        let e = s.apply_radio_config(false);
        settle(&mut s, e);
        assert!(!s.radio.applied);
        assert_eq!(s.received.len(), 2);
    }

    #[test]
    fn radio_status_has_a_modem() {
        let mut s = state_with("");
        let st = s.build_radio_status();
        assert_eq!(st.cellular_status.len(), 1);
        assert_eq!(st.cellular_status[0].logicallabel, MODEM);
        assert_eq!(st.cellular_status[0].sim_cards.len(), 1);
        assert_eq!(st.cellular_status[0].providers.len(), 1);
        assert_eq!(st.cellular_metrics[0].logicallabel, MODEM);
    }
}
