//! The job runner: background work of `serve` (clock sync, proof pruning, the malformed
//! request log, the notification watch, the email sender and the federation pusher),
//! each job a small blocking pass repeated on an interval, off the
//! async workers. `serve` starts the runner before it accepts requests and stops it after the
//! HTTP server has drained on SIGTERM: a pass in progress finishes, no new one starts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::db::DbError;

/// Why a pass of a job failed; the runner logs it and tries again on the next tick.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Federation(#[from] crate::federation::FederationError),
}

/// One kind of background work.
pub trait Job: Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &'static str;
    /// Time between the start of one pass and the next.
    fn interval(&self) -> Duration;
    /// One pass. Blocking: the runner calls it on a blocking thread.
    fn run(&self, app: &App) -> Result<(), JobError>;
}

/// Shares the clock's high-water mark through the database, so every instance and the next
/// start know the highest time any of them saw (DESIGN §6).
#[derive(Debug)]
pub struct ClockSync;

impl Job for ClockSync {
    fn name(&self) -> &'static str {
        "clock_sync"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(15)
    }

    fn run(&self, app: &App) -> Result<(), JobError> {
        Ok(app.clock.sync(&app.db)?)
    }
}

/// Forgets device proofs too old to be replayed anyway (their `iat` check fails), so the
/// table holds minutes of proofs, not years.
#[derive(Debug)]
pub struct PruneProofs;

impl Job for PruneProofs {
    fn name(&self) -> &'static str {
        "prune_proofs"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(600)
    }

    fn run(&self, app: &App) -> Result<(), JobError> {
        let now = app.clock.now();
        let pruned = app.db.write("device_proofs", move |conn| {
            let failures = crate::seats::lockout::prune(conn, now)?;
            Ok::<_, DbError>(crate::seats::auth::prune_proofs(conn, now)? + failures)
        })?;
        if pruned > 0 {
            tracing::debug!(pruned, "old device proofs forgotten");
        }
        Ok(())
    }
}

/// Writes the rate-limited log lines about malformed requests (`web::malformed`).
#[derive(Debug)]
pub struct MalformedLog;

impl Job for MalformedLog {
    fn name(&self) -> &'static str {
        "malformed_log"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn run(&self, _app: &App) -> Result<(), JobError> {
        crate::web::malformed::flush();
        Ok(())
    }
}

/// The jobs `serve` runs: the email sender only when `[smtp]` names a relay.
pub fn standard(
    config: &crate::config::Config,
) -> Result<Vec<Arc<dyn Job>>, crate::notify::sender::SendError> {
    let mut jobs: Vec<Arc<dyn Job>> = vec![
        Arc::new(ClockSync),
        Arc::new(PruneProofs),
        Arc::new(MalformedLog),
        Arc::new(crate::notify::watch::Watch::new(
            &config.notify.expiring_days,
            config.federation.alert_after,
        )),
        Arc::new(crate::federation::push::Pusher::new(&config.federation)),
    ];
    if let Some(sender) = crate::notify::sender::SendEmails::for_config(config)? {
        if config.notify.operators.is_empty() {
            // Admins of key files hear about their licenses; server trouble has no owner.
            tracing::warn!(
                "notify.operators is empty: nobody is emailed when the clock goes back or federation is overdue"
            );
        }
        jobs.push(Arc::new(sender));
    }
    Ok(jobs)
}

/// Running jobs; [`JobRunner::shutdown`] stops them.
pub struct JobRunner {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl JobRunner {
    /// Starts every job: its first pass now, then one per interval. Must run inside a tokio
    /// runtime.
    pub fn start(app: &Arc<App>, jobs: Vec<Arc<dyn Job>>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let tasks = jobs
            .into_iter()
            .map(|job| tokio::spawn(run_job(Arc::clone(app), job, stopped.clone())))
            .collect();
        Self { stop, tasks }
    }

    /// Asks every job to stop and waits until each has finished its current pass.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "job task ended abnormally");
            }
        }
    }
}

async fn run_job(app: Arc<App>, job: Arc<dyn Job>, mut stopped: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(job.interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.changed() => break,
        }
        if *stopped.borrow() {
            break;
        }
        let (app, pass) = (Arc::clone(&app), Arc::clone(&job));
        match tokio::task::spawn_blocking(move || pass.run(&app)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(job = job.name(), error = %e, "job pass failed"),
            Err(e) => tracing::error!(job = job.name(), error = %e, "job pass panicked"),
        }
    }
    tracing::debug!(job = job.name(), "job stopped");
}
