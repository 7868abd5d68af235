//! The device client's files: the saved activation (the server's answer, verbatim), the
//! inputs of `device verify`, and size-capped reads.

use std::io::{Read as _, Write as _};
use std::path::Path;

use super::ClientError;

/// Largest local input file (key file, saved activation, CA bundle) read.
const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// An activation answer as saved by [`super::http::activate`]: the device crate's
/// [`seatkeep_device::api::ActivationAnswer`], so the client reads what the server writes.
pub type SavedActivation = seatkeep_device::api::ActivationAnswer;

/// What the client keeps next to the server's answer in the saved file: where it activated,
/// as which device, and the device's own key (the file is mode 0600 for it and the token).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DeviceState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// base64url of the 32-byte Ed25519 seed of the device key; absent with
    /// `--no-device-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_secret_key: Option<String>,
}

impl DeviceState {
    /// The device's signing key, when it has one.
    pub fn signing_key(
        &self,
        path: &Path,
    ) -> Result<Option<ed25519_dalek::SigningKey>, ClientError> {
        use base64::Engine as _;
        let Some(encoded) = &self.device_secret_key else {
            return Ok(None);
        };
        let bad = |reason: &str| ClientError::SavedActivation {
            path: path.to_path_buf(),
            reason: format!("device_secret_key {reason}"),
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| bad("is not base64url"))?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| bad("is not 32 bytes"))?;
        Ok(Some(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }
}

#[cfg(test)]
/// Reads a saved activation (the JSON file [`super::http::activate`] writes) with the
/// client's own state.
pub fn load_saved_activation(path: &Path) -> Result<SavedActivation, ClientError> {
    load_saved(path).map(|(answer, _)| answer)
}

/// Reads a saved activation and the client state kept with it.
pub fn load_saved(path: &Path) -> Result<(SavedActivation, DeviceState), ClientError> {
    let text = read_text(path, "cannot read saved activation")?;
    let answer = parse_saved(&text, path)?;
    let state: DeviceState =
        serde_json::from_str(&text).map_err(|e| ClientError::SavedActivation {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok((answer, state))
}

/// The saved file's JSON: the server's answer with the client state beside it.
pub fn saved_json(
    answer: &serde_json::Value,
    state: &DeviceState,
) -> Result<serde_json::Value, ClientError> {
    let mut value = answer.clone();
    let extra = serde_json::to_value(state).map_err(|e| ClientError::Setup(e.to_string()))?;
    if let (Some(object), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
        object.extend(extra);
    }
    Ok(value)
}

/// Reads `device verify`'s inputs: `device_key_path` holds either a saved activation (JSON,
/// which carries the key file too) or a bare compact device key, which needs
/// `key_file_path`. An explicit `key_file_path` wins over the key file in a saved activation
/// (e.g. a renewal). Returns `(key file text, device key)`.
pub fn read_device_key_input(
    device_key_path: &Path,
    key_file_path: Option<&Path>,
) -> Result<(String, String), ClientError> {
    let text = read_text(device_key_path, "cannot read device key")?;
    let content = text.trim_start_matches('\u{feff}').trim();
    if content.starts_with('{') {
        let saved = parse_saved(content, device_key_path)?;
        let key_file = match key_file_path {
            Some(path) => read_text(path, "cannot read key file")?,
            None => saved.key_file,
        };
        return Ok((key_file, saved.device_key));
    }
    let input_error = |reason: &str| ClientError::DeviceKeyInput {
        path: device_key_path.to_path_buf(),
        reason: reason.to_owned(),
    };
    if content.is_empty() || content.contains(char::is_whitespace) {
        return Err(input_error(
            "neither a saved activation (JSON) nor a single compact device key",
        ));
    }
    let key_file_path = key_file_path.ok_or_else(|| {
        input_error("holds a bare device key; pass --key-file with the license's key file")
    })?;
    let key_file = read_text(key_file_path, "cannot read key file")?;
    Ok((key_file, content.to_owned()))
}

fn parse_saved(text: &str, path: &Path) -> Result<SavedActivation, ClientError> {
    let saved: SavedActivation =
        serde_json::from_str(text).map_err(|e| ClientError::SavedActivation {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if saved.device_key.trim().is_empty() || saved.key_file.trim().is_empty() {
        return Err(ClientError::SavedActivation {
            path: path.to_path_buf(),
            reason: "device_key or key_file is empty".into(),
        });
    }
    Ok(saved)
}

/// Writes pretty JSON readable by the owner only, through a temporary file and a rename.
pub(super) fn write_private_json(
    path: &Path,
    value: &serde_json::Value,
) -> Result<(), ClientError> {
    let io_error = |action, source| ClientError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| io_error("cannot write", std::io::Error::other(e)))?;
    text.push('\n');
    write_private(path, text.as_bytes()).map_err(|e| io_error("cannot write", e))
}

/// Replaces `path` atomically with `contents`, mode 0600: a temporary file in the same
/// folder, flushed to disk, renamed over it (a crash leaves the old file or the new one).
pub(super) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = path.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    write_owner_only(&tmp, contents)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Creates or truncates `path` with mode 0600 (on Unix) and writes `contents`.
fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // `mode` only applies to new files; a leftover file keeps its bits otherwise.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

/// Reads at most [`MAX_INPUT_BYTES`] of a local file.
pub(super) fn read_bytes(path: &Path, action: &'static str) -> Result<Vec<u8>, ClientError> {
    let io_error = |source| ClientError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_INPUT_BYTES} bytes"),
        )));
    }
    Ok(bytes)
}

/// Reads a local UTF-8 text file of at most [`MAX_INPUT_BYTES`].
pub(super) fn read_text(path: &Path, action: &'static str) -> Result<String, ClientError> {
    let bytes = read_bytes(path, action)?;
    String::from_utf8(bytes).map_err(|_| ClientError::Io {
        action,
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}
