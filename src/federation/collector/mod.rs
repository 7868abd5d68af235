//! The provider's collector (DESIGN §7, the provider's side of `seatkeep provider collect`):
//! takes batches over HTTP ([`http`]) or from an offline file, verifies each with the server
//! key of a key file this provider issued (never a key the batch names), stores events by
//! (server, license, seq) once ([`store`]) and answers signed acks. [`report`] sums them up.

pub mod http;
pub mod report;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use super::wire::{self, ACK_TYP, AckClaims, BATCH_TYP, BatchClaims, WireError};
use crate::signing::SigningKey;
use seatkeep_device::ProviderKey;
use seatkeep_device::keys::PublicKey;
use store::Store;

/// Why the collector refused something; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(String),
    /// A key file in the issued folder does not verify with this provider's key.
    #[error("{path}: not a key file issued with this provider key: {reason}")]
    Issued { path: PathBuf, reason: String },
    /// The batch is not acceptable (bad signature, another server's key, not consecutive).
    #[error("batch refused: {0}")]
    Refused(String),
    /// The batch names a license this provider did not issue to that server.
    #[error("batch refused: license '{lic}' was not issued to server {server}")]
    NotIssued { server: String, lic: String },
    #[error("cannot sign the ack: {0}")]
    Signing(#[from] crate::signing::SigningError),
}

impl CollectError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// True for a refusal of the request itself (4xx), as opposed to trouble on our side.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::NotIssued { .. })
    }
}

/// Shortest time between two scans of the issued folder for an unknown license.
const RESCAN_AFTER: Duration = Duration::from_secs(1);

/// Issued licenses by (server id, license id).
type IssuedMap = HashMap<(String, String), Issued>;

/// A license as this provider issued it to one server.
#[derive(Debug, Clone)]
struct Issued {
    provider: String,
    server_key: PublicKey,
}

/// What the collector answered a batch.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub server: String,
    pub lic: String,
    /// Events new to the store.
    pub stored: usize,
    /// The batch started past what is held: nothing stored, the ack says where to resend.
    pub gap: bool,
    pub acked: i64,
    pub ack: String,
}

/// The collector: issued licenses, the store, the ack key.
pub struct Collector {
    issued_dir: PathBuf,
    provider: ProviderKey,
    issued: RwLock<IssuedMap>,
    /// When the issued folder was last read (a batch for an unknown license reads it again,
    /// at most once per [`RESCAN_AFTER`]: key files issued while it runs count).
    scanned: Mutex<Instant>,
    store: Mutex<Store>,
    key: SigningKey,
    kid: String,
}

impl Collector {
    /// Loads the key files in `issued_dir` (each must verify with `key`'s public half) and
    /// opens the store in `data`.
    pub fn open(
        data: &Path,
        issued_dir: &Path,
        key: SigningKey,
        kid: &str,
    ) -> Result<Self, CollectError> {
        let provider =
            ProviderKey::from_spki_der(key.spki_der()).map_err(|e| CollectError::Issued {
                path: issued_dir.to_path_buf(),
                reason: e.to_string(),
            })?;
        let issued = scan(&provider, issued_dir)?;
        Ok(Self {
            issued_dir: issued_dir.to_path_buf(),
            provider,
            issued: RwLock::new(issued),
            scanned: Mutex::new(
                Instant::now()
                    .checked_sub(RESCAN_AFTER)
                    .unwrap_or_else(Instant::now),
            ),
            store: Mutex::new(Store::open(data)?),
            key,
            kid: kid.to_owned(),
        })
    }

    /// How many (server, license) pairs this collector knows.
    pub fn issued_count(&self) -> usize {
        self.issued.read().map_or(0, |m| m.len())
    }

    /// The issued license (server, lic), reading the folder again once if it is unknown.
    fn find_issued(&self, server: &str, lic: &str) -> Result<Issued, CollectError> {
        let key = (server.to_owned(), lic.to_owned());
        let poisoned = || CollectError::Storage("a collector lock is poisoned".into());
        if let Some(found) = self.issued.read().map_err(|_| poisoned())?.get(&key) {
            return Ok(found.clone());
        }
        {
            let mut scanned = self.scanned.lock().map_err(|_| poisoned())?;
            if scanned.elapsed() >= RESCAN_AFTER {
                let fresh = scan(&self.provider, &self.issued_dir)?;
                *self.issued.write().map_err(|_| poisoned())? = fresh;
                *scanned = Instant::now();
            }
        }
        self.issued
            .read()
            .map_err(|_| poisoned())?
            .get(&key)
            .cloned()
            .ok_or_else(|| CollectError::NotIssued {
                server: server.to_owned(),
                lic: lic.to_owned(),
            })
    }

    /// Verifies and stores one batch; answers the ack (also for a batch that starts past
    /// what is held, which stores nothing). Blocking (fsync).
    pub fn receive(&self, token: &str) -> Result<Receipt, CollectError> {
        let refuse = |e: WireError| CollectError::Refused(e.to_string());
        let (header, unverified) = wire::peek::<BatchClaims>(token).map_err(refuse)?;
        let (server, lic) = (unverified.iss, unverified.lic);
        let issued = self.find_issued(&server, &lic)?;
        let alg = issued
            .server_key
            .algorithm_for(&header.alg)
            .ok_or_else(|| {
                CollectError::Refused(format!(
                    "alg {} does not fit the server's {} key",
                    header.alg,
                    issued.server_key.kind()
                ))
            })?;
        let batch: BatchClaims =
            wire::verify(token, BATCH_TYP, &issued.server_key, alg, &server).map_err(refuse)?;
        batch.check_shape().map_err(refuse)?;
        let mut store = self
            .store
            .lock()
            .map_err(|_| CollectError::Storage("the store lock is poisoned".into()))?;
        let held = store.acked(&server, &lic);
        let first = batch.events[0].seq;
        let (stored, gap) = if first > held + 1 {
            (0, true)
        } else {
            (store.append(&server, &lic, &batch.events)?, false)
        };
        let acked = store.acked(&server, &lic);
        drop(store);
        let ack = self.key.sign_jws(
            ACK_TYP,
            &self.kid,
            &AckClaims {
                iss: issued.provider.clone(),
                sub: server.clone(),
                lic: lic.clone(),
                acked,
                iat: crate::clock::default_source().now(),
            },
        )?;
        Ok(Receipt {
            server,
            lic,
            stored,
            gap,
            acked,
            ack,
        })
    }
}

/// Reads every `*.seatkey` in `dir`; each must verify with the provider key.
fn scan(provider: &ProviderKey, dir: &Path) -> Result<IssuedMap, CollectError> {
    let mut issued = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| CollectError::io(dir, e))?;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "seatkey") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CollectError::io(&path, e))?;
        let refuse = |reason: String| CollectError::Issued {
            path: path.clone(),
            reason,
        };
        let claims = seatkeep_device::verify::verify_key_file(provider, &text)
            .map_err(|e| refuse(e.to_string()))?;
        let server_key =
            seatkeep_device::verify::server_key(&claims).map_err(|e| refuse(e.to_string()))?;
        issued.insert(
            (claims.server.id.clone(), claims.lic.clone()),
            Issued {
                provider: claims.iss.clone(),
                server_key,
            },
        );
    }
    Ok(issued)
}
