//! The reference device client (`seatkeep device ...`, DESIGN §4) and the offline verifier.
//!
//! Two halves:
//!
//! * **Offline verifier** ([`verify_device_key`]): what a product on a device does with
//!   nothing but the pinned provider public key (DESIGN §2). It verifies the key file with the
//!   provider key, takes the server key out of the key file (checking it against the file's
//!   `server.id`), verifies the device key with that server key, then checks that the device
//!   key is bound to this device, user, license and product and that the term holds. It is
//!   pure Rust (`rsa` for public-key RSA, `ed25519-dalek`, `sha2`), so a product can copy it
//!   without the server's crypto backend; it never touches a private key.
//! * **Activation client** ([`activate`]): one `POST /api/v1/activations` round trip, saving
//!   the server's answer (device key, current key file, return token) to a 0600 JSON file that
//!   [`load_saved_activation`] and [`read_device_key_input`] read back.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{DEVICE_KEY_TYP, DeviceKeyClaims};
use crate::jws::{self, CompactJws, JwsAlgorithm};
use crate::keyfile::claims::{Customer, Product};
use crate::keyfile::{self, KEY_FILE_TYP, KeyFileClaims, KeyFileError};

// ---------------------------------------------------------------------------------------------
// Offline verifier
// ---------------------------------------------------------------------------------------------

/// Shortest RSA modulus accepted for provider and server keys, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest device key we read, in bytes (real ones are well under 2 KiB).
const MAX_DEVICE_KEY_BYTES: usize = 16 * 1024;

/// Why a device key does not verify. Every message is one line; "broken chain" marks the
/// cases where the device key was not issued by the server the key file names.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The provider public key PEM could not be used.
    #[error("provider key unreadable: {0}")]
    ProviderKey(String),
    /// Armor, JWS framing or claims of the key file are wrong.
    #[error("malformed key file: {0}")]
    KeyFile(#[from] KeyFileError),
    /// The key file's `typ` header is not [`KEY_FILE_TYP`].
    #[error("not a key file: typ must be '{KEY_FILE_TYP}', found {0:?}")]
    KeyFileTyp(Option<String>),
    /// The key file's `alg` cannot be produced by the provider key's type.
    #[error("key file alg '{alg}' does not fit the {key} provider key (expected {expected})")]
    KeyFileAlgorithm {
        /// Header `alg`.
        alg: String,
        /// Provider key type.
        key: &'static str,
        /// Algorithms that fit.
        expected: &'static str,
    },
    /// The key file's signature does not verify with the provider key.
    #[error(
        "bad key file signature: the key file was altered or is not signed by this provider key"
    )]
    KeyFileSignature,
    /// `server.key` is not base64 SPKI DER of the server named by `server.id`.
    #[error("broken chain: the key file's server.key does not match its server.id {id}")]
    ServerKeyMismatch {
        /// `server.id` in the key file.
        id: String,
    },
    /// `server.key` matches `server.id` but is not a usable public key.
    #[error("broken chain: the key file's server key is unusable: {0}")]
    ServerKeyUnreadable(String),
    /// The device key is not a compact JWS with valid claims.
    #[error("malformed device key: {0}")]
    DeviceKey(String),
    /// The device key's `typ` header is not [`DEVICE_KEY_TYP`].
    #[error("not a device key: typ must be '{DEVICE_KEY_TYP}', found {0:?}")]
    DeviceKeyTyp(Option<String>),
    /// The device key names (in `kid` or `iss`) another server than the key file.
    #[error(
        "broken chain: the device key {field} is '{found}', but the key file is for server {expected}"
    )]
    DeviceKeyIssuer {
        /// `kid` or `iss`.
        field: &'static str,
        /// Value in the device key.
        found: String,
        /// `server.id` of the key file.
        expected: String,
    },
    /// The device key's `alg` cannot be produced by the server key's type.
    #[error("device key alg '{alg}' does not fit the {key} server key (expected {expected})")]
    DeviceKeyAlgorithm {
        /// Header `alg`.
        alg: String,
        /// Server key type.
        key: &'static str,
        /// Algorithms that fit.
        expected: &'static str,
    },
    /// The device key's signature does not verify with the server key in the key file.
    #[error(
        "broken chain: the device key signature is not valid for server key {server} named in the key file"
    )]
    DeviceKeySignature {
        /// `server.id` of the key file.
        server: String,
    },
    /// The device key was issued to another device.
    #[error("device key is for device '{found}', not '{expected}'")]
    WrongDevice {
        /// Device id asked for.
        expected: String,
        /// `sub` of the device key.
        found: String,
    },
    /// The device key was issued to another user.
    #[error("device key is for user '{found}', not '{expected}'")]
    WrongUser {
        /// User asked for.
        expected: String,
        /// `name` of the device key.
        found: String,
    },
    /// The device key is for another license than the key file.
    #[error("device key is for license '{found}', but the key file is for license '{expected}'")]
    WrongLicense {
        /// Key file `lic`.
        expected: String,
        /// Device key `lic`.
        found: String,
    },
    /// The device key is for another product or edition than the key file.
    #[error("device key is for product {found}, but the key file is for product {expected}")]
    WrongProduct {
        /// Key file product, `id edition N`.
        expected: String,
        /// Device key product, `id edition N`.
        found: String,
    },
    /// The device key's `exp` has passed (with [`keyfile::TERM_LEEWAY_SECS`] of leeway).
    #[error("device key expired at {} (unix {exp})", format_time(*.exp))]
    Expired {
        /// Device key `exp`.
        exp: i64,
    },
    /// The key file's `nbf` lies ahead (with [`keyfile::TERM_LEEWAY_SECS`] of leeway).
    #[error("license not valid before {} (unix {nbf})", format_time(*.nbf))]
    NotYetValid {
        /// Key file `nbf`.
        nbf: i64,
    },
}

/// A public key of a type Seatkeep signs with.
#[derive(Clone)]
enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// Parses SubjectPublicKeyInfo DER holding an Ed25519 or RSA (≥ 2048 bit) key.
    fn from_spki_der(der: &[u8]) -> Result<Self, String> {
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::Ed25519(key));
        }
        let key = rsa::RsaPublicKey::from_public_key_der(der)
            .map_err(|_| "not an Ed25519 or RSA public key (SubjectPublicKeyInfo)".to_owned())?;
        let bits = key.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "RSA key of {bits} bits is too short (at least {MIN_RSA_BITS})"
            ));
        }
        Ok(Self::Rsa(key))
    }

    /// Key type for messages.
    fn kind(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "Ed25519",
            Self::Rsa(_) => "RSA",
        }
    }

    /// The `alg` values this key type verifies, for messages.
    fn expected_algorithms(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "EdDSA",
            Self::Rsa(_) => "RS256 or PS256",
        }
    }

    /// The JWS algorithm named by `alg` when this key type can verify it.
    fn algorithm_for(&self, alg: &str) -> Option<JwsAlgorithm> {
        let alg: JwsAlgorithm = alg.parse().ok()?;
        (alg.is_rsa() == matches!(self, Self::Rsa(_))).then_some(alg)
    }

    /// True when `signature` is valid for `message` under `alg` with this key.
    fn verify(&self, alg: JwsAlgorithm, message: &[u8], signature: &[u8]) -> bool {
        match (self, alg) {
            (Self::Ed25519(key), JwsAlgorithm::EdDSA) => {
                ed25519_dalek::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok())
            }
            (Self::Rsa(key), JwsAlgorithm::RS256) => {
                let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone());
                rsa::pkcs1v15::Signature::try_from(signature)
                    .is_ok_and(|sig| verifier.verify(message, &sig).is_ok())
            }
            (Self::Rsa(key), JwsAlgorithm::PS256) => {
                let verifier = rsa::pss::VerifyingKey::<Sha256>::new(key.clone());
                rsa::pss::Signature::try_from(signature)
                    .is_ok_and(|sig| verifier.verify(message, &sig).is_ok())
            }
            _ => false,
        }
    }
}

/// The provider's root public key, as pinned in the product (a `PUBLIC KEY` PEM).
#[derive(Clone)]
pub struct ProviderKey {
    key: PublicKey,
    fingerprint: String,
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKey")
            .field("type", &self.key.kind())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl ProviderKey {
    /// Parses a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`) holding an Ed25519 or
    /// RSA (≥ 2048 bit) key.
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, VerifyError> {
        let doc = pem::parse(pem_bytes).map_err(|e| VerifyError::ProviderKey(e.to_string()))?;
        if doc.tag() != "PUBLIC KEY" {
            return Err(VerifyError::ProviderKey(format!(
                "expected a 'PUBLIC KEY' PEM block, found '{}'",
                doc.tag()
            )));
        }
        let key = PublicKey::from_spki_der(doc.contents()).map_err(VerifyError::ProviderKey)?;
        Ok(Self {
            key,
            fingerprint: sha256_hex(doc.contents()),
        })
    }

    /// `sha256(SPKI DER)` of the key in lowercase hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// What a verified device key grants: the chain provider → key file → server → device key
/// held, and every binding matched.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedDevice {
    /// License id (`lic`).
    pub license: String,
    /// Version of the key file (`seq`).
    pub key_file_seq: i64,
    /// Provider id (key file `iss`).
    pub provider: String,
    /// The buying company.
    pub customer: Customer,
    /// The licensed product.
    pub product: Product,
    /// License model named in the device key.
    pub model: String,
    /// Seat id.
    pub seat: String,
    /// Device id (`sub`).
    pub device: String,
    /// User name (`name`; may be empty).
    pub user: String,
    /// Device key generation (+1 per reissue).
    pub generation: i64,
    /// When the device key was issued (unix seconds).
    pub issued_at: i64,
    /// End of the term (device key `exp`); none means perpetual.
    pub expires_at: Option<i64>,
    /// The Seatkeep server that signed the device key (server id).
    pub server_id: String,
    /// All key file claims.
    #[serde(skip)]
    pub key_file_claims: KeyFileClaims,
    /// All device key claims.
    #[serde(skip)]
    pub device_key_claims: DeviceKeyClaims,
}

/// Verifies a device key offline with nothing but the pinned provider key (DESIGN §2).
///
/// `key_file_text` is the key file, armored or bare; `device_key` the compact JWS the server
/// issued. `user` is only compared when given. `now` is unix seconds; the term allows
/// [`keyfile::TERM_LEEWAY_SECS`] of leeway like the server does.
pub fn verify_device_key(
    provider: &ProviderKey,
    key_file_text: &str,
    device_key: &str,
    device_id: &str,
    user: Option<&str>,
    now: i64,
) -> Result<VerifiedDevice, VerifyError> {
    let key_file = verify_key_file(provider, key_file_text)?;
    let server = server_key(&key_file)?;
    let device = verify_device_signature(&server, &key_file.server.id, device_key)?;
    check_bindings(&key_file, &device, device_id, user)?;
    keyfile::check_term(key_file.nbf, device.exp, now).map_err(term_error)?;
    Ok(verified(key_file, device))
}

/// Checks armor, `typ`, `alg` against the provider key type, the signature and the claims.
fn verify_key_file(provider: &ProviderKey, text: &str) -> Result<KeyFileClaims, VerifyError> {
    let compact = keyfile::dearmor(text.as_bytes())?;
    let parsed = jws::parse_compact(&compact).map_err(KeyFileError::from)?;
    if parsed.header.typ.as_deref() != Some(KEY_FILE_TYP) {
        return Err(VerifyError::KeyFileTyp(parsed.header.typ.clone()));
    }
    let alg = provider
        .key
        .algorithm_for(&parsed.header.alg)
        .ok_or_else(|| VerifyError::KeyFileAlgorithm {
            alg: parsed.header.alg.clone(),
            key: provider.key.kind(),
            expected: provider.key.expected_algorithms(),
        })?;
    if !verify_jws(&provider.key, alg, &parsed) {
        return Err(VerifyError::KeyFileSignature);
    }
    Ok(KeyFileClaims::from_json(&parsed.payload)?)
}

/// Takes the server key out of verified key file claims, checking it against `server.id`.
fn server_key(claims: &KeyFileClaims) -> Result<PublicKey, VerifyError> {
    let mismatch = || VerifyError::ServerKeyMismatch {
        id: claims.server.id.clone(),
    };
    let der = STANDARD
        .decode(claims.server.key.as_bytes())
        .map_err(|_| mismatch())?;
    if sha256_hex(&der) != claims.server.id {
        return Err(mismatch());
    }
    PublicKey::from_spki_der(&der).map_err(VerifyError::ServerKeyUnreadable)
}

/// Checks the device key's `typ`, `kid`, `alg`, signature and `iss` against the server key.
fn verify_device_signature(
    server: &PublicKey,
    server_id: &str,
    device_key: &str,
) -> Result<DeviceKeyClaims, VerifyError> {
    let device_key = device_key.trim();
    if device_key.len() > MAX_DEVICE_KEY_BYTES {
        return Err(VerifyError::DeviceKey(format!(
            "larger than {MAX_DEVICE_KEY_BYTES} bytes"
        )));
    }
    let parsed =
        jws::parse_compact(device_key).map_err(|e| VerifyError::DeviceKey(e.to_string()))?;
    if parsed.header.typ.as_deref() != Some(DEVICE_KEY_TYP) {
        return Err(VerifyError::DeviceKeyTyp(parsed.header.typ.clone()));
    }
    check_issuer("kid", parsed.header.kid.as_deref().unwrap_or(""), server_id)?;
    let alg = server.algorithm_for(&parsed.header.alg).ok_or_else(|| {
        VerifyError::DeviceKeyAlgorithm {
            alg: parsed.header.alg.clone(),
            key: server.kind(),
            expected: server.expected_algorithms(),
        }
    })?;
    if !verify_jws(server, alg, &parsed) {
        return Err(VerifyError::DeviceKeySignature {
            server: server_id.to_owned(),
        });
    }
    let claims: DeviceKeyClaims = serde_json::from_slice(&parsed.payload)
        .map_err(|e| VerifyError::DeviceKey(format!("claims: {e}")))?;
    check_issuer("iss", &claims.iss, server_id)?;
    Ok(claims)
}

fn verify_jws(key: &PublicKey, alg: JwsAlgorithm, parsed: &CompactJws<'_>) -> bool {
    key.verify(alg, parsed.signing_input.as_bytes(), &parsed.signature)
}

fn check_issuer(field: &'static str, found: &str, server_id: &str) -> Result<(), VerifyError> {
    if found == server_id {
        return Ok(());
    }
    Err(VerifyError::DeviceKeyIssuer {
        field,
        found: found.to_owned(),
        expected: server_id.to_owned(),
    })
}

/// Device, user, license and product of the device key against what is expected.
fn check_bindings(
    key_file: &KeyFileClaims,
    device: &DeviceKeyClaims,
    device_id: &str,
    user: Option<&str>,
) -> Result<(), VerifyError> {
    if device.sub != device_id {
        return Err(VerifyError::WrongDevice {
            expected: device_id.to_owned(),
            found: device.sub.clone(),
        });
    }
    if let Some(user) = user
        && device.name != user
    {
        return Err(VerifyError::WrongUser {
            expected: user.to_owned(),
            found: device.name.clone(),
        });
    }
    if device.lic != key_file.lic {
        return Err(VerifyError::WrongLicense {
            expected: key_file.lic.clone(),
            found: device.lic.clone(),
        });
    }
    if device.product.id != key_file.product.id
        || device.product.edition != key_file.product.edition
    {
        return Err(VerifyError::WrongProduct {
            expected: product_label(&key_file.product.id, key_file.product.edition),
            found: product_label(&device.product.id, device.product.edition),
        });
    }
    Ok(())
}

fn product_label(id: &str, edition: i64) -> String {
    format!("'{id}' edition {edition}")
}

/// Maps [`keyfile::check_term`]'s errors onto the verifier's.
fn term_error(e: KeyFileError) -> VerifyError {
    match e {
        KeyFileError::Expired { exp } => VerifyError::Expired { exp },
        KeyFileError::NotYetValid { nbf } => VerifyError::NotYetValid { nbf },
        other => VerifyError::KeyFile(other),
    }
}

fn verified(key_file: KeyFileClaims, device: DeviceKeyClaims) -> VerifiedDevice {
    VerifiedDevice {
        license: key_file.lic.clone(),
        key_file_seq: key_file.seq,
        provider: key_file.iss.clone(),
        customer: key_file.customer.clone(),
        product: key_file.product.clone(),
        model: device.model.clone(),
        seat: device.seat.clone(),
        device: device.sub.clone(),
        user: device.name.clone(),
        generation: device.r#gen,
        issued_at: device.iat,
        expires_at: device.exp,
        server_id: device.iss.clone(),
        key_file_claims: key_file,
        device_key_claims: device,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Unix seconds as RFC 3339 (UTC), or the bare number when out of range.
fn format_time(secs: i64) -> String {
    u64::try_from(secs)
        .ok()
        .and_then(|s| std::time::UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| secs.to_string())
}

// ---------------------------------------------------------------------------------------------
// Activation client
// ---------------------------------------------------------------------------------------------

/// Path of the activation endpoint below the server's base URL.
pub const ACTIVATIONS_PATH: &str = "/api/v1/activations";
/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from the server.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Largest local input file (key file, saved activation, CA bundle) read.
const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// Why a client operation failed. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A local file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we tried, e.g. "cannot read key file".
        action: &'static str,
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// `--server` is not an http(s) URL.
    #[error("invalid server URL '{url}': {reason}")]
    BadUrl {
        /// As given.
        url: String,
        /// Why.
        reason: String,
    },
    /// `--ca` holds no usable PEM certificate.
    #[error("--ca {}: {reason}", path.display())]
    Ca {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// The server could not be reached or the exchange broke off.
    #[error("cannot reach {url}: {}", error_chain(source))]
    Http {
        /// Request URL.
        url: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server refused with a problem+json answer (DESIGN §5).
    #[error("{code}: {detail} (HTTP {status})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable error code, e.g. `seats_exhausted`.
        code: String,
        /// Human-readable reason.
        detail: String,
        /// Seconds to wait before retrying (`Retry-After`), when given.
        retry_after: Option<u64>,
    },
    /// The server answered something that is not an activation or a problem.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse {
        /// Request URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A file meant to hold a saved activation does not.
    #[error("{} is not a saved activation: {reason}", path.display())]
    SavedActivation {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `--device-key` holds neither a saved activation nor a usable bare device key.
    #[error("{}: {reason}", path.display())]
    DeviceKeyInput {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What `seatkeep device activate` needs.
#[derive(Debug, Clone)]
pub struct ActivateOptions {
    /// Base URL of the Seatkeep server, e.g. `https://seatkeep.corp.example`.
    pub server: String,
    /// The license's key file (armored or bare).
    pub key_file: PathBuf,
    /// Device id.
    pub device_id: String,
    /// User name.
    pub user: String,
    /// Where to save the answer; default `./<device_id>.device.json`.
    pub out: Option<PathBuf>,
    /// Extra PEM root certificate(s) trusted for HTTPS.
    pub ca: Option<PathBuf>,
}

impl ActivateOptions {
    /// Where the answer is saved: `out`, or `./<device_id>.device.json`.
    pub fn out_path(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.device.json", self.device_id)))
    }
}

/// The result of a successful activation.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationOutcome {
    /// Seat id.
    pub seat: String,
    /// Seat state (`active`).
    pub state: String,
    /// True when a new seat was taken (HTTP 201), false for the same device again (HTTP 200).
    pub created: bool,
    /// Device key generation.
    pub generation: i64,
    /// End of the license term.
    pub expires_at: Option<i64>,
    /// Granted under the overage allowance.
    pub overage: bool,
    /// Where the answer was saved.
    pub saved_to: PathBuf,
}

/// An activation answer as saved by [`activate`] (the server's `Activation` JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedActivation {
    /// Seat id.
    pub seat: String,
    /// The signed device key (compact JWS).
    pub device_key: String,
    /// The license's current key file.
    pub key_file: String,
    /// Seat state when saved.
    #[serde(default)]
    pub state: String,
    /// End of the license term.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Proof of possession for reissue and return.
    #[serde(default)]
    pub return_token: String,
    /// Granted under the overage allowance.
    #[serde(default)]
    pub overage: bool,
    /// Device key generation.
    #[serde(default)]
    pub generation: i64,
}

/// The body of `POST /api/v1/activations`.
#[derive(Serialize)]
struct ActivationRequest<'a> {
    key_file: &'a str,
    device_id: &'a str,
    user_name: &'a str,
}

/// The members of a problem+json answer the client reads.
#[derive(Deserialize)]
struct Problem {
    code: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

/// Activates a seat: sends the key file, device id and user name to the server, saves the
/// answer (mode 0600: it holds the return token) and returns the seat and its state.
///
/// Needs a rustls crypto provider; if none is installed yet, aws-lc-rs is installed.
pub async fn activate(opts: &ActivateOptions) -> Result<ActivationOutcome, ClientError> {
    let key_file = read_text(&opts.key_file, "cannot read key file")?;
    let url = activations_url(&opts.server)?;
    let client = build_client(opts.ca.as_deref())?;
    let request = ActivationRequest {
        key_file: &key_file,
        device_id: &opts.device_id,
        user_name: &opts.user,
    };
    let http_error = |source| ClientError::Http {
        url: url.to_string(),
        source,
    };
    let response = client
        .post(url.clone())
        .json(&request)
        .send()
        .await
        .map_err(http_error)?;
    let status = response.status();
    let retry_after = retry_after(&response);
    let body = read_body(response, url.as_str()).await?;
    if status != reqwest::StatusCode::OK && status != reqwest::StatusCode::CREATED {
        return Err(refusal(status, &body, retry_after, url.as_str()));
    }
    let (saved, value) = parse_activation(&body, url.as_str())?;
    let out = opts.out_path();
    write_private_json(&out, &value)?;
    Ok(ActivationOutcome {
        seat: saved.seat,
        state: saved.state,
        created: status == reqwest::StatusCode::CREATED,
        generation: saved.generation,
        expires_at: saved.expires_at,
        overage: saved.overage,
        saved_to: out,
    })
}

/// Reads a saved activation (the JSON file [`activate`] writes).
pub fn load_saved_activation(path: &Path) -> Result<SavedActivation, ClientError> {
    let text = read_text(path, "cannot read saved activation")?;
    parse_saved(&text, path)
}

/// Reads `device verify`'s inputs: `device_key_path` holds either a saved activation (JSON,
/// which carries the key file too) or a bare compact device key, which needs
/// `key_file_path`. An explicit `key_file_path` wins over the key file in a saved activation
/// (e.g. a renewal). Returns `(key file text, device key)`.
pub fn read_device_key_input(
    device_key_path: &Path,
    key_file_path: Option<&Path>,
) -> Result<(String, String), ClientError> {
    let text = read_text(device_key_path, "cannot read device key")?;
    let content = text.trim_start_matches('\u{feff}').trim();
    if content.starts_with('{') {
        let saved = parse_saved(content, device_key_path)?;
        let key_file = match key_file_path {
            Some(path) => read_text(path, "cannot read key file")?,
            None => saved.key_file,
        };
        return Ok((key_file, saved.device_key));
    }
    let input_error = |reason: &str| ClientError::DeviceKeyInput {
        path: device_key_path.to_path_buf(),
        reason: reason.to_owned(),
    };
    if content.is_empty() || content.contains(char::is_whitespace) {
        return Err(input_error(
            "neither a saved activation (JSON) nor a single compact device key",
        ));
    }
    let key_file_path = key_file_path.ok_or_else(|| {
        input_error("holds a bare device key; pass --key-file with the license's key file")
    })?;
    let key_file = read_text(key_file_path, "cannot read key file")?;
    Ok((key_file, content.to_owned()))
}

fn parse_saved(text: &str, path: &Path) -> Result<SavedActivation, ClientError> {
    let saved: SavedActivation =
        serde_json::from_str(text).map_err(|e| ClientError::SavedActivation {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if saved.device_key.trim().is_empty() || saved.key_file.trim().is_empty() {
        return Err(ClientError::SavedActivation {
            path: path.to_path_buf(),
            reason: "device_key or key_file is empty".into(),
        });
    }
    Ok(saved)
}

/// `{server}/api/v1/activations`, refusing anything but http(s).
fn activations_url(server: &str) -> Result<reqwest::Url, ClientError> {
    let bad = |reason: String| ClientError::BadUrl {
        url: server.to_owned(),
        reason,
    };
    let base = server.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}{ACTIVATIONS_PATH}"))
        .map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("use http://HOST[:PORT] or https://HOST[:PORT]".into()));
    }
    Ok(url)
}

/// An HTTP client with the request timeout and, with `ca`, extra trusted roots.
fn build_client(ca: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    // The binary installs aws-lc-rs at start; this covers library callers that did not.
    // An error only means a provider is already installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("seatkeep-device/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca {
        for cert in read_ca(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| ClientError::Setup(error_chain(&e)))
}

/// The certificates of a PEM bundle; at least one.
fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem_bytes = read_bytes(path, "cannot read --ca")?;
    let ca_error = |reason: String| ClientError::Ca {
        path: path.to_path_buf(),
        reason,
    };
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem_bytes).map_err(|e| ca_error(error_chain(&e)))?;
    if certs.is_empty() {
        return Err(ca_error("no PEM CERTIFICATE block found".into()));
    }
    Ok(certs)
}

/// `Retry-After` in seconds, when the server sent one.
fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the answer body, refusing more than [`MAX_RESPONSE_BYTES`].
async fn read_body(mut response: reqwest::Response, url: &str) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| ClientError::Http {
        url: url.to_owned(),
        source,
    })? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ClientError::BadResponse {
                url: url.to_owned(),
                reason: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A non-success answer as an error: the problem's code and detail, or the raw status.
fn refusal(
    status: reqwest::StatusCode,
    body: &[u8],
    retry_after: Option<u64>,
    url: &str,
) -> ClientError {
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => ClientError::Refused {
            status: status.as_u16(),
            detail: problem
                .detail
                .or(problem.title)
                .unwrap_or_else(|| status.to_string()),
            code: problem.code,
            retry_after,
        },
        Err(_) => ClientError::BadResponse {
            url: url.to_owned(),
            reason: format!(
                "HTTP {status} without a problem+json body: {}",
                snippet(body)
            ),
        },
    }
}

/// The success answer, as typed fields and as the JSON value saved verbatim.
fn parse_activation(
    body: &[u8],
    url: &str,
) -> Result<(SavedActivation, serde_json::Value), ClientError> {
    let bad = |reason: String| ClientError::BadResponse {
        url: url.to_owned(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("not JSON ({e}): {}", snippet(body))))?;
    let saved: SavedActivation = serde_json::from_value(value.clone())
        .map_err(|e| bad(format!("not an activation: {e}")))?;
    if saved.device_key.is_empty() || saved.key_file.is_empty() {
        return Err(bad("the activation has no device key or key file".into()));
    }
    Ok((saved, value))
}

/// The start of a body for error messages, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None if line.is_empty() => "(empty body)".into(),
        None => line,
    }
}

/// Writes pretty JSON readable by the owner only, through a temporary file and a rename.
fn write_private_json(path: &Path, value: &serde_json::Value) -> Result<(), ClientError> {
    let io_error = |action, source| ClientError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| io_error("cannot write", std::io::Error::other(e)))?;
    text.push('\n');
    let file_name = path.file_name().ok_or_else(|| {
        io_error(
            "cannot write",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let tmp = path.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    write_owner_only(&tmp, text.as_bytes()).map_err(|e| io_error("cannot write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error("cannot write", e)
    })
}

/// Creates or truncates `path` with mode 0600 (on Unix) and writes `contents`.
fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // `mode` only applies to new files; a leftover file keeps its bits otherwise.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

/// Reads at most [`MAX_INPUT_BYTES`] of a local file.
fn read_bytes(path: &Path, action: &'static str) -> Result<Vec<u8>, ClientError> {
    let io_error = |source| ClientError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_INPUT_BYTES} bytes"),
        )));
    }
    Ok(bytes)
}

/// Reads a local UTF-8 text file of at most [`MAX_INPUT_BYTES`].
fn read_text(path: &Path, action: &'static str) -> Result<String, ClientError> {
    let bytes = read_bytes(path, action)?;
    String::from_utf8(bytes).map_err(|_| ClientError::Io {
        action,
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// The causes of an HTTP error, without reqwest's "error sending request for url" preamble.
fn error_chain(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    if error.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut parts: Vec<String> = Vec::new();
    let mut cause = error.source();
    while let Some(err) = cause {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = err.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::identity::{DeviceKeyProduct, ServerIdentity};
    use crate::keyfile::LicenseModel;
    use crate::keyfile::claims::Policy;
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

        fn verify(
            &self,
            device_key: &str,
            device: &str,
            user: Option<&str>,
        ) -> Result<VerifiedDevice, VerifyError> {
            self.verify_at(&self.key_file, device_key, device, user, NOW)
        }

        fn verify_at(
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
        fn key_file_with(&self, change: impl FnOnce(&mut KeyFileClaims)) -> String {
            let mut claims = self.claims.clone();
            change(&mut claims);
            keyfile::issue(&claims, &self.provider, "provider-2026").unwrap()
        }

        /// A device key signed by this chain's server with changed claims.
        fn device_key_with(&self, change: impl FnOnce(&mut DeviceKeyClaims)) -> String {
            let mut claims = device_claims(&self.claims, self.server.id());
            change(&mut claims);
            self.server.sign_device_key(&claims).unwrap()
        }
    }

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
        let forged = rogue
            .key()
            .sign_jws(
                DEVICE_KEY_TYP,
                c.server.id(),
                &device_claims(&c.claims, c.server.id()),
            )
            .unwrap();
        let err = c.verify(&forged, DEVICE, None).unwrap_err();
        assert!(
            matches!(err, VerifyError::DeviceKeySignature { .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with("broken chain"), "{err}");
        // A rogue server under its own id: refused before the signature.
        let own = rogue
            .sign_device_key(&device_claims(&c.claims, rogue.id()))
            .unwrap();
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
            c.key_file_with(|k| k.server.key = keyfile::server_claim(rogue.key().spki_der()).key);
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
        let private = KeyType::Ed25519.generate_pem().unwrap();
        assert!(matches!(
            ProviderKey::from_pem(private.as_bytes()),
            Err(VerifyError::ProviderKey(_))
        ));
        assert!(matches!(
            ProviderKey::from_pem(b"junk"),
            Err(VerifyError::ProviderKey(_))
        ));
        let c = ed_chain();
        assert_eq!(c.provider_key().fingerprint(), c.provider.fingerprint());
    }

    // --- activation client -------------------------------------------------------------------

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
        let outcome = activate(&opts).await.unwrap();
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
        assert_eq!(saved.return_token, "rt-secret");
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
        let outcome = activate(&opts).await.unwrap();
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
        let err = activate(&opts).await.unwrap_err();
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
        let err = activate(&opts).await.unwrap_err();
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
            activate(&bad).await,
            Err(ClientError::BadUrl { .. })
        ));
        let missing = ActivateOptions {
            key_file: dir.path().join("missing.seatkey"),
            ..opts
        };
        let err = activate(&missing).await.unwrap_err();
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
}
