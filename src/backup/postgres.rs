//! PostgreSQL: `pg_dump --format=custom` (one snapshot, the server keeps serving) and
//! `pg_restore`, run when they are on the PATH; otherwise the error says exactly what to run.
//! The password never goes on a command line (where `ps` shows it): it is taken out of the
//! URL and passed as `PGPASSWORD`.

use std::path::Path;
use std::process::Command;

use super::BackupError;

pub(super) fn backup(url: &str, out: &Path) -> Result<(), BackupError> {
    let out_text = out.to_string_lossy();
    let (conninfo, password) = split_password(url);
    let Some(mut command) = tool("pg_dump") else {
        return Err(BackupError::ToolMissing(format!(
            "pg_dump is not on the PATH (Debian: apt-get install postgresql-client); run: \
             pg_dump --format=custom --no-owner --dbname='{conninfo}' --file='{out_text}' \
             (password from PGPASSWORD or ~/.pgpass)"
        )));
    };
    command.args(["--format=custom", "--no-owner", "--no-privileges"]);
    command.arg(format!("--dbname={conninfo}"));
    command.arg(format!("--file={out_text}"));
    let result = run("pg_dump", command, password.as_deref());
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

/// Restores with `--clean --if-exists`: the caller checked that the tables hold nothing (a
/// migrated but empty database still has them) or was told to overwrite.
pub(super) fn restore(url: &str, file: &Path) -> Result<(), BackupError> {
    let file_text = file.to_string_lossy();
    let (conninfo, password) = split_password(url);
    let Some(mut command) = tool("pg_restore") else {
        return Err(BackupError::ToolMissing(format!(
            "pg_restore is not on the PATH (Debian: apt-get install postgresql-client); run: \
             pg_restore --no-owner --no-privileges --single-transaction --exit-on-error --clean --if-exists \
             --dbname='{conninfo}' '{file_text}', then seatkeep migrate"
        )));
    };
    command.args([
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        "--clean",
        "--if-exists",
    ]);
    command.arg(format!("--dbname={conninfo}"));
    command.arg(file);
    run("pg_restore", command, password.as_deref())
}

/// The tool when it is on the PATH.
fn tool(name: &str) -> Option<Command> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    found.then(|| Command::new(name))
}

fn run(
    tool: &'static str,
    mut command: Command,
    password: Option<&str>,
) -> Result<(), BackupError> {
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().map_err(|e| BackupError::Tool {
        tool,
        message: e.to_string(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr
        .lines()
        .find(|l| l.contains("error"))
        .or_else(|| stderr.lines().next())
        .unwrap_or("no message")
        .trim()
        .to_owned();
    Err(BackupError::Tool { tool, message })
}

/// The URL without its password, and the password (percent-decoded).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_owned(), None);
    };
    (
        format!("{scheme}://{user}@{host}{path}"),
        Some(percent_decode(password)),
    )
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::split_password;

    #[test]
    fn password_leaves_the_url() {
        assert_eq!(
            split_password("postgres://sk:p%40ss@db:5432/seatkeep"),
            (
                "postgres://sk@db:5432/seatkeep".to_owned(),
                Some("p@ss".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://sk@db/seatkeep"),
            ("postgres://sk@db/seatkeep".to_owned(), None)
        );
    }
}
