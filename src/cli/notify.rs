//! `notify test|list|retry`: the email outbox from the command line.

use clap::{Args, Subcommand};

use super::{CliError, Global, Run, format_time, print_json};
use crate::notify::outbox::{self, Filter, NotificationState};
use crate::notify::sender::Mailer;

/// Rows `notify list` shows at most.
const LIST_LIMIT: i64 = 500;

/// Email notifications: send a test, list the outbox, retry one.
#[derive(Debug, Args)]
pub struct Notify {
    #[command(subcommand)]
    command: NotifyCommand,
}

#[derive(Debug, Subcommand)]
enum NotifyCommand {
    /// Send a test email now through `[smtp]` and print the relay's answer or the failure.
    Test {
        /// Recipient mailbox.
        #[arg(long)]
        to: String,
    },
    /// Notifications, newest first.
    List {
        /// Only the ones not sent yet.
        #[arg(long, conflicts_with = "failed")]
        pending: bool,
        /// Only the ones given up on.
        #[arg(long)]
        failed: bool,
    },
    /// Make an unsent notification due now (with a fresh give-up period).
    Retry {
        /// Notification id (from `notify list`).
        id: i64,
    },
}

impl Run for Notify {
    fn run(self, global: &Global) -> Result<(), CliError> {
        match self.command {
            NotifyCommand::Test { to } => test(global, &to),
            NotifyCommand::List { pending, failed } => {
                let filter = match (pending, failed) {
                    (true, _) => Filter::Pending,
                    (_, true) => Filter::Failed,
                    _ => Filter::All,
                };
                list(global, filter)
            }
            NotifyCommand::Retry { id } => retry(global, id),
        }
    }
}

fn test(global: &Global, to: &str) -> Result<(), CliError> {
    let config = global.config()?;
    if crate::notify::parse_mailbox(to).is_err() {
        return Err(CliError::Usage(format!(
            "--to: '{to}' is not a valid mailbox"
        )));
    }
    let mailer = Mailer::from_config(&config)?;
    let url = config.public_url();
    let rendered = crate::notify::render::TestEmail { url: &url }.render();
    let key = format!("test:{}", hex::encode(rand::random::<[u8; 8]>()));
    let answer = mailer.send(
        &[to.to_owned()],
        &rendered.subject,
        &rendered.text,
        &rendered.html,
        &key,
    )?;
    if global.json {
        return print_json(&serde_json::json!({"sent": true, "answer": answer}));
    }
    println!("sent; the relay answered: {answer}");
    Ok(())
}

fn list(global: &Global, filter: Filter) -> Result<(), CliError> {
    let app = global.migrated_app()?;
    let rows = outbox::list(&mut *app.db.conn()?, filter, LIST_LIMIT)?;
    if global.json {
        return print_json(&rows);
    }
    for r in &rows {
        let sent = r.state == NotificationState::Sent;
        let when = if sent {
            format!("sent {}", format_time(r.sent_at))
        } else {
            format!("next {}", format_time(Some(r.next_attempt_at)))
        };
        println!(
            "{:>5}  {:<7}  {:<15}  {}  attempts {}  {when}  {}",
            r.id,
            r.state.as_str(),
            r.kind,
            r.license_id.as_deref().unwrap_or("-"),
            r.attempts,
            r.subject,
        );
        if let Some(error) = r.last_error.as_deref().filter(|_| !sent) {
            println!("       last error: {error}");
        }
    }
    if rows.is_empty() {
        println!("no notifications");
    }
    Ok(())
}

fn retry(global: &Global, id: i64) -> Result<(), CliError> {
    let app = global.migrated_app()?;
    let done = outbox::retry_now(&app, id, "cli")?;
    if !done {
        return Err(CliError::Usage(format!("no unsent notification {id}")));
    }
    if global.json {
        return print_json(&serde_json::json!({"id": id, "state": NotificationState::Pending}));
    }
    println!("notification {id} is due now");
    Ok(())
}
