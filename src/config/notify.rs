//! `[smtp]` and `[notify]`: how emails leave (DESIGN §8) and when they are owed.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, duration};

/// `[smtp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host; empty: email is off (notifications are still recorded).
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    /// File holding the password (first line).
    pub password_file: PathBuf,
    /// `SEATKEEP__SMTP__PASSWORD`; not in the defaults file, so it comes from the environment
    /// (or a config file, discouraged).
    #[serde(default)]
    pub password: Secret,
    /// The `From` mailbox.
    pub from: String,
    /// Extra CA certificate (PEM) for a private relay.
    pub ca_file: PathBuf,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS; a relay that does not offer it gets nothing.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only to a loopback relay.
    None,
}

/// A secret string: `Debug` never shows it, and neither does an error about its value.
#[derive(Clone, Default)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
        }
        // Anything but a string is refused without the value (serde's own message quotes it).
        deserializer
            .deserialize_str(Visitor)
            .map_err(|_| serde::de::Error::custom("must be a string in quotes (value not shown)"))
    }
}

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

/// `[notify]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Seats in use, in percent of seats bought, whose upward crossing is announced.
    pub threshold_percent: u8,
    /// Days before `exp` at which `expiring` is sent.
    pub expiring_days: Vec<u32>,
    /// Who hears about server trouble.
    pub operators: Vec<String>,
    /// After this long unsent, a notification is marked failed.
    #[serde(deserialize_with = "duration")]
    pub give_up_after: Duration,
}

impl SmtpConfig {
    /// True when a relay is configured.
    pub fn enabled(&self) -> bool {
        !self.host.trim().is_empty()
    }
}

/// Checks both sections; errors name the key.
pub(super) fn validate(smtp: &SmtpConfig, notify: &NotifyConfig) -> Result<(), ConfigError> {
    if crate::notify::parse_mailbox(&smtp.from).is_err() {
        return Err(ConfigError::Value {
            key: "smtp.from",
            reason: format!(
                "'{}' is not a mailbox like \"Name <a@b.example>\"",
                smtp.from
            ),
        });
    }
    if smtp.enabled() {
        if smtp.port == 0 {
            return Err(ConfigError::Value {
                key: "smtp.port",
                reason: "must be 1..65535".into(),
            });
        }
        if smtp.security == SmtpSecurity::None && !is_loopback(&smtp.host) {
            return Err(ConfigError::Value {
                key: "smtp.security",
                reason: format!(
                    "\"none\" sends in clear: only to a loopback host, not '{}'",
                    smtp.host
                ),
            });
        }
        if !smtp.password_file.as_os_str().is_empty() && !smtp.password.expose().is_empty() {
            return Err(ConfigError::Value {
                key: "smtp.password_file",
                reason: "set the password file or SEATKEEP__SMTP__PASSWORD, not both".into(),
            });
        }
    }
    if smtp.timeout.is_zero() {
        return Err(ConfigError::Value {
            key: "smtp.timeout",
            reason: "must be more than 0s".into(),
        });
    }
    if !(1..=100).contains(&notify.threshold_percent) {
        return Err(ConfigError::Value {
            key: "notify.threshold_percent",
            reason: "must be 1..100".into(),
        });
    }
    if notify.expiring_days.iter().any(|d| *d == 0 || *d > 3650) {
        return Err(ConfigError::Value {
            key: "notify.expiring_days",
            reason: "each must be 1..3650 days".into(),
        });
    }
    if let Some(bad) = notify
        .operators
        .iter()
        .find(|o| crate::notify::parse_mailbox(o).is_err())
    {
        return Err(ConfigError::Value {
            key: "notify.operators",
            reason: format!("'{bad}' is not a valid mailbox"),
        });
    }
    if notify.give_up_after < Duration::from_secs(60) {
        return Err(ConfigError::Value {
            key: "notify.give_up_after",
            reason: "must be at least 1m".into(),
        });
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[derive(Debug, serde::Deserialize)]
    struct Holder {
        #[expect(dead_code, reason = "only deserialized")]
        password: Secret,
    }

    #[test]
    fn a_secret_that_is_not_a_string_is_refused_without_its_value() {
        // As the config loader does: from the merged value, with no source text.
        let parse = |text: &str| {
            let table: toml::Table = text.parse().unwrap();
            <Holder as serde::Deserialize>::deserialize(toml::Value::Table(table))
        };
        let err = parse("password = 987654").unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("987654"), "{text}");
        assert!(text.contains("must be a string"), "{text}");
        let ok = parse("password = \"987654\"").unwrap();
        assert_eq!(format!("{ok:?}"), "Holder { password: <redacted> }");
    }
}
