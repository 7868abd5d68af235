//! `POST /api/v1/activations/{seat}/packets` (DESIGN §10.3), in the order the contract
//! gives: verify with the seat's registered key, the license is metered, a known request id
//! is answered again, the reported state is possible, at most 2 packets stay unapplied, the
//! amount is in range, and then one transaction issues the packet; it is signed after the
//! commit.

use diesel::prelude::*;
use seatkeep_device::meter::MeterTerms;
use seatkeep_device::meter::wire::{
    self, MAX_UNAPPLIED_PACKETS, PacketRequestClaims, PacketsAnswer, PoolFigures, RequestError,
    RequestExpected,
};
use sha2::{Digest, Sha256};

use super::issue::{self, Asked, Issue, Issued, RequestRow, TxnError};
use super::{MeterError, pool, reconcile};
use crate::app::App;
use crate::db::models::{License, Seat};
use crate::db::schema::{licenses, packet_requests, seats};
use crate::db::{DbConn, DbError, race};
use crate::seats::{SeatError, rules};

/// How often a request is tried again after losing a race to one for the same seat.
const RACE_RETRIES: usize = 8;

/// The answer, and whether it issued a new packet (201) or not (200).
#[derive(Debug, Clone)]
pub struct PacketsReply {
    pub created: bool,
    pub answer: PacketsAnswer,
}

/// Answers a packet request `body` (a compact JWS) for `seat_id`. Blocking: call from a
/// worker thread.
pub fn request_packets(app: &App, seat_id: &str, body: &str) -> Result<PacketsReply, MeterError> {
    request_packets_as(app, seat_id, body, "device")
}

/// [`request_packets`] with the journal's actor named: `device` over HTTP, `cli` or
/// `admin:NAME` for a request carried in an offline file (DESIGN §11).
pub fn request_packets_as(
    app: &App,
    seat_id: &str,
    body: &str,
    actor: &str,
) -> Result<PacketsReply, MeterError> {
    rules::validate_seat_id(seat_id)?;
    let body = body.trim();
    let body_sha256 = hex::encode(Sha256::digest(body.as_bytes()));
    race::settle(&format!("seat {seat_id}"), RACE_RETRIES, || {
        attempt(app, seat_id, body, &body_sha256, actor)
    })
}

/// One verified request and what it is for.
struct Ctx<'a> {
    app: &'a App,
    seat: &'a Seat,
    license: &'a License,
    terms: &'a MeterTerms,
    claims: &'a PacketRequestClaims,
    body_sha256: &'a str,
    /// Who the journal names for what this request changes.
    actor: &'a str,
}

impl Ctx<'_> {
    fn pool(&self, issued: i64) -> PoolFigures {
        PoolFigures {
            units: self.terms.units,
            issued,
        }
    }

    /// The answer with these packets and a fresh time token.
    fn reply(
        &self,
        created: bool,
        packets: Vec<String>,
        issued: i64,
    ) -> Result<PacketsReply, TxnError> {
        let time = issue::time_token(self.app, &self.seat.device_id, &self.claims.nonce)?;
        Ok(PacketsReply {
            created,
            answer: PacketsAnswer {
                packets,
                time,
                pool: self.pool(issued),
            },
        })
    }
}

fn attempt(
    app: &App,
    seat_id: &str,
    body: &str,
    body_sha256: &str,
    actor: &str,
) -> Result<PacketsReply, TxnError> {
    let (seat, license) = {
        let mut conn = app.db.conn()?;
        read(&mut conn, seat_id)?
    };
    let claims = verify(app, &seat, &license, body)?;
    let Some(terms) = super::terms_of(&license)? else {
        return Err(MeterError::MeterNotEnabled(license.id.clone()).into());
    };
    let ctx = Ctx {
        app,
        seat: &seat,
        license: &license,
        terms: &terms,
        claims: &claims,
        body_sha256,
        actor,
    };
    if let Some(known) = known_request(app, &seat, &claims)? {
        // A repeat: the same packets again, charged once (DESIGN §10.3).
        if known.body_sha256 != body_sha256 {
            return Err(MeterError::RequestIdReused(claims.jti.clone()).into());
        }
        let packets = issue::tokens(app, &seat, &known.seqs()?)?;
        return ctx.reply(false, packets, current_issued(app, &license.id)?);
    }
    let now = app.clock.now();
    rules::check_usable(&license, now).map_err(MeterError::from)?;
    rules::require_active(&seat).map_err(MeterError::from)?;
    check_state(app, &seat, &claims, now, actor)?;
    // Unapplied packets go back instead of new ones: a device that keeps asking without
    // applying strands at most this many.
    let unapplied: Vec<i64> = (claims.state.last_seq + 1..=seat.packet_seq).collect();
    let capped = unapplied.len() as i64 >= MAX_UNAPPLIED_PACKETS;
    if !capped {
        check_amount(&terms, claims.amt)?;
    }
    app.clock.check(now).map_err(MeterError::from)?;
    if capped || claims.amt == 0 {
        let seqs = if claims.amt > 0 {
            unapplied
        } else {
            Vec::new()
        };
        return answer_unissued(&ctx, seqs, now);
    }
    crate::seats::check_federation_grace(app, &license, now).map_err(MeterError::from)?;
    issue_new(&ctx, now)
}

/// Records a request that gets no new packet (its report, and which packets answered it),
/// then answers with those packets.
fn answer_unissued(ctx: &Ctx<'_>, seqs: Vec<i64>, now: i64) -> Result<PacketsReply, TxnError> {
    let (seat, claims, digest) = (
        ctx.seat.clone(),
        ctx.claims.clone(),
        ctx.body_sha256.to_owned(),
    );
    let answered = seqs.clone();
    ctx.app
        .db
        .write(&ctx.seat.license_id.clone(), move |conn| {
            let asked = Asked {
                seat: &seat,
                claims: &claims,
                body_sha256: &digest,
                now,
            };
            issue::answer_without_issue(conn, &asked, &answered)
        })?;
    let packets = issue::tokens(ctx.app, ctx.seat, &seqs)?;
    ctx.reply(false, packets, ctx.license.meter_issued)
}

/// Issues a new packet in one transaction, then signs it.
fn issue_new(ctx: &Ctx<'_>, now: i64) -> Result<PacketsReply, TxnError> {
    let (seat, claims, digest) = (
        ctx.seat.clone(),
        ctx.claims.clone(),
        ctx.body_sha256.to_owned(),
    );
    let (terms, server_id) = (ctx.terms.clone(), ctx.app.identity.id().to_owned());
    let jkt = ctx.seat.device_jkt.clone().unwrap_or_default();
    let product = seatkeep_device::DeviceKeyProduct {
        id: ctx.license.product_id.clone(),
        edition: ctx.license.product_edition,
    };
    let license_exp = ctx.license.expires_at;
    let amount = ctx.claims.amt;
    let actor = ctx.actor.to_owned();
    let issued = ctx.app.db.write(&ctx.license.id.clone(), move |conn| {
        let it = Issue {
            asked: Asked {
                seat: &seat,
                claims: &claims,
                body_sha256: &digest,
                now,
            },
            amount,
            min: terms.packet.min,
            units: terms.units,
            unit: terms.unit,
            packet_ttl: terms.packet_ttl,
            license_exp,
            product,
            server_id: &server_id,
            jkt: &jkt,
            actor: &actor,
        };
        issue::issue(conn, &it)
    })?;
    match issued {
        Issued::Packet { row, issued } => {
            let packet = issue::token_of(ctx.app, row)?;
            ctx.reply(true, vec![packet], issued)
        }
        Issued::Exhausted { cap, issued } => Err(MeterError::UsageExhausted {
            license: ctx.license.id.clone(),
            units: ctx.terms.units,
            issued,
            available: pool::available(cap, issued),
        }
        .into()),
    }
}

/// The seat and its license, in one query.
fn read(conn: &mut DbConn, seat_id: &str) -> Result<(Seat, License), MeterError> {
    let found: Option<(Seat, License)> = crate::on_backend!(conn, |c| seats::table
        .inner_join(licenses::table)
        .filter(seats::id.eq(seat_id))
        .select((Seat::as_select(), License::as_select()))
        .get_result(c)
        .optional())?;
    Ok(found.ok_or_else(|| SeatError::UnknownSeat(seat_id.to_owned()))?)
}

/// Verifies the request with the key the seat registered (never one the request names).
/// A seat without a key cannot sign requests: on a license that is not metered that is
/// `meter_not_enabled`, the more useful answer.
fn verify(
    app: &App,
    seat: &Seat,
    license: &License,
    body: &str,
) -> Result<PacketRequestClaims, MeterError> {
    let Some(jwk_text) = seat.device_jwk.as_deref() else {
        return Err(if license.meter_terms.is_none() {
            MeterError::MeterNotEnabled(license.id.clone())
        } else {
            MeterError::InvalidDeviceSignature
        });
    };
    let jwk: seatkeep_device::DeviceJwk = serde_json::from_str(jwk_text)
        .map_err(|e| DbError::Query(diesel::result::Error::DeserializationError(e.into())))?;
    let expected = RequestExpected {
        device_id: &seat.device_id,
        server_id: app.identity.id(),
        lic: &license.id,
        seat: &seat.id,
    };
    wire::verify_packet_request(body, &jwk, &expected).map_err(|e| match e {
        RequestError::Invalid(why) => MeterError::InvalidPacketRequest(why),
        RequestError::Signature => MeterError::InvalidDeviceSignature,
    })
}

fn known_request(
    app: &App,
    seat: &Seat,
    claims: &PacketRequestClaims,
) -> Result<Option<RequestRow>, MeterError> {
    let mut conn = app.db.conn()?;
    Ok(packet_requests::table
        .find((&seat.id, &claims.jti))
        .select(RequestRow::as_select())
        .get_result(&mut *conn)
        .optional()?)
}

/// Refuses a flagged seat, and flags one whose report cannot be true.
fn check_state(
    app: &App,
    seat: &Seat,
    claims: &PacketRequestClaims,
    now: i64,
    actor: &str,
) -> Result<(), MeterError> {
    if let Some(reason) = &seat.meter_flag {
        return Err(MeterError::DeviceStateInvalid(format!(
            "{reason}; nothing is issued until an operator runs `seatkeep usage reset-device {}`",
            seat.id
        )));
    }
    let applied = {
        let last_seq = claims.state.last_seq.min(seat.packet_seq);
        let mut conn = app.db.conn()?;
        reconcile::applied_units(&mut conn, seat, last_seq)?
    };
    let Some(reason) = reconcile::impossible(seat, &claims.state, applied) else {
        return Ok(());
    };
    let (flagged, state, why) = (seat.clone(), claims.state, reason.clone());
    let actor = actor.to_owned();
    let written = app.db.write(&seat.license_id, move |conn| {
        reconcile::flag(conn, &flagged, &state, &why, now, &actor)
    });
    match written {
        Ok(()) | Err(MeterError::DeviceStateInvalid(_)) => {
            Err(MeterError::DeviceStateInvalid(reason))
        }
        Err(e) => Err(e),
    }
}

fn check_amount(terms: &MeterTerms, amt: i64) -> Result<(), MeterError> {
    let (min, max) = (terms.packet.min, terms.packet.max);
    if amt != 0 && !(min..=max).contains(&amt) {
        return Err(MeterError::AmountOutOfRange { amt, min, max });
    }
    Ok(())
}

fn current_issued(app: &App, lic: &str) -> Result<i64, MeterError> {
    let mut conn = app.db.conn()?;
    Ok(pool::figures(&mut conn, lic)?.1)
}
