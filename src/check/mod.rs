//! `seatkeep check`: whether an installation is ready to start, one finding per check —
//! config, database (reachable, migrated or how many migrations are pending), server key
//! (readable, not readable by others), each trusted provider key, the TLS certificate and
//! key (they match; days until the certificate expires), SMTP settings. Reads only: it
//! opens no database that does not exist and writes nothing.

mod cert;

use std::path::Path;

use serde::Serialize;

use crate::config::{Config, DatabaseLocation};
use crate::keyfile::TrustedKeys;

/// Certificates expiring sooner than this fail the check.
pub const CERT_WARN_DAYS: i64 = 14;

/// One check's finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked (`config`, `database`, `server_key`, `trusted_key:KID`, `tls`, …).
    pub check: String,
    pub ok: bool,
    /// What was found, or what is wrong and what to do.
    pub detail: String,
}

fn finding(check: impl Into<String>, result: Result<String, String>) -> Finding {
    let (ok, detail) = match result {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    Finding {
        check: check.into(),
        ok,
        detail,
    }
}

/// Runs every check; a config that does not load is the only finding then.
pub fn run(config_file: Option<&Path>, now: i64) -> Vec<Finding> {
    let config = match Config::load(config_file) {
        Ok(config) => config,
        Err(e) => return vec![finding("config", Err(e.to_string()))],
    };
    let source = config
        .source_file
        .as_ref()
        .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
    let mut findings = vec![finding("config", Ok(format!("{source} is valid")))];
    findings.push(finding("database", database(&config)));
    findings.push(finding("server_key", server_key(&config)));
    if config.provider.trusted_keys.is_empty() {
        findings.push(finding(
            "trusted_keys",
            Err("none configured: no key file can be imported (seatkeep keyfile trust)".into()),
        ));
    }
    for key in &config.provider.trusted_keys {
        let loaded = TrustedKeys::load(std::slice::from_ref(key), &config.base_dir)
            .map(|_| format!("{} ({}, {}) loads", key.kid, key.provider, key.algorithm))
            .map_err(|e| e.to_string());
        findings.push(finding(format!("trusted_key:{}", key.kid), loaded));
    }
    if let Some((cert, key)) = config.tls_files() {
        findings.push(finding("tls", tls(&cert, &key, now)));
    }
    findings.push(finding("smtp", Ok(smtp(&config))));
    findings
}

fn database(config: &Config) -> Result<String, String> {
    let location = config.database_location().map_err(|e| e.to_string())?;
    if let DatabaseLocation::Sqlite(path) = &location
        && !path.exists()
    {
        return Ok(format!(
            "{} does not exist yet: serve or migrate creates it",
            path.display()
        ));
    }
    let db = crate::db::Database::open(&location, &config.database).map_err(|e| e.to_string())?;
    match db.pending_migrations().map_err(|e| e.to_string())? {
        0 => Ok("reachable and migrated".into()),
        n => Ok(format!(
            "reachable; {n} migrations pending (serve applies them, or seatkeep migrate)"
        )),
    }
}

fn server_key(config: &Config) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = config.resolve(&config.identity.key_file);
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by others (mode {mode:o}): chmod 600 it",
            path.display()
        ));
    }
    let identity = crate::identity::ServerIdentity::load(&path).map_err(|e| e.to_string())?;
    Ok(format!(
        "{} loads; server id {}",
        path.display(),
        identity.id()
    ))
}

fn tls(cert: &Path, key: &Path, now: i64) -> Result<String, String> {
    crate::web::tls_config(cert, key).map_err(|e| e.to_string())?;
    let pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let leaf = pem::parse_many(&pem)
        .ok()
        .and_then(|blocks| blocks.into_iter().find(|b| b.tag() == "CERTIFICATE"))
        .ok_or_else(|| format!("no certificate in {}", cert.display()))?;
    let not_after = cert::not_after(leaf.contents())
        .ok_or_else(|| format!("{}: cannot read the certificate's expiry", cert.display()))?;
    let days = (not_after - now).div_euclid(86_400);
    if days < 0 {
        Err(format!("the certificate {} has expired", cert.display()))
    } else if days < CERT_WARN_DAYS {
        Err(format!(
            "the certificate {} expires in {days} days: renew it",
            cert.display()
        ))
    } else {
        Ok(format!(
            "certificate and key match; the certificate expires in {days} days"
        ))
    }
}

fn smtp(config: &Config) -> String {
    if config.smtp.enabled() {
        "settings parse; `seatkeep notify test --to ADDR` tries the relay".into()
    } else {
        "smtp.host is empty: notifications are recorded, not emailed".into()
    }
}
