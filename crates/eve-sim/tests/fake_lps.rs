//! A scriptable LPS for exercising the simulator's runtime over real HTTP
//! (tests only). Each endpoint answers 200 with its scripted message, or 204.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use prost::Message;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use eve_proto::common::{BootOrder, NetworkConfigOrigin};
use eve_proto::info::{BootReason, ZDeviceState, ZSwState};
use eve_proto::profile::{
    app_command, local_dev_cmd, AppBootConfig, AppBootConfigList, AppBootInfoList, AppCommand,
    BootOrderSource, LocalAppCmdList, LocalAppInfoList, LocalDevCmd, LocalDevInfo,
    LocalNetworkConfig, LocalProfile, NetworkInfo, NetworkPortConfig, RadioConfig, RadioStatus,
};
use eve_proto::PROTO_CONTENT_TYPE;
use eve_sim::{spawn, AppSpec, Endpoint, SimHandle, SimOptions};

const TOKEN: &str = "secret";

#[derive(Default)]
struct Script {
    profile: Option<LocalProfile>,
    radio: Option<RadioConfig>,
    app_cmds: Option<LocalAppCmdList>,
    dev_cmd: Option<LocalDevCmd>,
    boot: Option<AppBootConfigList>,
    network: Option<LocalNetworkConfig>,
    /// Answer local_profile with this content type instead.
    profile_content_type: Option<&'static str>,
    /// Every request: (path, body).
    seen: Vec<(String, Vec<u8>)>,
}

#[derive(Clone)]
struct Lps {
    script: Arc<Mutex<Script>>,
    signals: broadcast::Sender<String>,
}

impl Lps {
    fn with<R>(&self, f: impl FnOnce(&mut Script) -> R) -> R {
        f(&mut self.script.lock().unwrap())
    }

    fn last_body<M: Message + Default>(&self, path: &str) -> Option<M> {
        self.with(|s| {
            s.seen
                .iter()
                .rev()
                .find(|(p, _)| p == path)
                .and_then(|(_, b)| M::decode(b.as_slice()).ok())
        })
    }

    fn bodies<M: Message + Default>(&self, path: &str) -> Vec<M> {
        self.with(|s| {
            s.seen
                .iter()
                .filter(|(p, _)| p == path)
                .filter_map(|(_, b)| M::decode(b.as_slice()).ok())
                .collect()
        })
    }

    fn requests(&self) -> usize {
        self.with(|s| s.seen.len())
    }
}

fn proto(msg: &Option<impl Message>) -> Response {
    match msg {
        Some(m) => (
            [(header::CONTENT_TYPE, PROTO_CONTENT_TYPE)],
            m.encode_to_vec(),
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn start_lps() -> (Lps, String) {
    let (signals, _) = broadcast::channel(16);
    let lps = Lps {
        script: Arc::default(),
        signals,
    };
    let note = |path: &'static str| {
        move |State(l): State<Lps>, body: Bytes| async move {
            l.with(|s| s.seen.push((path.to_string(), body.to_vec())));
            l.with(|s| match path {
                "/api/v1/radio" => proto(&s.radio),
                "/api/v1/appinfo" => proto(&s.app_cmds),
                "/api/v1/devinfo" => proto(&s.dev_cmd),
                "/api/v1/appbootinfo" => proto(&s.boot),
                "/api/v1/network" => proto(&s.network),
                _ => StatusCode::NO_CONTENT.into_response(),
            })
        }
    };
    let app = Router::new()
        .route(
            "/api/v1/local_profile",
            get(|State(l): State<Lps>, headers: HeaderMap| async move {
                assert!(headers.contains_key("x-request-id"));
                l.with(|s| {
                    s.seen.push(("/api/v1/local_profile".into(), Vec::new()));
                    match (&s.profile, s.profile_content_type) {
                        (Some(p), Some(ct)) => {
                            ([(header::CONTENT_TYPE, ct)], p.encode_to_vec()).into_response()
                        }
                        (p, _) => proto(p),
                    }
                })
            }),
        )
        .route("/api/v1/radio", post(note("/api/v1/radio")))
        .route("/api/v1/appinfo", post(note("/api/v1/appinfo")))
        .route("/api/v1/devinfo", post(note("/api/v1/devinfo")))
        .route("/api/v1/appbootinfo", post(note("/api/v1/appbootinfo")))
        .route("/api/v1/network", post(note("/api/v1/network")))
        .route("/api/v1/location", post(note("/api/v1/location")))
        .route(
            "/api/v1/signal",
            get(|State(l): State<Lps>| async move {
                let lines = BroadcastStream::new(l.signals.subscribe())
                    .filter_map(|r| r.ok())
                    .map(|line| Ok::<_, std::io::Error>(Bytes::from(line + "\n")));
                Body::from_stream(lines)
            }),
        )
        .with_state(lps.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (lps, url)
}

fn sim(url: &str, speed: f64, global: &str) -> SimHandle {
    let mut opts = SimOptions::new(url, TOKEN);
    opts.apps = AppSpec::parse_list("plc,vision@day,batch@night").unwrap();
    opts.speed = speed;
    opts.global_profile = global.to_string();
    spawn(opts)
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn profile_switch_and_app_restart_over_http() {
    let (lps, url) = start_lps().await;
    let sim = sim(&url, 60.0, "day");
    lps.with(|s| {
        s.profile = Some(LocalProfile {
            local_profile: "night".into(),
            server_token: TOKEN.into(),
        })
    });
    let snap = sim
        .wait_for(
            |s| {
                s.app("batch").is_some_and(|a| a.state == ZSwState::Running)
                    && s.app("vision").is_some_and(|a| a.state == ZSwState::Halted)
            },
            WAIT,
        )
        .await
        .expect("profile applied");
    assert_eq!(snap.effective_profile, "night");
    assert_eq!(snap.app("plc").unwrap().state, ZSwState::Running);

    lps.with(|s| {
        s.app_cmds = Some(LocalAppCmdList {
            server_token: TOKEN.into(),
            app_commands: vec![AppCommand {
                id: String::new(),
                displayname: "plc".into(),
                timestamp: 100,
                command: app_command::Command::Restart as i32,
            }],
        })
    });
    sim.wait_for(
        |s| s.app("plc").is_some_and(|a| a.last_cmd_timestamp == 100),
        WAIT,
    )
    .await
    .expect("restart completed");
    // The LPS sees it completed, and the app went through RESTARTING.
    let reports: Vec<LocalAppInfoList> = lps.bodies("/api/v1/appinfo");
    let plc = |l: &LocalAppInfoList| l.apps_info.iter().find(|a| a.name == "plc").cloned();
    assert!(reports
        .iter()
        .any(|l| plc(l).unwrap().state == ZSwState::Restarting as i32));
    tokio::time::timeout(WAIT, async {
        while lps
            .last_body::<LocalAppInfoList>("/api/v1/appinfo")
            .and_then(|l| plc(&l))
            .is_none_or(|a| a.last_cmd_timestamp != 100)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("completion reported");
    let snap = sim.snapshot();
    assert_eq!(snap.app("plc").unwrap().restart_count, 1, "not re-run");
    assert_eq!(snap.received.len(), 2);
    sim.stop().await;
}

#[tokio::test]
async fn wrong_token_and_wrong_content_type_are_ignored() {
    let (lps, url) = start_lps().await;
    let sim = sim(&url, 60.0, "");
    lps.with(|s| {
        s.profile = Some(LocalProfile {
            local_profile: "night".into(),
            server_token: "wrong".into(),
        })
    });
    sim.wait_for(
        |s| s.counters(Endpoint::LocalProfile).token_mismatches >= 1,
        WAIT,
    )
    .await
    .expect("mismatch counted");
    lps.with(|s| {
        s.profile.as_mut().unwrap().server_token = TOKEN.into();
        s.profile_content_type = Some("application/json");
    });
    let snap = sim
        .wait_for(
            |s| {
                s.counters(Endpoint::LocalProfile)
                    .last_error
                    .is_some_and(|e| e.contains("response header error"))
            },
            WAIT,
        )
        .await
        .expect("header error counted");
    assert_eq!(snap.local_profile, "");
    assert!(snap.received.is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn reboot_then_poweroff() {
    let (lps, url) = start_lps().await;
    let sim = sim(&url, 60.0, "");
    lps.with(|s| {
        s.dev_cmd = Some(LocalDevCmd {
            server_token: TOKEN.into(),
            timestamp: 5,
            command: local_dev_cmd::Command::GracefulReboot as i32,
        })
    });
    let snap = sim
        .wait_for(
            |s| {
                s.boot_count == 2
                    && s.apps.iter().all(|a| a.state == ZSwState::Running)
                    && s.device_state == ZDeviceState::ZdeviceStateOnline
            },
            WAIT,
        )
        .await
        .expect("rebooted");
    assert_eq!(snap.last_boot_reason, BootReason::RebootCmd);
    assert_eq!(snap.dev_last_cmd_timestamp, 5);
    let reports: Vec<LocalDevInfo> = lps.bodies("/api/v1/devinfo");
    assert!(reports
        .iter()
        .any(|d| d.state == ZDeviceState::ZdeviceStateRebooting as i32));

    lps.with(|s| {
        s.dev_cmd = Some(LocalDevCmd {
            server_token: TOKEN.into(),
            timestamp: 6,
            command: local_dev_cmd::Command::GracefulPoweroff as i32,
        })
    });
    let snap = sim
        .wait_for(|s| s.powered_off, WAIT)
        .await
        .expect("powered off");
    assert!(snap.apps.iter().all(|a| a.state == ZSwState::Halted));
    let last: LocalDevInfo = lps.last_body("/api/v1/devinfo").unwrap();
    assert_eq!(last.state, ZDeviceState::ZdeviceStatePoweringOff as i32);
    assert_eq!(last.last_cmd_timestamp, 6);
    // Silent from now on.
    let n = lps.requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lps.requests(), n);
    sim.stop().await;
}

#[tokio::test]
async fn signal_triggers_an_immediate_poll() {
    let (lps, url) = start_lps().await;
    // Real timing: without the signal the profile poll would take a minute.
    let sim = sim(&url, 1.0, "");
    // The stream is open and the first (immediate) profile poll is done.
    sim.wait_for(
        |s| s.signal.streams_opened >= 1 && s.counters(Endpoint::LocalProfile).requests >= 1,
        WAIT,
    )
    .await
    .expect("stream open");
    lps.with(|s| {
        s.profile = Some(LocalProfile {
            local_profile: "day".into(),
            server_token: TOKEN.into(),
        })
    });
    let _ = lps
        .signals
        .send(r#"{"pendingChanges":["CONFIG_ENDPOINT_LOCAL_PROFILE"]}"#.to_string());
    let snap = sim
        .wait_for(|s| s.effective_profile == "day", Duration::from_secs(5))
        .await
        .expect("profile fetched on signal");
    assert_eq!(snap.signal.accepted, 1);
    sim.stop().await;
}

/// Polls `lps` until its last body on `path` satisfies `pred`.
async fn until_reported<M: Message + Default>(lps: &Lps, path: &str, pred: impl Fn(&M) -> bool) {
    tokio::time::timeout(WAIT, async {
        while !lps.last_body::<M>(path).is_some_and(|m| pred(&m)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path} never reported the expected state"));
}

#[tokio::test]
async fn desired_state_endpoints_over_http() {
    let (lps, url) = start_lps().await;
    let sim = sim(&url, 60.0, "");
    lps.with(|s| {
        s.radio = Some(RadioConfig {
            server_token: TOKEN.into(),
            radio_silence: true,
        });
        s.boot = Some(AppBootConfigList {
            server_token: TOKEN.into(),
            app_configs: vec![AppBootConfig {
                id: String::new(),
                displayname: "vision".into(),
                usb_boot: BootOrder::Usb as i32,
            }],
        });
        s.network = Some(LocalNetworkConfig {
            server_token: TOKEN.into(),
            ports: vec![NetworkPortConfig {
                logical_label: "eth1".into(),
                ip_addresses: vec!["10.30.0.5/24".into()],
                mtu: 1400,
                ..Default::default()
            }],
        });
    });
    until_reported::<RadioStatus>(&lps, "/api/v1/radio", |r| r.radio_silence).await;
    until_reported::<AppBootInfoList>(&lps, "/api/v1/appbootinfo", |l| {
        l.apps_boot_info.iter().any(|a| {
            a.displayname == "vision"
                && a.boot_order == BootOrder::Usb as i32
                && a.source == BootOrderSource::Lps as i32
        })
    })
    .await;
    until_reported::<NetworkInfo>(&lps, "/api/v1/network", |n| {
        n.latest_config.iter().any(|p| {
            p.logical_label == "eth1"
                && p.mtu == 1400
                && p.config_source.as_ref().map(|c| c.origin)
                    == Some(NetworkConfigOrigin::Lps as i32)
        }) && n.local_config.as_ref().is_some_and(|l| l.ports.len() == 1)
    })
    .await;
    let snap = sim.snapshot();
    assert!(snap.radio_silence);
    assert_eq!(snap.app("vision").unwrap().boot_order, BootOrder::Usb);
    assert_eq!(snap.network.local_ports.len(), 1);
    sim.stop().await;
}
