//! The offline verifier: what a product does with nothing but the pinned provider public key
//! (DESIGN §2). It verifies the key file with the provider key, takes the server key out of
//! the key file (checking it against the file's `server.id`), verifies the device key with
//! that server key, then checks that the device key is bound to this device, user, license
//! and product and that the term holds. Algorithms are pinned by key type: a token's `alg`
//! header may only agree with it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::device_key::{DEVICE_KEY_TYP, DeviceKeyClaims, MAX_DEVICE_KEY_BYTES};
use crate::jws;
use crate::keyfile::{
    self, Customer, KEY_FILE_TYP, KeyFileClaims, KeyFileError, Product, TermError,
};
use crate::keys::{PublicKey, spki_fingerprint};
use crate::time::format_rfc3339;

#[cfg(test)]
pub(crate) mod tests;

/// Why a device key does not verify. Every message is one line; "broken chain" marks the
/// cases where the device key was not issued by the server the key file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The provider public key could not be used.
    ProviderKey(String),
    /// Armor, JWS framing or claims of the key file are wrong.
    KeyFile(KeyFileError),
    /// The key file's `typ` header is not [`KEY_FILE_TYP`].
    KeyFileTyp(Option<String>),
    /// The key file's `alg` cannot be produced by the provider key's type.
    KeyFileAlgorithm {
        /// Header `alg`.
        alg: String,
        /// Provider key type.
        key: &'static str,
        /// Algorithms that fit.
        expected: &'static str,
    },
    /// The key file's signature does not verify with the provider key.
    KeyFileSignature,
    /// `server.key` is not base64 SPKI DER of the server named by `server.id`.
    ServerKeyMismatch {
        /// `server.id` in the key file.
        id: String,
    },
    /// `server.key` matches `server.id` but is not a usable public key.
    ServerKeyUnreadable(String),
    /// The device key is not a compact JWS with valid claims.
    DeviceKey(String),
    /// The device key's `typ` header is not [`DEVICE_KEY_TYP`].
    DeviceKeyTyp(Option<String>),
    /// The device key names (in `kid` or `iss`) another server than the key file.
    DeviceKeyIssuer {
        /// `kid` or `iss`.
        field: &'static str,
        /// Value in the device key.
        found: String,
        /// `server.id` of the key file.
        expected: String,
    },
    /// The device key's `alg` cannot be produced by the server key's type.
    DeviceKeyAlgorithm {
        /// Header `alg`.
        alg: String,
        /// Server key type.
        key: &'static str,
        /// Algorithms that fit.
        expected: &'static str,
    },
    /// The device key's signature does not verify with the server key in the key file.
    DeviceKeySignature {
        /// `server.id` of the key file.
        server: String,
    },
    /// The device key was issued to another device.
    WrongDevice {
        /// Device id asked for.
        expected: String,
        /// `sub` of the device key.
        found: String,
    },
    /// The device key was issued to another user.
    WrongUser {
        /// User asked for.
        expected: String,
        /// `name` of the device key.
        found: String,
    },
    /// The device key is for another license than the key file.
    WrongLicense {
        /// Key file `lic`.
        expected: String,
        /// Device key `lic`.
        found: String,
    },
    /// The device key is for another product or edition than the key file.
    WrongProduct {
        /// Key file product, `'id' edition N`.
        expected: String,
        /// Device key product, `'id' edition N`.
        found: String,
    },
    /// The device key's `exp` has passed (with [`keyfile::TERM_LEEWAY_SECS`] of leeway).
    Expired {
        /// Device key `exp`, unix seconds.
        exp: i64,
    },
    /// The key file's `nbf` lies ahead (with [`keyfile::TERM_LEEWAY_SECS`] of leeway).
    NotYetValid {
        /// Key file `nbf`, unix seconds.
        nbf: i64,
    },
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ProviderKey(reason) => write!(f, "provider key unreadable: {reason}"),
            Self::KeyFile(e) => write!(f, "malformed key file: {e}"),
            Self::KeyFileTyp(found) => write!(
                f,
                "not a key file: typ must be '{KEY_FILE_TYP}', found {found:?}"
            ),
            Self::KeyFileAlgorithm { alg, key, expected } => write!(
                f,
                "key file alg '{alg}' does not fit the {key} provider key (expected {expected})"
            ),
            Self::KeyFileSignature => f.write_str(
                "bad key file signature: the key file was altered or is not signed by this provider key",
            ),
            Self::ServerKeyMismatch { id } => write!(
                f,
                "broken chain: the key file's server.key does not match its server.id {id}"
            ),
            Self::ServerKeyUnreadable(reason) => write!(
                f,
                "broken chain: the key file's server key is unusable: {reason}"
            ),
            Self::DeviceKey(reason) => write!(f, "malformed device key: {reason}"),
            Self::DeviceKeyTyp(found) => write!(
                f,
                "not a device key: typ must be '{DEVICE_KEY_TYP}', found {found:?}"
            ),
            Self::DeviceKeyIssuer {
                field,
                found,
                expected,
            } => write!(
                f,
                "broken chain: the device key {field} is '{found}', but the key file is for server {expected}"
            ),
            Self::DeviceKeyAlgorithm { alg, key, expected } => write!(
                f,
                "device key alg '{alg}' does not fit the {key} server key (expected {expected})"
            ),
            Self::DeviceKeySignature { server } => write!(
                f,
                "broken chain: the device key signature is not valid for server key {server} named in the key file"
            ),
            Self::WrongDevice { expected, found } => {
                write!(f, "device key is for device '{found}', not '{expected}'")
            }
            Self::WrongUser { expected, found } => {
                write!(f, "device key is for user '{found}', not '{expected}'")
            }
            Self::WrongLicense { expected, found } => write!(
                f,
                "device key is for license '{found}', but the key file is for license '{expected}'"
            ),
            Self::WrongProduct { expected, found } => write!(
                f,
                "device key is for product {found}, but the key file is for product {expected}"
            ),
            Self::Expired { exp } => {
                write!(f, "device key expired at {} (unix {exp})", format_rfc3339(*exp))
            }
            Self::NotYetValid { nbf } => {
                write!(f, "license not valid before {} (unix {nbf})", format_rfc3339(*nbf))
            }
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::KeyFile(e) => Some(e),
            _ => None,
        }
    }
}

impl From<KeyFileError> for VerifyError {
    fn from(e: KeyFileError) -> Self {
        match e {
            KeyFileError::Typ(found) => Self::KeyFileTyp(found),
            other => Self::KeyFile(other),
        }
    }
}

impl From<TermError> for VerifyError {
    fn from(e: TermError) -> Self {
        match e {
            TermError::Expired { exp } => Self::Expired { exp },
            TermError::NotYetValid { nbf } => Self::NotYetValid { nbf },
        }
    }
}

/// The provider's root public key, as pinned in the product.
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
        Self::from_spki_der(doc.contents())
    }

    /// Takes SubjectPublicKeyInfo DER, for products that embed the key as bytes.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, VerifyError> {
        Ok(Self {
            key: PublicKey::from_spki_der(der)
                .map_err(|e| VerifyError::ProviderKey(e.to_string()))?,
            fingerprint: spki_fingerprint(der),
        })
    }

    /// `sha256(SPKI DER)` of the key in lowercase hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The key itself.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
}

/// What a verified device key grants: the chain provider → key file → server → device key
/// held, and every binding matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// When the device key was issued, unix seconds.
    pub issued_at: i64,
    /// End of the term (device key `exp`), unix seconds; none means perpetual.
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
/// issued. `user` is only compared when given. `now` is unix seconds from the caller's clock;
/// the term allows [`keyfile::TERM_LEEWAY_SECS`] of leeway like the server does.
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
    keyfile::check_term(key_file.nbf, device.exp, now)?;
    Ok(verified(key_file, device))
}

/// Verifies a key file with the provider key: armor, `typ`, `alg` against the provider key
/// type, the signature and the claims. Neither the term nor the server binding is checked.
pub fn verify_key_file(provider: &ProviderKey, text: &str) -> Result<KeyFileClaims, VerifyError> {
    let compact = keyfile::dearmor(text.as_bytes())?;
    let parsed = keyfile::parse(&compact)?;
    let key = provider.key();
    let alg =
        key.algorithm_for(&parsed.header.alg)
            .ok_or_else(|| VerifyError::KeyFileAlgorithm {
                alg: parsed.header.alg.clone(),
                key: key.kind(),
                expected: key.expected_algorithms(),
            })?;
    if !key.verify_jws(alg, &parsed) {
        return Err(VerifyError::KeyFileSignature);
    }
    Ok(KeyFileClaims::from_json(&parsed.payload)?)
}

/// Takes the server key out of verified key file claims, checking it against `server.id`.
pub fn server_key(claims: &KeyFileClaims) -> Result<PublicKey, VerifyError> {
    let mismatch = || VerifyError::ServerKeyMismatch {
        id: claims.server.id.clone(),
    };
    let der = STANDARD
        .decode(claims.server.key.as_bytes())
        .map_err(|_| mismatch())?;
    if spki_fingerprint(&der) != claims.server.id {
        return Err(mismatch());
    }
    PublicKey::from_spki_der(&der).map_err(|e| VerifyError::ServerKeyUnreadable(e.to_string()))
}

/// Why a token the server signed (device key, packet, time token) did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSignedError {
    /// Too long or not a compact JWS.
    Malformed(String),
    /// Another `typ` than expected.
    Typ(Option<String>),
    /// `kid` is not the server id named in the key file.
    Kid(String),
    /// `alg` does not fit the server key's type.
    Algorithm {
        alg: String,
        key: &'static str,
        expected: &'static str,
    },
    /// The signature is not valid for the server key.
    Signature,
}

impl std::fmt::Display for ServerSignedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed: {why}"),
            Self::Typ(found) => write!(f, "wrong typ {found:?}"),
            Self::Kid(found) => write!(f, "kid '{found}' is not the key file's server"),
            Self::Algorithm { alg, key, expected } => {
                write!(
                    f,
                    "alg '{alg}' does not fit the {key} server key (expected {expected})"
                )
            }
            Self::Signature => f.write_str("not signed by the key file's server key"),
        }
    }
}

impl std::error::Error for ServerSignedError {}

/// Verifies a token signed by the server key named in the key file: size, `typ`, `kid` =
/// server id, `alg` pinned by the key type, signature. Returns the payload, not yet parsed.
pub fn verify_server_signed(
    server: &PublicKey,
    server_id: &str,
    token: &str,
    typ: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, ServerSignedError> {
    let token = token.trim();
    if token.len() > max_bytes {
        return Err(ServerSignedError::Malformed(format!(
            "larger than {max_bytes} bytes"
        )));
    }
    let parsed =
        jws::parse_compact(token).map_err(|e| ServerSignedError::Malformed(e.to_string()))?;
    if parsed.header.typ.as_deref() != Some(typ) {
        return Err(ServerSignedError::Typ(parsed.header.typ.clone()));
    }
    let kid = parsed.header.kid.as_deref().unwrap_or("");
    if kid != server_id {
        return Err(ServerSignedError::Kid(kid.to_owned()));
    }
    let alg =
        server
            .algorithm_for(&parsed.header.alg)
            .ok_or_else(|| ServerSignedError::Algorithm {
                alg: parsed.header.alg.clone(),
                key: server.kind(),
                expected: server.expected_algorithms(),
            })?;
    if !server.verify_jws(alg, &parsed) {
        return Err(ServerSignedError::Signature);
    }
    Ok(parsed.payload)
}

/// Checks the device key's size, `typ`, `kid`, `alg`, signature and `iss` against the server
/// key; returns its claims.
fn verify_device_signature(
    server: &PublicKey,
    server_id: &str,
    device_key: &str,
) -> Result<DeviceKeyClaims, VerifyError> {
    let payload = verify_server_signed(
        server,
        server_id,
        device_key,
        DEVICE_KEY_TYP,
        MAX_DEVICE_KEY_BYTES,
    )
    .map_err(|e| match e {
        ServerSignedError::Malformed(why) => VerifyError::DeviceKey(why),
        ServerSignedError::Typ(found) => VerifyError::DeviceKeyTyp(found),
        ServerSignedError::Kid(found) => VerifyError::DeviceKeyIssuer {
            field: "kid",
            found,
            expected: server_id.to_owned(),
        },
        ServerSignedError::Algorithm { alg, key, expected } => {
            VerifyError::DeviceKeyAlgorithm { alg, key, expected }
        }
        ServerSignedError::Signature => VerifyError::DeviceKeySignature {
            server: server_id.to_owned(),
        },
    })?;
    let claims: DeviceKeyClaims = serde_json::from_slice(&payload)
        .map_err(|e| VerifyError::DeviceKey(format!("claims: {e}")))?;
    check_issuer("iss", &claims.iss, server_id)?;
    Ok(claims)
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
