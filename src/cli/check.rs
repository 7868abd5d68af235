//! `check`: one line per check of [`crate::check`]; exit non-zero on any failure.

use clap::Args;

use super::{CliError, Global, Run, print_json};

/// Check an installation before starting it: config, database, server key, trusted provider
/// keys, TLS certificate and key, SMTP settings.
#[derive(Debug, Args)]
pub struct Check;

impl Run for Check {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let now = crate::clock::default_source().now();
        let findings = crate::check::run(global.config.as_deref(), now);
        let failed = findings.iter().filter(|f| !f.ok).count();
        if global.json {
            print_json(&serde_json::json!({ "ok": failed == 0, "checks": findings }))?;
        } else {
            for f in &findings {
                println!(
                    "{:<4} {:<24} {}",
                    if f.ok { "ok" } else { "FAIL" },
                    f.check,
                    f.detail
                );
            }
        }
        match failed {
            0 => Ok(()),
            n => Err(CliError::Usage(format!(
                "{n} of {} checks failed",
                findings.len()
            ))),
        }
    }
}
