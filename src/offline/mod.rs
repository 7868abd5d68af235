//! Offline files (DESIGN §11): an admin carries a request file from an air-gapped device to
//! Seatkeep and the response file back.
//!
//! * [`lines`]: one request line answered through the same library functions as the HTTP
//!   API (packet requests, activations), or a signed error line;
//! * [`store`]: every exchange kept by its request, so a file fulfilled again gets the same
//!   response bytes and never a second packet or seat.
//!
//! The file formats are the device crate's ([`seatkeep_device::offline`]).

pub mod lines;
pub mod store;

use seatkeep_device::ProblemCode;
use seatkeep_device::offline::{self, RequestFileError};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::db::DbError;
use crate::signing::SigningError;

/// Why a whole request file was refused (one bad line is an error line instead).
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// 413 `request_too_large`: over 16 KiB or 100 lines.
    #[error("request_too_large: {0}")]
    TooLarge(String),
    /// 400 `invalid_request_file`: not a `SEATKEEP REQUEST` armor.
    #[error("invalid_request_file: {0}")]
    InvalidFile(String),
    /// This server could not answer a line (not the request's fault); nothing is stored and
    /// the same file can be fulfilled again.
    #[error("line {line}: {code}: {detail}; nothing was stored, try the same file again")]
    Fault {
        line: usize,
        code: ProblemCode,
        detail: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    /// An error line could not be signed.
    #[error(transparent)]
    Signing(#[from] SigningError),
}

impl OfflineError {
    /// The stable code of DESIGN §5.
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::TooLarge(_) => ProblemCode::RequestTooLarge,
            Self::InvalidFile(_) => ProblemCode::InvalidRequestFile,
            Self::Fault { code, .. } => *code,
            Self::Db(DbError::Unavailable(_)) => ProblemCode::Unavailable,
            Self::Db(_) | Self::Signing(_) => ProblemCode::InternalError,
        }
    }
}

impl From<RequestFileError> for OfflineError {
    fn from(e: RequestFileError) -> Self {
        match e {
            RequestFileError::TooLarge(why) => Self::TooLarge(why),
            RequestFileError::Armor(e) => Self::InvalidFile(e.to_string()),
        }
    }
}

crate::query_errors_into!(OfflineError);

/// A fulfilled request file.
#[derive(Debug, Clone)]
pub struct Fulfilled {
    /// The armored response file.
    pub response: String,
    /// True when this request was fulfilled before and its stored response is returned.
    pub replayed: bool,
    /// Each request line's outcome, in order (empty for a replay: nothing was run).
    pub outcomes: Vec<lines::Outcome>,
}

/// A request file that passed the size and armor checks.
#[derive(Debug, Clone)]
pub struct RequestFile {
    lines: Vec<offline::RequestLine>,
    /// Lowercase hex SHA-256 of the lines joined by `\n`: the exchange's key.
    sha256: String,
}

impl RequestFile {
    /// Reads a request file; checked before anything opens the database, so a refused file
    /// touches nothing.
    pub fn read(bytes: &[u8]) -> Result<Self, OfflineError> {
        let lines = offline::read_request_file(bytes)?;
        // Keyed by its lines, not the file's bytes, so the same requests carried with other
        // line endings or armor spacing are still the same exchange.
        let joined = lines
            .iter()
            .map(|(line, _)| line.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let sha256 = hex::encode(Sha256::digest(joined.as_bytes()));
        Ok(Self { lines, sha256 })
    }

    /// The exchange's key: lowercase hex SHA-256 of the request lines joined by `\n`.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// Fulfils a request file for `actor` (`cli`, `admin:NAME`). Blocking: call from a worker
/// thread.
pub fn fulfil(app: &App, request: &RequestFile, actor: &str) -> Result<Fulfilled, OfflineError> {
    let request_sha256 = &request.sha256;
    if let Some(response) = store::find(app, request_sha256)? {
        return Ok(Fulfilled {
            response,
            replayed: true,
            outcomes: Vec::new(),
        });
    }
    let mut response_lines: Vec<String> = Vec::new();
    let mut outcomes = Vec::with_capacity(request.lines.len());
    for (number, (line, kind)) in request.lines.iter().enumerate() {
        let outcome = lines::answer(app, number + 1, line, kind.clone(), actor)?;
        for token in &outcome.lines {
            // Two activations under one license both answer its key file: once is enough.
            if !response_lines.contains(token) {
                response_lines.push(token.clone());
            }
        }
        outcomes.push(outcome);
    }
    let response = offline::response_file(response_lines.iter().map(String::as_str));
    // A concurrent fulfil of the same file may have stored first: its response is the one
    // both return, so the bytes stay the same however often the file is carried in.
    let stored = store::keep(app, request_sha256, &response, actor)?;
    let replayed = stored != response;
    Ok(Fulfilled {
        response: stored,
        replayed,
        outcomes,
    })
}
