//! The reference client against a canned HTTP server, and the server's own signing (aws-lc-rs)
//! verified by the device crate's pure-Rust verifier.

use std::io::{Read as _, Write as _};
use std::path::Path;

use seatkeep_device::{DeviceKeyClaims, JwsAlgorithm, KeyFileClaims, VerifiedDevice};

use super::files::load_saved_activation;
use super::*;
use crate::identity::{DeviceKeyProduct, ServerIdentity};
use crate::keyfile::claims::{Customer, Policy, Product};
use crate::keyfile::{self, LicenseModel};
use crate::signing::{KeyType, SigningKey};

const NOW: i64 = 1_780_000_000;
const DEVICE: &str = "scanner-0042";
const USER: &str = "Ada Lovelace";

/// A provider, a server and a key file binding them, plus a device key for DEVICE/USER.
struct Chain {
    provider_pem: String,
    provider: SigningKey,
    server: ServerIdentity,
    claims: KeyFileClaims,
    key_file: String,
    device_key: String,
}

fn key_file_claims(server: &ServerIdentity) -> KeyFileClaims {
    KeyFileClaims {
        iss: "provider.example".into(),
        jti: "kf-1".into(),
        lic: "LIC-1".into(),
        seq: 1,
        iat: NOW - 86_400,
        nbf: Some(NOW - 3_600),
        exp: Some(NOW + 365 * 86_400),
        customer: Customer {
            id: "cust-7".into(),
            name: "Example Corp".into(),
        },
        product: Product {
            id: "wordsmith".into(),
            name: "WordSmith".into(),
            edition: 2,
        },
        model: LicenseModel::NodeLocked,
        seats: 5,
        admins: vec!["buyer@corp.example".into()],
        server: keyfile::server_claim(server.key().spki_der()),
        policy: Policy::default(),
        federation: None,
        channel: None,
        meter: None,
    }
}

fn device_claims(claims: &KeyFileClaims, server_id: &str) -> DeviceKeyClaims {
    DeviceKeyClaims {
        iss: server_id.to_owned(),
        sub: DEVICE.into(),
        name: USER.into(),
        lic: claims.lic.clone(),
        product: DeviceKeyProduct {
            id: claims.product.id.clone(),
            edition: claims.product.edition,
        },
        seat: "seat-1".into(),
        r#gen: 1,
        iat: NOW - 60,
        exp: claims.exp,
        model: claims.model.as_str().into(),
        cnf: None,
        meter: None,
    }
}

fn server_identity(kind: KeyType) -> ServerIdentity {
    let pem = kind.generate_pem().unwrap();
    ServerIdentity::from_pem(pem.as_bytes()).unwrap()
}

fn chain(provider_kind: KeyType, provider_alg: Option<JwsAlgorithm>, server: KeyType) -> Chain {
    let provider_private = provider_kind.generate_pem().unwrap();
    let provider = SigningKey::from_pem(provider_private.as_bytes(), provider_alg).unwrap();
    let server = server_identity(server);
    let claims = key_file_claims(&server);
    let key_file = keyfile::issue(&claims, &provider, "provider-2026").unwrap();
    let device_key = server
        .sign_device_key(&device_claims(&claims, server.id()))
        .unwrap();
    Chain {
        provider_pem: provider.public_pem(),
        provider,
        server,
        claims,
        key_file,
        device_key,
    }
}

fn ed_chain() -> Chain {
    chain(KeyType::Ed25519, None, KeyType::Ed25519)
}

impl Chain {
    fn provider_key(&self) -> ProviderKey {
        ProviderKey::from_pem(self.provider_pem.as_bytes()).unwrap()
    }
}

fn assert_valid(c: &Chain) -> VerifiedDevice {
    let v = verify_device_key(
        &c.provider_key(),
        &c.key_file,
        &c.device_key,
        DEVICE,
        Some(USER),
        NOW,
    )
    .unwrap();
    assert_eq!(v.license, "LIC-1");
    assert_eq!(v.server_id, c.server.id());
    assert_eq!(v.key_file_claims, c.claims);
    v
}

#[test]
fn server_signed_chains_verify_on_the_device() {
    assert_valid(&ed_chain());
    // RSA provider (PS256) with an RSA server key (RS256).
    assert_valid(&chain(
        KeyType::Rsa2048,
        Some(JwsAlgorithm::PS256),
        KeyType::Rsa2048,
    ));
    // RSA provider (RS256) with an Ed25519 server key; Ed25519 provider with RSA server.
    assert_valid(&chain(KeyType::Rsa2048, None, KeyType::Ed25519));
    assert_valid(&chain(KeyType::Ed25519, None, KeyType::Rsa2048));
}

#[test]
fn fingerprints_agree_with_the_server() {
    let c = ed_chain();
    assert_eq!(c.provider_key().fingerprint(), c.provider.fingerprint());
    assert_eq!(
        keyfile::server_claim(c.server.key().spki_der()).id,
        c.server.id()
    );
}

/// Serves one HTTP request on a loopback port with a canned answer; returns the base URL
/// and a handle yielding the request body.
fn one_shot_server(
    status: &str,
    content_type: &str,
    body: String,
) -> (String, std::thread::JoinHandle<String>) {
    use std::io::BufRead as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let status = status.to_owned();
    let content_type = content_type.to_owned();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut request = vec![0; length];
        reader.read_exact(&mut request).unwrap();
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = stream;
        stream.write_all(response.as_bytes()).unwrap();
        String::from_utf8(request).unwrap()
    });
    (base, handle)
}

fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn options(dir: &Path, server: String, key_file: &str) -> ActivateOptions {
    let key_path = dir.join("license.seatkey");
    std::fs::write(&key_path, key_file).unwrap();
    ActivateOptions {
        server,
        key_file: key_path,
        device_id: DEVICE.into(),
        user: USER.into(),
        out: Some(dir.join("saved.json")),
        ca: None,
        device_key: true,
    }
}

#[tokio::test]
async fn activate_saves_the_answer_and_it_verifies() {
    install_provider();
    let c = ed_chain();
    let dir = tempfile::tempdir().unwrap();
    let answer = serde_json::json!({
        "seat": "seat-1", "device_key": c.device_key, "key_file": c.key_file,
        "state": "active", "expires_at": c.claims.exp, "return_token": "rt-secret",
        "overage": false, "generation": 1,
    });
    let (base, server) = one_shot_server("201 Created", "application/json", answer.to_string());
    let opts = options(dir.path(), format!("{base}/"), &c.key_file);
    let outcome = http::activate(&opts).await.unwrap();
    assert!(outcome.created);
    assert_eq!(outcome.seat, "seat-1");
    assert_eq!(outcome.state, "active");
    let request: serde_json::Value = serde_json::from_str(&server.join().unwrap()).unwrap();
    assert_eq!(request["device_id"], DEVICE);
    assert_eq!(request["user_name"], USER);
    assert_eq!(request["key_file"], c.key_file);

    let out = opts.out_path();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let saved = load_saved_activation(&out).unwrap();
    assert_eq!(saved.return_token.as_deref(), Some("rt-secret"));
    let (key_file, device_key) = read_device_key_input(&out, None).unwrap();
    let v = verify_device_key(
        &c.provider_key(),
        &key_file,
        &device_key,
        DEVICE,
        Some(USER),
        NOW,
    )
    .unwrap();
    assert_eq!(v.seat, "seat-1");
}

#[tokio::test]
async fn activate_same_device_again_is_not_created() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let answer = serde_json::json!({
        "seat": "seat-1", "device_key": "a.b.c", "key_file": "x.y.z",
        "state": "active", "expires_at": null, "return_token": "rt", "overage": false,
        "generation": 1,
    });
    let (base, server) = one_shot_server("200 OK", "application/json", answer.to_string());
    let opts = options(dir.path(), base, "x.y.z");
    let outcome = http::activate(&opts).await.unwrap();
    assert!(!outcome.created);
    server.join().unwrap();
}

#[tokio::test]
async fn activate_reports_a_refusal() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let problem = serde_json::json!({
        "type": "urn:seatkeep:problem:seats_exhausted", "title": "Conflict", "status": 409,
        "code": "seats_exhausted",
        "detail": "all 5 seats of license LIC-1 are in use",
        "license": "LIC-1", "seats": 5, "in_use": 5,
    });
    let (base, server) = one_shot_server(
        "409 Conflict",
        "application/problem+json",
        problem.to_string(),
    );
    let opts = options(dir.path(), base, "x.y.z");
    let err = http::activate(&opts).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "seats_exhausted: all 5 seats of license LIC-1 are in use (HTTP 409)"
    );
    assert!(!opts.out_path().exists());
    server.join().unwrap();
}

#[tokio::test]
async fn activate_names_the_url_it_cannot_reach() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = options(dir.path(), format!("http://127.0.0.1:{port}"), "x.y.z");
    let err = http::activate(&opts).await.unwrap_err();
    assert!(matches!(err, ClientError::Http { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot reach http://127.0.0.1:{port}/api/v1/activations"
        )),
        "{err}"
    );
    let bad = ActivateOptions {
        server: "seatkeep.corp:8080".into(),
        ..opts.clone()
    };
    assert!(matches!(
        http::activate(&bad).await,
        Err(ClientError::BadUrl { .. })
    ));
    let missing = ActivateOptions {
        key_file: dir.path().join("missing.seatkey"),
        ..opts
    };
    let err = http::activate(&missing).await.unwrap_err();
    assert!(err.to_string().contains("missing.seatkey"), "{err}");
}

#[test]
fn device_key_input_forms() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("device.jwt");
    std::fs::write(&bare, "a.b.c\n").unwrap();
    let key_file = dir.path().join("license.seatkey");
    std::fs::write(&key_file, "k.f.s").unwrap();
    assert_eq!(
        read_device_key_input(&bare, Some(&key_file)).unwrap(),
        ("k.f.s".to_owned(), "a.b.c".to_owned())
    );
    let err = read_device_key_input(&bare, None).unwrap_err();
    assert!(err.to_string().contains("--key-file"), "{err}");
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "hello world").unwrap();
    assert!(matches!(
        read_device_key_input(&junk, Some(&key_file)),
        Err(ClientError::DeviceKeyInput { .. })
    ));
    let broken_json = dir.path().join("broken.json");
    std::fs::write(&broken_json, "{\"seat\": 1}").unwrap();
    assert!(matches!(
        read_device_key_input(&broken_json, None),
        Err(ClientError::SavedActivation { .. })
    ));
    let saved = dir.path().join("saved.json");
    std::fs::write(
        &saved,
        r#"{"seat":"s","device_key":"d.k.s","key_file":"old"}"#,
    )
    .unwrap();
    assert_eq!(
        read_device_key_input(&saved, None).unwrap(),
        ("old".to_owned(), "d.k.s".to_owned())
    );
    assert_eq!(
        read_device_key_input(&saved, Some(&key_file)).unwrap().0,
        "k.f.s"
    );
}
