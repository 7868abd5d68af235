//! `seatkeep check`: a good installation passes; a world-readable server key, a missing
//! trusted key file and a TLS key that does not match its certificate are each named, and
//! the exit code is non-zero.

use std::os::unix::fs::PermissionsExt as _;

use crate::helpers::{Backend, KID, TestEnv};

fn self_signed() -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

#[test]
fn check_passes_then_names_each_problem() {
    let tls = "[server.tls]\ncert = \"tls-cert.pem\"\nkey = \"tls-key.pem\"\n";
    let env = TestEnv::with_config(Backend::Sqlite, tls);
    let (cert, key) = self_signed();
    env.write("tls-cert.pem", &cert);
    env.write("tls-key.pem", &key);
    env.cli_ok(&["migrate"]);

    let out = env.cli_ok(&["check"]);
    for line in out.lines() {
        assert!(line.starts_with("ok "), "{out}");
    }
    for says in [
        "reachable and migrated",
        "server id",
        &format!("{KID} ("),
        "expires in",
    ] {
        assert!(out.contains(says), "{says}: {out}");
    }

    // Three problems at once: each named, exit non-zero.
    let server_key = env.path("server-key.pem");
    std::fs::set_permissions(&server_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(&env.provider_pub).unwrap();
    let (_, other_key) = self_signed();
    env.write("tls-key.pem", &other_key);
    let output = env.cli(&["check"]);
    assert!(!output.status.success());
    let out = String::from_utf8_lossy(&output.stdout);
    let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 3, "{out}");
    assert!(out.contains("readable by others"), "{out}");
    assert!(out.contains(&format!("trusted_key:{KID}")), "{out}");
    assert!(failed.iter().any(|l| l.contains("tls")), "{out}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 of"), "{stderr}");

    let json: serde_json::Value =
        serde_json::from_slice(&env.cli(&["--json", "check"]).stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .count(),
        3
    );

    // A config that does not parse is the one finding.
    let broken = env.write("broken.toml", "[server\n");
    let output = crate::helpers::run(&["--config", broken.to_str().unwrap(), "check"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("broken.toml:1:"));
}
