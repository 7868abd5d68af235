//! The key file's claims (DESIGN §3) and their rules live in the device crate, so the server
//! and devices read them the same way; the seat rules' view of them is here.

pub use seatkeep_device::keyfile::claims::*;

/// Seats that may be in use at once under a key file's claims.
pub trait Capacity {
    /// `seats` plus the overage allowance (`single_device` licenses hold exactly one device).
    fn capacity(&self) -> i64;
}

impl Capacity for KeyFileClaims {
    fn capacity(&self) -> i64 {
        match self.model {
            LicenseModel::SingleDevice => 1,
            _ => self.seats + self.seats * self.policy.overage_percent / 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_counts_overage_and_single_device() {
        let mut claims: KeyFileClaims = serde_json::from_value(serde_json::json!({
            "iss": "p", "jti": "j", "lic": "L", "seq": 1, "iat": 0,
            "customer": {"id": "c", "name": "C"}, "product": {"id": "p", "name": "P"},
            "model": "node_locked", "seats": 10, "admins": ["a@b.example"],
            "server": {"id": "0".repeat(64), "key": ""},
            "policy": {"overage_percent": 25},
        }))
        .unwrap();
        assert_eq!(claims.capacity(), 12);
        claims.model = LicenseModel::SingleDevice;
        assert_eq!(claims.capacity(), 1);
    }
}
