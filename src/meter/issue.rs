//! Issuing packets (DESIGN §10.3, §10.4): the write transaction that charges the pool and
//! records the packet with its claims frozen, and signing after the commit. A crash between
//! the two leaves a packet row without a token; the retry of the same request signs the
//! frozen claims, so the pool is charged once and the device gets the packet it was owed.

use diesel::prelude::*;
use seatkeep_device::meter::wire::{
    PACKET_TYP, PacketClaims, PacketRequestClaims, TIME_TOKEN_TTL_SECS, TIME_TYP, TimeClaims,
};

use super::{MeterError, pool};
use crate::app::App;
use crate::db::models::Seat;
use crate::db::schema::{meter_packets, packet_requests, seats};
use crate::db::{DbConn, DbError, is_unique_violation, race};
use crate::journal::{self, Change, ChangeKind};

/// Why an issuing transaction was abandoned (everything it wrote is rolled back): a
/// concurrent request changed the seat or the pool first (retry), or a [`MeterError`].
pub type TxnError = race::TxnError<MeterError>;

impl From<MeterError> for TxnError {
    fn from(e: MeterError) -> Self {
        Self::Failed(e)
    }
}

/// A packet row: claims frozen at issue, the token once signed.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = meter_packets, treat_none_as_default_value = false)]
pub struct PacketRow {
    pub seat_id: String,
    /// The device key it is for: packets are numbered per seat and key.
    pub device_jkt: String,
    pub seq: i64,
    pub request_jti: String,
    pub claims: String,
    pub amount: i64,
    pub issued_at: i64,
    pub token: Option<String>,
}

/// A request row: the idempotency record of one `(seat, jti)`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = packet_requests)]
pub struct RequestRow {
    pub seat_id: String,
    pub jti: String,
    pub body_sha256: String,
    /// JSON array of packet seqs.
    pub packet_seqs: String,
    pub created_at: i64,
}

impl RequestRow {
    /// The packet seqs of the first answer (a row this server wrote always parses).
    pub fn seqs(&self) -> Result<Vec<i64>, DbError> {
        serde_json::from_str(&self.packet_seqs)
            .map_err(|e| DbError::Query(diesel::result::Error::DeserializationError(e.into())))
    }
}

/// A request as its record says: the seat that asked, the verified claims, the body's
/// digest (what a repeat must match), and when.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    pub seat: &'a Seat,
    pub claims: &'a PacketRequestClaims,
    pub body_sha256: &'a str,
    pub now: i64,
}

/// What the issuing transaction needs to know about the request and the license.
pub struct Issue<'a> {
    pub asked: Asked<'a>,
    /// Units the claims ask for (≥ 1).
    pub amount: i64,
    /// Least a partial packet may hold.
    pub min: i64,
    pub units: i64,
    pub unit: seatkeep_device::meter::Unit,
    pub packet_ttl: i64,
    pub license_exp: Option<i64>,
    pub product: seatkeep_device::DeviceKeyProduct,
    pub server_id: &'a str,
    pub jkt: &'a str,
    /// Who the journal names: `device`, or `cli` / `admin:NAME` for an offline file.
    pub actor: &'a str,
}

/// What the issuing transaction did.
pub enum Issued {
    /// A new packet, committed without its token.
    Packet { row: PacketRow, issued: i64 },
    /// Nothing fits the pool (nothing was written).
    Exhausted { cap: i64, issued: i64 },
}

/// The issuing transaction: the pool, the seat's packet `seq` and reported state, the
/// packet row with its frozen claims, the request row and the journal, all or nothing.
pub fn issue(conn: &mut DbConn, it: &Issue<'_>) -> Result<Issued, TxnError> {
    let Asked {
        seat,
        claims: asked,
        now,
        ..
    } = it.asked;
    let lic = seat.license_id.as_str();
    let taken = match pool::take(conn, lic, it.amount)? {
        Some(taken) => taken,
        None => {
            let (cap, issued) = pool::figures(conn, lic)?;
            let left = pool::available(cap, issued);
            if left < it.min.max(1) {
                // Not even the smallest packet is left: the admins hear of it (once per
                // cap), in this transaction, which writes nothing else.
                crate::notify::usage::pool_refused(conn, lic, it.unit.as_str(), now)?;
                return Ok(Issued::Exhausted { cap, issued });
            }
            if !asked.partial {
                return Ok(Issued::Exhausted { cap, issued });
            }
            // What is left, if no one took it meanwhile (the statement checks again).
            pool::take(conn, lic, left)?.ok_or(TxnError::LostRace)?
        }
    };
    super::daily::record(conn, lic, now, taken.amount)?;
    let seq = seat.packet_seq + 1;
    advance_seat(conn, seat, &asked.state, seq)?;
    let claims = PacketClaims {
        iss: it.server_id.to_owned(),
        sub: seat.device_id.clone(),
        cnf: seatkeep_device::device_key::Confirmation {
            jkt: it.jkt.to_owned(),
        },
        lic: lic.to_owned(),
        product: it.product.clone(),
        seat: seat.id.clone(),
        jti: new_packet_id(),
        seq,
        req: asked.jti.clone(),
        nonce: asked.nonce.clone(),
        amt: taken.amount,
        unit: it.unit,
        iat: now,
        exp: packet_exp(now, it.packet_ttl, it.license_exp),
    };
    let row = PacketRow {
        seat_id: seat.id.clone(),
        device_jkt: it.jkt.to_owned(),
        seq,
        request_jti: asked.jti.clone(),
        claims: serde_json::to_string(&claims)
            .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(e.into())))?,
        amount: taken.amount,
        issued_at: now,
        token: None,
    };
    crate::on_backend!(conn, |c| diesel::insert_into(meter_packets::table)
        .values(&row)
        .execute(c))?;
    insert_request(conn, &it.asked, &[seq])?;
    journal::record_numbered(
        conn,
        &Change {
            at: now,
            actor: it.actor,
            kind: ChangeKind::UsageProvisioned,
            license: Some(lic),
            seat: Some(&seat.id),
            detail: serde_json::json!({
                "device_id": seat.device_id,
                "user_name": seat.user_name,
                "amt": taken.amount,
                "unit": it.unit.as_str(),
                "issued": taken.issued,
                "units": it.units,
                "packet": seq,
                "request": asked.jti,
            }),
        },
        taken.recorded,
    )?;
    Ok(Issued::Packet {
        row,
        issued: taken.issued,
    })
}

/// The transaction of a request that issues nothing (`amt` 0, or packets still unapplied):
/// the reported state and the request row with the packets it answers.
pub fn answer_without_issue(
    conn: &mut DbConn,
    asked: &Asked<'_>,
    seqs: &[i64],
) -> Result<(), TxnError> {
    advance_seat(conn, asked.seat, &asked.claims.state, asked.seat.packet_seq)?;
    insert_request(conn, asked, seqs)
}

/// Moves the seat to packet `seq` and the reported state, if nothing changed it since it
/// was read (same `packet_seq`, not flagged, still active, reports only rising).
fn advance_seat(
    conn: &mut DbConn,
    seat: &Seat,
    state: &seatkeep_device::meter::wire::ReportedState,
    seq: i64,
) -> Result<(), TxnError> {
    let changed = crate::on_backend!(conn, |c| diesel::update(
        seats::table
            .filter(seats::id.eq(&seat.id))
            .filter(seats::packet_seq.eq(seat.packet_seq))
            .filter(seats::state.eq(crate::seats::SeatState::Active.as_str()))
            .filter(seats::meter_flag.is_null())
            .filter(seats::reported_last_seq.le(state.last_seq))
            .filter(seats::reported_used.le(state.used)),
    )
    .set((
        seats::packet_seq.eq(seq),
        seats::reported_last_seq.eq(state.last_seq),
        seats::reported_used.eq(state.used),
    ))
    .execute(c))?;
    if changed == 1 {
        Ok(())
    } else {
        Err(TxnError::LostRace)
    }
}

fn insert_request(conn: &mut DbConn, asked: &Asked<'_>, seqs: &[i64]) -> Result<(), TxnError> {
    let row = RequestRow {
        seat_id: asked.seat.id.clone(),
        jti: asked.claims.jti.clone(),
        body_sha256: asked.body_sha256.to_owned(),
        packet_seqs: serde_json::Value::from(seqs.to_vec()).to_string(),
        created_at: asked.now,
    };
    match crate::on_backend!(conn, |c| diesel::insert_into(packet_requests::table)
        .values(&row)
        .execute(c))
    {
        // The same request id arrived twice at once: the retry answers it as a repeat.
        Err(e) if is_unique_violation(&e) => Err(TxnError::LostRace),
        other => other.map(|_| ()).map_err(TxnError::from),
    }
}

/// `min(iat + packet_ttl, the license's exp)` (DESIGN §10.4).
pub fn packet_exp(iat: i64, packet_ttl: i64, license_exp: Option<i64>) -> i64 {
    let exp = iat.saturating_add(packet_ttl);
    license_exp.map_or(exp, |l| exp.min(l))
}

fn new_packet_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("pk_{}", crate::jws::b64url(&bytes))
}

/// The packets `seqs` of a seat, with their tokens: a packet whose token was lost to a
/// crash between commit and signing is signed now from its frozen claims and stored.
/// Signing runs outside any write transaction.
pub fn tokens(app: &App, seat: &Seat, seqs: &[i64]) -> Result<Vec<String>, MeterError> {
    let jkt = seat.device_jkt.as_deref().unwrap_or_default();
    let rows: Vec<PacketRow> = {
        let mut conn = app.db.conn()?;
        meter_packets::table
            .filter(meter_packets::seat_id.eq(&seat.id))
            .filter(meter_packets::device_jkt.eq(jkt))
            .filter(meter_packets::seq.eq_any(seqs))
            .order(meter_packets::seq.asc())
            .select(PacketRow::as_select())
            .load(&mut *conn)?
    };
    rows.into_iter().map(|row| token_of(app, row)).collect()
}

/// The row's token, signed and stored first when it has none.
pub fn token_of(app: &App, row: PacketRow) -> Result<String, MeterError> {
    if let Some(token) = row.token {
        return Ok(token);
    }
    app.clock.trusted_now()?;
    let claims: PacketClaims = serde_json::from_str(&row.claims)
        .map_err(|e| DbError::Query(diesel::result::Error::DeserializationError(e.into())))?;
    let token = app
        .identity
        .key()
        .sign_jws(PACKET_TYP, app.identity.id(), &claims)?;
    let (seat_id, jkt, seq, signed) = (
        row.seat_id.clone(),
        row.device_jkt.clone(),
        row.seq,
        token.clone(),
    );
    // First writer wins: a concurrent retry may have stored its own signature (the same
    // bytes for EdDSA; PS256 signatures differ), and every answer must carry the stored one.
    let stored: Option<String> = app.db.write(&row.seat_id, move |conn| {
        diesel::update(
            meter_packets::table
                .filter(meter_packets::seat_id.eq(&seat_id))
                .filter(meter_packets::device_jkt.eq(&jkt))
                .filter(meter_packets::seq.eq(seq))
                .filter(meter_packets::token.is_null()),
        )
        .set(meter_packets::token.eq(&signed))
        .execute(conn)?;
        meter_packets::table
            .find((&seat_id, &jkt, seq))
            .select(meter_packets::token)
            .get_result::<Option<String>>(conn)
            .map_err(MeterError::from)
    })?;
    Ok(stored.unwrap_or(token))
}

/// A time token for the request with `nonce` (DESIGN §10.4): the server's clock, valid 60 s.
pub fn time_token(app: &App, device_id: &str, nonce: &str) -> Result<String, MeterError> {
    let now = app.clock.trusted_now()?;
    Ok(app.identity.key().sign_jws(
        TIME_TYP,
        app.identity.id(),
        &TimeClaims {
            iss: app.identity.id().to_owned(),
            sub: device_id.to_owned(),
            nonce: nonce.to_owned(),
            iat: now,
            exp: now + TIME_TOKEN_TTL_SECS,
        },
    )?)
}
