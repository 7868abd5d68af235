//! The `offline_exchanges` table: one row per request fulfilled, holding the response bytes.

use diesel::prelude::*;

use super::OfflineError;
use crate::app::App;
use crate::db::schema::offline_exchanges;

/// The stored response to the request with this digest, if it was fulfilled before.
pub fn find(app: &App, request_sha256: &str) -> Result<Option<String>, OfflineError> {
    let mut conn = app.db.conn()?;
    Ok(offline_exchanges::table
        .find(request_sha256)
        .select(offline_exchanges::response)
        .get_result(&mut *conn)
        .optional()?)
}

/// Stores an exchange unless one for the same request is stored already, and returns the
/// response that is stored (this one, or the earlier one).
pub fn keep(
    app: &App,
    request_sha256: &str,
    response: &str,
    actor: &str,
) -> Result<String, OfflineError> {
    let (digest, text, actor) = (
        request_sha256.to_owned(),
        response.to_owned(),
        actor.to_owned(),
    );
    let now = app.clock.now();
    app.db
        .write(&format!("offline:{request_sha256}"), move |conn| {
            crate::on_backend!(conn, |c| diesel::insert_into(offline_exchanges::table)
                .values((
                    offline_exchanges::request_sha256.eq(&digest),
                    offline_exchanges::response.eq(&text),
                    offline_exchanges::created_at.eq(now),
                    offline_exchanges::actor.eq(&actor),
                ))
                .on_conflict_do_nothing()
                .execute(c))?;
            offline_exchanges::table
                .find(&digest)
                .select(offline_exchanges::response)
                .get_result::<String>(conn)
                .map_err(OfflineError::from)
        })
}
