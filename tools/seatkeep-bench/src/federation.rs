//! `--federation`: what federation costs and how fast it delivers. A local collector
//! (`seatkeep provider collect --listen` on loopback) receives the batches of a second
//! license, `bench-fed`, issued with its URL; the server pushes every second. The run
//! activates as many new devices on a license without a URL (events written the same way,
//! nothing pushes them), on `bench-fed`, and on a second license without a URL, then times
//! until the collector has acknowledged every event of `bench-fed`.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::error::{BenchError, Context, Result};
use crate::setup::{KID, License, Workspace};

/// The license whose events are pushed.
pub const LICENSE: &str = "bench-fed";
/// Licenses without a URL, activated just before and just after it (federation off): their
/// mean cancels the database's growth between the phases.
pub const OFF_BEFORE: &str = "bench-nofed-1";
pub const OFF_AFTER: &str = "bench-nofed-2";
/// A license with the URL whose key file the collector does not have yet: the collector
/// refuses its batches, the server backs off, and its events pile up; then the collector is
/// given the key file and `seatkeep federation flush` delivers the pile (pushing alone).
pub const BACKLOG: &str = "bench-fed-backlog";
/// Events one `federation flush` pass sends at most (20 rounds of 500).
pub const BACKLOG_MAX: u32 = 10_000;

/// The collector and the three licenses of the federation phases.
pub struct Setup {
    pub collector: Collector,
    pub on: License,
    pub off_before: License,
    pub off_after: License,
    pub backlog: License,
}

impl Setup {
    /// Starts the collector; issues and imports the licenses (`devices` seats each); makes
    /// the server push every second.
    pub fn create(workspace: &Workspace, devices: u32) -> Result<Self> {
        let collector = Collector::start(workspace)?;
        let on = workspace.issue_with(LICENSE, devices, &["--federation-url", &collector.url])?;
        collector.knows(workspace, LICENSE)?;
        let off_before = workspace.issue(OFF_BEFORE, devices)?;
        let off_after = workspace.issue(OFF_AFTER, devices)?;
        let backlog = workspace.issue_with(
            BACKLOG,
            devices.min(BACKLOG_MAX),
            &["--federation-url", &collector.url],
        )?;
        workspace.import(&[&off_before, &on, &off_after, &backlog])?;
        workspace.append_config(CONFIG)?;
        Ok(Self {
            collector,
            on,
            off_before,
            off_after,
            backlog,
        })
    }
}
/// `[federation]` of the server: a pass every second, the largest batches.
pub const CONFIG: &str = "\n[federation]\ninterval = \"1s\"\nbatch_size = 500\ntimeout = \"10s\"\n";
/// How long the collector may take to acknowledge everything after the load.
const DRAIN_CAP: Duration = Duration::from_secs(300);

/// A running `seatkeep provider collect --listen`.
pub struct Collector {
    child: Child,
    /// Held open: the collector's later lines must not meet a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
    pub url: String,
}

impl Collector {
    /// Starts the collector with the provider key of `workspace`, storing under
    /// `DIR/collector`, reading issued key files from `DIR/issued`.
    pub fn start(workspace: &Workspace) -> Result<Self> {
        let data = workspace.dir.join("collector");
        let issued = workspace.dir.join("issued");
        std::fs::create_dir_all(&issued).context("create the collector's issued folder")?;
        let mut child = Command::new(&workspace.bin)
            .args(["provider", "collect", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .arg("--issued")
            .arg(&issued)
            .arg("--key")
            .arg(workspace.dir.join(format!("provider/{KID}.pem")))
            .args(["--kid", KID])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start seatkeep provider collect")?;
        let mut line = String::new();
        let mut stdout = child.stdout.take().map(BufReader::new);
        if let Some(reader) = stdout.as_mut() {
            reader
                .read_line(&mut line)
                .context("read the collector's address")?;
        }
        let port = line
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(['/', ' ', '\n']).next())
            .and_then(|p| p.parse::<u16>().ok());
        match port {
            Some(port) => Ok(Self {
                child,
                _stdout: stdout,
                url: format!("http://127.0.0.1:{port}/federation"),
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(BenchError::new(format!(
                    "the collector did not say where it listens: {line:?}"
                )))
            }
        }
    }

    /// CPU seconds the collector has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        crate::server::process_cpu_seconds(self.child.id())
    }

    /// Gives the collector the key file of `lic` (its only source of the server's key).
    pub fn knows(&self, workspace: &Workspace, lic: &str) -> Result<()> {
        let name = format!("{lic}.seatkey");
        std::fs::copy(
            workspace.dir.join(&name),
            workspace.dir.join("issued").join(&name),
        )
        .map(|_| ())
        .with_context(|| format!("copy {name} to the collector"))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pusher's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    /// Events of `bench-fed` (its import and every activation).
    pub events: i64,
    /// Events not yet acknowledged when the last activation was answered.
    pub backlog_at_load_end: i64,
    /// Seconds from the first activation to the last acknowledgement.
    pub seconds_to_all_acked: f64,
    /// Events acknowledged per second over that time (pushing while the load ran).
    pub events_per_second: f64,
    /// Seconds from the load's end to the last acknowledgement.
    pub drain_seconds: f64,
    /// The backlog divided by the drain time (pushing alone); 0 when there was no backlog.
    pub drain_events_per_second: f64,
    /// CPU seconds the collector used from the load's start to the last acknowledgement (on
    /// this machine it shares the cores with the server and the load client).
    pub collector_cpu_seconds: f64,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

fn number(conn: &mut seatkeep::db::DbConn, sql: &str, lic: &str) -> Result<i64> {
    diesel::sql_query(sql)
        .bind::<Text, _>(lic)
        .get_result::<Number>(conn)
        .map(|n| n.v)
        .with_context(|| format!("query {sql}"))
}

fn last_seq(conn: &mut seatkeep::db::DbConn, lic: &str) -> Result<i64> {
    number(
        conn,
        "SELECT COALESCE(MAX(seq), 0) AS v FROM federation_events WHERE license_id = $1",
        lic,
    )
}

fn acked_seq(conn: &mut seatkeep::db::DbConn, lic: &str) -> Result<i64> {
    number(
        conn,
        "SELECT COALESCE(MAX(acked_seq), 0) AS v FROM federation_state WHERE license_id = $1",
        lic,
    )
}

/// Waits until every event of `bench-fed` is acknowledged; `load_started` and `load_ended`
/// are the activation phase's bounds.
pub fn drain(
    workspace: &Workspace,
    collector: &Collector,
    collector_cpu_before: f64,
    load_started: Instant,
    load_ended: Instant,
) -> Result<Delivery> {
    let mut conn = workspace.db.connect()?;
    let events = last_seq(&mut conn, LICENSE)?;
    let backlog = events - acked_seq(&mut conn, LICENSE)?;
    loop {
        let acked = acked_seq(&mut conn, LICENSE)?;
        if acked >= events {
            break;
        }
        if load_ended.elapsed() > DRAIN_CAP {
            return Err(BenchError::new(format!(
                "the collector acknowledged {acked} of {events} events in {} s",
                DRAIN_CAP.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Polled every 20 ms: the figures are good to about that.
    let seconds_to_all_acked = load_started.elapsed().as_secs_f64();
    let drain_seconds = load_ended.elapsed().as_secs_f64();
    let rate = |n: i64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    Ok(Delivery {
        events,
        backlog_at_load_end: backlog,
        seconds_to_all_acked,
        events_per_second: rate(events, seconds_to_all_acked),
        drain_seconds,
        drain_events_per_second: if backlog > 0 {
            rate(backlog, drain_seconds)
        } else {
            0.0
        },
        collector_cpu_seconds: collector.cpu_seconds()? - collector_cpu_before,
    })
}

/// `seatkeep federation flush` of the backlog license's pile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Flush {
    /// Events waiting, none acknowledged, when the flush started.
    pub events: i64,
    /// Wall-clock seconds of the `federation flush` processes until all were acknowledged.
    pub seconds: f64,
    pub events_per_second: f64,
    pub collector_cpu_seconds: f64,
}

/// Gives the collector the backlog license's key file and flushes until it holds them all.
pub fn flush_backlog(workspace: &Workspace, setup: &Setup) -> Result<Flush> {
    let mut conn = workspace.db.connect()?;
    let events = last_seq(&mut conn, BACKLOG)?;
    let acked_before = acked_seq(&mut conn, BACKLOG)?;
    if acked_before > 0 {
        return Err(BenchError::new(format!(
            "{BACKLOG}: the collector took {acked_before} events before it knew the license"
        )));
    }
    setup.collector.knows(workspace, BACKLOG)?;
    // The collector reads its issued folder again at most once a second.
    std::thread::sleep(Duration::from_millis(1100));
    let cpu_before = setup.collector.cpu_seconds()?;
    let config = workspace.config();
    let started = Instant::now();
    for _ in 0..10 {
        // A pass pushes every license with a URL; the others are up to date.
        workspace.seatkeep([
            "--config".as_ref(),
            config.as_os_str(),
            "federation".as_ref(),
            "flush".as_ref(),
        ])?;
        if acked_seq(&mut conn, BACKLOG)? >= events {
            let seconds = started.elapsed().as_secs_f64();
            return Ok(Flush {
                events,
                seconds,
                events_per_second: if seconds > 0.0 {
                    events as f64 / seconds
                } else {
                    0.0
                },
                collector_cpu_seconds: setup.collector.cpu_seconds()? - cpu_before,
            });
        }
    }
    Err(BenchError::new(format!(
        "{BACKLOG}: ten flushes did not deliver {events} events"
    )))
}
