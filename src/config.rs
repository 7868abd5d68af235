//! Typed configuration: built-in defaults (`config/seatkeep.toml`), then the file given with
//! `--config` (or `./seatkeep.toml`), then `SEATKEEP__SECTION__KEY` environment variables.
//! Every value is checked once here; the rest of the program trusts it.

mod console;
mod federation;
mod layers;
mod notify;

pub use console::ConsoleConfig;
pub use federation::FederationConfig;
pub use notify::{NotifyConfig, Secret, SmtpConfig, SmtpSecurity};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::keyfile::TrustedKeyConfig;

/// The documented defaults, compiled in.
pub const DEFAULTS_TOML: &str = include_str!("../config/seatkeep.toml");
/// Prefix of environment overrides.
const ENV_PREFIX: &str = "SEATKEEP__";

/// A configuration problem, always naming the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config: {path}: not valid TOML: {message}")]
    Syntax { path: String, message: String },
    /// A key is unknown or its value has the wrong type.
    #[error("config: {0}")]
    Invalid(String),
    /// A value has the right type but is not acceptable.
    #[error("config: {key}: {reason}")]
    Value { key: &'static str, reason: String },
}

impl ConfigError {
    /// Names the file, line and column of the key at fault when the file sets it (a value
    /// from the defaults or the environment has none).
    fn located(self, file: &str, text: &str) -> Self {
        let key = match &self {
            Self::Invalid(message) => message.split(':').next().unwrap_or_default().to_owned(),
            Self::Value { key, .. } => (*key).to_owned(),
            _ => return self,
        };
        match layers::locate(text, &key) {
            Some(at) => Self::Invalid(format!(
                "{file}{at}: {}",
                self.to_string().trim_start_matches("config: ")
            )),
            None => self,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[identity]`
    pub identity: IdentityConfig,
    /// `[provider]`
    pub provider: ProviderConfig,
    /// `[clock]`
    pub clock: ClockConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[smtp]`
    pub smtp: SmtpConfig,
    /// `[notify]`
    pub notify: NotifyConfig,
    /// `[federation]`
    pub federation: FederationConfig,
    /// `[console]`
    pub console: ConsoleConfig,
    /// Folder relative paths resolve against.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The config file read, if any.
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// Public URL; empty = derived from `listen`.
    pub public_url: String,
    /// Worker threads; 0 = cores.
    pub workers: usize,
    /// Request body cap in bytes.
    pub max_body_bytes: usize,
    /// Grace period on shutdown.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Longest time a request body may take to arrive (408 and the connection closed).
    #[serde(deserialize_with = "duration")]
    pub body_timeout: Duration,
    /// Open connections this process keeps at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Requests one client address may have in progress at once; more get 429.
    pub max_requests_per_client: usize,
    /// Connections one client address (IPv6: one /64) may have open at once; more are
    /// closed at once.
    pub max_connections_per_client: usize,
    /// Device API requests per second per client address (token bucket); 0 = off.
    pub rate_limit_per_second: u32,
    /// Requests a client address may send at once before the rate applies.
    pub rate_limit_burst: u32,
    /// Proxies (CIDR blocks) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    /// `[server.tls]`
    pub tls: TlsConfig,
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// File holding the bearer token that opens `/metrics` to non-loopback clients; empty:
    /// loopback clients only.
    pub token_file: PathBuf,
}

/// `[server.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain PEM; empty = no TLS.
    pub cert: PathBuf,
    /// Private key PEM; empty = no TLS.
    pub key: PathBuf,
}

/// `[database]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`; may hold a password, so never logged.
    pub url: String,
    pub pool_size: u32,
    /// Pool checkout timeout.
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// SQLite `busy_timeout`.
    #[serde(deserialize_with = "duration")]
    pub busy_timeout: Duration,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .finish()
    }
}

/// `[identity]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Server private key PEM.
    pub key_file: PathBuf,
}

/// `[provider]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Trusted provider keys.
    pub trusted_keys: Vec<TrustedKeyConfig>,
}

/// `[clock]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// How far the clock may go back before signing stops.
    #[serde(deserialize_with = "duration")]
    pub tolerance: Duration,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter directives.
    pub level: String,
    pub format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    /// One JSON object per line.
    Json,
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "'{text}' is not a duration like \"30s\" or \"24h\": {e}"
        ))
    })
}

/// Where the database lives, decided from `database.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (may hold a password: never log it).
    Postgres(String),
}

impl Config {
    /// Loads the configuration. `explicit` is the `--config` argument: it must exist. Without
    /// it, `./seatkeep.toml` is used when present.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        let file = match explicit {
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from("seatkeep.toml")).filter(|p| p.is_file()),
        };
        let file_text = match &file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let base_dir = match &file {
            Some(path) => absolute(path)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            None => std::env::current_dir().unwrap_or_default(),
        };
        let name = file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let located = |e: ConfigError| match &file_text {
            Some(text) => e.located(&name, text),
            None => e,
        };
        let mut config = Self::from_sources(file_text.as_deref().map(|t| (name.clone(), t)), &env)
            .map_err(located)?;
        config.base_dir = base_dir;
        config.source_file = file.map(|p| absolute(&p));
        config.validate().map_err(located)?;
        Ok(config)
    }

    /// Builds a configuration from the defaults, an optional `(name, text)` file and
    /// environment pairs. Does not resolve paths or validate values.
    pub fn from_sources(
        file: Option<(String, &str)>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut merged = layers::parse_table("built-in defaults", DEFAULTS_TOML)?;
        if let Some((name, text)) = file {
            layers::merge(&mut merged, layers::parse_table(&name, text)?);
        }
        for (name, value) in env {
            layers::apply_env(&mut merged, name, value)?;
        }
        serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let inner = inner.lines().next().unwrap_or_default().to_owned();
            if path.is_empty() || path == "." {
                ConfigError::Invalid(inner)
            } else {
                ConfigError::Invalid(format!("{path}: {inner}"))
            }
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        for proxy in &self.server.trusted_proxies {
            proxy
                .parse::<crate::web::rate::Cidr>()
                .map_err(|reason| ConfigError::Value {
                    key: "server.trusted_proxies",
                    reason,
                })?;
        }
        self.database_location()?;
        if self.database.pool_size == 0 {
            return Err(ConfigError::Value {
                key: "database.pool_size",
                reason: "must be at least 1".into(),
            });
        }
        if self.server.max_body_bytes < 1024 {
            return Err(ConfigError::Value {
                key: "server.max_body_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        for (key, value) in [
            ("server.max_connections", self.server.max_connections),
            (
                "server.max_connections_per_client",
                self.server.max_connections_per_client,
            ),
            (
                "server.max_requests_per_client",
                self.server.max_requests_per_client,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Value {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if self.server.body_timeout.is_zero() {
            return Err(ConfigError::Value {
                key: "server.body_timeout",
                reason: "must be more than 0s".into(),
            });
        }
        let tls = &self.server.tls;
        if tls.cert.as_os_str().is_empty() != tls.key.as_os_str().is_empty() {
            return Err(ConfigError::Value {
                key: "server.tls",
                reason: "set both cert and key, or neither".into(),
            });
        }
        let url = &self.server.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Value {
                key: "server.public_url",
                reason: format!("'{url}' is not an http(s) URL"),
            });
        }
        if self.identity.key_file.as_os_str().is_empty() {
            return Err(ConfigError::Value {
                key: "identity.key_file",
                reason: "must name the server's private key file".into(),
            });
        }
        notify::validate(&self.smtp, &self.notify)?;
        federation::validate(&self.federation)?;
        self.console.validate()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            ConfigError::Value {
                key: "log.level",
                reason: e.to_string(),
            }
        })?;
        Ok(())
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| ConfigError::Value {
            key: "server.listen",
            reason: format!(
                "'{}' is not an address like 127.0.0.1:8080",
                self.server.listen
            ),
        })
    }

    /// Where the database is; a relative SQLite path resolves against [`Config::base_dir`].
    pub fn database_location(&self) -> Result<DatabaseLocation, ConfigError> {
        let url = self.database.url.trim();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path == ":memory:" || path.contains('?') {
                return Err(ConfigError::Value {
                    key: "database.url",
                    reason: "sqlite:// needs a file path (no :memory:, no query string)".into(),
                });
            }
            return Ok(DatabaseLocation::Sqlite(self.resolve(Path::new(path))));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseLocation::Postgres(url.to_owned()));
        }
        let scheme = url.split("://").next().unwrap_or(url);
        Err(ConfigError::Value {
            key: "database.url",
            reason: format!(
                "unsupported scheme '{scheme}' (use sqlite://PATH or postgres://USER@HOST/DB)"
            ),
        })
    }

    /// Resolves a path from the config against [`Config::base_dir`].
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// TLS certificate and key paths, when HTTPS is configured.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        let tls = &self.server.tls;
        if tls.cert.as_os_str().is_empty() {
            None
        } else {
            Some((self.resolve(&tls.cert), self.resolve(&tls.key)))
        }
    }

    /// The public URL: configured, or derived from the listen address and TLS setting.
    pub fn public_url(&self) -> String {
        if !self.server.public_url.is_empty() {
            return self.server.public_url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls_files().is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.server.listen)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load() {
        let config = Config::from_sources(None, &[]).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.clock.tolerance, Duration::from_secs(24 * 3600));
        assert_eq!(config.server.max_body_bytes, 16384);
    }

    #[test]
    fn production_example_parses() {
        let text = include_str!("../config/production.example.toml");
        let config = Config::from_sources(Some(("example".into(), text)), &[]).unwrap();
        assert_eq!(config.provider.trusted_keys.len(), 2);
        assert_eq!(config.log.format, LogFormat::Json);
        config.validate().unwrap();
    }

    #[test]
    fn env_overrides_and_unknown_keys() {
        let env = vec![
            (
                "SEATKEEP__SERVER__LISTEN".to_owned(),
                "0.0.0.0:9".to_owned(),
            ),
            ("SEATKEEP__DATABASE__POOL_SIZE".to_owned(), "3".to_owned()),
        ];
        let config = Config::from_sources(None, &env).unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:9");
        assert_eq!(config.database.pool_size, 3);

        let err = Config::from_sources(Some(("f".into(), "[server]\nlisen = \"x\"\n")), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server") && err.contains("lisen"), "{err}");

        let err = Config::from_sources(Some(("f".into(), "[clock]\ntolerance = \"soon\"\n")), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("clock.tolerance"), "{err}");
    }
}
