//! The `custos` binary: commands, bad settings, create-admin, purge.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

fn custos(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_custos"));
    command.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("CUSTOS_") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("custos starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("custos finishes")
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("custos-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn unknown_commands_and_flags_print_usage_and_fail() {
    let dir = temp_dir();
    for args in [&["frobnicate"][..], &["serve", "--bogus"][..]] {
        let out = custos(&dir, args, &[], None);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Usage"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_settings_stop_the_start_with_one_line_naming_the_setting() {
    let dir = temp_dir();
    let cases: [(&str, &str); 5] = [
        ("CUSTOS_DATABASE_URL", "oracle://db.example/x"),
        ("CUSTOS_ENCRYPTION_KEYS", "k1:definitely-not-base64"),
        ("CUSTOS_BLIND_INDEX_PREVIOUS_KEY", "definitely-not-base64"),
        ("CUSTOS_BIND", "not an address"),
        ("CUSTOS_SCHEDULER_INTERVAL_SECS", "soon"),
    ];
    for (setting, value) in cases {
        let mut env = vec![(setting, value)];
        if setting == "CUSTOS_ENCRYPTION_KEYS" {
            env.push((
                "CUSTOS_BLIND_INDEX_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ));
        }
        let out = custos(&dir, &["migrate"], &env, None);
        assert!(!out.status.success(), "{setting}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(setting), "{setting} named: {stderr}");
        assert!(
            !stderr.contains("definitely-not-base64"),
            "no key material echoed"
        );
    }
    let out = custos(&dir, &["serve"], &[("CUSTOS_ENV", "production")], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUSTOS_PUBLIC_URL"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn schema_and_keys_commands_print_what_they_promise() {
    let dir = temp_dir();
    let out = custos(&dir, &["schema"], &[], None);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), custos::graphql::sdl());

    let out = custos(&dir, &["keys", "generate"], &[], None);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let keys = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CUSTOS_ENCRYPTION_KEYS="))
        .unwrap();
    let blind = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CUSTOS_BLIND_INDEX_KEY="))
        .unwrap();
    assert!(custos::crypto::fields::Keyring::parse(keys).is_ok());
    assert!(custos::crypto::blind_index::BlindIndex::parse(blind).is_ok());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn create_admin_reads_the_password_from_stdin_and_purge_runs_once() {
    let dir = temp_dir();
    let env = [
        ("CUSTOS_DATABASE_URL", "sqlite://custos.db?mode=rwc"),
        ("CUSTOS_LOG_FORMAT", "json"),
    ];
    let out = custos(
        &dir,
        &[
            "create-admin",
            "--username",
            "site_admin",
            "--email",
            "ops@example.org",
            "--password-stdin",
        ],
        &env,
        Some("a long admin passphrase\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin account created"));
    assert!(
        dir.join("custos.dev-keys").exists(),
        "dev keys made on first use"
    );
    // The log never carries the address or the password.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("ops@example.org") && !stderr.contains("passphrase"));

    let again = custos(
        &dir,
        &[
            "create-admin",
            "--username",
            "site_admin",
            "--email",
            "other@example.org",
            "--password-stdin",
        ],
        &env,
        Some("a long admin passphrase\n"),
    );
    assert!(!again.status.success(), "a taken username is refused");

    let weak = custos(
        &dir,
        &[
            "create-admin",
            "--username",
            "weak_admin",
            "--email",
            "weak@example.org",
            "--password-stdin",
        ],
        &env,
        Some("short\n"),
    );
    assert!(!weak.status.success());

    let purge = custos(&dir, &["purge", "--once"], &env, None);
    assert!(
        purge.status.success(),
        "{}",
        String::from_utf8_lossy(&purge.stderr)
    );
    assert!(String::from_utf8_lossy(&purge.stdout).contains("accounts erased: 0"));

    let verify = custos(&dir, &["audit", "verify"], &env, None);
    assert!(verify.status.success());
    let _ = std::fs::remove_dir_all(dir);
}
