//! `[console]`: the web console's sessions, login throttling and uploads.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, duration};

/// `[console]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// A session unused this long ends.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    #[serde(deserialize_with = "duration")]
    pub session_lifetime: Duration,
    /// Failed logins per user name or client address within `login_window` before logins
    /// are refused (429) until the window passes.
    pub login_max_failures: i64,
    #[serde(deserialize_with = "duration")]
    pub login_window: Duration,
    /// Largest key file upload (bytes); larger: 413.
    pub max_upload_bytes: usize,
}

impl ConsoleConfig {
    /// Checks the values that have the right type but could still be wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.idle_timeout.as_secs() < 1 {
            return Err(value("console.idle_timeout", "must be at least 1s"));
        }
        if self.session_lifetime < self.idle_timeout {
            return Err(value(
                "console.session_lifetime",
                "must not be shorter than console.idle_timeout",
            ));
        }
        if self.login_max_failures < 1 {
            return Err(value("console.login_max_failures", "must be at least 1"));
        }
        if self.login_window.as_secs() < 1 {
            return Err(value("console.login_window", "must be at least 1s"));
        }
        if !(1024..=1 << 20).contains(&self.max_upload_bytes) {
            return Err(value(
                "console.max_upload_bytes",
                "must be between 1024 and 1048576",
            ));
        }
        Ok(())
    }

    /// Seconds of the idle timeout.
    pub fn idle_secs(&self) -> i64 {
        secs(self.idle_timeout)
    }

    /// Seconds of the absolute lifetime.
    pub fn lifetime_secs(&self) -> i64 {
        secs(self.session_lifetime)
    }

    /// Seconds of the throttling window.
    pub fn window_secs(&self) -> i64 {
        secs(self.login_window)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn value(key: &'static str, reason: &str) -> ConfigError {
    ConfigError::Value {
        key,
        reason: reason.to_owned(),
    }
}
