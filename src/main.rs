//! `seatkeep`: the command line (DESIGN §4). Parses arguments and calls `seatkeep::cli`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use seatkeep::admins::Role;
use seatkeep::cli::{self, CliError};
use seatkeep::config::{Config, LogFormat};
use seatkeep::signing::KeyType;

#[derive(Debug, Parser)]
#[command(name = "seatkeep", version, about = "On-premises site-license server")]
struct Cli {
    /// Config file (default: ./seatkeep.toml when present, then the built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a config and the server key pair; print the server id.
    Init {
        /// Folder for seatkeep.toml, server-key.pem and server-key.pub.pem.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Server key type.
        #[arg(long, value_enum, default_value_t = KeyType::Ed25519)]
        algorithm: KeyType,
        /// Replace an existing server key (device keys it signed stop verifying).
        #[arg(long)]
        force: bool,
    },
    /// Run the server (applies migrations first).
    Serve,
    /// Try it: init + demo provider + demo key file + admin user + serve.
    Quickstart {
        /// Folder holding everything.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Listen address (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations.
    Migrate,
    /// Import or inspect key files.
    #[command(subcommand)]
    Keyfile(KeyfileCommand),
    /// Read licenses.
    #[command(subcommand)]
    Licenses(LicensesCommand),
    /// Read and retire seats.
    #[command(subcommand)]
    Seats(SeatsCommand),
    /// Manage admin accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The provider's side: keys and key files.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// The reference device client and offline verifier.
    #[command(subcommand)]
    Device(DeviceCommand),
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
}

#[derive(Debug, Subcommand)]
enum LicensesCommand {
    /// Every license with its seat usage.
    List,
    /// One license and its recent changes.
    Show {
        /// License id.
        lic: String,
    },
}

#[derive(Debug, Subcommand)]
enum SeatsCommand {
    /// Seats of a license.
    List {
        /// License id.
        #[arg(long)]
        license: String,
        /// Only seats whose device id or user name contains this text.
        #[arg(long)]
        search: Option<String>,
    },
    /// Free a seat (the device learns it on its next check).
    Retire {
        /// Seat id.
        seat: String,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin account (password from --password-file, SEATKEEP_ADMIN_PASSWORD, a
    /// prompt, or generated and printed once).
    Add {
        /// Login name.
        user: String,
        /// Role.
        #[arg(long, value_enum)]
        role: Role,
        /// File holding the password.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Change an admin's password.
    Passwd {
        /// Login name.
        user: String,
        /// File holding the password.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ProviderCommand {
    /// Create a provider key pair: DIR/KID.pem and DIR/KID.pub.pem.
    Keygen {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Key type.
        #[arg(long, value_enum, default_value_t = KeyType::Ed25519)]
        algorithm: KeyType,
        /// Key id.
        #[arg(long, default_value = "provider-1")]
        kid: String,
        /// Provider id, for the printed config block.
        #[arg(long, default_value = "provider.example")]
        provider: String,
    },
    /// Sign a key file.
    Issue(Box<cli::provider::IssueArgs>),
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Activate a seat and store what the server returned.
    Activate {
        /// Seatkeep base URL.
        #[arg(long)]
        server: String,
        /// The site's key file.
        #[arg(long)]
        key_file: PathBuf,
        /// This device's id.
        #[arg(long)]
        device_id: String,
        /// User name.
        #[arg(long, default_value = "")]
        user: String,
        /// Where to store the answer (default ./DEVICE_ID.device.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Extra CA certificate (PEM) to trust for HTTPS.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Verify a device key offline with only the provider's public key.
    Verify {
        /// Provider public key PEM.
        #[arg(long)]
        provider_key: PathBuf,
        /// The stored activation (JSON from `device activate`) or a bare device key.
        #[arg(long)]
        device_key: PathBuf,
        /// The key file, when --device-key is a bare device key.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// This device's id.
        #[arg(long)]
        device_id: String,
        /// Expected user name.
        #[arg(long)]
        user: Option<String>,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    // One process-wide TLS backend: aws-lc-rs, also used for signing.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Every error's message already carries its cause, on one line.
            eprintln!("seatkeep: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Starts logging to stderr from the config's `[log]` section (RUST_LOG wins).
fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn load_migrated(config: Option<&Path>) -> Result<seatkeep::app::App, CliError> {
    let app = cli::load_app(config)?;
    app.db.migrate()?;
    Ok(app)
}

fn run(args: Cli) -> Result<(), CliError> {
    let config_path = args.config.as_deref();
    let json = args.json;
    match args.command {
        Command::Init {
            data_dir,
            algorithm,
            force,
        } => {
            let identity = cli::server::init(&data_dir, algorithm, force)?;
            if json {
                cli::print_json(&serde_json::json!({
                    "server_id": identity.id(),
                    "config": data_dir.join(cli::server::CONFIG_FILE),
                }))?;
            } else {
                println!("{}", identity.id());
                eprintln!(
                    "server key written to {}; config: {}",
                    data_dir.join(cli::server::KEY_FILE).display(),
                    data_dir.join(cli::server::CONFIG_FILE).display()
                );
            }
            Ok(())
        }
        Command::Serve => {
            let config = Config::load(config_path)?;
            init_logging(&config);
            cli::server::serve(config)
        }
        Command::Quickstart { data_dir, listen } => {
            init_logging(&Config::from_sources(None, &[])?);
            cli::quickstart::run(&data_dir, listen.as_deref())
        }
        Command::Migrate => {
            let app = cli::load_app(config_path)?;
            let applied = cli::server::migrate(&app)?;
            println!("{applied} migrations applied");
            Ok(())
        }
        Command::Keyfile(KeyfileCommand::Import { files }) => {
            let app = load_migrated(config_path)?;
            cli::keyfile::import(&app, &files, json).map(|_| ())
        }
        Command::Keyfile(KeyfileCommand::Inspect { file }) => {
            let config = Config::load(config_path)?;
            cli::keyfile::inspect(&config, &file, json)
        }
        Command::Licenses(LicensesCommand::List) => {
            cli::seats::list_licenses(&load_migrated(config_path)?, json)
        }
        Command::Licenses(LicensesCommand::Show { lic }) => {
            cli::seats::show_license(&load_migrated(config_path)?, &lic, json)
        }
        Command::Seats(SeatsCommand::List { license, search }) => cli::seats::list_seats(
            &load_migrated(config_path)?,
            &license,
            search.as_deref(),
            json,
        ),
        Command::Seats(SeatsCommand::Retire { seat }) => {
            cli::seats::retire(&load_migrated(config_path)?, &seat, json)
        }
        Command::Admin(AdminCommand::Add {
            user,
            role,
            password_file,
        }) => cli::admin::add(
            &load_migrated(config_path)?,
            &user,
            role,
            password_file.as_deref(),
        ),
        Command::Admin(AdminCommand::Passwd {
            user,
            password_file,
        }) => cli::admin::passwd(
            &load_migrated(config_path)?,
            &user,
            password_file.as_deref(),
        ),
        Command::Provider(ProviderCommand::Keygen {
            out,
            algorithm,
            kid,
            provider,
        }) => {
            let generated = cli::provider::keygen(&out, algorithm, &kid)?;
            if json {
                return cli::print_json(&generated);
            }
            println!(
                "provider key '{}' ({}) written to {}; public key {}",
                generated.kid,
                generated.algorithm,
                generated.private_key.display(),
                generated.public_key.display()
            );
            println!("\nTrust it on a Seatkeep server with:\n");
            print!(
                "{}",
                cli::provider::trusted_key_block(
                    &generated.kid,
                    &provider,
                    generated.algorithm,
                    &generated.public_key
                )
            );
            Ok(())
        }
        Command::Provider(ProviderCommand::Issue(issue)) => {
            let claims = cli::provider::issue(&issue)?;
            if json {
                return cli::print_json(&claims);
            }
            println!(
                "key file for license {} (seq {}, {} seats) written to {}",
                claims.lic,
                claims.seq,
                claims.seats,
                issue.out.display()
            );
            Ok(())
        }
        Command::Device(DeviceCommand::Activate {
            server,
            key_file,
            device_id,
            user,
            out,
            ca,
        }) => cli::device::activate(
            &seatkeep::cli::device::ActivateOptions {
                server,
                key_file,
                device_id,
                user,
                out,
                ca,
            },
            json,
        ),
        Command::Device(DeviceCommand::Verify {
            provider_key,
            device_key,
            key_file,
            device_id,
            user,
        }) => cli::device::verify(
            &provider_key,
            &device_key,
            key_file.as_ref(),
            &device_id,
            user.as_deref(),
            json,
        ),
    }
}
