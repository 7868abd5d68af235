//! The key file's claims (DESIGN §3) and the rules they must satisfy on their own.
//!
//! Types are strict: serde refuses `"seats":"5"` or `"exp":"1"`, and every required claim
//! must be present. Unknown claims are ignored so providers can add fields.

use serde::{Deserialize, Serialize};

use super::KeyFileError;
use crate::keys::spki_fingerprint;

/// Longest id (`lic`, `jti`, `iss`, customer and product ids) we accept.
const MAX_ID_LEN: usize = 128;
/// Longest display name we accept.
const MAX_NAME_LEN: usize = 256;

/// The claims of a key file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyFileClaims {
    /// Provider id; must match the trusted key's provider.
    pub iss: String,
    /// Id of this file.
    pub jti: String,
    /// License id, stable across renewals.
    pub lic: String,
    /// Version of the license; renewals and top-ups have a higher `seq`.
    pub seq: i64,
    /// Issue time, unix seconds.
    pub iat: i64,
    /// Start of the term, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// End of the term, unix seconds; none means perpetual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// The buying company.
    pub customer: Customer,
    /// The licensed product.
    pub product: Product,
    /// How seats are held.
    pub model: LicenseModel,
    /// Seats bought.
    pub seats: i64,
    /// Purchasing admins to warn.
    pub admins: Vec<String>,
    /// The Seatkeep server this file is for.
    pub server: ServerClaim,
    /// Limits on reissues, returns and overage.
    #[serde(default)]
    pub policy: Policy,
    /// Where the provider takes federation events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<Federation>,
    /// Sales channel ids, passed through to federation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// `metered` only: the usage pool sold (DESIGN §10.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<crate::meter::MeterTerms>,
}

/// The buying company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// Customer id at the provider.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The licensed product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Product id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Edition number.
    #[serde(default)]
    pub edition: i64,
}

/// How seats are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseModel {
    /// N devices; a seat is held until retired or returned.
    NodeLocked,
    /// The first device to activate holds the license.
    SingleDevice,
    /// Not served yet by this version.
    Floating,
    /// Not served yet by this version.
    Metered,
}

impl LicenseModel {
    pub const ALL: [Self; 4] = [
        Self::NodeLocked,
        Self::SingleDevice,
        Self::Floating,
        Self::Metered,
    ];

    /// The claim's string value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeLocked => "node_locked",
            Self::SingleDevice => "single_device",
            Self::Floating => "floating",
            Self::Metered => "metered",
        }
    }
}

impl std::fmt::Display for LicenseModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LicenseModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|model| model.as_str() == s)
            .ok_or_else(|| {
                format!("unknown license model '{s}' (use node_locked, single_device, floating or metered)")
            })
    }
}

/// The server binding claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerClaim {
    /// `sha256(SPKI DER)` of the server key, lowercase hex.
    pub id: String,
    /// Base64 (standard alphabet) SPKI DER of the server's public key.
    pub key: String,
}

impl ServerClaim {
    /// The claim naming the server whose public key is `spki_der` (SubjectPublicKeyInfo DER).
    pub fn for_key(spki_der: &[u8]) -> Self {
        use base64::Engine as _;
        Self {
            id: spki_fingerprint(spki_der),
            key: base64::engine::general_purpose::STANDARD.encode(spki_der),
        }
    }
}

/// Limits set by the provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Name changes per seat per 365 days.
    #[serde(default = "default_limit")]
    pub reissue_limit: i64,
    /// Returns per seat per 365 days.
    #[serde(default = "default_limit")]
    pub return_limit: i64,
    /// Extra seats allowed above `seats`, in percent, flagged as overage.
    #[serde(default)]
    pub overage_percent: i64,
}

fn default_limit() -> i64 {
    3
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            reissue_limit: default_limit(),
            return_limit: default_limit(),
            overage_percent: 0,
        }
    }
}

/// Federation target (DESIGN §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Federation {
    /// Where the provider takes events: `https`, or `http` to a loopback host only.
    pub url: String,
    /// Seconds events may stay unacknowledged before new activations stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<i64>,
    /// Events carry raw device ids and user names (default: only their hash).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_data: bool,
}

impl Federation {
    /// Why `url` is not acceptable: anything but `https`, except `http` to a loopback host
    /// (a local collector or proxy), which never leaves the machine in clear.
    pub fn url_problem(&self) -> Option<&'static str> {
        if let Some(rest) = self.url.strip_prefix("https://") {
            return host_of(rest).is_empty().then_some("has no host");
        }
        let Some(rest) = self.url.strip_prefix("http://") else {
            return Some("must be an https URL");
        };
        let host = host_of(rest);
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        (!loopback).then_some("plain http is allowed only to a loopback host; use https")
    }
}

/// The host of a URL after its `scheme://`: up to the path, without user info and port.
fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if host_port.starts_with('[') {
        return host_port.split_inclusive(']').next().unwrap_or("");
    }
    host_port.split(':').next().unwrap_or("")
}

/// Sales channel ids.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Channel {
    /// Distributor id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributor: Option<String>,
    /// Affiliate id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affiliate: Option<String>,
    /// Tool id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Partner id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
}

fn invalid(claim: &'static str, reason: impl Into<String>) -> KeyFileError {
    KeyFileError::InvalidClaim {
        claim,
        reason: reason.into(),
    }
}

fn check_id(claim: &'static str, value: &str) -> Result<(), KeyFileError> {
    if value.is_empty() || value.chars().count() > MAX_ID_LEN {
        return Err(invalid(
            claim,
            format!("must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(claim, "must not contain control characters"));
    }
    Ok(())
}

fn check_name(claim: &'static str, value: &str) -> Result<(), KeyFileError> {
    if value.chars().count() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(invalid(
            claim,
            format!("must be at most {MAX_NAME_LEN} characters without control characters"),
        ));
    }
    Ok(())
}

fn looks_like_email(value: &str) -> bool {
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
                && !domain.contains('@')
                && value.len() <= 254
        }
        None => false,
    }
}

impl KeyFileClaims {
    /// Parses claims from the JWS payload with strict JSON types.
    pub fn from_json(payload: &[u8]) -> Result<Self, KeyFileError> {
        let claims: Self =
            serde_json::from_slice(payload).map_err(|e| KeyFileError::Claims(e.to_string()))?;
        claims.validate()?;
        Ok(claims)
    }

    /// Checks the rules a key file's claims must satisfy on their own (not the term, not the
    /// server binding: those depend on where and when the file is used).
    pub fn validate(&self) -> Result<(), KeyFileError> {
        check_id("iss", &self.iss)?;
        check_id("jti", &self.jti)?;
        check_id("lic", &self.lic)?;
        check_id("customer.id", &self.customer.id)?;
        check_id("product.id", &self.product.id)?;
        check_name("customer.name", &self.customer.name)?;
        check_name("product.name", &self.product.name)?;
        if self.seq < 1 {
            return Err(invalid("seq", "must be an integer ≥ 1"));
        }
        if self.seats < 1 {
            return Err(invalid("seats", "must be an integer ≥ 1"));
        }
        if self.seats > 10_000_000 {
            return Err(invalid("seats", "must be at most 10000000"));
        }
        if self.product.edition < 0 {
            return Err(invalid("product.edition", "must be ≥ 0"));
        }
        if let (Some(nbf), Some(exp)) = (self.nbf, self.exp)
            && exp <= nbf
        {
            return Err(invalid("exp", "must be later than nbf"));
        }
        match (&self.meter, self.model) {
            (None, LicenseModel::Metered) => {
                return Err(invalid("meter", "is required for a metered license"));
            }
            (Some(_), model) if model != LicenseModel::Metered => {
                return Err(invalid("meter", "is only for metered licenses"));
            }
            (Some(meter), _) => meter
                .validate()
                .map_err(|(claim, why)| invalid(claim, why))?,
            (None, _) => {}
        }
        if self.model == LicenseModel::Floating {
            return Err(invalid(
                "model",
                format!(
                    "'{}' licenses are not supported by this Seatkeep version",
                    self.model.as_str()
                ),
            ));
        }
        if self.admins.is_empty() {
            return Err(invalid("admins", "must name at least one email address"));
        }
        if let Some(bad) = self.admins.iter().find(|a| !looks_like_email(a)) {
            return Err(invalid(
                "admins",
                format!("'{bad}' is not an email address"),
            ));
        }
        for (claim, value) in [
            ("policy.reissue_limit", self.policy.reissue_limit),
            ("policy.return_limit", self.policy.return_limit),
        ] {
            if !(0..=1000).contains(&value) {
                return Err(invalid(claim, "must be between 0 and 1000"));
            }
        }
        if !(0..=100).contains(&self.policy.overage_percent) {
            return Err(invalid(
                "policy.overage_percent",
                "must be between 0 and 100",
            ));
        }
        if self.server.id.len() != 64
            || !self
                .server
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("server.id", "must be 64 lowercase hex characters"));
        }
        if let Some(federation) = &self.federation {
            if let Some(problem) = federation.url_problem() {
                return Err(invalid("federation.url", problem));
            }
            if federation.grace.is_some_and(|g| g < 1) {
                return Err(invalid("federation.grace", "must be at least 1 second"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn federation_urls_are_https_or_loopback_http() {
        let problem = |url: &str| {
            Federation {
                url: url.into(),
                grace: None,
                user_data: false,
            }
            .url_problem()
        };
        for ok in [
            "https://provider.example/f",
            "http://127.0.0.1:8080/f",
            "http://localhost/f",
            "http://[::1]:9/f",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        for bad in [
            "http://provider.example/f",
            "http://127.0.0.1.evil.example/f",
            "http://user@10.0.0.1/f",
            "ftp://provider.example/f",
            "https:///f",
        ] {
            assert!(problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn model_names_round_trip() {
        for model in LicenseModel::ALL {
            assert_eq!(model.as_str().parse::<LicenseModel>(), Ok(model));
            let json = serde_json::to_string(&model).unwrap();
            assert_eq!(json, format!("\"{model}\""));
        }
        assert!("nodelocked".parse::<LicenseModel>().is_err());
    }

    #[test]
    fn emails() {
        assert!(looks_like_email("a@b.example"));
        assert!(!looks_like_email("a@b"));
        assert!(!looks_like_email("@b.example"));
        assert!(!looks_like_email("a b@c.example"));
    }
}
