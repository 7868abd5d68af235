//! Licenses: importing key files (new licenses, renewals, top-ups) and reading licenses.
//! The CLI and the console call the same functions.

use diesel::prelude::*;
use seatkeep_device::ProblemCode;
use serde::Serialize;

use crate::app::App;
use crate::db::models::{KeyFileRow, License};
use crate::db::schema::{key_files, licenses};
use crate::db::word::Word;
use crate::db::{DbConn, DbError, is_unique_violation};
use crate::journal::{self, Change, ChangeKind};
use crate::keyfile::{self, KeyFileClaims, KeyFileError, LicenseModel, VerifiedKeyFile};
use crate::seats::{LicenseStatus, rules};
use seatkeep_device::meter::MeterTerms;

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file itself is not acceptable.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// An older or equal version with other content.
    #[error(
        "stale key file: license {lic} is at seq {current}; this file has seq {seq} with different content"
    )]
    Stale {
        lic: String,
        /// The file's seq.
        seq: i64,
        current: i64,
    },
    /// A renewal may not change what the license is.
    #[error("key file changes the {field} of license {lic} ({from} → {to}); a renewal keeps it")]
    Incompatible {
        lic: String,
        field: &'static str,
        from: String,
        /// In the file.
        to: String,
    },
    /// An `admins` entry is not an RFC 5322 mailbox: the emails owed would have nowhere to go.
    #[error("invalid key file: admins: '{0}' is not a valid email address")]
    BadAdmin(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::query_errors_into!(ImportError);

impl ImportError {
    /// The stable code (DESIGN §5), which decides the console's status.
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::KeyFile(e) => e.code(),
            Self::Stale { .. } | Self::Incompatible { .. } | Self::BadAdmin(_) => {
                ProblemCode::InvalidKeyFile
            }
            Self::Db(e) => e.code(),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// A new license.
    Imported,
    /// A higher `seq` replaced seats and term.
    Renewed,
    /// The very same file was imported before: nothing changed.
    Unchanged,
}

/// The result of an import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub outcome: ImportOutcome,
    pub license: String,
    /// Version now stored.
    pub seq: i64,
    pub seats: i64,
    /// Seats in use.
    pub in_use: i64,
    /// Seats in use beyond the capacity (after a renewal lowered it).
    pub over_allocated: i64,
}

/// The claim-derived columns of a license, replaced on renewal.
#[derive(AsChangeset)]
#[diesel(table_name = licenses)]
struct LicenseTerms {
    issuer: String,
    customer_id: String,
    customer_name: String,
    product_id: String,
    product_name: String,
    product_edition: i64,
    model: Word<LicenseModel>,
    seats: i64,
    capacity: i64,
    seq: i64,
    not_before: Option<i64>,
    expires_at: Option<i64>,
    reissue_limit: i64,
    return_limit: i64,
    overage_percent: i64,
    admins: String,
    federation_url: Option<String>,
    federation_grace: Option<i64>,
    federation_user_data: bool,
    channel: Option<String>,
    current_key_file: String,
    updated_at: i64,
    meter_terms: Option<String>,
}

impl LicenseTerms {
    fn from_claims(file: &VerifiedKeyFile, now: i64) -> Self {
        let c = &file.claims;
        Self {
            issuer: c.iss.clone(),
            customer_id: c.customer.id.clone(),
            customer_name: c.customer.name.clone(),
            product_id: c.product.id.clone(),
            product_name: c.product.name.clone(),
            product_edition: c.product.edition,
            model: Word(c.model),
            seats: c.seats,
            capacity: rules::capacity(c.model, c.seats, c.policy.overage_percent),
            seq: c.seq,
            not_before: c.nbf,
            expires_at: c.exp,
            reissue_limit: c.policy.reissue_limit,
            return_limit: c.policy.return_limit,
            overage_percent: c.policy.overage_percent,
            admins: serde_json::Value::from(c.admins.clone()).to_string(),
            federation_url: c.federation.as_ref().map(|f| f.url.clone()),
            federation_grace: c.federation.as_ref().and_then(|f| f.grace),
            federation_user_data: c.federation.as_ref().is_some_and(|f| f.user_data),
            channel: c
                .channel
                .as_ref()
                .and_then(|ch| serde_json::to_string(ch).ok()),
            current_key_file: file.digest.clone(),
            updated_at: now,
            meter_terms: c.meter.as_ref().and_then(|m| serde_json::to_string(m).ok()),
        }
    }

    fn into_new_license(self, lic: &str, meter_cap: Option<i64>, now: i64) -> License {
        License {
            id: lic.to_owned(),
            issuer: self.issuer,
            customer_id: self.customer_id,
            customer_name: self.customer_name,
            product_id: self.product_id,
            product_name: self.product_name,
            product_edition: self.product_edition,
            model: self.model.0,
            seats: self.seats,
            capacity: self.capacity,
            in_use: 0,
            ceiling: rules::ceiling(self.capacity, 0),
            seq: self.seq,
            not_before: self.not_before,
            expires_at: self.expires_at,
            reissue_limit: self.reissue_limit,
            return_limit: self.return_limit,
            overage_percent: self.overage_percent,
            admins: self.admins,
            federation_url: self.federation_url,
            federation_grace: self.federation_grace,
            federation_user_data: self.federation_user_data,
            channel: self.channel,
            current_key_file: self.current_key_file,
            status: LicenseStatus::Active,
            created_at: now,
            updated_at: now,
            change_seq: 0,
            exhaust_episode: 1,
            meter_terms: self.meter_terms,
            meter_cap: meter_cap.unwrap_or(0),
            meter_issued: 0,
        }
    }
}

/// Verifies a key file (signature, claims, server binding, term) and stores it: a new
/// license, a renewal, or nothing when the very same file was imported before. The file,
/// the license and the audit row commit together.
pub fn import_key_file(app: &App, raw: &[u8], actor: &str) -> Result<ImportReport, ImportError> {
    let now = app.clock.now();
    let file = verify_for_import(app, raw, now)?;
    // verify() accepted the bytes as UTF-8 text.
    let raw_text = String::from_utf8_lossy(raw).into_owned();
    let lic = file.claims.lic.clone();
    let digest = file.digest.clone();
    let actor = actor.to_owned();
    let result = app.db.write(&lic.clone(), move |conn| {
        store(conn, &file, &raw_text, &actor, now)
    });
    match result {
        // A concurrent import of the same file won the race: that is the no-op case.
        Err(ImportError::Db(DbError::Query(e))) if is_unique_violation(&e) => {
            let license = find(&mut *app.db.conn()?, &lic)?;
            match license {
                Some(l) if l.current_key_file == digest => Ok(report(ImportOutcome::Unchanged, &l)),
                _ => Err(ImportError::Db(DbError::Query(e))),
            }
        }
        other => other,
    }
}

/// Every check an import makes before touching the database: signature, claims, server
/// binding, term, and the admins' mailboxes.
fn verify_for_import(app: &App, raw: &[u8], now: i64) -> Result<VerifiedKeyFile, ImportError> {
    let file = keyfile::verify(raw, &app.trusted, &app.binding)?;
    keyfile::check_term(file.claims.nbf, file.claims.exp, now)?;
    // The device crate checks the shape; the mailbox parser that will address the emails
    // has the last word, before anything is stored.
    if let Some(bad) = file
        .claims
        .admins
        .iter()
        .find(|a| crate::notify::parse_mailbox(a).is_err())
    {
        return Err(ImportError::BadAdmin(bad.clone()));
    }
    Ok(file)
}

/// What importing a key file would do, found without writing anything.
#[derive(Debug, Clone)]
pub struct ImportPreview {
    pub outcome: ImportOutcome,
    /// The verified claims of the file.
    pub claims: KeyFileClaims,
    /// Seats bought before, for a renewal.
    pub previous_seats: Option<i64>,
    /// Seats in use now (0 for a new license).
    pub in_use: i64,
}

/// Runs every check of [`import_key_file`] and says what it would do; stores nothing. An
/// import refused now (stale, incompatible) is the same error here. The import itself checks
/// everything again, so a preview is never trusted.
pub fn preview(app: &App, raw: &[u8]) -> Result<ImportPreview, ImportError> {
    let file = verify_for_import(app, raw, app.clock.now())?;
    let mut conn = app.db.conn()?;
    let claims = file.claims;
    let existing = find(&mut conn, &claims.lic)?;
    let already_stored = key_files::table
        .find(&file.digest)
        .select(key_files::license_id)
        .get_result::<String>(&mut *conn)
        .optional()?
        .is_some();
    let outcome = match &existing {
        Some(_) if already_stored => ImportOutcome::Unchanged,
        Some(license) if claims.seq <= license.seq => {
            return Err(ImportError::Stale {
                lic: claims.lic.clone(),
                seq: claims.seq,
                current: license.seq,
            });
        }
        Some(license) => {
            check_compatible(license, &claims)?;
            ImportOutcome::Renewed
        }
        None => ImportOutcome::Imported,
    };
    Ok(ImportPreview {
        outcome,
        previous_seats: existing.as_ref().map(|l| l.seats),
        in_use: existing.as_ref().map_or(0, |l| l.in_use),
        claims,
    })
}

/// A license's key files, newest first.
pub fn history(conn: &mut DbConn, lic: &str) -> QueryResult<Vec<KeyFileRow>> {
    key_files::table
        .filter(key_files::license_id.eq(lic))
        .order((key_files::seq.desc(), key_files::imported_at.desc()))
        .select(KeyFileRow::as_select())
        .load(conn)
}

fn store(
    conn: &mut DbConn,
    file: &VerifiedKeyFile,
    raw: &str,
    actor: &str,
    now: i64,
) -> Result<ImportReport, ImportError> {
    let claims = &file.claims;
    let existing = find(conn, &claims.lic)?;
    let already_stored = key_files::table
        .find(&file.digest)
        .select(key_files::license_id)
        .get_result::<String>(conn)
        .optional()?
        .is_some();
    let outcome = match &existing {
        Some(license) if already_stored => return Ok(report(ImportOutcome::Unchanged, license)),
        Some(license) if claims.seq <= license.seq => {
            return Err(ImportError::Stale {
                lic: claims.lic.clone(),
                seq: claims.seq,
                current: license.seq,
            });
        }
        Some(license) => {
            check_compatible(license, claims)?;
            let terms = LicenseTerms::from_claims(file, now);
            let capacity = terms.capacity;
            let changed = diesel::update(
                licenses::table
                    .filter(licenses::id.eq(&claims.lic))
                    .filter(licenses::seq.lt(claims.seq)),
            )
            .set((
                terms,
                // Seats in use survive a lower count: the ceiling keeps room for them.
                licenses::ceiling.eq(rules::ceiling_sql(Some(capacity), 0)),
                // More seats than before end a seats_exhausted episode (DESIGN §8).
                licenses::exhaust_episode
                    .eq(licenses::exhaust_episode + i64::from(capacity > license.capacity)),
                // A renewal carries the new lifetime total; what was issued stays issued.
                licenses::meter_cap.eq(crate::meter::pool::cap_sql(
                    claims.meter.as_ref().map_or(0, MeterTerms::cap),
                )),
            ))
            .execute(conn)?;
            if changed != 1 {
                return Err(ImportError::Stale {
                    lic: claims.lic.clone(),
                    seq: claims.seq,
                    current: license.seq,
                });
            }
            ImportOutcome::Renewed
        }
        None => {
            let license = LicenseTerms::from_claims(file, now).into_new_license(
                &claims.lic,
                claims.meter.as_ref().map(MeterTerms::cap),
                now,
            );
            diesel::insert_into(licenses::table)
                .values(license)
                .execute(conn)?;
            ImportOutcome::Imported
        }
    };
    diesel::insert_into(key_files::table)
        .values(KeyFileRow {
            digest: file.digest.clone(),
            license_id: claims.lic.clone(),
            seq: claims.seq,
            jti: claims.jti.clone(),
            kid: file.kid.clone(),
            raw: raw.to_owned(),
            imported_at: now,
            imported_by: actor.to_owned(),
        })
        .execute(conn)?;
    let stored = find(conn, &claims.lic)?.ok_or(ImportError::Db(DbError::Query(
        diesel::result::Error::NotFound,
    )))?;
    let kind = match outcome {
        ImportOutcome::Renewed => ChangeKind::LicenseRenewed,
        _ => ChangeKind::LicenseImported,
    };
    let detail = serde_json::json!({
            "seq": claims.seq,
            "previous_seq": existing.as_ref().map(|l| l.seq),
            "seats": claims.seats,
            "previous_seats": existing.as_ref().map(|l| l.seats),
            "in_use": stored.in_use,
            "key_file": file.digest,
            "jti": claims.jti,
            "expires_at": claims.exp,
    });
    journal::record(
        conn,
        &Change {
            at: now,
            actor,
            kind,
            license: Some(&claims.lic),
            seat: None,
            detail,
        },
    )?;
    Ok(report(outcome, &stored))
}

fn check_compatible(license: &License, claims: &KeyFileClaims) -> Result<(), ImportError> {
    let pairs = [
        (
            "product",
            license.product_id.as_str(),
            claims.product.id.as_str(),
        ),
        (
            "customer",
            license.customer_id.as_str(),
            claims.customer.id.as_str(),
        ),
        ("model", license.model.as_str(), claims.model.as_str()),
    ];
    for (field, from, to) in pairs {
        if from != to {
            return Err(ImportError::Incompatible {
                lic: license.id.clone(),
                field,
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
    }
    Ok(())
}

fn report(outcome: ImportOutcome, license: &License) -> ImportReport {
    ImportReport {
        outcome,
        license: license.id.clone(),
        seq: license.seq,
        seats: license.seats,
        in_use: license.in_use,
        over_allocated: (license.in_use - license.capacity).max(0),
    }
}

/// A license by id.
pub fn find(conn: &mut DbConn, lic: &str) -> QueryResult<Option<License>> {
    licenses::table
        .find(lic)
        .select(License::as_select())
        .get_result(conn)
        .optional()
}

/// Every license, by id.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<License>> {
    licenses::table
        .order(licenses::id)
        .select(License::as_select())
        .load(conn)
}

/// The raw text of a stored key file, by digest.
pub fn stored_key_file(conn: &mut DbConn, digest: &str) -> QueryResult<String> {
    key_files::table
        .find(digest)
        .select(key_files::raw)
        .get_result(conn)
}
