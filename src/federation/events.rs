//! Federation events in the database: one row written by the journal inside each change's
//! transaction, read back in `seq` order to build batches.

use diesel::prelude::*;

use super::wire::Event;
use crate::db::schema::{federation_events, licenses};
use crate::db::{DbConn, DbError};
use crate::journal::{Change, ChangeKind, Recorded};

/// An event row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = federation_events, treat_none_as_default_value = false)]
pub struct EventRow {
    pub license_id: String,
    pub seq: i64,
    pub kind: String,
    pub at: i64,
    pub seat_id: Option<String>,
    pub device_id: Option<String>,
    pub user_name: Option<String>,
    pub in_use: i64,
    pub seats: i64,
    pub overage: bool,
    pub key_file_seq: i64,
    /// The facts of a usage event (JSON [`UsageFacts`]); `None` for other events.
    pub usage: Option<String>,
}

/// What a `usage.*` event adds (DESIGN §7): `amt`, `unit`, `issued`, `units` and the packet
/// `seq` as `packet` for `usage.provisioned`; `reason` for `usage.state_invalid`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amt: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The event type of a change, or `None` for changes the provider does not hear about.
/// A new kind of change of a license gets its line here. `license.reinstated` is not in
/// DESIGN §7's list: a provider that saw `license.revoked` must also hear that it was lifted.
pub fn event_type(kind: ChangeKind) -> Option<&'static str> {
    match kind {
        ChangeKind::LicenseImported
        | ChangeKind::LicenseRenewed
        | ChangeKind::LicenseRevoked
        | ChangeKind::LicenseReinstated
        | ChangeKind::SeatActivated
        | ChangeKind::SeatReissued
        | ChangeKind::SeatReturned
        | ChangeKind::SeatRetired
        | ChangeKind::UsageProvisioned
        | ChangeKind::UsageStateInvalid => Some(kind.as_str()),
        ChangeKind::AdminAdded
        | ChangeKind::AdminPasswordChanged
        | ChangeKind::AdminRoleChanged
        | ChangeKind::AdminRemoved
        | ChangeKind::NotificationRetried
        | ChangeKind::UsageDeviceReset => None,
    }
}

/// Writes the event of `change` in the caller's transaction: one insert, numbered by the
/// journal's change number. The device id and user name come from the change's detail (the
/// seat changes put them there); they are stored raw and hashed when a batch is built, so
/// what leaves the site follows the key file in force.
pub fn record(conn: &mut DbConn, change: &Change<'_>, recorded: Recorded) -> Result<(), DbError> {
    let (Some(license_id), Some(kind)) = (change.license, event_type(change.kind)) else {
        return Ok(());
    };
    let text = |key: &str| {
        change
            .detail
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let seat_change = change.seat.is_some();
    let row = EventRow {
        license_id: license_id.to_owned(),
        seq: recorded.seq,
        kind: kind.to_owned(),
        at: change.at,
        seat_id: change.seat.map(str::to_owned),
        device_id: seat_change.then(|| text("device_id")).flatten(),
        user_name: seat_change.then(|| text("user_name")).flatten(),
        in_use: recorded.in_use,
        seats: recorded.seats,
        overage: change
            .detail
            .get("overage")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        key_file_seq: recorded.key_file_seq,
        usage: kind
            .starts_with("usage.")
            .then(|| serde_json::from_value::<UsageFacts>(change.detail.clone()).ok())
            .flatten()
            .and_then(|facts| serde_json::to_string(&facts).ok()),
    };
    // Once per change, so on the concrete connection (see `on_backend!`).
    crate::on_backend!(conn, |c| diesel::insert_into(federation_events::table)
        .values(&row)
        .execute(c))?;
    Ok(())
}

/// What leaves the site for one license: the server id and the key file's choices.
#[derive(Debug, Clone)]
pub struct Disclosure {
    pub server_id: String,
    pub user_data: bool,
    pub channel: Option<serde_json::Value>,
}

impl Disclosure {
    /// The license's current choices (`None` when the license is unknown).
    pub fn of(conn: &mut DbConn, lic: &str, server_id: &str) -> Result<Option<Self>, DbError> {
        let found: Option<(bool, Option<String>)> = licenses::table
            .filter(licenses::id.eq(lic))
            .select((licenses::federation_user_data, licenses::channel))
            .get_result(conn)
            .optional()?;
        Ok(found.map(|(user_data, channel)| Self {
            server_id: server_id.to_owned(),
            user_data,
            channel: channel.and_then(|c| serde_json::from_str(&c).ok()),
        }))
    }

    /// The wire form of a stored event.
    pub fn event(&self, row: EventRow) -> Event {
        let device = row.device_id.as_deref().map(|id| {
            if self.user_data {
                id.to_owned()
            } else {
                super::wire::device_hash(&self.server_id, id)
            }
        });
        let (device_id, user) = if self.user_data {
            (row.device_id, row.user_name)
        } else {
            (None, None)
        };
        Event {
            seq: row.seq,
            kind: row.kind,
            at: row.at,
            seat: row.seat_id,
            device,
            device_id,
            user,
            in_use: row.in_use,
            seats: row.seats,
            overage: row.overage,
            key_file_seq: row.key_file_seq,
            channel: self.channel.clone(),
            usage: row
                .usage
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default(),
        }
    }
}

/// Up to `limit` events of `lic` after `after`, in `seq` order.
pub fn after(
    conn: &mut DbConn,
    lic: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<EventRow>, DbError> {
    Ok(federation_events::table
        .filter(federation_events::license_id.eq(lic))
        .filter(federation_events::seq.gt(after))
        .order(federation_events::seq.asc())
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .select(EventRow::as_select())
        .load(conn)?)
}
