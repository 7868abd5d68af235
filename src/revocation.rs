//! Revoking a license and reinstating it (issue 14). A revoked license keeps its seats and
//! their count, but every device request for it answers 403 `license_revoked` and a seat's
//! state reads `revoked` (`seats::rules::check_usable`, `seats::status`), so reinstating
//! gives every device its seat back as it was. Both changes go through the journal, so they
//! are audited (and federated as `license.revoked` once federation exists). The CLI and the
//! console call these with their actor (`cli`, `admin:NAME`).

use diesel::prelude::*;

use crate::app::App;
use crate::db::DbError;
use crate::db::models::License;
use crate::db::schema::licenses;
use crate::journal::{self, Change, ChangeKind};
use crate::licenses as license_store;
use crate::seats::LicenseStatus;

/// Longest revocation reason, in characters.
pub const MAX_REASON: usize = 500;

/// Why a revocation or reinstatement was refused.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("no license '{0}'")]
    UnknownLicense(String),
    #[error("license {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("license {0} is not revoked")]
    NotRevoked(String),
    #[error("the reason {0}")]
    InvalidReason(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::query_errors_into!(RevocationError);

/// Revokes `lic` for `reason`, recorded with `actor`.
pub fn revoke(app: &App, lic: &str, reason: &str, actor: &str) -> Result<License, RevocationError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(RevocationError::InvalidReason("must not be empty"));
    }
    if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(RevocationError::InvalidReason(
            "must be one line of at most 500 characters",
        ));
    }
    let detail = serde_json::json!({ "reason": reason });
    set_status(
        app,
        lic,
        LicenseStatus::Revoked,
        ChangeKind::LicenseRevoked,
        actor,
        detail,
    )
}

/// Lifts the revocation of `lic`, recorded with `actor`.
pub fn reinstate(app: &App, lic: &str, actor: &str) -> Result<License, RevocationError> {
    let detail = serde_json::json!({});
    set_status(
        app,
        lic,
        LicenseStatus::Active,
        ChangeKind::LicenseReinstated,
        actor,
        detail,
    )
}

/// One write transaction: the journal first (it locks the license row), then the status
/// change, conditional on the status it had, so of two concurrent calls one is refused (its
/// savepoint, journal entry included, rolls back).
fn set_status(
    app: &App,
    lic: &str,
    to: LicenseStatus,
    kind: ChangeKind,
    actor: &str,
    detail: serde_json::Value,
) -> Result<License, RevocationError> {
    let lic = lic.to_owned();
    let actor = actor.to_owned();
    let now = app.clock.now();
    let from = match to {
        LicenseStatus::Revoked => LicenseStatus::Active,
        LicenseStatus::Active => LicenseStatus::Revoked,
    };
    app.db.write(&lic.clone(), move |conn| {
        let license = license_store::find(conn, &lic)?
            .ok_or_else(|| RevocationError::UnknownLicense(lic.clone()))?;
        journal::record(
            conn,
            &Change {
                at: now,
                actor: &actor,
                kind,
                license: Some(&lic),
                seat: None,
                detail,
            },
        )?;
        let changed = diesel::update(
            licenses::table
                .filter(licenses::id.eq(&lic))
                .filter(licenses::status.eq(from.as_str())),
        )
        .set((
            licenses::status.eq(to.as_str()),
            licenses::updated_at.eq(now),
        ))
        .execute(conn)?;
        if changed != 1 {
            return Err(match to {
                LicenseStatus::Revoked => RevocationError::AlreadyRevoked(lic),
                LicenseStatus::Active => RevocationError::NotRevoked(lic),
            });
        }
        Ok(License {
            status: to,
            updated_at: now,
            change_seq: license.change_seq + 1,
            ..license
        })
    })
}
