//! The stable problem code of each key file error (DESIGN §5).

use seatkeep_device::ProblemCode;

use super::KeyFileError;

impl KeyFileError {
    /// `license_expired` and `license_not_yet_valid` for the term; `invalid_key_file` for
    /// everything wrong with the file itself.
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::Expired { .. } => ProblemCode::LicenseExpired,
            Self::NotYetValid { .. } => ProblemCode::LicenseNotYetValid,
            _ => ProblemCode::InvalidKeyFile,
        }
    }
}
