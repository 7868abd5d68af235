//! Test chains: provider → key file → server → device key, signed here with the `rsa` and
//! `ed25519-dalek` crates (test-only signing; the library itself never signs).

use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::device_key::DeviceKeyProduct;
use crate::device_key::{DEVICE_KEY_TYP, DeviceKeyClaims};
use crate::jws;
use crate::jws::{JwsAlgorithm, JwsHeader};
use crate::keyfile::{self, Customer, KEY_FILE_TYP, KeyFileClaims, Product};
use crate::keyfile::{LicenseModel, Policy, ServerClaim};
use crate::verify::{ProviderKey, VerifiedDevice, VerifyError, verify_device_key};

pub(crate) const NOW: i64 = 1_780_000_000;
pub(crate) const DEVICE: &str = "scanner-0042";
pub(crate) const USER: &str = "Ada Lovelace";
/// RSA-2048 test keys, checked in so the tests need no slow RSA key generation.
pub(crate) const RSA_PROVIDER_PEM: &str = include_str!("../../../testdata/rsa-provider.pem");
pub(crate) const RSA_SERVER_PEM: &str = include_str!("../../../testdata/rsa-server.pem");
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the 32 key bytes follow.
pub(crate) const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Key types a test chain is built from.
#[derive(Clone, Copy)]
pub(crate) enum KeyType {
    Ed25519,
    /// The checked-in RSA-2048 key of the provider or of the server, by role.
    Rsa2048,
}

/// A private key that signs JWS for the tests.
pub(crate) enum TestKey {
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(rsa::RsaPrivateKey, JwsAlgorithm),
}

impl TestKey {
    /// A fresh Ed25519 key, or the RSA key of `rsa_pem` with `alg` (RS256 by default).
    pub(crate) fn new(kind: KeyType, rsa_pem: &str, alg: Option<JwsAlgorithm>) -> Self {
        match kind {
            KeyType::Ed25519 => {
                let mut seed = [0; 32];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
                Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            KeyType::Rsa2048 => Self::Rsa(
                rsa::RsaPrivateKey::from_pkcs8_pem(rsa_pem).unwrap(),
                alg.unwrap_or(JwsAlgorithm::RS256),
            ),
        }
    }

    pub(crate) fn algorithm(&self) -> JwsAlgorithm {
        match self {
            Self::Ed25519(_) => JwsAlgorithm::EdDSA,
            Self::Rsa(_, alg) => *alg,
        }
    }

    pub(crate) fn spki_der(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(key) => {
                let mut der = ED25519_SPKI_PREFIX.to_vec();
                der.extend_from_slice(key.verifying_key().as_bytes());
                der
            }
            Self::Rsa(key, _) => key
                .to_public_key()
                .to_public_key_der()
                .unwrap()
                .as_bytes()
                .to_vec(),
        }
    }

    pub(crate) fn public_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki_der()))
    }

    /// `sha256(SPKI DER)`, hex-encoded independently of the crate's own helper.
    pub(crate) fn fingerprint(&self) -> String {
        format!("{:x}", Sha256::digest(self.spki_der()))
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519(key) => ed25519_dalek::Signer::sign(key, message)
                .to_bytes()
                .to_vec(),
            Self::Rsa(key, JwsAlgorithm::PS256) => {
                rsa::pss::BlindedSigningKey::<Sha256>::new(key.clone())
                    .sign_with_rng(&mut rand_core::OsRng, message)
                    .to_vec()
            }
            Self::Rsa(key, _) => rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone())
                .sign(message)
                .to_vec(),
        }
    }

    pub(crate) fn sign_jws(&self, typ: &str, kid: &str, claims: &impl Serialize) -> String {
        let header = JwsHeader {
            alg: self.algorithm().as_str().to_owned(),
            typ: Some(typ.to_owned()),
            kid: Some(kid.to_owned()),
        };
        let input = jws::signing_input(&header, &serde_json::to_vec(claims).unwrap()).unwrap();
        jws::assemble(&input, &self.sign(input.as_bytes()))
    }
}

/// A Seatkeep server as far as device keys go: a key and its id.
pub(crate) struct Server {
    pub(crate) key: TestKey,
    pub(crate) id: String,
}

impl Server {
    pub(crate) fn new(kind: KeyType) -> Self {
        let key = TestKey::new(kind, RSA_SERVER_PEM, None);
        Self {
            id: key.fingerprint(),
            key,
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn key(&self) -> &TestKey {
        &self.key
    }

    pub(crate) fn sign_device_key(&self, claims: &DeviceKeyClaims) -> String {
        self.key.sign_jws(DEVICE_KEY_TYP, &self.id, claims)
    }
}

/// The provider side: validate the claims, sign, armor.
pub(crate) fn issue(claims: &KeyFileClaims, provider: &TestKey, kid: &str) -> String {
    claims.validate().unwrap();
    keyfile::armor(&provider.sign_jws(KEY_FILE_TYP, kid, claims))
}

/// A provider, a server and a key file binding them, plus a device key for DEVICE/USER.
pub(crate) struct Chain {
    pub(crate) provider_pem: String,
    pub(crate) provider: TestKey,
    pub(crate) server: Server,
    pub(crate) claims: KeyFileClaims,
    pub(crate) key_file: String,
    pub(crate) device_key: String,
}

pub(crate) fn key_file_claims(server: &Server) -> KeyFileClaims {
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
        server: ServerClaim::for_key(&server.key().spki_der()),
        policy: Policy::default(),
        federation: None,
        channel: None,
        meter: None,
    }
}

pub(crate) fn device_claims(claims: &KeyFileClaims, server_id: &str) -> DeviceKeyClaims {
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

pub(crate) fn server_identity(kind: KeyType) -> Server {
    Server::new(kind)
}

pub(crate) fn chain(
    provider_kind: KeyType,
    provider_alg: Option<JwsAlgorithm>,
    server: KeyType,
) -> Chain {
    let provider = TestKey::new(provider_kind, RSA_PROVIDER_PEM, provider_alg);
    let server = server_identity(server);
    let claims = key_file_claims(&server);
    let key_file = issue(&claims, &provider, "provider-2026");
    let device_key = server.sign_device_key(&device_claims(&claims, server.id()));
    Chain {
        provider_pem: provider.public_pem(),
        provider,
        server,
        claims,
        key_file,
        device_key,
    }
}

pub(crate) fn ed_chain() -> Chain {
    chain(KeyType::Ed25519, None, KeyType::Ed25519)
}

impl Chain {
    pub(crate) fn provider_key(&self) -> ProviderKey {
        ProviderKey::from_pem(self.provider_pem.as_bytes()).unwrap()
    }

    pub(crate) fn verify(
        &self,
        device_key: &str,
        device: &str,
        user: Option<&str>,
    ) -> Result<VerifiedDevice, VerifyError> {
        self.verify_at(&self.key_file, device_key, device, user, NOW)
    }

    pub(crate) fn verify_at(
        &self,
        key_file: &str,
        device_key: &str,
        device: &str,
        user: Option<&str>,
        now: i64,
    ) -> Result<VerifiedDevice, VerifyError> {
        verify_device_key(
            &self.provider_key(),
            key_file,
            device_key,
            device,
            user,
            now,
        )
    }

    /// A key file re-signed by the provider with changed claims.
    pub(crate) fn key_file_with(&self, change: impl FnOnce(&mut KeyFileClaims)) -> String {
        let mut claims = self.claims.clone();
        change(&mut claims);
        issue(&claims, &self.provider, "provider-2026")
    }

    /// A device key signed by this chain's server with changed claims.
    pub(crate) fn device_key_with(&self, change: impl FnOnce(&mut DeviceKeyClaims)) -> String {
        let mut claims = device_claims(&self.claims, self.server.id());
        change(&mut claims);
        self.server.sign_device_key(&claims)
    }
}
