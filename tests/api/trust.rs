//! `keyfile trust` on the config `init` writes, then an import signed by that key; refusals
//! leave the config as it was; TOML errors name file, line and column.

use crate::helpers::{Backend, KID, PROVIDER, TestEnv, run};

#[test]
fn trust_then_import_on_an_init_config() {
    let env = TestEnv::new(Backend::Sqlite);
    // Start again from what `init` writes (TestEnv writes its own config).
    std::fs::remove_file(&env.config).unwrap();
    std::fs::remove_file(env.path("server-key.pem")).unwrap();
    let out = run(&["init", "--data-dir", env.dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let initial = std::fs::read_to_string(&env.config).unwrap();
    assert!(!initial.contains("trusted_keys = []"), "{initial}");

    let pem = env.provider_pub.to_str().unwrap();
    let out = env.cli_ok(&[
        "keyfile",
        "trust",
        pem,
        "--kid",
        KID,
        "--provider",
        PROVIDER,
        "--algorithm",
        "EdDSA",
    ]);
    assert!(out.contains(&format!("trusted {KID}")), "{out}");
    assert!(env.path(&format!("provider-keys/{KID}.pem")).is_file());
    let trusted = std::fs::read_to_string(&env.config).unwrap();
    assert!(trusted.starts_with(&initial));
    assert!(trusted.contains("[[provider.trusted_keys]]"), "{trusted}");
    let imported = env.import_license("LIC-T", 2);
    assert!(!imported.is_empty());
    let listed = env.cli_ok(&["licenses", "list"]);
    assert!(listed.contains("LIC-T"), "{listed}");

    // Refusals: one line each, the config and the key folder unchanged.
    let private = env.provider_key.to_str().unwrap();
    let not_pem = env.write("not.pem", "hello");
    for (args, says) in [
        (
            vec![
                pem,
                "--kid",
                KID,
                "--provider",
                PROVIDER,
                "--algorithm",
                "EdDSA",
            ],
            "already trusted",
        ),
        (
            vec![
                private,
                "--kid",
                "k2",
                "--provider",
                PROVIDER,
                "--algorithm",
                "EdDSA",
            ],
            "'PRIVATE KEY'",
        ),
        (
            vec![
                not_pem.to_str().unwrap(),
                "--kid",
                "k2",
                "--provider",
                "p",
                "--algorithm",
                "EdDSA",
            ],
            "not PEM",
        ),
        (
            vec![
                pem,
                "--kid",
                "k2",
                "--provider",
                PROVIDER,
                "--algorithm",
                "RS256",
            ],
            "not an RSA key",
        ),
        (
            vec![
                pem,
                "--kid",
                "bad kid",
                "--provider",
                PROVIDER,
                "--algorithm",
                "EdDSA",
            ],
            "--kid must be",
        ),
        (
            vec![
                pem,
                "--kid",
                "k2",
                "--provider",
                PROVIDER,
                "--algorithm",
                "HS256",
            ],
            "HS256",
        ),
    ] {
        let mut full = vec!["keyfile", "trust"];
        full.extend(args.iter().copied());
        let err = env.cli_err(&full);
        assert!(err.contains(says), "{args:?}: {err}");
        // clap's own refusal (an algorithm it does not know) adds its usage lines.
        if !says.starts_with("HS") {
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
        assert_eq!(std::fs::read_to_string(&env.config).unwrap(), trusted);
        assert_eq!(
            std::fs::read_dir(env.path("provider-keys"))
                .unwrap()
                .count(),
            1
        );
    }
}

#[test]
fn toml_errors_name_file_line_and_column() {
    let env = TestEnv::new(Backend::Sqlite);
    let config = env.write(
        "broken.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = = 2\n",
    );
    let out = run(&["--config", config.to_str().unwrap(), "licenses", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("broken.toml:3:11"), "{err}");

    let duplicate = env.write(
        "dup.toml",
        "[provider]\ntrusted_keys = []\n\n[[provider.trusted_keys]]\nkid = \"a\"\n",
    );
    let out = run(&["--config", duplicate.to_str().unwrap(), "licenses", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dup.toml:4:"), "{err}");

    let typed = env.write("typed.toml", "[server]\nlisten = 5\n");
    let out = run(&["--config", typed.to_str().unwrap(), "licenses", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("typed.toml:2:10") && err.contains("server.listen"),
        "{err}"
    );
}
