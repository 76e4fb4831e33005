//! The command line: check-config, print-config, exit codes, secrets never printed.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
}

fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn shipped_config_is_valid() {
    let out = bin()
        .args(["check-config", "bridge-config/lps-bridge.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_key_is_rejected_naming_the_key() {
    let (_d, path) = write("[mqtt]\nbase_topic = \"x\"\nbase_topik = \"y\"\n");
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("base_topik"), "{err}");
}

#[test]
fn bad_address_is_rejected_naming_the_key() {
    let (_d, path) = write("[lps]\nlisten = \"8888\"\n");
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lps.listen") && err.contains("8888"), "{err}");
}

#[test]
fn print_config_redacts_the_token_from_file_and_env() {
    let (_d, path) = write("[lps]\nserver_token = \"file-secret\"\n");
    let out = bin()
        .args(["print-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        !text.contains("file-secret") && text.contains("<redacted>"),
        "{text}"
    );
    let out = bin()
        .arg("print-config")
        .env("LPS_BRIDGE_SERVER_TOKEN", "env-secret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("env-secret") && text.contains("<redacted>"),
        "{text}"
    );
    assert!(text.contains("base_topic = \"lps/edge\""), "{text}");
}

#[test]
fn run_with_a_bad_config_exits_64_before_binding() {
    let (_d, path) = write("[store]\ndir = \"\"\n");
    let out = bin().args(["run", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("store.dir"));
}

#[test]
fn check_config_prints_the_next_three_firings_and_refuses_bad_schedules() {
    let (_d, path) = write(
        "[[schedules]]\nname = \"night shift\"\ncron = \"0 22 * * 1-5\"\ntimezone = \"Europe/Berlin\"\nprofile = \"night\"\n\n[[schedules]]\nname = \"nightly restart\"\ncron = \"30 3 * * *\"\ntimezone = \"UTC\"\naction = { app = \"vision\", command = \"restart\" }\n",
    );
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("schedule 'night shift': 0 22 * * 1-5 (Europe/Berlin)"),
        "{text}"
    );
    assert_eq!(text.matches("  next: ").count(), 6, "{text}");
    assert!(text.contains("T22:00:00+0"), "{text}");
    assert!(text.contains("T03:30:00+00:00"), "{text}");

    for (bad, named) in [
        ("cron = \"0 22 * *\"\ntimezone = \"UTC\"", "5 fields"),
        (
            "cron = \"0 22 * * 1-5\"\ntimezone = \"Mars/Olympus\"",
            "Mars/Olympus",
        ),
    ] {
        let (_d, path) = write(&format!(
            "[[schedules]]\nname = \"s\"\n{bad}\nprofile = \"night\"\n"
        ));
        let out = bin().arg("check-config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(64));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("schedules") && err.contains(named), "{err}");
    }
}

#[test]
fn demo_with_a_bad_config_exits_64_like_run() {
    let (_d, path) = write("[lps]\nlisten = \"8888\"\n");
    let out = bin()
        .args(["demo", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lps.listen"));
    // A subsystem's refusal too (`app::prepare`, the same check as `run` and `check-config`).
    let (_d, path) = write(
        "[[rules]]\nname = \"typo\"\ntopic = \"plc/+/fault\"\npayload = \"1\"\naction = { app = \"{1}\", command = \"restrat\" }\n",
    );
    let out = bin()
        .args(["demo", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rule 'typo'") && err.contains("restrat"),
        "{err}"
    );
}
