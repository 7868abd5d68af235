//! The device side of Seatkeep, for products to embed: the formats a device reads, the JSON
//! of the device API, and the offline verifier of the chain
//! provider key → key file → device key (DESIGN §2, §3, §5, §10.5).
//!
//! Pure Rust and free of I/O: the caller reads files, speaks HTTP and passes the clock.
//! Verification is public-key work (Ed25519 with `ed25519-dalek`, RSA with `rsa`); the only
//! private key handled is the device's own Ed25519 key, for its proofs ([`device_jwk`],
//! [`proof`]), signed in constant time by `ed25519-dalek`. The Seatkeep server parses with
//! the same types, so both sides read every format the same way.
//!
//! * [`jws`]: compact JWS framing, the pinned algorithms ([`JwsAlgorithm`]);
//! * [`armor`]: the `-----BEGIN SEATKEEP …-----` envelope, one [`armor::Label`] per file kind;
//! * [`keyfile`]: key file claims, their rules, the term check;
//! * [`device_key`]: device key claims;
//! * [`api`]: request and answer bodies of `/api/v1`;
//! * [`problem`]: the stable error codes ([`ProblemCode`]) and problem bodies;
//! * [`device_jwk`], [`proof`]: the device's own key and the proofs it signs for reissue
//!   and return;
//! * [`keys`], [`verify`]: public keys and the offline verifier;
//! * [`meter`]: metered usage — the packet formats and the device's meter (balance, clock,
//!   ticks, enforcement, sealed state);
//! * [`offline`]: request and response files for air-gapped devices.
//!
//! # Verifying a device key
//!
//! A product pins the provider's public key at build time. After activation it keeps the
//! answer's `key_file` and `device_key`; at every start it verifies them offline:
//!
//! ```
//! use seatkeep_device::{ProviderKey, VerifyError, verify_device_key};
//!
//! // Pinned in the product (a `PUBLIC KEY` PEM from the provider).
//! const PROVIDER_KEY: &str = include_str!("../testdata/doc/provider.pub.pem");
//! // Kept from the activation answer.
//! let key_file = include_str!("../testdata/doc/license.seatkey");
//! let device_key = include_str!("../testdata/doc/device-key.jwt");
//! // The device's clock, unix seconds.
//! let now = 1_780_000_000;
//!
//! let provider = ProviderKey::from_pem(PROVIDER_KEY.as_bytes())?;
//! let granted = verify_device_key(
//!     &provider,
//!     key_file,
//!     device_key,
//!     "scanner-0042",
//!     Some("Ada Lovelace"),
//!     now,
//! )?;
//! assert_eq!(granted.product.id, "wordsmith");
//! assert_eq!(granted.seat, "st_doc");
//! assert_eq!(granted.expires_at, None); // perpetual license
//!
//! // The same files copied to another device do not verify there.
//! let copied = verify_device_key(&provider, key_file, device_key, "scanner-0043", None, now);
//! assert!(matches!(copied, Err(VerifyError::WrongDevice { .. })));
//! # Ok::<(), VerifyError>(())
//! ```

#![forbid(unsafe_code)]

pub mod api;
pub mod armor;
pub mod device_jwk;
pub mod device_key;
pub mod jws;
pub mod keyfile;
pub mod keys;
pub mod meter;
pub mod offline;
pub mod problem;
pub mod proof;
mod time;
pub mod verify;

pub use device_jwk::DeviceJwk;
pub use device_key::{DEVICE_KEY_TYP, DeviceKeyClaims, DeviceKeyProduct};
pub use jws::JwsAlgorithm;
pub use keyfile::{KEY_FILE_TYP, KeyFileClaims, LicenseModel};
pub use problem::{Problem, ProblemCode};
pub use verify::{ProviderKey, VerifiedDevice, VerifyError, verify_device_key};

/// Lowercase hex of `sha256(bytes)`: fingerprints, server ids, key file digests.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let digest = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}
