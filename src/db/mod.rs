//! Storage: one connection type that is SQLite or PostgreSQL, a pool for reads, migrations,
//! and [`Database::write`], the one way anything is written.

pub mod batch;
pub mod day_counts;
pub mod models;
pub(crate) mod race;
pub mod refusals;
pub mod schema;
pub mod word;

use std::path::Path;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{self, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{DatabaseConfig, DatabaseLocation};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Runs `$body` with `$c` bound to the inner `SqliteConnection` or `PgConnection`. Diesel
/// caches a prepared statement by the query's type only on a concrete connection; through the
/// `MultiConnection` it renders the SQL on every call to find it. Use on hot read paths.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
        }
    };
}

/// Serialises this process's SQLite write transactions (see [`DbConn::write_transaction`]).
static SQLITE_WRITE_GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Advisory lock id held while migrating PostgreSQL, so instances starting together don't race.
const MIGRATION_LOCK_ID: i64 = 0x5ea7_4ee9;

/// A connection to either backend; queries are written once against it.
///
/// Single-row reads use `get_result` on a unique key, never `first()`: `first()` adds
/// `LIMIT ?`, and SQLite recompiles any statement whose LIMIT is a bound parameter every time
/// it is rebound, which made every cached statement a fresh parse.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// Embedded SQLite: the database is a file beside the server.
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Which backend a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be made or checked out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A statement failed.
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// Migrations could not be applied or read.
    #[error("database migration failed: {0}")]
    Migration(String),
}

impl DbError {
    /// The stable problem code: `unavailable` when the client may retry, else
    pub fn code(&self) -> seatkeep_device::ProblemCode {
        if self.is_unavailable() {
            seatkeep_device::ProblemCode::Unavailable
        } else {
            seatkeep_device::ProblemCode::InternalError
        }
    }

    /// True when the database is unreachable or busy for now (the client may retry), as
    /// opposed to a failure of the statement itself.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            Self::Unavailable(_) => true,
            Self::Query(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)) => true,
            Self::Query(Error::DatabaseError(_, info)) => {
                let message = info.message();
                [
                    "server closed the connection",
                    "no connection to the server",
                    "could not connect",
                    "terminating connection",
                    "connection to server",
                    "database is locked",
                ]
                .iter()
                .any(|m| message.contains(m))
            }
            _ => false,
        }
    }
}

impl From<r2d2::PoolError> for DbError {
    fn from(e: r2d2::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Opens connections for the pool, with the backend chosen by our config code (never by
/// letting `establish` guess, which would create stray SQLite files).
#[derive(Debug, Clone)]
pub struct Manager {
    location: DatabaseLocation,
    busy_timeout: Duration,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match &self.location {
            DatabaseLocation::Sqlite(path) => {
                let url = path.to_string_lossy();
                let mut conn =
                    SqliteConnection::establish(&url).map_err(r2d2::Error::ConnectionError)?;
                // WAL + FULL: every commit is durable; busy_timeout lets writers queue. It
                // comes first: switching to WAL takes a lock, and without a timeout a
                // connection opened while the writer commits fails at once ("database is
                // locked").
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                    self.busy_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
            DatabaseLocation::Postgres(url) => PgConnection::establish(url)
                .map(DbConn::Postgres)
                .map_err(r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

impl Manager {
    /// A connection outside the pool.
    pub fn connect_dedicated(&self) -> Result<DbConn, DbError> {
        r2d2::ManageConnection::connect(self).map_err(|e| DbError::Unavailable(e.to_string()))
    }
}

/// A connection checked out of the pool.
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// The connection pool, the group-commit writer, and the backend they talk to.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Manager>,
    backend: Backend,
    writer: std::sync::Arc<batch::GroupCommit>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Builds the pool. Connections are opened lazily, so an unreachable database does not
    /// stop the server from starting (`/readyz` reports it); SQLite's folder is created.
    pub fn open(location: &DatabaseLocation, config: &DatabaseConfig) -> Result<Self, DbError> {
        let backend = match location {
            DatabaseLocation::Sqlite(path) => {
                ensure_parent(path)?;
                Backend::Sqlite
            }
            DatabaseLocation::Postgres(_) => Backend::Postgres,
        };
        let manager = Manager {
            location: location.clone(),
            busy_timeout: config.busy_timeout,
        };
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            .connection_timeout(config.connect_timeout)
            // A broken connection is dropped after its failed query; skip a ping per checkout.
            .test_on_check_out(false)
            .build_unchecked(manager.clone());
        let writer = std::sync::Arc::new(batch::GroupCommit::start(manager)?);
        Ok(Self {
            pool,
            backend,
            writer,
        })
    }

    /// Runs `f` as one write transaction and waits until it is durable: every change goes
    /// through here. `f` runs on the writer thread, in a savepoint of the next group commit
    /// (so an `Err` from it rolls back only its own statements), ordered within the batch by
    /// `order`: the id of the row it locks first (a license id for seat changes), so
    /// concurrent batches lock rows in one order. Blocking: call from a worker thread.
    pub fn write<T, E, F>(&self, order: &str, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<diesel::result::Error> + From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        self.writer.run(order, f)
    }

    /// Counts a refused activation of `license_id` at `at`, added up with the other refusals
    /// of the next group commit, and waits until it is durable.
    pub fn count_refusal(&self, license_id: &str, at: i64) -> Result<(), DbError> {
        self.writer
            .count_refusal(refusals::RefusalCount::one(license_id, at))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks out a connection (blocking: call from `web::block` or a CLI thread).
    pub fn conn(&self) -> Result<PooledConn, DbError> {
        Ok(self.pool.get()?)
    }

    /// Applies pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize, DbError> {
        let mut conn = self.conn()?;
        match &mut *conn {
            DbConn::Sqlite(c) => run_migrations(c, SQLITE_MIGRATIONS),
            DbConn::Postgres(c) => {
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
                    .execute(c)?;
                let result = run_migrations(c, POSTGRES_MIGRATIONS);
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
                    .execute(c)?;
                result
            }
        }
    }

    /// How many migrations this binary knows that the database has not applied.
    pub fn pending_migrations(&self) -> Result<usize, DbError> {
        let mut conn = self.conn()?;
        match &mut *conn {
            DbConn::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|m| m.len()),
            DbConn::Postgres(c) => c.pending_migrations(POSTGRES_MIGRATIONS).map(|m| m.len()),
        }
        .map_err(|e| DbError::Migration(e.to_string()))
    }

    /// True when the database answers and has every migration this binary knows.
    pub fn ready(&self) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let pending = match &mut *conn {
            DbConn::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
            DbConn::Postgres(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
        }
        .map_err(|e| DbError::Migration(e.to_string()))?;
        if pending {
            return Err(DbError::Migration("migrations pending".into()));
        }
        Ok(())
    }
}

fn ensure_parent(path: &Path) -> Result<(), DbError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|e| DbError::Unavailable(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

fn run_migrations<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<usize, DbError>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|done| done.len())
        .map_err(|e| DbError::Migration(e.to_string()))
}

impl DbConn {
    /// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on SQLite (take the write lock
    /// up front, so two writers never deadlock on a lock upgrade), a plain transaction on
    /// PostgreSQL. Commits on `Ok`, rolls back on `Err`.
    pub fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        if let DbConn::Postgres(_) = self {
            return self.transaction(f);
        }
        // SQLite has one writer at a time. Queue this process's writers on a mutex, which
        // wakes the next one the moment the lock is free, instead of in SQLite's busy handler,
        // which polls with sleeps of up to 100 ms. busy_timeout still covers other processes.
        let _gate = SQLITE_WRITE_GATE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let DbConn::Sqlite(inner) = self {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
        }
        let result = f(self);
        let DbConn::Sqlite(inner) = self else {
            unreachable!("checked above: only SQLite reaches here");
        };
        match result {
            Ok(value) => {
                <AnsiTransactionManager as TransactionManager<SqliteConnection>>::commit_transaction(inner)?;
                Ok(value)
            }
            Err(error) => {
                match <AnsiTransactionManager as TransactionManager<SqliteConnection>>::rollback_transaction(inner) {
                    Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
                    Err(rollback_error) => Err(rollback_error.into()),
                }
            }
        }
    }

    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            DbConn::Sqlite(_) => Backend::Sqlite,
            DbConn::Postgres(_) => Backend::Postgres,
        }
    }
}

/// True when `error` is a unique-constraint violation (a concurrent insert won).
pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Implements `From<diesel::result::Error>` for error types that convert from [`DbError`] (a
/// `Db(#[from] DbError)` variant, or a hand-written `From<DbError>`), so `?` works on queries
/// everywhere and the conversion is written once.
#[macro_export]
macro_rules! query_errors_into {
    ($($ty:ty),+ $(,)?) => {
        $(impl From<diesel::result::Error> for $ty {
            fn from(e: diesel::result::Error) -> Self {
                $crate::db::DbError::Query(e).into()
            }
        })+
    };
}
