//! `init`, `serve`, `migrate`.

use std::path::Path;
use std::sync::Arc;

use super::{CliError, create_dir, write_file};
use crate::app::App;
use crate::config::Config;
use crate::identity::ServerIdentity;
use crate::signing::KeyType;

/// Name of the config file `init` writes.
pub const CONFIG_FILE: &str = "seatkeep.toml";
/// Name of the server key `init` writes.
pub const KEY_FILE: &str = "server-key.pem";

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

/// `seatkeep init`: writes the config (if missing) and a new server key; prints the id.
pub fn init(data_dir: &Path, key_type: KeyType, force: bool) -> Result<ServerIdentity, CliError> {
    create_dir(data_dir)?;
    let identity = ServerIdentity::create(&data_dir.join(KEY_FILE), key_type, force)?;
    let config_path = data_dir.join(CONFIG_FILE);
    if !config_path.exists() {
        write_file(
            &config_path,
            initial_config("trusted_keys = []\n").as_bytes(),
        )?;
    }
    Ok(identity)
}

/// `seatkeep migrate`: applies pending migrations.
pub fn migrate(app: &App) -> Result<usize, CliError> {
    Ok(app.db.migrate()?)
}

/// `seatkeep serve`: migrates, then serves until SIGTERM/SIGINT.
pub fn serve(config: Config) -> Result<(), CliError> {
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
    actix_web::rt::System::new().block_on(crate::web::serve(app))?;
    Ok(())
}
