//! Login throttling in the database, so it holds across instances: after
//! `console.login_max_failures` failures for one user name or one client address within
//! `console.login_window`, every login of that name or from that address is refused (429)
//! until the window has passed, the right password included.

use diesel::prelude::*;

use super::ConsoleError;
use crate::app::App;
use crate::db::schema::login_failures;

/// Seconds until a login for `username` from `client` may be tried again; `None` when it
/// may be tried now. Blocking.
pub fn retry_after(app: &App, username: &str, client: &str) -> Result<Option<i64>, ConsoleError> {
    let console = &app.config.console;
    let now = app.clock.now();
    let since = now - console.window_secs();
    let mut conn = app.db.conn()?;
    let mut wait = None;
    for by_user in [true, false] {
        let mut query = login_failures::table
            .filter(login_failures::at.gt(since))
            .select(login_failures::at)
            .order(login_failures::at.desc())
            .limit(console.login_max_failures)
            .into_boxed();
        query = if by_user {
            query.filter(login_failures::username.eq(username.to_owned()))
        } else {
            query.filter(login_failures::client.eq(client.to_owned()))
        };
        let recent: Vec<i64> = query.load(&mut *conn)?;
        // Full: free again when the oldest of the newest `max` failures leaves the window.
        if recent.len() as i64 >= console.login_max_failures
            && let Some(oldest) = recent.last()
        {
            let secs = (oldest + console.window_secs() - now).max(1);
            wait = Some(wait.map_or(secs, |w: i64| w.max(secs)));
        }
    }
    Ok(wait)
}

/// Records a failed login (and drops failures older than the window). Blocking.
pub fn record_failure(app: &App, username: &str, client: &str) -> Result<(), ConsoleError> {
    let now = app.clock.now();
    let cutoff = now - app.config.console.window_secs();
    // The name as typed, cut to the longest valid admin name, so junk cannot grow the table.
    let username: String = username.chars().take(64).collect();
    let client = client.to_owned();
    app.db.write("~login_failures", move |conn| {
        diesel::delete(login_failures::table.filter(login_failures::at.le(cutoff)))
            .execute(conn)?;
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::username.eq(&username),
                login_failures::client.eq(&client),
                login_failures::at.eq(now),
            ))
            .execute(conn)
            .map_err(ConsoleError::from)
    })?;
    Ok(())
}
