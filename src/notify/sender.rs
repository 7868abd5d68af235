//! The sender: a job of every `serve` process that claims due outbox rows, sends each over
//! SMTP (lettre, rustls) with no database transaction open, and marks it sent or retries it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use sha2::{Digest, Sha256};

use super::outbox::{self, Claimed};
use super::{mask, mask_mailboxes, parse_mailbox};
use crate::app::App;
use crate::config::{Config, SmtpSecurity};
use crate::db::DbError;
use crate::jobs::{Job, JobError};

/// Rows one pass sends at most, each claimed on its own (shutdown waits for the pass).
const PER_PASS: i64 = 5;
/// Order key of the sender's writes in a group commit: after license ids, since it locks
/// only outbox rows (last in every lock order).
const WRITE_ORDER: &str = "~notifications";

/// Emails sent and attempts failed by this process.
pub static SENT: AtomicU64 = AtomicU64::new(0);
pub static FAILED_ATTEMPTS: AtomicU64 = AtomicU64::new(0);

/// Why the mailer could not be set up or an email not sent. The text is what operators
/// read in `notify list` and `notify test`.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("smtp.{key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("email is off: smtp.host is empty")]
    Disabled,
    #[error("bad recipient '{0}'")]
    Recipient(String),
    #[error("the message could not be built: {0}")]
    Build(String),
    #[error("{0}")]
    Smtp(String),
}

/// A configured SMTP client.
pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    /// `host:port`, for messages.
    relay: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Builds the client from `[smtp]`; reads the password file and the extra CA.
    pub fn from_config(config: &Config) -> Result<Self, SendError> {
        let smtp = &config.smtp;
        if !smtp.enabled() {
            return Err(SendError::Disabled);
        }
        let from = parse_mailbox(&smtp.from).map_err(|e| SendError::Config {
            key: "from",
            reason: e.to_string(),
        })?;
        let tls = match smtp.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::Starttls => Tls::Required(tls_parameters(config)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(config)?),
        };
        let mut builder = SmtpTransport::builder_dangerous(smtp.host.trim())
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(smtp.timeout));
        if !smtp.username.is_empty() {
            let password = if smtp.password_file.as_os_str().is_empty() {
                smtp.password.expose().to_owned()
            } else {
                let path = config.resolve(&smtp.password_file);
                std::fs::read_to_string(&path)
                    .map_err(|e| SendError::Config {
                        key: "password_file",
                        reason: format!("cannot read {}: {e}", path.display()),
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            };
            builder = builder.credentials(Credentials::new(smtp.username.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            relay: format!("{}:{}", smtp.host.trim(), smtp.port),
        })
    }

    /// Sends one email now; returns the relay's answer.
    pub fn send(
        &self,
        recipients: &[String],
        subject: &str,
        text: &str,
        html: &str,
        dedupe_key: &str,
    ) -> Result<String, SendError> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(super::render::one_line(subject))
            .message_id(Some(message_id(dedupe_key, &self.from)));
        for to in recipients {
            let mailbox = parse_mailbox(to).map_err(|_| SendError::Recipient(mask(to)))?;
            message = message.to(mailbox);
        }
        let message = message
            .multipart(MultiPart::alternative_plain_html(
                text.to_owned(),
                html.to_owned(),
            ))
            .map_err(|e| SendError::Build(e.to_string()))?;
        let response = self
            .transport
            .send(&message)
            .map_err(|e| SendError::Smtp(mask_mailboxes(&describe(&e, &self.relay))))?;
        Ok(format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        ))
    }
}

fn tls_parameters(config: &Config) -> Result<TlsParameters, SendError> {
    let smtp = &config.smtp;
    let mut builder = TlsParameters::builder(smtp.host.trim().to_owned());
    if !smtp.ca_file.as_os_str().is_empty() {
        let path = config.resolve(&smtp.ca_file);
        let pem = std::fs::read(&path).map_err(|e| SendError::Config {
            key: "ca_file",
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| SendError::Config {
            key: "ca_file",
            reason: format!("{} is not a PEM certificate: {e}", path.display()),
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build_rustls().map_err(|e| SendError::Config {
        key: "security",
        reason: e.to_string(),
    })
}

/// `<hash of the dedupe key@the From domain>`: the same notification always has the same id,
/// so a receiver can drop a copy resent after a crash.
fn message_id(dedupe_key: &str, from: &Mailbox) -> String {
    let digest = hex::encode(&Sha256::digest(dedupe_key.as_bytes())[..16]);
    format!("<{digest}@{}>", from.email.domain())
}

/// The failure in the words an operator needs: connection refused, no STARTTLS, certificate
/// not trusted, authentication failed, no authentication mechanism both sides know, or the
/// relay's own answer. The chain may quote addresses (a rejected `RCPT TO`): the caller masks
/// them before the text is stored or logged.
fn describe(error: &lettre::transport::smtp::Error, relay: &str) -> String {
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !chain.contains(&text) {
            chain = format!("{chain}: {text}");
        }
        source = e.source();
    }
    let lower = chain.to_lowercase();
    let what = if lower.contains("connection refused") {
        "connection refused"
    } else if lower.contains("starttls is not supported") {
        "the relay does not offer STARTTLS (nothing sent in clear)"
    } else if lower.contains("unknownissuer") || lower.contains("invalid peer certificate") {
        "certificate not trusted"
    } else if error.is_timeout() || lower.contains("timed out") {
        "timed out"
    } else if lower.contains("no compatible authentication mechanism") {
        "no authentication mechanism in common with the relay (Seatkeep offers PLAIN and LOGIN)"
    } else if lower.contains("authentication") || lower.contains("535") {
        "authentication failed"
    } else {
        "failed"
    };
    format!("{relay}: {what} ({chain})")
}

/// The sender job.
#[derive(Debug)]
pub struct SendEmails {
    mailer: Mailer,
    /// `smtp.timeout`, the unit of a claim's lease ([`outbox::lease_secs`]).
    timeout_secs: i64,
    give_up_secs: i64,
}

impl SendEmails {
    /// The sender for this config, or `None` when email is off.
    pub fn for_config(config: &Config) -> Result<Option<Self>, SendError> {
        match Mailer::from_config(config) {
            Ok(mailer) => Ok(Some(Self {
                mailer,
                timeout_secs: secs(config.smtp.timeout),
                give_up_secs: secs(config.notify.give_up_after),
            })),
            Err(SendError::Disabled) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send_one(&self, app: &App, row: Claimed) -> Result<(), DbError> {
        let recipients = row.recipient_list();
        let masked: Vec<String> = recipients.iter().map(|r| mask(r)).collect();
        let result = self.mailer.send(
            &recipients,
            &row.subject,
            &row.body_text,
            &row.body_html,
            &row.dedupe_key,
        );
        let now = app.clock.now();
        match result {
            Ok(answer) => {
                let (id, kind) = (row.id, row.kind.clone());
                let kept = app
                    .db
                    .write(WRITE_ORDER, move |conn| outbox::mark_sent(conn, &row, now))?;
                SENT.fetch_add(1, Ordering::Relaxed);
                let answer = mask_mailboxes(&answer);
                if kept {
                    tracing::info!(id, %kind, to = ?masked, %answer, "email sent");
                } else {
                    tracing::warn!(id, %kind, to = ?masked, %answer, "email sent after its lease ran out; another instance holds the row now");
                }
            }
            Err(e) => {
                FAILED_ATTEMPTS.fetch_add(1, Ordering::Relaxed);
                let reason = e.to_string();
                let (id, kind, attempts) = (row.id, row.kind.clone(), row.attempts);
                let give_up = self.give_up_secs;
                let why = reason.clone();
                let gave_up = app.db.write(WRITE_ORDER, move |conn| {
                    outbox::mark_attempt_failed(conn, &row, &why, now, give_up)
                })?;
                if gave_up {
                    tracing::error!(id, %kind, to = ?masked, error = %reason, "email given up");
                } else {
                    tracing::warn!(id, %kind, attempts, to = ?masked, error = %reason, "email not sent; will retry");
                }
            }
        }
        Ok(())
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl Job for SendEmails {
    fn name(&self) -> &'static str {
        "send_emails"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn run(&self, app: &App) -> Result<(), JobError> {
        let now = app.clock.now();
        // Most passes find nothing due: check with a pooled read before taking a place in
        // the group-commit writer's queue, where seat grants wait.
        if !outbox::any_due(&mut *app.db.conn()?, now)? {
            return Ok(());
        }
        // One claim per send, so each lease starts when its own session does.
        for _ in 0..PER_PASS {
            let now = app.clock.now();
            let timeout = self.timeout_secs;
            let claimed = app
                .db
                .write(WRITE_ORDER, move |conn| outbox::claim(conn, now, timeout))?;
            let Some(row) = claimed else {
                break;
            };
            // The send happens here, between two write transactions, with none open.
            self.send_one(app, row)?;
        }
        Ok(())
    }
}
