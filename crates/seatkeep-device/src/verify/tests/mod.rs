//! The verifier's tests: every way a chain can break.

pub(crate) mod chain;

use crate::jws::JwsAlgorithm;
use chain::*;

use super::*;
use crate::keyfile::ServerClaim;

fn assert_valid(c: &Chain) {
    let v = c.verify(&c.device_key, DEVICE, Some(USER)).unwrap();
    assert_eq!(v.license, "LIC-1");
    assert_eq!(v.device, DEVICE);
    assert_eq!(v.user, USER);
    assert_eq!(v.seat, "seat-1");
    assert_eq!(v.generation, 1);
    assert_eq!(v.server_id, c.server.id());
    assert_eq!(v.product.id, "wordsmith");
    assert_eq!(v.customer.name, "Example Corp");
    assert_eq!(v.expires_at, c.claims.exp);
    // Without a user, any name is accepted.
    assert!(c.verify(&c.device_key, DEVICE, None).is_ok());
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["generation"], 1);
}

#[test]
fn valid_chain_ed25519() {
    assert_valid(&ed_chain());
}

#[test]
fn valid_chain_rsa() {
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
fn bare_key_file_is_accepted() {
    let c = ed_chain();
    let bare = keyfile::dearmor(c.key_file.as_bytes()).unwrap();
    assert!(c.verify_at(&bare, &c.device_key, DEVICE, None, NOW).is_ok());
}

#[test]
fn device_key_copied_to_another_device() {
    let c = ed_chain();
    let err = c
        .verify(&c.device_key, "scanner-0043", Some(USER))
        .unwrap_err();
    assert!(matches!(err, VerifyError::WrongDevice { .. }), "{err}");
    assert!(err.to_string().contains("scanner-0042"), "{err}");
}

#[test]
fn device_key_for_another_user() {
    let c = ed_chain();
    let err = c
        .verify(&c.device_key, DEVICE, Some("Mallory"))
        .unwrap_err();
    assert!(matches!(err, VerifyError::WrongUser { .. }), "{err}");
}

#[test]
fn device_key_for_another_license_or_product() {
    let c = ed_chain();
    let other_lic = c.device_key_with(|d| d.lic = "LIC-2".into());
    let err = c.verify(&other_lic, DEVICE, None).unwrap_err();
    assert!(matches!(err, VerifyError::WrongLicense { .. }), "{err}");
    let other_edition = c.device_key_with(|d| d.product.edition = 3);
    let err = c.verify(&other_edition, DEVICE, None).unwrap_err();
    assert!(matches!(err, VerifyError::WrongProduct { .. }), "{err}");
}

#[test]
fn device_key_from_a_server_the_key_file_does_not_name() {
    let c = ed_chain();
    let rogue = server_identity(KeyType::Ed25519);
    // A rogue server claiming to be the licensed one: signature fails.
    let forged = rogue.key().sign_jws(
        DEVICE_KEY_TYP,
        c.server.id(),
        &device_claims(&c.claims, c.server.id()),
    );
    let err = c.verify(&forged, DEVICE, None).unwrap_err();
    assert!(
        matches!(err, VerifyError::DeviceKeySignature { .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("broken chain"), "{err}");
    // A rogue server under its own id: refused before the signature.
    let own = rogue.sign_device_key(&device_claims(&c.claims, rogue.id()));
    let err = c.verify(&own, DEVICE, None).unwrap_err();
    assert!(
        matches!(err, VerifyError::DeviceKeyIssuer { field: "kid", .. }),
        "{err}"
    );
    // The right server's signature, but an iss naming another server.
    let wrong_iss = c.device_key_with(|d| d.iss = rogue.id().into());
    let err = c.verify(&wrong_iss, DEVICE, None).unwrap_err();
    assert!(
        matches!(err, VerifyError::DeviceKeyIssuer { field: "iss", .. }),
        "{err}"
    );
}

#[test]
fn server_key_not_matching_server_id() {
    let c = ed_chain();
    let rogue = server_identity(KeyType::Ed25519);
    let swapped =
        c.key_file_with(|k| k.server.key = ServerClaim::for_key(&rogue.key().spki_der()).key);
    let err = c
        .verify_at(&swapped, &c.device_key, DEVICE, None, NOW)
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::ServerKeyMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("broken chain"), "{err}");
}

#[test]
fn key_file_altered_after_signing() {
    let c = ed_chain();
    let compact = keyfile::dearmor(c.key_file.as_bytes()).unwrap();
    let parts: Vec<&str> = compact.split('.').collect();
    // More seats in the payload, same signature.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&jws::parse_compact(&compact).unwrap().payload).unwrap();
    claims["seats"] = serde_json::json!(500);
    let payload = jws::b64url(&serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    let err = c
        .verify_at(&tampered, &c.device_key, DEVICE, None, NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::KeyFileSignature), "{err}");
    // One character flipped in the payload.
    let mut flipped = parts[1].to_owned().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(flipped).unwrap(),
        parts[2]
    );
    let err = c
        .verify_at(&flipped, &c.device_key, DEVICE, None, NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::KeyFileSignature), "{err}");
}

#[test]
fn device_key_altered_after_signing() {
    let c = ed_chain();
    let parts: Vec<&str> = c.device_key.split('.').collect();
    let other = c.device_key_with(|d| d.sub = "scanner-0099".into());
    let other_payload = other.split('.').nth(1).unwrap();
    let tampered = format!("{}.{other_payload}.{}", parts[0], parts[2]);
    let err = c.verify(&tampered, "scanner-0099", None).unwrap_err();
    assert!(
        matches!(err, VerifyError::DeviceKeySignature { .. }),
        "{err}"
    );
}

#[test]
fn expired_and_not_yet_valid() {
    let c = ed_chain();
    let exp = c.claims.exp.unwrap();
    // Inside the leeway it still verifies.
    assert!(
        c.verify_at(&c.key_file, &c.device_key, DEVICE, None, exp + 30)
            .is_ok()
    );
    let err = c
        .verify_at(&c.key_file, &c.device_key, DEVICE, None, exp + 61)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("expired at"), "{err}");
    let nbf = c.claims.nbf.unwrap();
    let err = c
        .verify_at(&c.key_file, &c.device_key, DEVICE, None, nbf - 3_600)
        .unwrap_err();
    assert!(matches!(err, VerifyError::NotYetValid { .. }), "{err}");
}

#[test]
fn wrong_provider_key() {
    let c = ed_chain();
    let other = ed_chain();
    let err = verify_device_key(
        &other.provider_key(),
        &c.key_file,
        &c.device_key,
        DEVICE,
        None,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::KeyFileSignature), "{err}");
    // An RSA provider key cannot have signed an EdDSA key file.
    let rsa = chain(KeyType::Rsa2048, None, KeyType::Ed25519);
    let err = verify_device_key(
        &rsa.provider_key(),
        &c.key_file,
        &c.device_key,
        DEVICE,
        None,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::KeyFileAlgorithm { .. }), "{err}");
}

#[test]
fn swapped_tokens_fail_on_typ() {
    let c = ed_chain();
    // A device key presented as the key file (and vice versa) is refused on `typ`.
    let err = c
        .verify_at(&c.device_key, &c.device_key, DEVICE, None, NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::KeyFileTyp(_)), "{err}");
    let compact = keyfile::dearmor(c.key_file.as_bytes()).unwrap();
    let err = c.verify(&compact, DEVICE, None).unwrap_err();
    assert!(matches!(err, VerifyError::DeviceKeyTyp(_)), "{err}");
    let err = c.verify("not-a-jws", DEVICE, None).unwrap_err();
    assert!(matches!(err, VerifyError::DeviceKey(_)), "{err}");
}

#[test]
fn provider_key_pem_must_be_a_public_key() {
    assert!(matches!(
        ProviderKey::from_pem(RSA_PROVIDER_PEM.as_bytes()),
        Err(VerifyError::ProviderKey(_))
    ));
    assert!(matches!(
        ProviderKey::from_pem(b"junk"),
        Err(VerifyError::ProviderKey(_))
    ));
    let c = ed_chain();
    assert_eq!(c.provider_key().fingerprint(), c.provider.fingerprint());
}

/// The chain of the crate documentation's example (`testdata/doc/`), rebuilt from fixed
/// Ed25519 seeds (Ed25519 signatures are deterministic). `SEATKEEP_WRITE_DOC_FIXTURE=1`
/// rewrites the files after a deliberate change.
#[test]
fn doc_fixture_is_reproducible() {
    let provider = TestKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[0x51; 32]));
    let server = {
        let key = TestKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[0x5e; 32]));
        Server {
            id: key.fingerprint(),
            key,
        }
    };
    let mut claims = key_file_claims(&server);
    claims.jti = "kf-doc".into();
    claims.lic = "LIC-DOC".into();
    claims.nbf = None;
    claims.exp = None;
    let mut device = device_claims(&claims, server.id());
    device.seat = "st_doc".into();
    let files = [
        ("provider.pub.pem", provider.public_pem()),
        ("license.seatkey", issue(&claims, &provider, "provider-doc")),
        ("device-key.jwt", server.sign_device_key(&device) + "\n"),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/doc");
    if std::env::var_os("SEATKEEP_WRITE_DOC_FIXTURE").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    for (name, text) in &files {
        let stored = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(&stored, text, "testdata/doc/{name} is stale");
    }
    let provider_key = ProviderKey::from_pem(files[0].1.as_bytes()).unwrap();
    let v = verify_device_key(
        &provider_key,
        &files[1].1,
        &files[2].1,
        DEVICE,
        Some(USER),
        NOW,
    )
    .unwrap();
    assert_eq!(v.expires_at, None);
}
