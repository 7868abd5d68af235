//! The key file's `meter` claim (DESIGN §10.1): what a unit buys, how many were sold, and
//! the size and lifetime of the packets they are handed out in.

use serde::{Deserialize, Serialize};

/// Default units per packet, and the range a request may ask for.
pub const DEFAULT_PACKET: PacketSize = PacketSize {
    default: 24,
    min: 1,
    max: 168,
};
/// A packet must be applied before this, and its units lapse then: 30 days.
pub const DEFAULT_PACKET_TTL_SECS: i64 = 2_592_000;
/// Largest pool a key file may sell, so sums never overflow.
pub const MAX_UNITS: i64 = 1_000_000_000_000;
/// Largest packet: about 11 years of `device_hour`.
pub const MAX_PACKET: i64 = 100_000;

/// What one unit buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// An hour of running, charged a minute at a time in advance (monotonic clock).
    DeviceHour,
    /// A UTC day with any use, charged at the first use of the day.
    DeviceDay,
}

impl Unit {
    /// The claim's string value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeviceHour => "device_hour",
            Self::DeviceDay => "device_day",
        }
    }

    /// Charges a unit holds on the device: `device_hour` is spent by the minute.
    pub fn ticks_per_unit(self) -> i64 {
        match self {
            Self::DeviceHour => 60,
            Self::DeviceDay => 1,
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Units per packet: the default, and what a request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketSize {
    #[serde(default = "default_packet_default")]
    pub default: i64,
    #[serde(default = "default_packet_min")]
    pub min: i64,
    #[serde(default = "default_packet_max")]
    pub max: i64,
}

impl Default for PacketSize {
    fn default() -> Self {
        DEFAULT_PACKET
    }
}

fn default_packet_default() -> i64 {
    DEFAULT_PACKET.default
}
fn default_packet_min() -> i64 {
    DEFAULT_PACKET.min
}
fn default_packet_max() -> i64 {
    DEFAULT_PACKET.max
}
fn default_packet_ttl() -> i64 {
    DEFAULT_PACKET_TTL_SECS
}

/// The `meter` claim of a `metered` key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterTerms {
    pub unit: Unit,
    /// Lifetime total sold; a renewal carries the new total.
    pub units: i64,
    #[serde(default)]
    pub packet: PacketSize,
    /// Seconds a packet stays valid after it is issued.
    #[serde(default = "default_packet_ttl")]
    pub packet_ttl: i64,
    /// How far beyond `units` may be issued (reported as overage), in percent.
    #[serde(default)]
    pub overdraft_percent: i64,
}

impl MeterTerms {
    /// `units × (1 + overdraft_percent / 100)`, rounded down: what may be issued in all.
    pub fn cap(&self) -> i64 {
        self.units + self.units * self.overdraft_percent / 100
    }

    /// The rules the claim must satisfy: `(claim, reason)` for the first one broken.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=MAX_UNITS).contains(&self.units) {
            return Err(("meter.units", format!("must be between 1 and {MAX_UNITS}")));
        }
        let PacketSize { default, min, max } = self.packet;
        if !(1..=MAX_PACKET).contains(&min) || !(1..=MAX_PACKET).contains(&max) {
            return Err((
                "meter.packet",
                format!("min and max must be between 1 and {MAX_PACKET}"),
            ));
        }
        if !(min <= default && default <= max) {
            return Err((
                "meter.packet",
                format!("must have min ≤ default ≤ max (found {min}, {default}, {max})"),
            ));
        }
        if !(3_600..=10 * 366 * 86_400).contains(&self.packet_ttl) {
            return Err((
                "meter.packet_ttl",
                "must be between 3600 seconds (an hour) and 10 years".into(),
            ));
        }
        if !(0..=100).contains(&self.overdraft_percent) {
            return Err((
                "meter.overdraft_percent",
                "must be between 0 and 100".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(json: &str) -> Result<MeterTerms, String> {
        let terms: MeterTerms = serde_json::from_str(json).map_err(|e| e.to_string())?;
        terms
            .validate()
            .map_err(|(claim, why)| format!("{claim} {why}"))?;
        Ok(terms)
    }

    #[test]
    fn defaults_and_cap() {
        let t = terms(r#"{"unit":"device_hour","units":1000}"#).unwrap();
        assert_eq!(t.packet, DEFAULT_PACKET);
        assert_eq!(t.packet_ttl, DEFAULT_PACKET_TTL_SECS);
        assert_eq!(t.cap(), 1000);
        let t = terms(r#"{"unit":"device_day","units":1000,"overdraft_percent":15}"#).unwrap();
        assert_eq!(t.cap(), 1150);
    }

    #[test]
    fn bad_terms_name_the_claim() {
        for (json, wanted) in [
            (r#"{"unit":"device_week","units":10}"#, "unknown variant"),
            (r#"{"units":10}"#, "missing field `unit`"),
            (r#"{"unit":"device_day","units":"10"}"#, "invalid type"),
            (r#"{"unit":"device_day","units":0}"#, "meter.units"),
            (
                r#"{"unit":"device_day","units":9,"packet":{"default":200}}"#,
                "meter.packet must have min",
            ),
            (
                r#"{"unit":"device_day","units":9,"packet":{"min":0}}"#,
                "meter.packet min and max",
            ),
            (
                r#"{"unit":"device_day","units":9,"packet_ttl":60}"#,
                "meter.packet_ttl",
            ),
            (
                r#"{"unit":"device_day","units":9,"overdraft_percent":101}"#,
                "meter.overdraft_percent",
            ),
        ] {
            let err = terms(json).unwrap_err();
            assert!(err.contains(wanted), "{json}: {err}");
        }
    }
}
