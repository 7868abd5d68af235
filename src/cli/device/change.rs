//! `device reissue` and `device return`: change the seat of a saved activation. A seat made
//! with a device key is changed with a proof signed by it (DESIGN §5); one made without
//! (`--no-device-key`) with the return token from its 201.

use std::path::{Path, PathBuf};

use seatkeep_device::api::{ReissueBody, ReturnBody, SeatStatus};
use seatkeep_device::proof::{self, ProofAction, ProofClaims};

use super::ClientError;
use super::files::{DeviceState, SavedActivation, load_saved, saved_json, write_private_json};
use super::http::{activations_url_with, build_client, parse_activation, refusal, send_json};

/// A saved activation to change.
#[derive(Debug, Clone)]
pub struct ChangeOptions {
    /// The file `device activate` wrote.
    pub saved: PathBuf,
    /// Server base URL; default: the one saved.
    pub server: Option<String>,
    pub ca: Option<PathBuf>,
}

/// What a reissue or return left.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChangeOutcome {
    pub seat: String,
    pub state: String,
    pub generation: i64,
    pub user_name: Option<String>,
}

/// Changes the user name on the seat; the saved file gets the new device key.
pub async fn reissue(opts: &ChangeOptions, user_name: &str) -> Result<ChangeOutcome, ClientError> {
    let (saved, state) = load_saved(&opts.saved)?;
    let server = server_of(opts, &state)?;
    let (return_token, proof) = authorization(
        &opts.saved,
        &saved,
        &state,
        ProofAction::Reissue,
        Some(user_name),
    )?;
    let body = ReissueBody {
        return_token,
        proof,
        user_name: user_name.to_owned(),
    };
    let url = activations_url_with(&server, &format!("/{}/reissue", saved.seat))?;
    let client = build_client(opts.ca.as_deref())?;
    let (status, answer) = send_json(&client, &url, &body).await?;
    if status != reqwest::StatusCode::OK {
        return Err(refusal(
            status,
            &answer.bytes,
            answer.retry_after,
            url.as_str(),
        ));
    }
    let (renewed, mut value) = parse_activation(&answer.bytes, url.as_str())?;
    if let (Some(token), Some(object)) = (&saved.return_token, value.as_object_mut()) {
        object.insert("return_token".into(), token.clone().into());
    }
    write_private_json(&opts.saved, &saved_json(&value, &state)?)?;
    Ok(ChangeOutcome {
        seat: renewed.seat,
        state: renewed.state,
        generation: renewed.generation,
        user_name: Some(user_name.to_owned()),
    })
}

/// Gives the seat back to the license.
pub async fn return_seat(opts: &ChangeOptions) -> Result<ChangeOutcome, ClientError> {
    let (saved, state) = load_saved(&opts.saved)?;
    let server = server_of(opts, &state)?;
    let (return_token, proof) =
        authorization(&opts.saved, &saved, &state, ProofAction::Return, None)?;
    let url = activations_url_with(&server, &format!("/{}/return", saved.seat))?;
    let client = build_client(opts.ca.as_deref())?;
    let (status, answer) = send_json(
        &client,
        &url,
        &ReturnBody {
            return_token,
            proof,
        },
    )
    .await?;
    if status != reqwest::StatusCode::OK {
        return Err(refusal(
            status,
            &answer.bytes,
            answer.retry_after,
            url.as_str(),
        ));
    }
    let seat: SeatStatus =
        serde_json::from_slice(&answer.bytes).map_err(|e| ClientError::BadResponse {
            url: url.to_string(),
            reason: format!("not a seat status: {e}"),
        })?;
    Ok(ChangeOutcome {
        seat: seat.seat,
        state: seat.state,
        generation: seat.generation,
        user_name: None,
    })
}

fn server_of(opts: &ChangeOptions, state: &DeviceState) -> Result<String, ClientError> {
    opts.server
        .clone()
        .or_else(|| state.server.clone())
        .ok_or_else(|| ClientError::SavedActivation {
            path: opts.saved.clone(),
            reason: "no server saved: pass --server".into(),
        })
}

/// The return token, or a fresh proof signed by the device key, whichever the seat takes.
fn authorization(
    path: &Path,
    saved: &SavedActivation,
    state: &DeviceState,
    action: ProofAction,
    user_name: Option<&str>,
) -> Result<(Option<String>, Option<String>), ClientError> {
    let Some(key) = state.signing_key(path)? else {
        return match &saved.return_token {
            Some(token) => Ok((Some(token.clone()), None)),
            None => Err(ClientError::SavedActivation {
                path: path.to_path_buf(),
                reason: "neither a device key nor a return token: ask an admin to retire the seat"
                    .into(),
            }),
        };
    };
    let device_id = state
        .device_id
        .clone()
        .ok_or_else(|| ClientError::SavedActivation {
            path: path.to_path_buf(),
            reason: "no device_id saved".into(),
        })?;
    let claims = ProofClaims {
        iss: device_id,
        aud: server_id(path, &saved.device_key)?,
        seat: saved.seat.clone(),
        action,
        user_name: user_name.map(str::to_owned),
        jti: seatkeep_device::jws::b64url(&rand::random::<[u8; 16]>()),
        iat: crate::clock::default_source().now(),
    };
    Ok((None, Some(proof::sign(&key, &claims))))
}

/// The server id a device key names as its issuer: the proof's audience.
fn server_id(path: &Path, device_key: &str) -> Result<String, ClientError> {
    let bad = |reason: String| ClientError::SavedActivation {
        path: path.to_path_buf(),
        reason,
    };
    let parsed = seatkeep_device::jws::parse_compact(device_key).map_err(|e| bad(e.to_string()))?;
    let claims: seatkeep_device::DeviceKeyClaims =
        serde_json::from_slice(&parsed.payload).map_err(|e| bad(e.to_string()))?;
    Ok(claims.iss)
}
