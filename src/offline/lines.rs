//! One line of a request file, answered through the same functions as the HTTP API; a line
//! that fails becomes a signed `seatkeep-offline-error+jwt` and the others still run.

use diesel::prelude::*;
use seatkeep_device::ProblemCode;
use seatkeep_device::jws;
use seatkeep_device::meter::wire::{MAX_REQUEST_ID_LEN, PacketRequestClaims};
use seatkeep_device::offline::{
    self, ActivationRequestClaims, LineError, OFFLINE_ERROR_TYP, OfflineErrorClaims, RequestKind,
};
use serde::Serialize;

use super::OfflineError;
use crate::app::App;
use crate::db::schema::key_files;
use crate::seats::{self, ActivationRequest};

/// What became of one request line.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// 1-based line number in the request file.
    pub line: usize,
    /// The request's `jti`, or `line:N` when it has none that can be read.
    pub req: String,
    /// `activation`, `packets`, or `unknown`.
    pub kind: &'static str,
    /// What was answered, or the refusal.
    #[serde(flatten)]
    pub result: LineResult,
    /// The response lines this request contributes.
    #[serde(skip)]
    pub lines: Vec<String>,
}

/// A line's answer in words, or its stable code and why.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum LineResult {
    Answered { answered: String },
    Refused { code: String, detail: String },
}

/// A refusal of one line.
struct Refusal {
    code: ProblemCode,
    detail: String,
}

impl Refusal {
    fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

/// Answers line `number`. A refused line is an error line in the outcome; a fault of this
/// server (database, signing) is an `Err` instead, since storing it as the exchange's answer
/// would repeat a passing fault forever. Retrying the file is safe: packets are answered
/// again by request id and an activation by device.
pub fn answer(
    app: &App,
    number: usize,
    line: &str,
    kind: Result<RequestKind, LineError>,
    actor: &str,
) -> Result<Outcome, OfflineError> {
    let req = request_id(line).unwrap_or_else(|| format!("line:{number}"));
    let (kind_name, answered) = match kind {
        Ok(RequestKind::Packets) => ("packets", packets(app, line, actor)),
        Ok(RequestKind::Activation) => ("activation", activation(app, line, actor)),
        Err(e) => (
            "unknown",
            Err(Refusal::new(ProblemCode::InvalidRequest, e.to_string())),
        ),
    };
    let (result, lines) = match answered {
        Ok((summary, lines)) => (LineResult::Answered { answered: summary }, lines),
        Err(refusal) if is_fault(refusal.code) => {
            return Err(OfflineError::Fault {
                line: number,
                code: refusal.code,
                detail: refusal.detail,
            });
        }
        Err(refusal) => {
            let claims = OfflineErrorClaims {
                req: req.clone(),
                code: refusal.code.as_str().to_owned(),
                detail: refusal.detail.clone(),
            };
            let token =
                app.identity
                    .key()
                    .sign_jws(OFFLINE_ERROR_TYP, app.identity.id(), &claims)?;
            (
                LineResult::Refused {
                    code: claims.code,
                    detail: claims.detail,
                },
                vec![token],
            )
        }
    };
    Ok(Outcome {
        line: number,
        req,
        kind: kind_name,
        result,
        lines,
    })
}

/// Codes that say this server cannot answer now, not that the request is wrong: the ones
/// the HTTP API answers with a 5xx (an outage, an untrusted clock, federation overdue).
fn is_fault(code: ProblemCode) -> bool {
    crate::web::errors::status_for(code).is_server_error()
}

/// The `jti` of a line, read without verifying (only to name the line in an error).
fn request_id(line: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Jti {
        jti: String,
    }
    let parsed = jws::parse_compact(line).ok()?;
    let jti: Jti = serde_json::from_slice(&parsed.payload).ok()?;
    Some(jti.jti).filter(|jti| jws::is_token_id(jti, MAX_REQUEST_ID_LEN))
}

type Answered = Result<(String, Vec<String>), Refusal>;

/// A packet request: the seat named in its claims, then the HTTP endpoint's code path, which
/// verifies the request with that seat's registered key.
fn packets(app: &App, line: &str, actor: &str) -> Answered {
    let claims: PacketRequestClaims = jws::parse_compact(line)
        .ok()
        .and_then(|parsed| serde_json::from_slice(&parsed.payload).ok())
        .ok_or_else(|| {
            Refusal::new(
                ProblemCode::InvalidPacketRequest,
                "the packet request's claims do not read",
            )
        })?;
    let reply = crate::meter::request_packets_as(app, &claims.seat, line, actor)
        .map_err(|e| Refusal::new(e.code(), e.to_string()))?;
    let answer = reply.answer;
    let summary = format!(
        "seat {}: {} packet(s), pool {} of {} issued",
        claims.seat,
        answer.packets.len(),
        answer.pool.issued,
        answer.pool.units
    );
    let mut lines = answer.packets;
    lines.push(answer.time);
    Ok((summary, lines))
}

/// An activation request: self-signed by the key in its header, addressed to this server,
/// naming an imported key file version of its license; then the normal activation.
fn activation(app: &App, line: &str, actor: &str) -> Answered {
    let (claims, jwk) = offline::verify_activation_request(line)
        .map_err(|e| Refusal::new(ProblemCode::InvalidRequest, e.to_string()))?;
    if claims.aud != app.identity.id() {
        return Err(Refusal::new(
            ProblemCode::InvalidRequest,
            format!("aud {} is not this server's id", claims.aud),
        ));
    }
    let key_file = imported_key_file(app, &claims)?;
    let request = ActivationRequest {
        key_file,
        device_id: claims.iss.clone(),
        user_name: claims.name.clone(),
        device_info: claims.device_info.clone(),
        device_jwk: Some(jwk),
    };
    let activation = seats::activate_as(app, &request, actor)
        .map_err(|e| Refusal::new(e.code(), e.to_string()))?;
    // The response holds one compact JWS per line: the stored key file may be armored.
    let current = seatkeep_device::keyfile::dearmor(activation.key_file.as_bytes())
        .map_err(|e| Refusal::new(ProblemCode::InternalError, e.to_string()))?;
    let summary = format!(
        "device {}: seat {} ({})",
        claims.iss,
        activation.seat,
        if activation.created {
            "new"
        } else {
            "held already"
        }
    );
    Ok((summary, vec![current, activation.device_key]))
}

/// The text of the key file version the request names: its digest, license and `seq` must
/// all match a stored version.
fn imported_key_file(app: &App, claims: &ActivationRequestClaims) -> Result<String, Refusal> {
    let refused = || {
        Refusal::new(
            ProblemCode::InvalidKeyFile,
            format!(
                "no imported key file of license {} with seq {} and sha256 {}",
                claims.key_file.lic, claims.key_file.seq, claims.key_file.sha256
            ),
        )
    };
    let mut conn = app
        .db
        .conn()
        .map_err(|e| Refusal::new(ProblemCode::Unavailable, e.to_string()))?;
    let found: Option<(String, i64, String)> = key_files::table
        .find(&claims.key_file.sha256)
        .select((key_files::license_id, key_files::seq, key_files::raw))
        .get_result(&mut *conn)
        .optional()
        .map_err(|e| Refusal::new(ProblemCode::InternalError, e.to_string()))?;
    match found {
        Some((lic, seq, raw)) if lic == claims.key_file.lic && seq == claims.key_file.seq => {
            Ok(raw)
        }
        _ => Err(refused()),
    }
}
