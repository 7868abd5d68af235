//! `init`, `serve`, `migrate`, and the logging that `serve` and `quickstart` start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::{CliError, Global, KeyTypeArg, Run, create_dir, print_json, write_file};
use crate::app::App;
use crate::config::{Config, LogFormat};
use crate::identity::ServerIdentity;
use crate::signing::KeyType;

/// Name of the config file `init` writes.
pub const CONFIG_FILE: &str = "seatkeep.toml";
/// Name of the server key `init` writes.
pub const KEY_FILE: &str = "server-key.pem";

/// Create a config and the server key pair; print the server id.
#[derive(Debug, Args)]
pub struct Init {
    /// Folder for seatkeep.toml, server-key.pem and server-key.pub.pem.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Server key type.
    #[arg(long, value_enum, default_value_t = KeyTypeArg::Ed25519)]
    algorithm: KeyTypeArg,
    /// Replace an existing server key (device keys it signed stop verifying).
    #[arg(long)]
    force: bool,
}

impl Run for Init {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let identity = init(&self.data_dir, self.algorithm.into(), self.force)?;
        let config = self.data_dir.join(CONFIG_FILE);
        if global.json {
            return print_json(&serde_json::json!({
                "server_id": identity.id(),
                "config": config,
            }));
        }
        println!("{}", identity.id());
        eprintln!(
            "server key written to {}; config: {}",
            self.data_dir.join(KEY_FILE).display(),
            config.display()
        );
        Ok(())
    }
}

/// Run the server (applies migrations first).
#[derive(Debug, Args)]
pub struct Serve;

impl Run for Serve {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let config = global.config()?;
        init_logging(&config);
        serve(config)
    }
}

/// Apply database migrations.
#[derive(Debug, Args)]
pub struct Migrate;

impl Run for Migrate {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let applied = global.app()?.db.migrate()?;
        println!("{applied} migrations applied");
        Ok(())
    }
}

/// The config `init` writes: only what differs from the built-in defaults.
pub fn initial_config(trusted_keys: &str) -> String {
    format!(
        "# Written by `seatkeep init`. Every setting, its default and its meaning:\n\
         # config/seatkeep.toml in the Seatkeep source. Relative paths resolve against this\n\
         # file's folder; SEATKEEP__SECTION__KEY environment variables override any key.\n\n\
         [server]\nlisten = \"127.0.0.1:8080\"\n\n\
         [database]\nurl = \"sqlite://seatkeep.db\"\n\n\
         [identity]\nkey_file = \"{KEY_FILE}\"\n\n\
         [provider]\n{trusted_keys}"
    )
}

/// What `init` writes under `[provider]`: no key yet, and how to add one, so a block
/// appended as documented (or by `keyfile trust`) extends the file instead of clashing with
/// a `trusted_keys = []` line.
const NO_TRUSTED_KEYS: &str = "# Trusted provider keys: `seatkeep keyfile trust PEM --kid ID --provider ID \
     --algorithm ALG`\n# appends one block per key at the end of this file:\n\
     #   [[provider.trusted_keys]]\n#   kid = \"acme-2026\"\n#   provider = \"provider.example\"\n\
     #   algorithm = \"EdDSA\"\n#   public_key_file = \"provider-keys/acme-2026.pem\"\n";

/// Writes the config (if missing) and a new server key.
fn init(data_dir: &Path, key_type: KeyType, force: bool) -> Result<ServerIdentity, CliError> {
    create_dir(data_dir)?;
    let identity = ServerIdentity::create(&data_dir.join(KEY_FILE), key_type, force)?;
    let config_path = data_dir.join(CONFIG_FILE);
    if !config_path.exists() {
        write_file(&config_path, initial_config(NO_TRUSTED_KEYS).as_bytes())?;
    }
    Ok(identity)
}

/// Migrates, then serves until SIGTERM/SIGINT.
pub fn serve(config: Config) -> Result<(), CliError> {
    let startup = crate::web::Startup::prepare(&config)?;
    let app = Arc::new(App::load(config)?);
    let applied = app.db.migrate()?;
    if applied > 0 {
        tracing::info!(applied, "database migrated");
    }
    if let Err(e) = app.clock.sync(&app.db) {
        tracing::warn!(error = %e, "clock watch: cannot read the stored high-water mark");
    }
    if app.trusted.is_empty() {
        tracing::warn!("no provider.trusted_keys configured: no key file can be imported");
    }
    actix_web::rt::System::new().block_on(crate::web::serve(app, startup))?;
    Ok(())
}

/// Starts logging to stderr from the config's `[log]` section (RUST_LOG wins).
/// actix-http's h1 lines (one ERROR per malformed request, without the client) go to the
/// rate-limited tally of `web::malformed` instead of the output.
pub fn init_logging(config: &Config) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if let Ok(quiet) = format!("{}=off", crate::web::malformed::ACTIX_H1_TARGET).parse() {
        filter = filter.add_directive(quiet);
    }
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let output = match config.log.format {
        LogFormat::Json => output.json().boxed(),
        LogFormat::Text => output.boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(output.with_filter(filter))
        .with(crate::web::malformed::layer())
        .try_init();
}
