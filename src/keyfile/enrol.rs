//! Trusting a new provider key (`seatkeep keyfile trust`): checks the PEM (it parses as a
//! public key of the pinned algorithm), copies it to `provider-keys/KID.pem` next to the
//! config and appends its `[[provider.trusted_keys]]` block to the config file, refusing a
//! kid that is already trusted. The config is loaded again afterwards; if that fails, the
//! file and the copy are put back as they were.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::trust::{TrustError, TrustedKeyConfig, TrustedKeys};
use crate::config::{Config, ConfigError};
use crate::jws::JwsAlgorithm;

/// Folder, next to the config, for the copied provider keys.
pub const PROVIDER_KEYS_DIR: &str = "provider-keys";

/// Why a key was not trusted.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("no config file to add the key to: give --config FILE (seatkeep init writes one)")]
    NoConfigFile,
    #[error("kid '{0}' is already trusted in this config")]
    DuplicateKid(String),
    #[error("--kid must be 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    BadKid,
    #[error("--provider must be 1 to 256 characters without control characters")]
    BadProvider,
    #[error("{path} is not an {alg} public key: {reason}")]
    NotAKey {
        path: PathBuf,
        alg: JwsAlgorithm,
        reason: String,
    },
    #[error("{path} already exists with other contents")]
    CopyExists { path: PathBuf },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config would not load with the new key, left unchanged: {0}")]
    Reload(#[from] ConfigError),
    #[error("the config would not load with the new key, left unchanged: {0}")]
    ReloadKeys(#[from] TrustError),
}

/// Trusts the public key in `pem_path` for `provider` under `kid`, pinned to `algorithm`;
/// returns where the key was copied.
pub fn trust_key(
    config: &Config,
    pem_path: &Path,
    kid: &str,
    provider: &str,
    algorithm: JwsAlgorithm,
) -> Result<PathBuf, EnrolError> {
    let config_file = config
        .source_file
        .as_ref()
        .ok_or(EnrolError::NoConfigFile)?;
    let kid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if kid.is_empty() || kid.len() > 64 || !kid.chars().all(kid_char) {
        return Err(EnrolError::BadKid);
    }
    if provider.is_empty() || provider.len() > 256 || provider.chars().any(char::is_control) {
        return Err(EnrolError::BadProvider);
    }
    if config.provider.trusted_keys.iter().any(|k| k.kid == kid) {
        return Err(EnrolError::DuplicateKid(kid.to_owned()));
    }
    let pem_bytes = read(pem_path)?;
    check_key(&pem_bytes, algorithm).map_err(|reason| EnrolError::NotAKey {
        path: pem_path.to_path_buf(),
        alg: algorithm,
        reason,
    })?;
    let relative = PathBuf::from(PROVIDER_KEYS_DIR).join(format!("{kid}.pem"));
    let copy = config.base_dir.join(&relative);
    let fresh_copy = match std::fs::read(&copy) {
        Ok(existing) if existing == pem_bytes => false,
        Ok(_) => return Err(EnrolError::CopyExists { path: copy }),
        Err(_) => true,
    };
    if fresh_copy {
        let dir = config.base_dir.join(PROVIDER_KEYS_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| io("cannot create", &dir, source))?;
        std::fs::write(&copy, &pem_bytes).map_err(|source| io("cannot write", &copy, source))?;
    }
    let original = read(config_file)?;
    let block = block(kid, provider, algorithm, &relative);
    let appended = append(config_file, &original, &block).and_then(|()| {
        let reloaded = Config::load(Some(config_file))?;
        TrustedKeys::load(&reloaded.provider.trusted_keys, &reloaded.base_dir)?;
        Ok(())
    });
    if let Err(e) = appended {
        let _ = std::fs::write(config_file, &original);
        if fresh_copy {
            let _ = std::fs::remove_file(&copy);
        }
        return Err(e);
    }
    Ok(copy)
}

/// The key parses as a public key of `algorithm`'s family (what the server will load).
fn check_key(pem_bytes: &[u8], algorithm: JwsAlgorithm) -> Result<(), String> {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    let doc = pem::parse(pem_bytes).map_err(|e| format!("not PEM ({e})"))?;
    if doc.tag() != "PUBLIC KEY" {
        return Err(format!("a '{}' block, not 'PUBLIC KEY'", doc.tag()));
    }
    if algorithm.is_rsa() {
        rsa::RsaPublicKey::from_public_key_der(doc.contents())
            .map(drop)
            .map_err(|e| format!("not an RSA key ({e})"))
    } else {
        ed25519_dalek::VerifyingKey::from_public_key_der(doc.contents())
            .map(drop)
            .map_err(|e| format!("not an Ed25519 key ({e})"))
    }?;
    let probe = TrustedKeyConfig {
        kid: String::new(),
        provider: String::new(),
        algorithm,
        public_key_file: PathBuf::new(),
    };
    TrustedKeys::check(&probe, pem_bytes)
}

/// The TOML block, values quoted by the TOML writer.
fn block(kid: &str, provider: &str, algorithm: JwsAlgorithm, file: &Path) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    format!(
        "\n[[provider.trusted_keys]]\nkid = {}\nprovider = {}\nalgorithm = {}\n\
         public_key_file = {}\n",
        quote(kid),
        quote(provider),
        quote(algorithm.as_str()),
        quote(&file.to_string_lossy()),
    )
}

fn append(config_file: &Path, original: &[u8], block: &str) -> Result<(), EnrolError> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(config_file)
        .map_err(|source| io("cannot write", config_file, source))?;
    let separator: &[u8] = if original.ends_with(b"\n") || original.is_empty() {
        b""
    } else {
        b"\n"
    };
    file.write_all(separator)
        .and_then(|()| file.write_all(block.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(|source| io("cannot write", config_file, source))
}

fn read(path: &Path) -> Result<Vec<u8>, EnrolError> {
    std::fs::read(path).map_err(|source| io("cannot read", path, source))
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> EnrolError {
    EnrolError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
