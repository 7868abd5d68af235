//! Admin accounts for the console and CLI: Argon2id password hashes, roles.

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use diesel::prelude::*;

use crate::app::App;
use crate::db::models::Admin;
use crate::db::schema::admins;
use crate::db::{Database, DbError, is_unique_violation};
use crate::journal::{self, Change, ChangeKind};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Admin roles, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including other admins.
    Owner,
    /// Licenses and seats.
    Admin,
    /// Read only.
    Viewer,
}

impl Role {
    /// Stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }
}

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin '{0}' already exists (use `seatkeep admin passwd {0}` to change the password)")]
    Exists(String),
    #[error("no admin '{0}'")]
    Unknown(String),
    #[error("admin name must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -")]
    BadName,
    #[error("password must be at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::query_errors_into!(AdminError);

impl AdminError {
    /// A stable code for the console and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Exists(_) => "admin_exists",
            Self::Unknown(_) => "unknown_admin",
            Self::BadName | Self::WeakPassword => "invalid_request",
            Self::Hash(_) => "internal_error",
            Self::Db(e) => e.code().as_str(),
        }
    }
}

fn validate(username: &str, password: &str) -> Result<(), AdminError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if username.is_empty() || username.len() > 64 || !username.chars().all(ok) {
        return Err(AdminError::BadName);
    }
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AdminError::WeakPassword);
    }
    Ok(())
}

/// Hashes a password with Argon2id (slow on purpose: never inside a transaction).
pub fn hash_password(password: &str) -> Result<String, AdminError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Hash(e.to_string()))
}

/// Checks a password against a stored hash (constant time inside argon2).
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password for generated accounts: 20 characters, ~119 bits.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// Creates an admin account.
pub fn add(
    app: &App,
    username: &str,
    role: Role,
    password: &str,
    actor: &str,
) -> Result<(), AdminError> {
    validate(username, password)?;
    let password_hash = hash_password(password)?;
    let now = app.clock.now();
    let (username, actor) = (username.to_owned(), actor.to_owned());
    app.db.write(&format!("admin:{username}"), move |conn| {
        let inserted = diesel::insert_into(admins::table)
            .values(Admin {
                id: format!("ad_{}", crate::jws::b64url(&rand::random::<[u8; 12]>())),
                username: username.clone(),
                password_hash,
                role: role.as_str().to_owned(),
                created_at: now,
                updated_at: now,
            })
            .execute(conn);
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(AdminError::Exists(username)),
            other => other?,
        };
        journal::record(
            conn,
            &Change {
                at: now,
                actor: &actor,
                kind: ChangeKind::AdminAdded,
                license: None,
                seat: None,
                detail: serde_json::json!({"admin": username, "role": role.as_str()}),
            },
        )?;
        Ok(())
    })
}

/// Changes an admin's password.
pub fn set_password(
    app: &App,
    username: &str,
    password: &str,
    actor: &str,
) -> Result<(), AdminError> {
    validate(username, password)?;
    let password_hash = hash_password(password)?;
    let now = app.clock.now();
    let (username, actor) = (username.to_owned(), actor.to_owned());
    app.db.write(&format!("admin:{username}"), move |conn| {
        let changed = diesel::update(admins::table.filter(admins::username.eq(&username)))
            .set((
                admins::password_hash.eq(&password_hash),
                admins::updated_at.eq(now),
            ))
            .execute(conn)?;
        if changed == 0 {
            return Err(AdminError::Unknown(username));
        }
        journal::record(
            conn,
            &Change {
                at: now,
                actor: &actor,
                kind: ChangeKind::AdminPasswordChanged,
                license: None,
                seat: None,
                detail: serde_json::json!({"admin": username}),
            },
        )?;
        Ok(())
    })
}

/// Number of admin accounts.
pub fn count(db: &Database) -> Result<i64, AdminError> {
    let mut conn = db.conn()?;
    Ok(admins::table.count().get_result(&mut *conn)?)
}

/// An admin by name.
pub fn find(db: &Database, username: &str) -> Result<Option<Admin>, AdminError> {
    let mut conn = db.conn()?;
    Ok(admins::table
        .filter(admins::username.eq(username))
        .select(Admin::as_select())
        .get_result(&mut *conn)
        .optional()?)
}
