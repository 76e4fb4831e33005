//! The command line: check-config, print-config, exit codes, secrets never printed.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lps-bridge"))
}

/// Runs `cmd`, checks it exits with `code` (showing its stderr if not), returns its stderr.
fn exits_with(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    err
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
    let err = exits_with(bin().arg("check-config").arg(&path), 64);
    assert!(err.contains("base_topik"), "{err}");
}

#[test]
fn bad_address_is_rejected_naming_the_key() {
    let (_d, path) = write("[lps]\nlisten = \"8888\"\n");
    let err = exits_with(bin().arg("check-config").arg(&path), 64);
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
    let err = exits_with(bin().args(["run", "--config"]).arg(&path), 64);
    assert!(err.contains("store.dir"));
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
        let err = exits_with(bin().arg("check-config").arg(&path), 64);
        assert!(err.contains("schedules") && err.contains(named), "{err}");
    }
}

#[test]
fn demo_with_a_bad_config_exits_64_like_run() {
    let (_d, path) = write("[lps]\nlisten = \"8888\"\n");
    let err = exits_with(bin().args(["demo", "--config"]).arg(&path), 64);
    assert!(err.contains("lps.listen"));
    // A subsystem's refusal too (`app::prepare`, the same check as `run` and `check-config`).
    let (_d, path) = write(
        "[[rules]]\nname = \"typo\"\ntopic = \"plc/+/fault\"\npayload = \"1\"\naction = { app = \"{1}\", command = \"restrat\" }\n",
    );
    let err = exits_with(bin().args(["demo", "--config"]).arg(&path), 64);
    assert!(
        err.contains("rule 'typo'") && err.contains("restrat"),
        "{err}"
    );
}

#[test]
fn every_subcommand_takes_the_config_as_a_flag_or_a_positional() {
    let (_d, path) = write("[mqtt]\nbase_topic = \"plant/one\"\n");
    for sub in ["check-config", "print-config"] {
        let positional = bin().arg(sub).arg(&path).output().unwrap();
        let flag = bin().args([sub, "--config"]).arg(&path).output().unwrap();
        assert!(
            positional.status.success() && flag.status.success(),
            "{sub}"
        );
        assert_eq!(
            positional.stdout, flag.stdout,
            "{sub}: both forms mean the same"
        );
    }
    let printed = bin().arg("print-config").arg(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&printed.stdout).contains("base_topic = \"plant/one\""));
    // Both forms at once is a usage error, not a silent pick.
    let both = bin()
        .args(["run", "--config"])
        .arg(&path)
        .arg(&path)
        .output()
        .unwrap();
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
}

#[test]
fn every_option_of_every_subcommand_has_a_help_text() {
    let out = bin().args(["run", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let config_line = text
        .lines()
        .find(|l| l.contains("--config <FILE>"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(config_line.contains("The config file"), "{text}");
    for sub in [
        "run",
        "demo",
        "simulate-eve",
        "print-config",
        "check-config",
        "hash-password",
    ] {
        let out = bin().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub}");
        let text = String::from_utf8_lossy(&out.stdout);
        // An option line is `  -c, --name <V>  help`, or the option alone with its help on the
        // next line (clap does that when a help text is long); without help, neither.
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.starts_with('-')) {
            let parts = line.split("  ").filter(|p| !p.trim().is_empty()).count();
            let next = lines.get(i + 1).copied().unwrap_or("");
            assert!(
                parts >= 2 || (!next.is_empty() && !next.starts_with('-')),
                "{sub}: '{line}' has no help text"
            );
        }
    }
}

#[test]
fn a_missing_file_exits_66_and_an_invalid_one_64() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    for args in [
        vec!["check-config".into(), missing.display().to_string()],
        vec![
            "print-config".into(),
            "--config".into(),
            missing.display().to_string(),
        ],
        vec![
            "run".into(),
            "--config".into(),
            missing.display().to_string(),
        ],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(66), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("nope.toml") && err.contains("no such file"),
            "{err}"
        );
    }
    let (_d, path) = write("[lps]\nlisten = 8888\n");
    let err = exits_with(bin().arg("check-config").arg(&path), 64);
    assert!(!err.contains("no such file"));
}

#[test]
fn a_missing_rule_file_is_reported_resolved_and_relative_to_the_config() {
    let (d, path) = write("rule_files = [\"rules/plant.toml\"]\n");
    let err = exits_with(bin().arg("check-config").arg(&path), 66);
    let resolved = d.path().join("rules/plant.toml");
    assert!(
        err.contains(&resolved.display().to_string())
            && err.contains("relative to the config file's directory")
            && err.contains(&d.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn environment_variables_set_any_key_and_print_config_marks_them() {
    let (_d, path) = write("[mqtt]\nbase_topic = \"from/file\"\n");
    let out = bin()
        .arg("print-config")
        .arg(&path)
        .env("LPS_BRIDGE_MQTT_LISTEN", "127.0.0.1:1999")
        .env("LPS_BRIDGE_STORE_DIR", "/tmp/env-data")
        .env("LPS_BRIDGE_MQTT_MAX_CONNECTIONS", "9")
        .env(
            "LPS_BRIDGE_MQTT_USERS",
            r#"[{name="plc", password="user-secret"}]"#,
        )
        .env("LPS_BRIDGE_OPERATOR_TOKEN", "op-secret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "listen = \"127.0.0.1:1999\"  # from LPS_BRIDGE_MQTT_LISTEN",
        "dir = \"/tmp/env-data\"  # from LPS_BRIDGE_STORE_DIR",
        "max_connections = 9  # from LPS_BRIDGE_MQTT_MAX_CONNECTIONS",
        "[[mqtt.users]]  # from LPS_BRIDGE_MQTT_USERS",
        "token = \"<redacted>\"  # from LPS_BRIDGE_OPERATOR_TOKEN",
        "base_topic = \"from/file\"",
    ] {
        assert!(text.lines().any(|l| l == line), "no '{line}' in\n{text}");
    }
    assert!(!text.contains("secret\""), "{text}");

    // A misspelt variable is refused naming the closest one; a wrong value naming the key.
    let err = exits_with(
        bin()
            .arg("check-config")
            .arg(&path)
            .env("LPS_BRIDGE_MQTT_LISTN", "127.0.0.1:1999"),
        64,
    );
    assert!(
        err.contains("LPS_BRIDGE_MQTT_LISTN") && err.contains("LPS_BRIDGE_MQTT_LISTEN"),
        "{err}"
    );
    let err = exits_with(
        bin()
            .args(["run", "--config"])
            .arg(&path)
            .env("LPS_BRIDGE_OPERATOR_PROTECT_READS", "maybe"),
        64,
    );
    assert!(
        err.contains("operator.protect_reads") && err.contains("'maybe'"),
        "{err}"
    );
}

#[test]
fn a_store_dir_this_user_may_not_write_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let data = locked.join("data");
    let (cfg_dir, path) = write(
        "[lps]\nlisten = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"\"\n[operator]\nlisten = \"\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        // root may write anywhere: run as nobody, who may read the binary and the config.
        std::fs::set_permissions(cfg_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_lps-bridge"),
        ]);
        c
    } else {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
        bin()
    };
    let out = cmd
        .args(["run", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(73), "{err}");
    assert!(
        err.contains("--data-dir")
            && err.contains("chown")
            && err.contains(&data.display().to_string()),
        "{err}"
    );
}
