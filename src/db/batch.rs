//! Group commit: one writer thread runs queued write jobs together in one transaction, each
//! job in its own savepoint, and commits them with one durable commit.
//!
//! A durable commit costs an fsync (SQLite WAL) or a WAL flush and the hot license row's lock
//! (PostgreSQL). Under load many activations wait for that at once; committing them together
//! pays it once per batch instead of once per activation. A job's answer is released only
//! after the batch has committed, so nothing is acknowledged that is not durable.
//!
//! Refused activations are not jobs of their own: the refusals of a batch are added up per
//! license and hour and written as one upsert each, after the other jobs, so a flood of
//! refusals costs a few statements per batch and does not crowd out other licenses' grants.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::refusals::{self, RefusalCount};
use super::{DbConn, DbError, Manager};

/// Most jobs committed together.
const MAX_BATCH: usize = 64;
/// Jobs that may wait for the writer; more block their sender (back-pressure).
const QUEUE_DEPTH: usize = 1024;

/// Reports a job's outcome once the batch's commit is known.
type Completion = Box<dyn FnOnce(Result<(), &DbError>) + Send>;
/// Runs a job's statements inside the batch's transaction.
type Work = Box<dyn FnOnce(&mut DbConn) -> Completion + Send>;

/// What the writer is asked to do.
enum Job {
    /// Statements, ordered within the batch by `order`.
    Write { order: String, work: Work },
    /// One refused activation to count; `done` hears the commit's outcome.
    Refusal {
        count: RefusalCount,
        done: SyncSender<Result<(), DbError>>,
    },
}

/// The refusals of one batch for one license and hour, and who waits for them.
type RefusalGroup = (RefusalCount, Vec<SyncSender<Result<(), DbError>>>);
/// A batch's refusals by (license, hour).
type Refusals = BTreeMap<(String, i64), RefusalGroup>;

/// Handle to the writer thread.
#[derive(Debug)]
pub struct GroupCommit {
    jobs: SyncSender<Job>,
}

impl GroupCommit {
    /// Starts the writer thread, connecting through `manager`.
    pub fn start(manager: Manager) -> Result<Self, DbError> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("seatkeep-writer".into())
            .spawn(move || writer(&manager, &queue))
            .map_err(|e| DbError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `f` in a savepoint of the next batch and waits for the batch to commit (see
    /// [`super::Database::write`]).
    pub(super) fn run<T, E, F>(&self, order: &str, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<diesel::result::Error> + From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        let (answer, outcome) = sync_channel::<Result<T, E>>(1);
        let work: Work = Box::new(move |conn: &mut DbConn| {
            // A nested transaction is a savepoint: a failed job leaves the others intact
            // (and its day counts, added up for the batch, go with it).
            let result = diesel::Connection::transaction(conn, f);
            super::day_counts::job_done(result.is_ok());
            Box::new(move |commit: Result<(), &DbError>| {
                let result = match commit {
                    Ok(()) => result,
                    Err(e) => Err(E::from(DbError::Unavailable(format!("commit failed: {e}")))),
                };
                let _ = answer.send(result);
            })
        });
        let job = Job::Write {
            order: order.to_owned(),
            work,
        };
        self.jobs
            .send(job)
            .map_err(|_| E::from(DbError::Unavailable("the writer thread stopped".into())))?;
        // No answer means the job was dropped unrun: the writer had no database connection.
        outcome.recv().map_err(|_| {
            E::from(DbError::Unavailable(
                "the write was not committed: no database connection".into(),
            ))
        })?
    }
}

impl GroupCommit {
    /// Counts one refused activation with the next batch and waits for its commit.
    pub(super) fn count_refusal(&self, count: RefusalCount) -> Result<(), DbError> {
        let (done, outcome) = sync_channel(1);
        self.jobs
            .send(Job::Refusal { count, done })
            .map_err(|_| DbError::Unavailable("the writer thread stopped".into()))?;
        outcome.recv().map_err(|_| {
            DbError::Unavailable("the refusal was not committed: no database connection".into())
        })?
    }
}

/// The writer: takes whatever is queued (up to [`MAX_BATCH`]), runs it in one write
/// transaction, commits, then answers every job.
fn writer(manager: &Manager, queue: &Receiver<Job>) {
    // The writer keeps a connection of its own, outside the pool: requests waiting for their
    // batch may hold every pooled connection.
    let mut conn: Option<DbConn> = None;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (mut writes, refused) = split(batch);
        let mut completions = Vec::with_capacity(writes.len());
        let mut counted = Vec::with_capacity(refused.len());
        if conn
            .as_mut()
            .is_none_or(diesel::r2d2::R2D2Connection::is_broken)
        {
            conn = manager
                .connect_dedicated()
                .map_err(|e| tracing::error!(error = %e, "writer: no database connection"))
                .ok();
        }
        let committed = match conn.as_mut() {
            Some(c) => c.write_transaction(|c| {
                super::day_counts::start_batch();
                completions.extend(writes.drain(..).map(|(_, work)| work(c)));
                // The batch's day counts, one row per license and day, after every job.
                crate::seats::moves::flush(c)?;
                crate::meter::daily::flush(c)?;
                // Counters after every other job: their rows are locked last, in key order,
                // on every instance. (Jobs never touch counter rows themselves, or two
                // instances could each hold what the other waits for.)
                for (count, waiting) in refused.into_values() {
                    // The seats_exhausted email rides with the counter, in its savepoint.
                    let added = diesel::Connection::transaction(c, |c| {
                        refusals::add(c, &count)?;
                        crate::notify::on_refusal(c, &count)
                    });
                    counted.push((added, waiting));
                }
                Ok::<(), DbError>(())
            }),
            None => Err(DbError::Unavailable("no database connection".into())),
        };
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = completions.len() + writes.len(), "group commit failed");
            // Start the next batch on a fresh connection.
            conn = None;
        }
        // Jobs never started (no connection) fail too; their closures are dropped, which
        // closes their answer channels.
        drop(writes);
        for (added, waiting) in counted {
            let failure = match (&committed, &added) {
                (Ok(()), Ok(())) => None,
                (Err(e), _) | (_, Err(e)) => Some(format!("the refusal was not counted: {e}")),
            };
            for done in waiting {
                let _ = done.send(match &failure {
                    None => Ok(()),
                    Some(why) => Err(DbError::Unavailable(why.clone())),
                });
            }
        }
        for complete in completions {
            complete(committed.as_ref().map(|_| ()));
        }
    }
}

/// Splits a batch into its writes, in lock order, and its refusals, added up per license and
/// hour (in key order).
fn split(batch: Vec<Job>) -> (Vec<(String, Work)>, Refusals) {
    let mut writes = Vec::with_capacity(batch.len());
    let mut refused = Refusals::new();
    for job in batch {
        match job {
            Job::Write { order, work } => writes.push((order, work)),
            Job::Refusal { count, done } => {
                let key = (count.license_id.clone(), count.bucket);
                match refused.get_mut(&key) {
                    Some((total, waiting)) => {
                        total.absorb(&count);
                        waiting.push(done);
                    }
                    None => {
                        refused.insert(key, (count, vec![done]));
                    }
                }
            }
        }
    }
    writes.sort_by(|a, b| a.0.cmp(&b.0));
    (writes, refused)
}
