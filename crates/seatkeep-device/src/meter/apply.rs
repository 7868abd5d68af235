//! Applying what the server sends (DESIGN §10.5): packets, in the order of the rules, and
//! time tokens.

use crate::meter::engine::{Clocks, Meter, MeterError};
use crate::meter::store::StateStore;
use crate::meter::terms::MAX_PACKET;
use crate::meter::wire::{
    MAX_PACKET_BYTES, PACKET_TYP, PacketClaims, PacketsAnswer, TIME_TYP, TimeClaims,
};
use crate::verify::verify_server_signed;

/// Why a packet was not applied; [`code`](Self::code) is the stable name of §10.5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Wrong signer, `typ`, `alg`, or claims that do not fit this seat.
    InvalidPacket(String),
    /// `sub` is another device.
    WrongDevice { sub: String },
    /// `cnf.jkt` is another key.
    WrongKey,
    /// A packet is missing before this one.
    OutOfOrder { expected: i64, found: i64 },
    /// Its request id is not one this device is waiting for.
    Unsolicited,
    /// It expired before it was applied: its units lapsed (it still counts as applied, so
    /// the packets after it apply in order).
    Expired { exp: i64 },
    /// The usage state is locked as tampered: nothing is applied until it is started over.
    StateTampered,
}

impl ApplyError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPacket(_) => "invalid_packet",
            Self::WrongDevice { .. } => "packet_wrong_device",
            Self::WrongKey => "packet_wrong_key",
            Self::OutOfOrder { .. } => "packet_out_of_order",
            Self::Unsolicited => "packet_unsolicited",
            Self::Expired { .. } => "packet_expired",
            Self::StateTampered => "state_tampered",
        }
    }
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidPacket(why) => write!(f, "invalid packet: {why}"),
            Self::WrongDevice { sub } => write!(f, "the packet is for device '{sub}'"),
            Self::WrongKey => f.write_str("the packet is bound to another device key"),
            Self::OutOfOrder { expected, found } => {
                write!(f, "packet {found} is out of order: {expected} comes first")
            }
            Self::Unsolicited => f.write_str("the packet answers no request of this device"),
            Self::Expired { exp } => write!(f, "the packet expired at unix {exp}"),
            Self::StateTampered => f.write_str("the usage state is locked as tampered"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// What applying a packet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Added as a bucket of `ticks`.
    New { seq: i64, ticks: i64 },
    /// Applied before: nothing changed.
    Already { seq: i64 },
}

/// What applying an answer did, packet by packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerReport {
    pub packets: Vec<Result<Applied, ApplyError>>,
    /// Whether the time token was accepted.
    pub time_synced: bool,
}

impl<S: StateStore> Meter<S> {
    /// Applies a packet: the checks in the order of §10.5, then the bucket, saved.
    pub fn apply_packet(
        &mut self,
        token: &str,
        now: Clocks,
    ) -> Result<Result<Applied, ApplyError>, MeterError<S::Error>> {
        let claims = match self.check_packet(token) {
            Ok(claims) => claims,
            Err(refused) => return Ok(Err(refused)),
        };
        if claims.seq <= self.state.last_seq {
            return Ok(Ok(Applied::Already { seq: claims.seq }));
        }
        if claims.seq > self.state.last_seq + 1 {
            return Ok(Err(ApplyError::OutOfOrder {
                expected: self.state.last_seq + 1,
                found: claims.seq,
            }));
        }
        if !self.state.pending.iter().any(|p| p.jti == claims.req) {
            return Ok(Err(ApplyError::Unsolicited));
        }
        let ticks = claims.amt * self.state.unit.ticks_per_unit();
        let expired = claims.exp <= self.trusted_now(now);
        self.state.last_seq = claims.seq;
        self.state.pending.retain(|p| p.jti != claims.req);
        if expired {
            self.state.applied += ticks;
            self.state.lapsed += ticks;
        } else {
            self.state.add_bucket(claims.seq, ticks, claims.exp);
            self.state.high_water = self.state.high_water.max(claims.iat);
        }
        self.save()?;
        Ok(if expired {
            Err(ApplyError::Expired { exp: claims.exp })
        } else {
            Ok(Applied::New {
                seq: claims.seq,
                ticks,
            })
        })
    }

    /// Signature and bindings of a packet, before the sequence rules.
    fn check_packet(&self, token: &str) -> Result<PacketClaims, ApplyError> {
        if self.tampered {
            return Err(ApplyError::StateTampered);
        }
        let payload = verify_server_signed(
            &self.server,
            &self.server_id,
            token,
            PACKET_TYP,
            MAX_PACKET_BYTES,
        )
        .map_err(|e| ApplyError::InvalidPacket(e.to_string()))?;
        let claims: PacketClaims = serde_json::from_slice(&payload)
            .map_err(|e| ApplyError::InvalidPacket(format!("claims: {e}")))?;
        // The device and key first, as DESIGN §10.5 orders them: a packet made for another
        // device also names another seat, and must say `packet_wrong_device`.
        if claims.sub != self.state.device {
            return Err(ApplyError::WrongDevice { sub: claims.sub });
        }
        if claims.cnf.jkt != self.jkt {
            return Err(ApplyError::WrongKey);
        }
        let fits = [
            ("iss", claims.iss == self.server_id),
            ("lic", claims.lic == self.state.lic),
            ("seat", claims.seat == self.state.seat),
            ("product", claims.product == self.product),
            ("unit", claims.unit == self.state.unit),
            ("amt", (1..=MAX_PACKET).contains(&claims.amt)),
        ];
        if let Some((claim, _)) = fits.iter().find(|(_, ok)| !ok) {
            return Err(ApplyError::InvalidPacket(format!(
                "{claim} does not fit this seat"
            )));
        }
        Ok(claims)
    }

    /// Applies a time token. Any valid one may raise the high-water mark to the server's
    /// time; it may lower it (repairing a clock that had jumped forward) only when its nonce
    /// is that of a request this run sent under a minute ago. Returns whether it was used.
    pub fn apply_time(&mut self, token: &str, now: Clocks) -> Result<bool, MeterError<S::Error>> {
        let Ok(payload) = verify_server_signed(
            &self.server,
            &self.server_id,
            token,
            TIME_TYP,
            MAX_PACKET_BYTES,
        ) else {
            return Ok(false);
        };
        let Ok(claims) = serde_json::from_slice::<TimeClaims>(&payload) else {
            return Ok(false);
        };
        if claims.iss != self.server_id || claims.sub != self.state.device || self.tampered {
            return Ok(false);
        }
        let used = claims.iat > self.state.high_water || self.sent_recently(&claims.nonce, now);
        if used {
            self.state.high_water = claims.iat;
            self.save()?;
        }
        Ok(used)
    }

    /// Applies a whole answer: the time token first (so a repaired clock judges expiry),
    /// then each packet in order; the request it answers stops being pending.
    pub fn apply_answer(
        &mut self,
        answer: &PacketsAnswer,
        now: Clocks,
    ) -> Result<AnswerReport, MeterError<S::Error>> {
        let time_synced = self.apply_time(&answer.time, now)?;
        let mut packets = Vec::with_capacity(answer.packets.len());
        for packet in &answer.packets {
            packets.push(self.apply_packet(packet, now)?);
        }
        if let Some(nonce) = self.time_nonce(&answer.time) {
            let before = self.state.pending.len();
            self.state.pending.retain(|p| p.nonce != nonce);
            if self.state.pending.len() != before {
                self.save()?;
            }
        }
        Ok(AnswerReport {
            packets,
            time_synced,
        })
    }

    /// The nonce of a time token that verifies, i.e. of the request the answer is for.
    fn time_nonce(&self, token: &str) -> Option<String> {
        let payload = verify_server_signed(
            &self.server,
            &self.server_id,
            token,
            TIME_TYP,
            MAX_PACKET_BYTES,
        )
        .ok()?;
        serde_json::from_slice::<TimeClaims>(&payload)
            .ok()
            .map(|c| c.nonce)
    }
}
