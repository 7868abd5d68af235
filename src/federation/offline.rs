//! Offline federation (DESIGN §7): the pending batches as one armored file for the provider,
//! and the provider's armored acks applied back. Exporting again before an ack writes the
//! same events again (the provider keeps one copy); an old ack applied again is harmless.

use diesel::prelude::*;
use serde::Serialize;

use super::batch::{self, SignedBatch};
use super::{FederationError, ack};
use crate::app::App;
use crate::db::schema::licenses;
use seatkeep_device::armor::{self, Label};

/// Batches per license in one file: 500 × 500 events, far more than a site makes between
/// two trips.
const MAX_FILE_BATCHES: usize = 500;
/// Largest acks file read.
pub const MAX_ACKS_FILE_BYTES: usize = 4 << 20;

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub text: String,
    pub licenses: Vec<ExportedLicense>,
}

/// One license's part of an export.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedLicense {
    pub license: String,
    pub batches: usize,
    /// First and last seq exported; `None` when nothing is pending.
    pub seqs: Option<(i64, i64)>,
}

/// The pending batches of `only` (or of every license) as a federation file.
pub fn export(app: &App, only: Option<&str>) -> Result<Exported, FederationError> {
    let ids: Vec<String> = match only {
        Some(lic) => vec![lic.to_owned()],
        None => licenses::table
            .select(licenses::id)
            .order(licenses::id.asc())
            .load(&mut *app.db.conn()?)?,
    };
    let mut tokens: Vec<SignedBatch> = Vec::new();
    let mut summary = Vec::with_capacity(ids.len());
    for lic in ids {
        let batches = batch::pending(app, &lic, MAX_FILE_BATCHES)?;
        summary.push(ExportedLicense {
            license: lic,
            batches: batches.len(),
            seqs: batches
                .first()
                .zip(batches.last())
                .map(|(a, b)| (a.first, b.last)),
        });
        tokens.extend(batches);
    }
    Ok(Exported {
        text: armor::armor_lines(Label::Federation, tokens.iter().map(|b| b.token.as_str())),
        licenses: summary,
    })
}

/// Verifies every ack of an acks file, then applies them: a file with one ack that does not
/// verify (another server's, a forged one) changes nothing.
pub fn apply_acks(app: &App, file: &[u8]) -> Result<Vec<ack::Applied>, FederationError> {
    if file.len() > MAX_ACKS_FILE_BYTES {
        return Err(FederationError::File(format!(
            "the acks file is larger than {MAX_ACKS_FILE_BYTES} bytes"
        )));
    }
    let tokens = armor::dearmor_lines(Label::FederationAcks, file)
        .map_err(|e| FederationError::File(format!("not a federation acks file: {e}")))?;
    for (n, token) in tokens.iter().enumerate() {
        ack::verify(app, token, None).map_err(|e| {
            FederationError::File(format!("ack {} of the file: {e}; nothing applied", n + 1))
        })?;
    }
    tokens
        .iter()
        .map(|token| ack::apply(app, token, None))
        .collect()
}
