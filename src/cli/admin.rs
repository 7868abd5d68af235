//! `admin add` and `admin passwd`.

use std::path::Path;

use super::{CliError, read_file};
use crate::admins::{self, Role};
use crate::app::App;

/// Where a password comes from: a file, `SEATKEEP_ADMIN_PASSWORD`, a prompt, or generated.
pub fn obtain_password(password_file: Option<&Path>) -> Result<(String, bool), CliError> {
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

/// `seatkeep admin add USER --role ROLE`.
pub fn add(
    app: &App,
    user: &str,
    role: Role,
    password_file: Option<&Path>,
) -> Result<(), CliError> {
    let (password, generated) = obtain_password(password_file)?;
    admins::add(app, user, role, &password, "cli")?;
    println!("admin '{user}' added as {}", role.as_str());
    if generated {
        println!("password (shown once): {password}");
    }
    Ok(())
}

/// `seatkeep admin passwd USER`.
pub fn passwd(app: &App, user: &str, password_file: Option<&Path>) -> Result<(), CliError> {
    let (password, generated) = obtain_password(password_file)?;
    admins::set_password(app, user, &password, "cli")?;
    println!("password of '{user}' changed");
    if generated {
        println!("password (shown once): {password}");
    }
    Ok(())
}
