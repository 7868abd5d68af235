//! Everything a running Seatkeep needs, loaded once at start: config, database, server
//! identity, trusted provider keys, the clock, and the cache of verified key files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::clock::{Clock, TimeSource};
use crate::config::{Config, ConfigError};
use crate::db::{Database, DbError};
use crate::identity::{IdentityError, ServerIdentity};
use crate::keyfile::trust::TrustError;
use crate::keyfile::{self, KeyFileError, ServerBinding, TrustedKeys, VerifiedKeyFile};

/// Most verified key files kept in memory (a site has a handful; this bounds abuse).
const KEY_FILE_CACHE_LIMIT: usize = 1024;

/// Why the application could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Server key missing or broken.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A trusted provider key is missing or broken.
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The loaded application.
pub struct App {
    pub config: Config,
    /// Reads through the pool, writes through [`Database::write`].
    pub db: Database,
    pub identity: ServerIdentity,
    /// Provider keys, by `kid`.
    pub trusted: TrustedKeys,
    /// This server's binding, as key files must name it.
    pub binding: ServerBinding,
    /// The one source of "now", and the watch that stops signing when it goes back.
    pub clock: Clock,
    verified: Mutex<HashMap<[u8; 32], Arc<VerifiedKeyFile>>>,
    stored_texts: Mutex<HashMap<String, Arc<str>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("identity", &self.identity)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Loads identity and trusted keys (so a bad file stops us before anything is written),
    /// then opens the database, with the binary's clock ([`crate::clock::default_source`]).
    pub fn load(config: Config) -> Result<Self, StartError> {
        Self::load_with_clock(config, crate::clock::default_source())
    }

    /// [`App::load`] with time from `time` (tests move it).
    pub fn load_with_clock(config: Config, time: Arc<dyn TimeSource>) -> Result<Self, StartError> {
        let location = config.database_location()?;
        let identity = ServerIdentity::load(&config.resolve(&config.identity.key_file))?;
        let trusted = TrustedKeys::load(&config.provider.trusted_keys, &config.base_dir)?;
        let db = Database::open(&location, &config.database)?;
        crate::notify::configure(&config);
        Ok(Self {
            binding: identity.binding(),
            clock: Clock::new(time, config.clock.tolerance),
            config,
            db,
            identity,
            trusted,
            verified: Mutex::new(HashMap::new()),
            stored_texts: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies a key file a device presents (signature, claims, binding; not the term),
    /// remembering files already verified by the digest of their bytes.
    pub fn verify_presented(&self, text: &str) -> Result<Arc<VerifiedKeyFile>, KeyFileError> {
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if let Some(hit) = self.cache().get(&digest) {
            return Ok(Arc::clone(hit));
        }
        let verified = Arc::new(keyfile::verify(
            text.as_bytes(),
            &self.trusted,
            &self.binding,
        )?);
        let mut cache = self.cache();
        if cache.len() >= KEY_FILE_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(digest, Arc::clone(&verified));
        Ok(verified)
    }

    /// The stored text of the key file with this digest. Stored files never change, so the
    /// text is kept in memory after the first read, and a hit needs no connection.
    pub fn key_file_text(&self, digest: &str) -> Result<Arc<str>, DbError> {
        if let Some(text) = lock(&self.stored_texts).get(digest) {
            return Ok(Arc::clone(text));
        }
        let text: Arc<str> =
            crate::licenses::stored_key_file(&mut *self.db.conn()?, digest)?.into();
        let mut texts = lock(&self.stored_texts);
        if texts.len() >= KEY_FILE_CACHE_LIMIT {
            texts.clear();
        }
        texts.insert(digest.to_owned(), Arc::clone(&text));
        Ok(text)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<VerifiedKeyFile>>> {
        lock(&self.verified)
    }
}

/// Locks a cache. The maps hold no invariant a panicking holder could break: keep using them.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
