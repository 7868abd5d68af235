//! Federation, the server's side (DESIGN §7): every change of a license is an event written
//! by the journal in the change's transaction ([`events`]); batches of consecutive events
//! signed with the server key ([`batch`]) go to the provider online ([`push`], a job of
//! `serve`) or in a file ([`offline`]); an event counts as delivered only once a provider's
//! ack verifies ([`ack`]), and events are never deleted. [`status`] says per license how
//! far delivery is and whether it is overdue. The provider's side is [`collector`].
//! Both sides share one definition of the formats ([`wire`]).

pub mod ack;
pub mod batch;
pub mod collector;
pub mod events;
pub mod offline;
pub mod push;
pub mod state;
pub mod status;
pub mod wire;

use crate::db::DbError;

/// What went wrong in federation.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// A batch could not be signed.
    #[error("cannot sign a batch: {0}")]
    Signing(#[from] crate::signing::SigningError),
    /// The ack did not verify; nothing was marked delivered.
    #[error("ack ignored: {0}")]
    Ack(String),
    /// No such license on this server.
    #[error("unknown license '{0}'")]
    UnknownLicense(String),
    /// The provider could not be reached or answered something else than an ack.
    #[error("push to {url} failed: {reason}")]
    Push { url: String, reason: String },
    /// An offline file is not what it should be.
    #[error("{0}")]
    File(String),
}

crate::query_errors_into!(FederationError);
