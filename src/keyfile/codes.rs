//! The stable problem code of each key file error (DESIGN §5).

use super::KeyFileError;

impl KeyFileError {
    /// `license_expired` and `license_not_yet_valid` for the term; `invalid_key_file` for
    /// everything wrong with the file itself.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Expired { .. } => "license_expired",
            Self::NotYetValid { .. } => "license_not_yet_valid",
            _ => "invalid_key_file",
        }
    }
}
