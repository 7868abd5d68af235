//! The layers of the config: TOML text parsed into tables, laid one over another, and
//! `SEATKEEP__SECTION__KEY` environment values set into them.

use super::{ConfigError, ENV_PREFIX};

pub(super) fn parse_table(name: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: name.to_owned(),
            message: e.message().to_owned(),
        })
}

/// Lays `top` over `base`: tables merge key by key, anything else replaces.
pub(super) fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(top_table)) => {
                merge(base_table, top_table);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets `SEATKEEP__A__B=value` as `a.b = value`.
pub(super) fn apply_env(table: &mut toml::Table, name: &str, raw: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = name[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::Invalid(format!(
            "environment variable {name} does not name a key"
        )));
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let (last, parents) = path.split_last().ok_or_else(|| {
        ConfigError::Invalid(format!("environment variable {name} does not name a key"))
    })?;
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "environment variable {name}: '{part}' is not a section"
                )));
            }
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}
