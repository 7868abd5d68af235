//! Backup and restore (`seatkeep backup`, `seatkeep restore`). A backup is one consistent
//! copy taken while the server serves: on SQLite `VACUUM INTO` (a read transaction, so
//! writers go on; never a file copy of a live database), on PostgreSQL `pg_dump` (one
//! snapshot). The server key is not in it: with `include_server_key` it is written beside
//! it as `FILE.server-key.pem` (mode 0600), to be kept apart from the data.
//!
//! A restore goes into an empty database only, unless forced; it names what it would
//! overwrite. The restored database is migrated to this version.

mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, DatabaseLocation};
use crate::db::{Database, DbError};

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{file} is not a Seatkeep backup: {reason}")]
    NotABackup { file: PathBuf, reason: String },
    #[error(
        "the database is not empty ({what}); restoring would replace all of it: add --force to overwrite"
    )]
    NotEmpty { what: String },
    #[error("{path} already exists{hint}")]
    Exists { path: PathBuf, hint: &'static str },
    #[error("{0}")]
    ToolMissing(String),
    #[error("{tool} failed: {message}")]
    Tool { tool: &'static str, message: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::query_errors_into!(BackupError);

/// What a backup wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    pub file: PathBuf,
    pub bytes: u64,
    /// Where the server key went, when asked for.
    pub server_key: Option<PathBuf>,
}

/// What a restore replaced and wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// Licenses and seats now in the database.
    pub licenses: i64,
    pub seats: i64,
    /// Migrations applied after the restore.
    pub migrated: usize,
    pub server_key: Option<PathBuf>,
}

/// Progress lines for a person at a terminal (nothing otherwise).
pub type Progress<'a> = &'a dyn Fn(&str);

/// Backs the database of `config` up to `out`.
pub fn backup(
    config: &Config,
    out: &Path,
    include_server_key: bool,
    progress: Progress<'_>,
) -> Result<BackupReport, BackupError> {
    if out.exists() {
        return Err(BackupError::Exists {
            path: out.to_path_buf(),
            hint: ": choose a new file",
        });
    }
    let key_copy = include_server_key.then(|| sidecar_key(out));
    if let Some(copy) = key_copy.as_ref().filter(|c| c.exists()) {
        return Err(BackupError::Exists {
            path: copy.clone(),
            hint: ": choose a new backup file",
        });
    }
    progress("copying the database (the server keeps serving)");
    match config.database_location()? {
        DatabaseLocation::Sqlite(path) => sqlite::backup(&path, out)?,
        DatabaseLocation::Postgres(url) => postgres::backup(&url, out)?,
    }
    if let Some(copy) = &key_copy {
        let key = config.resolve(&config.identity.key_file);
        let pem = std::fs::read(&key).map_err(|e| io("cannot read", &key, e))?;
        write_private(copy, &pem)?;
    }
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        file: out.to_path_buf(),
        bytes,
        server_key: key_copy,
    })
}

/// Restores `file` into the database of `config`.
pub fn restore(
    config: &Config,
    file: &Path,
    include_server_key: bool,
    force: bool,
    progress: Progress<'_>,
) -> Result<RestoreReport, BackupError> {
    if !file.is_file() {
        return Err(BackupError::NotABackup {
            file: file.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    let key_source = sidecar_key(file);
    let key_target = config.resolve(&config.identity.key_file);
    if include_server_key {
        if !key_source.is_file() {
            return Err(BackupError::NotABackup {
                file: key_source,
                reason: "no server key beside the backup (taken without --include-server-key?)"
                    .into(),
            });
        }
        if key_target.exists() && !force {
            return Err(BackupError::Exists {
                path: key_target,
                hint: ": the server key would be replaced; add --force",
            });
        }
    }
    let location = config.database_location()?;
    progress("checking the backup and the target database");
    match &location {
        DatabaseLocation::Sqlite(path) => sqlite::restore(file, path, force)?,
        DatabaseLocation::Postgres(url) => {
            let db = Database::open(&location, &config.database)?;
            let held = contents(&mut *db.conn()?);
            if !force && let Some(what) = held {
                return Err(BackupError::NotEmpty { what });
            }
            progress("restoring with pg_restore");
            postgres::restore(url, file)?;
        }
    }
    let server_key = if include_server_key {
        let pem = std::fs::read(&key_source).map_err(|e| io("cannot read", &key_source, e))?;
        write_private(&key_target, &pem)?;
        Some(key_target)
    } else {
        None
    };
    progress("migrating the restored database");
    let db = Database::open(&location, &config.database)?;
    let migrated = db.migrate()?;
    let (licenses, seats) = counts(&db)?;
    Ok(RestoreReport {
        licenses,
        seats,
        migrated,
        server_key,
    })
}

/// `FILE.server-key.pem`.
fn sidecar_key(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".server-key.pem");
    PathBuf::from(name)
}

/// What a database holds, worded for the refusal; `None` when it is empty (or new).
fn contents(conn: &mut crate::db::DbConn) -> Option<String> {
    let mut parts = Vec::new();
    for table in ["licenses", "seats", "audit_log", "admins"] {
        if let Some(n) = count(conn, table).filter(|n| *n > 0) {
            parts.push(format!("{n} rows in {table}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn counts(db: &Database) -> Result<(i64, i64), BackupError> {
    let mut conn = db.conn()?;
    Ok((
        count(&mut conn, "licenses").unwrap_or(0),
        count(&mut conn, "seats").unwrap_or(0),
    ))
}

/// Rows in `table` (one of ours, never input); `None` when it does not exist.
fn count(conn: &mut crate::db::DbConn, table: &str) -> Option<i64> {
    use diesel::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<Count>(conn)
        .ok()
        .map(|c| c.n)
}

/// Writes a secret file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), BackupError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents).and_then(|()| f.sync_all()))
        .map_err(|e| io("cannot write", path, e))
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> BackupError {
    BackupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
