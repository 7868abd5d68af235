//! SQLite: `VACUUM INTO` a new file (a consistent snapshot, taken in a read transaction
//! while the writer goes on), marked as a Seatkeep backup by a `seatkeep_backup` table that a
//! restore checks and drops.

use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{BackupError, io};
use crate::db::{DbConn, DbError};

/// Format of the marker table; a restore refuses other versions.
const FORMAT: &str = "1";

pub(super) fn backup(database: &Path, out: &Path) -> Result<(), BackupError> {
    if !database.is_file() {
        return Err(DbError::Unavailable(format!("no database at {}", database.display())).into());
    }
    let partial = partial(out);
    let _ = std::fs::remove_file(&partial);
    let result = (|| {
        let mut live = open(database)?;
        // Waits for a checkpoint or the WAL setup of a starting server instead of failing.
        diesel::sql_query("PRAGMA busy_timeout = 10000").execute(&mut live)?;
        diesel::sql_query("VACUUM INTO ?")
            .bind::<Text, _>(partial.to_string_lossy().into_owned())
            .execute(&mut live)?;
        drop(live);
        let mut copy = open(&partial)?;
        diesel::sql_query(
            "CREATE TABLE seatkeep_backup (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )
        .execute(&mut copy)?;
        diesel::sql_query("INSERT INTO seatkeep_backup VALUES ('format', ?)")
            .bind::<Text, _>(FORMAT)
            .execute(&mut copy)?;
        drop(copy);
        std::fs::rename(&partial, out).map_err(|e| io("cannot write", out, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Replaces the database at `target` with the backup `file`: checked first, copied next to
/// the target, unmarked, then renamed over it (the old `-wal`/`-shm` removed with it).
pub(super) fn restore(file: &Path, target: &Path, force: bool) -> Result<(), BackupError> {
    check(file)?;
    if target.exists() {
        let mut existing = DbConn::Sqlite(open(target)?);
        let held = super::contents(&mut existing);
        drop(existing);
        if !force && let Some(what) = held {
            return Err(BackupError::NotEmpty { what });
        }
    }
    let partial = partial(target);
    let result = (|| {
        std::fs::copy(file, &partial).map_err(|e| io("cannot write", &partial, e))?;
        let mut copy = open(&partial)?;
        diesel::sql_query("DROP TABLE seatkeep_backup").execute(&mut copy)?;
        drop(copy);
        for suffix in ["-wal", "-shm"] {
            let mut side = target.as_os_str().to_owned();
            side.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(side));
        }
        std::fs::rename(&partial, target).map_err(|e| io("cannot write", target, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The file is an intact SQLite database carrying our marker.
fn check(file: &Path) -> Result<(), BackupError> {
    let not_backup = |reason: String| BackupError::NotABackup {
        file: file.to_path_buf(),
        reason,
    };
    let header = std::fs::read(file)
        .map_err(|e| io("cannot read", file, e))?
        .get(..16)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if header != b"SQLite format 3\0" {
        return Err(not_backup("not an SQLite database".into()));
    }
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let mut conn = open(file)?;
    let format = diesel::sql_query("SELECT value FROM seatkeep_backup WHERE name = 'format'")
        .get_result::<Value>(&mut conn)
        .map_err(|_| {
            not_backup("no seatkeep_backup marker (not made by seatkeep backup)".into())
        })?;
    if format.value != FORMAT {
        return Err(not_backup(format!(
            "format {} is not {FORMAT}",
            format.value
        )));
    }
    let verdict = diesel::sql_query("PRAGMA quick_check")
        .get_result::<QuickCheck>(&mut conn)
        .map_err(|e| not_backup(e.to_string()))?;
    if verdict.quick_check != "ok" {
        return Err(not_backup(format!("damaged: {}", verdict.quick_check)));
    }
    Ok(())
}

#[derive(QueryableByName)]
struct QuickCheck {
    #[diesel(sql_type = Text)]
    quick_check: String,
}

fn open(path: &Path) -> Result<SqliteConnection, BackupError> {
    SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| BackupError::Db(DbError::Unavailable(e.to_string())))
}

fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}
