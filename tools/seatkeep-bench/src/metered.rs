//! `--metered`: provisioning packets (DESIGN §10.3). A metered license for the devices, each
//! registering an Ed25519 initialization key (`device_jwk`), then one packet request each,
//! signed with its key (built and signed before the phase, so only the server is timed),
//! then the same requests again (a repeat is answered from storage and charged nothing).
//! Afterwards the database must hold exactly one packet per 201, and the pool exactly what
//! they carry.

use std::net::SocketAddr;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ed25519_dalek::SigningKey;
use seatkeep_device::DeviceJwk;
use seatkeep_device::meter::wire::{PacketRequestClaims, ReportedState, sign_packet_request};

use crate::error::{BenchError, Context, Result};
use crate::setup::{License, Workspace};

/// The metered license.
pub const LICENSE: &str = "bench-meter";
/// Units per packet requested.
const UNITS: i64 = 1;

/// The devices of the metered phases: their keys and registration requests.
pub struct Fleet {
    pub license: License,
    keys: Vec<SigningKey>,
    server_id: String,
}

/// The `meter` claim: device hours, plenty of units, packets of 1..=168.
fn claims_file(workspace: &Workspace, devices: u32) -> Result<std::path::PathBuf> {
    let path = workspace.dir.join("bench-meter-claims.json");
    let claims = serde_json::json!({
        "meter": {
            "unit": "device_hour",
            "units": i64::from(devices) * 10,
            "packet": {"default": 24, "min": 1, "max": 168},
        }
    });
    std::fs::write(&path, claims.to_string()).context("write the metered claims")?;
    Ok(path)
}

impl Fleet {
    /// Issues and imports the metered license (`devices` seats) and makes the device keys.
    pub fn create(workspace: &Workspace, devices: u32) -> Result<Self> {
        let claims = claims_file(workspace, devices)?;
        let claims = claims.to_string_lossy().into_owned();
        let license = workspace.issue_as(LICENSE, devices, "metered", &["--claims", &claims])?;
        workspace.import(&[&license])?;
        let pem =
            std::fs::read(workspace.dir.join("server-key.pem")).context("read the server key")?;
        let server_id = seatkeep::identity::ServerIdentity::from_pem(&pem)
            .context("load the server key")?
            .id()
            .to_owned();
        let keys = (0..devices)
            .map(|_| SigningKey::from_bytes(&rand::random()))
            .collect();
        Ok(Self {
            license,
            keys,
            server_id,
        })
    }

    fn device_id(n: usize) -> String {
        format!("bench-meter-{n:08}")
    }

    /// One activation per device, each with its own `device_jwk`.
    pub fn registrations(&self, addr: SocketAddr) -> Result<Vec<Vec<u8>>> {
        self.keys
            .iter()
            .enumerate()
            .map(|(n, key)| {
                let body = serde_json::json!({
                    "key_file": self.license.key_file,
                    "device_id": Self::device_id(n),
                    "user_name": "Bench User",
                    "device_jwk": DeviceJwk::from_key(&key.verifying_key()),
                })
                .to_string();
                Ok(post(addr, "/api/v1/activations", "application/json", &body))
            })
            .collect()
    }

    /// One packet request per registered device (a fresh device: nothing applied yet),
    /// signed with its key.
    pub fn packet_requests(&self, workspace: &Workspace, addr: SocketAddr) -> Result<Vec<Vec<u8>>> {
        let seats = seats_by_device(workspace)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.keys
            .iter()
            .enumerate()
            .map(|(n, key)| {
                let device = Self::device_id(n);
                let seat = seats.get(&device).ok_or_else(|| {
                    BenchError::new(format!("{device} has no seat: its registration failed"))
                })?;
                let random: [u8; 32] = rand::random();
                let claims = PacketRequestClaims {
                    iss: device,
                    aud: self.server_id.clone(),
                    lic: LICENSE.to_owned(),
                    seat: seat.clone(),
                    jti: seatkeep::jws::b64url(&random[..16]),
                    iat: now,
                    nonce: seatkeep::jws::b64url(&random[16..]),
                    amt: UNITS,
                    partial: false,
                    state: ReportedState {
                        last_seq: 0,
                        used: 0,
                        balance: 0,
                    },
                };
                let token = sign_packet_request(key, &claims);
                Ok(post(
                    addr,
                    &format!("/api/v1/activations/{seat}/packets"),
                    "application/jose",
                    &token,
                ))
            })
            .collect()
    }
}

fn post(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(QueryableByName)]
struct SeatRow {
    #[diesel(sql_type = Text)]
    device_id: String,
    #[diesel(sql_type = Text)]
    id: String,
}

fn seats_by_device(workspace: &Workspace) -> Result<std::collections::HashMap<String, String>> {
    let mut conn = workspace.db.connect()?;
    let rows: Vec<SeatRow> =
        diesel::sql_query("SELECT device_id, id FROM seats WHERE license_id = $1")
            .bind::<Text, _>(LICENSE)
            .load(&mut conn)
            .context("read the metered seats")?;
    Ok(rows.into_iter().map(|r| (r.device_id, r.id)).collect())
}

/// The database after the packet phases.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolCheck {
    pub packets_answered_201: u64,
    pub packets_stored: i64,
    pub units_in_packets: i64,
    pub pool_issued: i64,
    pub devices_flagged: i64,
    pub ok: bool,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

fn number(conn: &mut seatkeep::db::DbConn, sql: &str) -> Result<i64> {
    diesel::sql_query(sql)
        .bind::<Text, _>(LICENSE)
        .get_result::<Number>(conn)
        .map(|n| n.v)
        .with_context(|| format!("query {sql}"))
}

/// Checks that the pool holds exactly the packets answered with 201.
pub fn check(workspace: &Workspace, created: u64) -> Result<PoolCheck> {
    let mut conn = workspace.db.connect()?;
    let packets_stored = number(
        &mut conn,
        "SELECT COUNT(*) AS v FROM meter_packets p JOIN seats s ON s.id = p.seat_id \
         WHERE s.license_id = $1",
    )?;
    let units_in_packets = number(
        &mut conn,
        "SELECT CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) AS v FROM meter_packets p \
         JOIN seats s ON s.id = p.seat_id WHERE s.license_id = $1",
    )?;
    let pool_issued = number(
        &mut conn,
        "SELECT meter_issued AS v FROM licenses WHERE id = $1",
    )?;
    let devices_flagged = number(
        &mut conn,
        "SELECT COUNT(*) AS v FROM seats WHERE license_id = $1 AND meter_flag IS NOT NULL",
    )?;
    let expected = i64::try_from(created).unwrap_or(i64::MAX);
    Ok(PoolCheck {
        packets_answered_201: created,
        packets_stored,
        units_in_packets,
        pool_issued,
        devices_flagged,
        ok: packets_stored == expected
            && units_in_packets == expected * UNITS
            && pool_issued == units_in_packets
            && devices_flagged == 0,
    })
}
