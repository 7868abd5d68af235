//! Admin accounts for the console and CLI: Argon2id password hashes, roles.

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use diesel::prelude::*;
use seatkeep_device::ProblemCode;

use crate::app::App;
use crate::db::models::Admin;
use crate::db::schema::{admins, console_sessions};
use crate::db::word::Word;
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
    /// Every role, strongest first.
    pub const ALL: [Role; 3] = [Self::Owner, Self::Admin, Self::Viewer];

    /// The role named `text` (a form field; rows are parsed when read).
    pub fn parse(text: &str) -> Option<Self> {
        crate::db::word::StoredWord::from_word(text)
    }

    /// True when this role may do what `needed` may.
    pub fn includes(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Self::Owner => 2,
            Self::Admin => 1,
            Self::Viewer => 0,
        }
    }

    /// The role's word, as stored and as the CLI and console name it.
    pub fn as_str(self) -> &'static str {
        crate::db::word::StoredWord::as_str(self)
    }
}

crate::stored_word!(Role, "admin role", {
    Owner => "owner",
    Admin => "admin",
    Viewer => "viewer",
});

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
    #[error("'{0}' is the last owner: make another admin owner first")]
    LastOwner(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::query_errors_into!(AdminError);

impl AdminError {
    /// The stable code (DESIGN §5), which decides the console's status.
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::Exists(_) | Self::BadName | Self::WeakPassword | Self::LastOwner(_) => {
                ProblemCode::InvalidRequest
            }
            Self::Unknown(_) => ProblemCode::NotFound,
            Self::Hash(_) => ProblemCode::InternalError,
            Self::Db(e) => e.code(),
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
                role,
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
        end_sessions(conn, &username)?;
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

/// Every admin, by name.
pub fn list(db: &Database) -> Result<Vec<Admin>, AdminError> {
    let mut conn = db.conn()?;
    Ok(admins::table
        .order(admins::username)
        .select(Admin::as_select())
        .load(&mut *conn)?)
}

/// Gives an admin another role. The last owner keeps theirs.
pub fn set_role(app: &App, username: &str, role: Role, actor: &str) -> Result<(), AdminError> {
    let now = app.clock.now();
    let (username, actor) = (username.to_owned(), actor.to_owned());
    app.db.write(&format!("admin:{username}"), move |conn| {
        let current = role_of(conn, &username)?;
        if current == Role::Owner && role != Role::Owner {
            guard_last_owner(conn, &username)?;
        }
        diesel::update(admins::table.filter(admins::username.eq(&username)))
            .set((admins::role.eq(role.as_str()), admins::updated_at.eq(now)))
            .execute(conn)?;
        journal::record(
            conn,
            &Change {
                at: now,
                actor: &actor,
                kind: ChangeKind::AdminRoleChanged,
                license: None,
                seat: None,
                detail: serde_json::json!({
                    "admin": username, "from": current.as_str(), "role": role.as_str(),
                }),
            },
        )?;
        Ok(())
    })
}

/// Removes an admin account and ends its sessions. The last owner stays.
pub fn remove(app: &App, username: &str, actor: &str) -> Result<(), AdminError> {
    let now = app.clock.now();
    let (username, actor) = (username.to_owned(), actor.to_owned());
    app.db.write(&format!("admin:{username}"), move |conn| {
        if role_of(conn, &username)? == Role::Owner {
            guard_last_owner(conn, &username)?;
        }
        end_sessions(conn, &username)?;
        diesel::delete(admins::table.filter(admins::username.eq(&username))).execute(conn)?;
        journal::record(
            conn,
            &Change {
                at: now,
                actor: &actor,
                kind: ChangeKind::AdminRemoved,
                license: None,
                seat: None,
                detail: serde_json::json!({"admin": username}),
            },
        )?;
        Ok(())
    })
}

fn role_of(conn: &mut crate::db::DbConn, username: &str) -> Result<Role, AdminError> {
    let stored: Option<Word<Role>> = admins::table
        .filter(admins::username.eq(username))
        .select(admins::role)
        .get_result(conn)
        .optional()?;
    stored
        .map(Role::from)
        .ok_or_else(|| AdminError::Unknown(username.to_owned()))
}

/// Refuses when `username` is the only owner (checked in the change's own transaction).
fn guard_last_owner(conn: &mut crate::db::DbConn, username: &str) -> Result<(), AdminError> {
    let owners = admins::table
        .filter(admins::role.eq(Role::Owner.as_str()))
        .select(admins::id);
    let owners = match conn {
        // Every owner row locked: two instances demoting two different owners at once would
        // otherwise both count two and leave none. The second waits for the first to commit,
        // then sees one owner left.
        crate::db::DbConn::Postgres(c) => owners.for_update().load::<String>(c)?.len(),
        // SQLite has one writer at a time: the count cannot change under this transaction.
        crate::db::DbConn::Sqlite(c) => owners.load::<String>(c)?.len(),
    };
    if owners <= 1 {
        return Err(AdminError::LastOwner(username.to_owned()));
    }
    Ok(())
}

/// Deletes every console session of an admin (password changed, account removed).
fn end_sessions(conn: &mut crate::db::DbConn, username: &str) -> Result<(), AdminError> {
    let ids = admins::table
        .filter(admins::username.eq(username))
        .select(admins::id);
    diesel::delete(console_sessions::table.filter(console_sessions::admin_id.eq_any(ids)))
        .execute(conn)?;
    Ok(())
}
