//! A fresh data folder and database, set up through the normal `seatkeep` command line:
//! `init`, `provider keygen`, a config, `provider issue`, `keyfile import`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::{Connection, RunQueryDsl};
use seatkeep::db::DbConn;

use crate::error::{BenchError, Context, Result};

/// Key id of the benchmark's provider key.
pub const KID: &str = "bench-provider-1";
/// Provider id the key is trusted for.
const PROVIDER: &str = "provider.bench";

/// The database the server under test uses.
#[derive(Debug, Clone)]
pub enum DbTarget {
    /// A SQLite file in the data folder.
    Sqlite(PathBuf),
    /// A database created for this run on a PostgreSQL server, dropped at the end.
    Postgres {
        /// URL of an existing database used to create and drop ours.
        admin_url: String,
        /// URL of our database.
        url: String,
        name: String,
    },
}

impl DbTarget {
    /// `sqlite` or `postgresql`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres { .. } => "postgresql",
        }
    }

    /// The URL written into the server's config.
    fn config_url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres { url, .. } => url.clone(),
        }
    }

    /// A new connection to the server's database.
    pub fn connect(&self) -> Result<DbConn> {
        match self {
            Self::Sqlite(path) => {
                let url = path.to_string_lossy();
                diesel::SqliteConnection::establish(&url)
                    .map(DbConn::Sqlite)
                    .with_context(|| format!("open {}", path.display()))
            }
            Self::Postgres { url, name, .. } => diesel::PgConnection::establish(url)
                .map(DbConn::Postgres)
                .with_context(|| format!("connect to PostgreSQL database {name}")),
        }
    }
}

/// A license the benchmark issued and imported.
#[derive(Debug, Clone)]
pub struct License {
    pub id: String,
    /// Seats bought.
    pub seats: u32,
    /// The key file's text, as devices present it.
    pub key_file: String,
}

/// The temporary data folder (removed on drop unless kept) and its database.
pub struct Workspace {
    pub dir: PathBuf,
    /// The `seatkeep` binary under test.
    pub bin: PathBuf,
    pub db: DbTarget,
    keep: bool,
}

/// Under `cargo run --release -p seatkeep-bench`, builds the release server first (a no-op
/// when it is fresh), so a fresh clone needs only the one documented command. Both packages
/// are in one workspace, so the server lands in the same target folder as this executable.
fn build_server_when_run_by_cargo(dir: &Path) -> Result<()> {
    let (Some(cargo), Some(manifest_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) else {
        return Ok(());
    };
    if dir.file_name() != Some(OsStr::new("release")) {
        return Ok(());
    }
    eprintln!("seatkeep-bench: cargo build --release -p seatkeep --bin seatkeep");
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "seatkeep",
            "--bin",
            "seatkeep",
            "--manifest-path",
        ])
        .arg(Path::new(&manifest_dir).join("Cargo.toml"))
        .status()
        .context("cannot run cargo to build the server")?;
    if !status.success() {
        return Err(BenchError::new(format!(
            "building the server failed ({status})"
        )));
    }
    Ok(())
}

/// The release `seatkeep` binary next to this executable.
pub fn locate_server_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the benchmark executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| BenchError::new("the benchmark executable has no folder"))?;
    build_server_when_run_by_cargo(dir)?;
    let bin = dir.join("seatkeep");
    if !bin.is_file() {
        return Err(BenchError::new(format!(
            "{} not found: build the server first with `cargo build --release -p seatkeep`",
            bin.display()
        )));
    }
    if dir.file_name() != Some(OsStr::new("release")) {
        eprintln!(
            "seatkeep-bench: warning: {} is not a release build; figures will be meaningless",
            bin.display()
        );
    }
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if let (Some(server), Some(bench)) = (modified(&bin), modified(&exe))
        && server < bench
    {
        eprintln!(
            "seatkeep-bench: warning: {} is older than this benchmark and may be stale; \
             `cargo build --release --workspace` rebuilds both",
            bin.display()
        );
    }
    Ok(bin)
}

impl Workspace {
    /// Creates an empty folder under `parent` and, with `postgres`, a fresh database there.
    pub fn create(parent: &Path, bin: PathBuf, postgres: Option<&str>, keep: bool) -> Result<Self> {
        let tag = hex::encode(rand::random::<[u8; 6]>());
        let dir = parent.join(format!("seatkeep-bench-{tag}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolve {}", dir.display()))?;
        let db = match postgres {
            None => DbTarget::Sqlite(dir.join("seatkeep.db")),
            Some(admin_url) => create_pg_database(admin_url, &format!("seatkeep_bench_{tag}"))?,
        };
        Ok(Self { dir, bin, db, keep })
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("seatkeep.toml")
    }

    /// Runs `seatkeep ARGS...` and returns its stdout; fails with its stderr.
    pub fn seatkeep<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let output = Command::new(&self.bin)
            .args(&args)
            .current_dir(&self.dir)
            .env_remove("RUST_LOG")
            .output()
            .with_context(|| format!("run seatkeep {shown}"))?;
        if !output.status.success() {
            return Err(BenchError::new(format!(
                "seatkeep {shown} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `init`, `provider keygen` and the config: listen on a free port, this run's database,
    /// the provider key trusted.
    pub fn init(&self, algorithm: &str) -> Result<()> {
        let dir = self.dir.as_os_str();
        self.seatkeep([
            OsStr::new("init"),
            OsStr::new("--data-dir"),
            dir,
            OsStr::new("--algorithm"),
            OsStr::new(algorithm),
        ])?;
        let provider_dir = self.dir.join("provider");
        self.seatkeep([
            OsStr::new("provider"),
            OsStr::new("keygen"),
            OsStr::new("--out"),
            provider_dir.as_os_str(),
            OsStr::new("--kid"),
            OsStr::new(KID),
            OsStr::new("--provider"),
            OsStr::new(PROVIDER),
        ])?;
        let config = format!(
            // One load client stands for a whole fleet: the per-address rate limit is off.
            "[server]\nlisten = \"127.0.0.1:0\"\nrate_limit_per_second = 0\n\n\
             [database]\nurl = {}\n\n\
             [identity]\nkey_file = \"server-key.pem\"\n\n\
             [[provider.trusted_keys]]\nkid = \"{KID}\"\nprovider = \"{PROVIDER}\"\n\
             algorithm = \"EdDSA\"\npublic_key_file = \"provider/{KID}.pub.pem\"\n",
            toml::Value::String(self.db.config_url())
        );
        std::fs::write(self.config(), config)
            .with_context(|| format!("write {}", self.config().display()))
    }

    /// `provider issue` a node-locked key file for `seats` seats of license `lic`.
    pub fn issue(&self, lic: &str, seats: u32) -> Result<License> {
        self.issue_with(lic, seats, &[])
    }

    /// `issue` with more `provider issue` flags (e.g. `--federation-url URL`).
    pub fn issue_with(&self, lic: &str, seats: u32, extra: &[&str]) -> Result<License> {
        self.issue_as(lic, seats, "node_locked", extra)
    }

    /// `issue_with` for another license model (`metered`: its claims in `extra`).
    pub fn issue_as(&self, lic: &str, seats: u32, model: &str, extra: &[&str]) -> Result<License> {
        let out = self.dir.join(format!("{lic}.seatkey"));
        let key = self.dir.join(format!("provider/{KID}.pem"));
        let server_key = self.dir.join("server-key.pub.pem");
        let seats_text = seats.to_string();
        let args: [&OsStr; 32] = [
            "provider".as_ref(),
            "issue".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--kid".as_ref(),
            KID.as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--server-key".as_ref(),
            server_key.as_os_str(),
            "--iss".as_ref(),
            PROVIDER.as_ref(),
            "--lic".as_ref(),
            lic.as_ref(),
            "--customer-id".as_ref(),
            "bench-customer".as_ref(),
            "--customer-name".as_ref(),
            "Bench Customer".as_ref(),
            "--product-id".as_ref(),
            "wordsmith".as_ref(),
            "--product-name".as_ref(),
            "WordSmith".as_ref(),
            "--model".as_ref(),
            model.as_ref(),
            "--seats".as_ref(),
            seats_text.as_ref(),
            "--admin".as_ref(),
            "buyer@customer.example".as_ref(),
            "--expires-in".as_ref(),
            "365d".as_ref(),
            "--edition".as_ref(),
            "1".as_ref(),
        ];
        self.seatkeep(args.iter().copied().chain(extra.iter().map(OsStr::new)))?;
        let key_file =
            std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
        Ok(License {
            id: lic.to_owned(),
            seats,
            key_file,
        })
    }

    /// Adds a section to the server's config.
    pub fn append_config(&self, text: &str) -> Result<()> {
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.config())
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("append to {}", self.config().display()))
    }

    /// `keyfile import` the licenses' key files.
    pub fn import(&self, licenses: &[&License]) -> Result<()> {
        let mut args = vec![
            "--config".into(),
            self.config().into_os_string(),
            "keyfile".into(),
            "import".into(),
        ];
        for license in licenses {
            args.push(
                self.dir
                    .join(format!("{}.seatkey", license.id))
                    .into_os_string(),
            );
        }
        self.seatkeep(args).map(|_| ())
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let DbTarget::Postgres {
            admin_url, name, ..
        } = &self.db
            && let Err(e) = drop_pg_database(admin_url, name)
        {
            eprintln!("seatkeep-bench: warning: {e}");
        }
        if self.keep {
            eprintln!("seatkeep-bench: kept {}", self.dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "seatkeep-bench: warning: cannot remove {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// `postgres://user@host:port/db?opts` with the database replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> Result<String> {
    let (scheme, rest) = admin_url.split_once("://").ok_or_else(|| {
        BenchError::new("--postgres must be a URL like postgres://user@host:port/postgres")
    })?;
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before, format!("?{query}")),
        None => (rest, String::new()),
    };
    let host = authority
        .split_once('/')
        .map_or(authority, |(host, _)| host);
    Ok(format!("{scheme}://{host}/{name}{query}"))
}

fn create_pg_database(admin_url: &str, name: &str) -> Result<DbTarget> {
    let url = with_database(admin_url, name)?;
    let mut conn =
        diesel::PgConnection::establish(admin_url).context("connect to --postgres URL")?;
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .with_context(|| format!("create database {name}"))?;
    Ok(DbTarget::Postgres {
        admin_url: admin_url.to_owned(),
        url,
        name: name.to_owned(),
    })
}

fn drop_pg_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn =
        diesel::PgConnection::establish(admin_url).context("connect to --postgres URL")?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .with_context(|| format!("drop database {name}"))
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_the_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b").unwrap(),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/x?sslmode=disable", "b").unwrap(),
            "postgresql://u:p@h/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h", "b").unwrap(),
            "postgres://h/b"
        );
    }
}
