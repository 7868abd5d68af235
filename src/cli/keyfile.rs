//! `keyfile import`, `keyfile inspect` and `keyfile trust`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{CliError, Global, Run, format_time, print_json, read_file};
use crate::app::App;
use crate::config::Config;
use crate::identity::ServerIdentity;
use crate::keyfile::{self, TrustedKeys, VerifiedKeyFile};
use crate::licenses::{self, ImportOutcome, ImportReport};

/// Import or inspect key files.
#[derive(Debug, Args)]
pub struct Keyfile {
    #[command(subcommand)]
    command: KeyfileCommand,
}

#[derive(Debug, Subcommand)]
enum KeyfileCommand {
    /// Validate and store key files (new licenses, renewals).
    Import {
        /// Key files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Verify a key file for this server and print its claims.
    Inspect {
        /// Key file.
        file: PathBuf,
    },
    /// Trust a provider's public key: checks it, copies it to provider-keys/KID.pem next to
    /// the config and appends its [[provider.trusted_keys]] block to the config file.
    Trust {
        /// The provider's public key (PEM, 'PUBLIC KEY').
        pem: PathBuf,
        /// Key id the provider puts in its key files' header.
        #[arg(long)]
        kid: String,
        /// Provider id (the key files' iss).
        #[arg(long)]
        provider: String,
        /// The one algorithm accepted with this key.
        #[arg(long, value_parser = ["EdDSA", "RS256", "PS256"])]
        algorithm: String,
    },
}

impl Run for Keyfile {
    fn run(self, global: &Global) -> Result<(), CliError> {
        match self.command {
            KeyfileCommand::Import { files } => {
                import(&global.migrated_app()?, &files, global.json)
            }
            KeyfileCommand::Inspect { file } => inspect(&global.config()?, &file, global.json),
            KeyfileCommand::Trust {
                pem,
                kid,
                provider,
                algorithm,
            } => trust(&global.config()?, &pem, &kid, &provider, &algorithm),
        }
    }
}

/// `keyfile import`: imports each file; fails if any was refused. With several files each
/// refusal is also printed on its own line.
fn import(app: &App, files: &[PathBuf], json: bool) -> Result<(), CliError> {
    let mut reports = Vec::new();
    let mut last_error = None;
    let mut refused = 0;
    for path in files {
        let result = read_file(path).and_then(|raw| {
            licenses::import_key_file(app, &raw, "cli").map_err(|source| CliError::Import {
                path: path.clone(),
                source,
            })
        });
        match result {
            Ok(report) => {
                if !json {
                    println!("{}: {}", path.display(), describe(&report));
                }
                reports.push(report);
            }
            Err(e) => {
                refused += 1;
                if files.len() > 1 {
                    eprintln!("seatkeep: {e}");
                }
                last_error = Some(e);
            }
        }
    }
    if json {
        print_json(&reports)?;
    }
    match last_error {
        Some(e) if files.len() == 1 => Err(e),
        Some(_) => Err(CliError::Usage(format!(
            "{refused} of {} key files refused",
            files.len()
        ))),
        None => Ok(()),
    }
}

/// `keyfile trust`.
fn trust(
    config: &Config,
    pem: &Path,
    kid: &str,
    provider: &str,
    algorithm: &str,
) -> Result<(), CliError> {
    let algorithm: crate::jws::JwsAlgorithm = serde_json::from_value(algorithm.into())
        .map_err(|_| CliError::Usage(format!("unknown algorithm '{algorithm}'")))?;
    let copy = keyfile::enrol::trust_key(config, pem, kid, provider, algorithm)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    println!(
        "trusted {kid} ({provider}, {algorithm}): key copied to {}",
        copy.display()
    );
    Ok(())
}

fn describe(report: &ImportReport) -> String {
    let over = if report.over_allocated > 0 {
        format!(
            "; {} seats over-allocated: no new seat until usage drops below {}",
            report.over_allocated, report.seats
        )
    } else {
        String::new()
    };
    match report.outcome {
        ImportOutcome::Imported => format!(
            "imported license {} (seq {}, {} seats)",
            report.license, report.seq, report.seats
        ),
        ImportOutcome::Renewed => format!(
            "renewed license {} to seq {} ({} seats, {} in use{over})",
            report.license, report.seq, report.seats, report.in_use
        ),
        ImportOutcome::Unchanged => format!(
            "unchanged: this key file of license {} was imported before (seq {})",
            report.license, report.seq
        ),
    }
}

/// `keyfile inspect`: verifies the file for this server and prints its claims; fails when
/// the file is outside its term (after printing them).
fn inspect(config: &Config, path: &Path, json: bool) -> Result<(), CliError> {
    let identity = ServerIdentity::load(&config.resolve(&config.identity.key_file))?;
    let trusted = TrustedKeys::load(&config.provider.trusted_keys, &config.base_dir)
        .map_err(crate::app::StartError::from)?;
    let raw = read_file(path)?;
    let file = keyfile::verify(&raw, &trusted, &identity.binding()).map_err(|source| {
        CliError::KeyFile {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let term = keyfile::check_term(
        file.claims.nbf,
        file.claims.exp,
        crate::clock::default_source().now(),
    );
    if json {
        print_json(&serde_json::json!({
            "kid": file.kid,
            "digest": file.digest,
            "term": match &term { Ok(()) => "valid".to_owned(), Err(e) => e.to_string() },
            "claims": file.claims,
        }))?;
    } else {
        print_summary(&file);
    }
    term.map_err(|source| CliError::KeyFile {
        path: path.to_path_buf(),
        source,
    })
}

fn print_summary(file: &VerifiedKeyFile) {
    let c = &file.claims;
    println!("valid key file, signed by '{}' ({})", file.kid, c.iss);
    println!("  license   {} (seq {}, file {})", c.lic, c.seq, c.jti);
    println!("  customer  {} ({})", c.customer.name, c.customer.id);
    println!(
        "  product   {} ({}, edition {})",
        c.product.name, c.product.id, c.product.edition
    );
    println!("  model     {}, {} seats", c.model.as_str(), c.seats);
    println!(
        "  term      {} to {}",
        format_time(c.nbf.or(Some(c.iat))),
        format_time(c.exp)
    );
    println!("  admins    {}", c.admins.join(", "));
    println!(
        "  policy    {} reissues and {} returns per seat per year, {}% overage",
        c.policy.reissue_limit, c.policy.return_limit, c.policy.overage_percent
    );
    println!("  server    {}", c.server.id);
    println!("  digest    {}", file.digest);
}
