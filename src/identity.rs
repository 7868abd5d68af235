//! The server's identity: its key pair, its id (`sha256(SPKI DER)`), and the device keys it
//! signs (DESIGN §2, §3).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::keyfile::ServerBinding;
use crate::signing::{KeyType, SigningError, SigningKey};

/// The device key format is the device crate's, so the server signs what devices verify.
pub use seatkeep_device::device_key::{DEVICE_KEY_TYP, DeviceKeyClaims, DeviceKeyProduct};

/// Why the server identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing a key file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The key file holds no usable key.
    #[error("identity.key_file {path}: {source}")]
    Key { path: PathBuf, source: SigningError },
    /// `init` would replace an existing key.
    #[error(
        "a server key already exists at {0} (use --force to replace it; device keys signed by the old key stop verifying)"
    )]
    Exists(PathBuf),
    /// Key generation failed.
    #[error(transparent)]
    Signing(#[from] SigningError),
}

/// The server key pair and what is derived from it.
pub struct ServerIdentity {
    key: SigningKey,
    id: String,
    return_token_key: [u8; 32],
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("id", &self.id)
            .field("algorithm", &self.key.algorithm())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Loads the server key from a PKCS#8 PEM file.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let pem_bytes = std::fs::read(path).map_err(|source| IdentityError::Io {
            action: "cannot read identity.key_file",
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&pem_bytes).map_err(|source| IdentityError::Key {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses a server key from PEM.
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, SigningError> {
        let key = SigningKey::from_pem(pem_bytes, None)?;
        let id = key.fingerprint();
        // Return tokens are derived from the private key, so every instance sharing the key
        // can recompute them (idempotent activation) without another secret to distribute.
        let mut hasher = Sha256::new();
        hasher.update(b"seatkeep return-token key v1\0");
        hasher.update(pem_bytes);
        let return_token_key = hasher.finalize().into();
        Ok(Self {
            key,
            id,
            return_token_key,
        })
    }

    /// Generates a key pair and writes `key_path` (mode 0600) and its `.pub.pem` sibling.
    /// Refuses to replace an existing key unless `force`.
    pub fn create(key_path: &Path, key_type: KeyType, force: bool) -> Result<Self, IdentityError> {
        if key_path.exists() && !force {
            return Err(IdentityError::Exists(key_path.to_path_buf()));
        }
        let pem_text = key_type.generate_pem()?;
        let identity = Self::from_pem(pem_text.as_bytes())?;
        write_private(key_path, pem_text.as_bytes())?;
        let public_path = public_key_path(key_path);
        std::fs::write(&public_path, identity.key.public_pem()).map_err(|source| {
            IdentityError::Io {
                action: "cannot write",
                path: public_path,
                source,
            }
        })?;
        Ok(identity)
    }

    /// The server id: `sha256(SPKI DER)`, lowercase hex.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// What a key file must be bound to.
    pub fn binding(&self) -> ServerBinding {
        ServerBinding {
            id: self.id.clone(),
            spki_der: self.key.spki_der().to_vec(),
        }
    }

    /// Signs a device key.
    pub fn sign_device_key(&self, claims: &DeviceKeyClaims) -> Result<String, SigningError> {
        self.key.sign_jws(DEVICE_KEY_TYP, &self.id, claims)
    }

    /// The return token of a seat's activation cycle: HMAC(server secret, seat, cycle).
    pub fn return_token(&self, seat_id: &str, cycle: i64) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.return_token_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(seat_id.as_bytes());
        mac.update(b":");
        mac.update(cycle.to_string().as_bytes());
        crate::jws::b64url(&mac.finalize().into_bytes())
    }
}

/// `sha256(token)` in hex: how return tokens are stored and compared.
pub fn hash_return_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `server-key.pem` → `server-key.pub.pem`.
pub fn public_key_path(key_path: &Path) -> PathBuf {
    let stem = key_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "server-key".into());
    key_path.with_file_name(format!("{stem}.pub.pem"))
}

/// Writes a private key with mode 0600, through a temporary file and a rename.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    let io_err = |action, source| IdentityError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("pem.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(|e| io_err("cannot create", e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err("cannot write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err("cannot write", e))
}
