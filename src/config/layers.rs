//! The layers of the config: TOML text parsed into tables, laid one over another, and
//! `SEATKEEP__SECTION__KEY` environment values set into them.

use super::{ConfigError, ENV_PREFIX};

pub(super) fn parse_table(name: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let at = e
            .span()
            .map(|span| position(text, span.start))
            .unwrap_or_default();
        ConfigError::Syntax {
            path: format!("{name}{at}"),
            message: e.message().trim().to_owned(),
        }
    })
}

/// `:LINE:COLUMN` (both from 1) of a byte offset in `text`.
fn position(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!(":{line}:{column}")
}

/// `:LINE:COLUMN` of the value at a serde path (`server.listen`,
/// `provider.trusted_keys[0].algorithm`) in the file's text, when the file sets it.
pub(super) fn locate(text: &str, path: &str) -> Option<String> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut span = document.span();
    let mut value: Option<&toml::de::DeValue<'_>> = None;
    let mut table = Some(document.get_ref());
    for segment in path.split('.') {
        let (key, indexes) = match segment.split_once('[') {
            Some((key, rest)) => (key, Some(rest)),
            None => (segment, None),
        };
        let (_, found) = table?.iter().find(|(k, _)| k.get_ref().as_ref() == key)?;
        span = found.span();
        let mut current = found.get_ref();
        for index in indexes.into_iter().flat_map(|r| r.split('[')) {
            let i: usize = index.trim_end_matches(']').parse().ok()?;
            let toml::de::DeValue::Array(items) = current else {
                return None;
            };
            let item = items.get(i)?;
            span = item.span();
            current = item.get_ref();
        }
        value = Some(current);
        table = match current {
            toml::de::DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    value.map(|_| position(text, span.start))
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

/// Keys whose value is a secret: taken from the environment as the raw string, never read
/// as TOML (`123456` stays the string "123456", and no type error can quote it).
const SECRET_KEYS: &[&[&str]] = &[&["smtp", "password"]];

/// Sets `SEATKEEP__A__B=value` as `a.b = value`: the value read as TOML when it is one
/// (`30`, `true`, `["a"]`), else as a string; a secret key's value always as a string.
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
    let secret = SECRET_KEYS.iter().any(|key| key.iter().eq(path.iter()));
    let value = if secret {
        toml::Value::String(raw.to_owned())
    } else {
        format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
    };
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

#[cfg(test)]
mod tests {
    use super::apply_env;

    #[test]
    fn a_secret_from_the_environment_stays_a_string() {
        let mut table = toml::Table::new();
        apply_env(&mut table, "SEATKEEP__SMTP__PASSWORD", "123456").unwrap();
        apply_env(&mut table, "SEATKEEP__SMTP__PORT", "2525").unwrap();
        let smtp = table["smtp"].as_table().unwrap();
        assert_eq!(smtp["password"].as_str(), Some("123456"));
        assert_eq!(smtp["port"].as_integer(), Some(2525));
        apply_env(&mut table, "SEATKEEP__SMTP__PASSWORD", "true").unwrap();
        assert_eq!(table["smtp"]["password"].as_str(), Some("true"));
    }
}
