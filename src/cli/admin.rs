//! `admin add` and `admin passwd`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::{CliError, Global, Run, read_file};
use crate::admins::{self, Role};
use crate::app::App;

/// Manage admin accounts.
#[derive(Debug, Args)]
pub struct Admin {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin account (password from --password-file, SEATKEEP_ADMIN_PASSWORD, a
    /// prompt, or generated and printed once).
    Add {
        /// Login name.
        user: String,
        /// What the account may do in the console.
        #[arg(long, value_enum)]
        role: RoleArg,
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

/// `--role`: the [`Role`]s by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RoleArg {
    /// Everything, including other admins.
    Owner,
    /// Licenses and seats.
    Admin,
    /// Read only.
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(arg: RoleArg) -> Self {
        match arg {
            RoleArg::Owner => Self::Owner,
            RoleArg::Admin => Self::Admin,
            RoleArg::Viewer => Self::Viewer,
        }
    }
}

impl Run for Admin {
    fn run(self, global: &Global) -> Result<(), CliError> {
        let app = global.migrated_app()?;
        match self.command {
            AdminCommand::Add {
                user,
                role,
                password_file,
            } => add(&app, &user, role.into(), password_file.as_deref()),
            AdminCommand::Passwd {
                user,
                password_file,
            } => passwd(&app, &user, password_file.as_deref()),
        }
    }
}

/// Where a password comes from: a file, `SEATKEEP_ADMIN_PASSWORD`, a prompt, or generated
/// (then `true`: print it once).
fn obtain_password(password_file: Option<&Path>) -> Result<(String, bool), CliError> {
    if let Some(path) = password_file {
        let text = String::from_utf8(read_file(path)?)
            .map_err(|_| CliError::Usage(format!("{}: not UTF-8", path.display())))?;
        return Ok((text.trim_end_matches(['\r', '\n']).to_owned(), false));
    }
    if let Ok(password) = std::env::var("SEATKEEP_ADMIN_PASSWORD") {
        return Ok((password, false));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password("New password: ")
            .map_err(|e| CliError::Usage(format!("cannot read password: {e}")))?;
        let second = rpassword::prompt_password("Again: ")
            .map_err(|e| CliError::Usage(format!("cannot read password: {e}")))?;
        if first != second {
            return Err(CliError::Usage("passwords differ".into()));
        }
        return Ok((first, false));
    }
    Ok((admins::generate_password(), true))
}

fn add(app: &App, user: &str, role: Role, password_file: Option<&Path>) -> Result<(), CliError> {
    let (password, generated) = obtain_password(password_file)?;
    admins::add(app, user, role, &password, "cli")?;
    println!("admin '{user}' added as {}", role.as_str());
    if generated {
        println!("password (shown once): {password}");
    }
    Ok(())
}

fn passwd(app: &App, user: &str, password_file: Option<&Path>) -> Result<(), CliError> {
    let (password, generated) = obtain_password(password_file)?;
    admins::set_password(app, user, &password, "cli")?;
    println!("password of '{user}' changed");
    if generated {
        println!("password (shown once): {password}");
    }
    Ok(())
}
