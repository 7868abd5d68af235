//! The figures: a readable table or JSON, and the targets with met / missed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::limits::{MachineLimits, mean};
use crate::load::{Outcome, Summary};
use crate::server::Memory;
use crate::verify::LicenseCheck;

/// What was measured and how.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// Server key type (`ed25519`, `rsa-2048`, ...).
    pub algorithm: String,
    /// `sqlite` or `postgresql`.
    pub database: &'static str,
    /// Durability settings of the database, read back from it.
    pub durability: String,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Devices in the new-activation phase.
    pub devices: u32,
    /// Cores available.
    pub cores: usize,
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Throughput and latency.
    #[serde(flatten)]
    pub summary: Summary,
    /// 201 answers.
    pub created: u64,
    /// 200 answers.
    pub existing: u64,
    /// 409 `seats_exhausted` answers.
    pub exhausted: u64,
    /// Other statuses, by code.
    pub other: BTreeMap<u16, u64>,
    /// Requests without an answer.
    pub errors: u64,
    /// Stopped by the wall-clock cap.
    pub capped: bool,
    /// First unexpected answers or errors.
    pub messages: Vec<String>,
}

impl From<&Outcome> for PhaseReport {
    fn from(outcome: &Outcome) -> Self {
        Self {
            summary: outcome.summary(),
            created: outcome.created,
            existing: outcome.existing,
            exhausted: outcome.exhausted,
            other: outcome.other.clone(),
            errors: outcome.errors,
            capped: outcome.capped,
            messages: outcome.messages.clone(),
        }
    }
}

/// The machine's limits (means of the measurements before and after the load).
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Signatures per second of the server's key, one core.
    pub signatures_per_second_one_core: f64,
    /// Each measurement (before, after).
    pub signatures_measured: Vec<f64>,
    pub signature_algorithm: String,
    /// Signatures per second × cores.
    pub signatures_per_second_all_cores: f64,
    /// Durable commits per second of the bare seat transaction, one connection.
    pub commits_per_second: f64,
    /// Each measurement (before, after).
    pub commits_measured: Vec<f64>,
}

/// New activations against each limit.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// New activations/s ÷ commit limit.
    pub new_vs_commit_limit: f64,
    /// New activations/s ÷ (signatures/s on one core × cores).
    pub new_vs_signing_limit: f64,
}

/// One target of the issue.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    pub value: f64,
    /// `>=` or `<=`.
    pub rule: &'static str,
    pub threshold: f64,
    pub met: bool,
    /// How far off, in percent of the threshold (0 when met).
    pub missed_by_percent: f64,
    /// Whether this target is defined for this configuration (issue 5: Ed25519 + SQLite +
    /// 32 connections for the general ones; RSA keys for the signing one).
    pub applies: bool,
}

impl Target {
    fn at_least(name: &str, value: f64, threshold: f64, applies: bool) -> Self {
        let met = value >= threshold;
        Self {
            name: name.to_owned(),
            value,
            rule: ">=",
            threshold,
            met,
            missed_by_percent: if met {
                0.0
            } else {
                (threshold - value) / threshold * 100.0
            },
            applies,
        }
    }

    fn at_most(name: &str, value: f64, threshold: f64, applies: bool) -> Self {
        let met = value <= threshold;
        Self {
            name: name.to_owned(),
            value,
            rule: "<=",
            threshold,
            met,
            missed_by_percent: if met {
                0.0
            } else {
                (value - threshold) / threshold * 100.0
            },
            applies,
        }
    }
}

/// Seats in the database against the seats granted.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Every license agrees and no request went unanswered.
    pub ok: bool,
    pub licenses: Vec<LicenseCheck>,
    /// Requests without an answer, over all phases (their outcome is unknown).
    pub unanswered: u64,
}

/// Everything the benchmark prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: RunInfo,
    /// Distinct devices, first time.
    pub new_activations: PhaseReport,
    /// The same devices again.
    pub repeat_activations: PhaseReport,
    /// New devices on a license with fewer seats than requests.
    pub exhaustion: PhaseReport,
    /// Seats of the exhaustion license.
    pub exhaustion_seats: u32,
    /// Peak server RSS over the run, MiB.
    pub server_peak_rss_mib: f64,
    /// Current server RSS at the end of the run, MiB.
    pub server_rss_mib: f64,
    pub limits: Limits,
    pub ratios: Ratios,
    /// Targets of the issue.
    pub targets: Vec<Target>,
    pub check: Check,
    /// The console's license page (`--console`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console: Option<Vec<crate::console::PageTiming>>,
    /// Provisioning packets (`--metered`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metered: Option<MeteredReport>,
    /// Federation on and off (`--federation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationReport>,
}

/// The metered phases and the pool's check.
#[derive(Debug, Clone, Serialize)]
pub struct MeteredReport {
    pub register: PhaseReport,
    pub packets: PhaseReport,
    pub repeats: PhaseReport,
    pub pool: crate::metered::PoolCheck,
}

/// New activations with federation off (licenses without a URL: events written, nothing
/// pushed) just before and just after the same load on a license pushed to a local collector
/// every second, and the delivery.
#[derive(Debug, Clone, Serialize)]
pub struct FederationReport {
    pub off_before: PhaseReport,
    pub on: PhaseReport,
    pub off_after: PhaseReport,
    /// The backlog license's pile delivered by `seatkeep federation flush`.
    pub flush: crate::federation::Flush,
    pub delivery: crate::federation::Delivery,
}

/// The measured phases.
pub struct Phases<'a> {
    pub new: &'a Outcome,
    pub repeat: &'a Outcome,
    pub exhaustion: &'a Outcome,
    /// Seats of the exhaustion license.
    pub exhaustion_seats: u32,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Puts the figures together.
pub fn build(
    run: RunInfo,
    phases: &Phases<'_>,
    memory: Memory,
    machine: &MachineLimits,
    licenses: Vec<LicenseCheck>,
) -> Report {
    let new = PhaseReport::from(phases.new);
    let repeat = PhaseReport::from(phases.repeat);
    let signatures = mean(&machine.signatures);
    let commits = mean(&machine.commits);
    let all_cores = signatures * run.cores as f64;
    let ratios = Ratios {
        new_vs_commit_limit: new.summary.per_second / commits,
        new_vs_signing_limit: new.summary.per_second / all_cores,
    };
    let unanswered = phases.new.errors + phases.repeat.errors + phases.exhaustion.errors;
    let check = Check {
        ok: unanswered == 0 && licenses.iter().all(|l| l.ok),
        licenses,
        unanswered,
    };
    let rss = mib(memory.rss_kib);
    let targets = targets(&run, &new, &repeat, &ratios, rss);
    Report {
        console: None,
        metered: None,
        federation: None,
        limits: Limits {
            signatures_per_second_one_core: signatures,
            signatures_measured: machine.signatures.clone(),
            signature_algorithm: machine.algorithm.clone(),
            signatures_per_second_all_cores: all_cores,
            commits_per_second: commits,
            commits_measured: machine.commits.clone(),
        },
        run,
        new_activations: new,
        repeat_activations: repeat,
        exhaustion: PhaseReport::from(phases.exhaustion),
        exhaustion_seats: phases.exhaustion_seats,
        server_peak_rss_mib: mib(memory.peak_rss_kib),
        server_rss_mib: rss,
        ratios,
        targets,
        check,
    }
}

fn targets(
    run: &RunInfo,
    new: &PhaseReport,
    repeat: &PhaseReport,
    ratios: &Ratios,
    rss_mib: f64,
) -> Vec<Target> {
    let rsa = run.algorithm.starts_with("rsa");
    let reference = !rsa && run.database == "sqlite" && run.connections == 32;
    vec![
        Target::at_least(
            "new activations / commit limit",
            ratios.new_vs_commit_limit,
            0.70,
            reference,
        ),
        Target::at_least(
            "new activations per second",
            new.summary.per_second,
            3000.0,
            reference,
        ),
        Target::at_least(
            "repeat activations per second",
            repeat.summary.per_second,
            15000.0,
            reference,
        ),
        Target::at_most("new p99 latency (ms)", new.summary.p99_ms, 20.0, reference),
        Target::at_most(
            "repeat p99 latency (ms)",
            repeat.summary.p99_ms,
            20.0,
            reference,
        ),
        Target::at_most("server RSS at end (MiB)", rss_mib, 100.0, reference),
        Target::at_least(
            "new activations / (signatures/s x cores)",
            ratios.new_vs_signing_limit,
            0.70,
            rsa,
        ),
    ]
}

/// The report as a readable table.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let run = &report.run;
    let _ = writeln!(
        out,
        "seatkeep-bench: {} server key, {} ({}), {} connections, {} cores, {} devices\n",
        run.algorithm, run.database, run.durability, run.connections, run.cores, run.devices
    );
    let _ = writeln!(
        out,
        "{:<22} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8}  answers",
        "phase", "requests", "per sec", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    let phases = [
        ("new activations", &report.new_activations),
        ("repeat activations", &report.repeat_activations),
        ("exhaustion", &report.exhaustion),
    ];
    for (name, phase) in phases {
        let s = &phase.summary;
        let _ = writeln!(
            out,
            "{name:<22} {:>9} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
            s.requests,
            s.per_second,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.max_ms,
            answers(phase)
        );
    }
    let limits = &report.limits;
    let _ = writeln!(
        out,
        "\n{:<22} {:>16} {:>14} {:>16}",
        "CPU per request", "server us", "server cores", "load client us"
    );
    for (name, phase) in phases {
        let s = &phase.summary;
        let _ = writeln!(
            out,
            "{name:<22} {:>16.0} {:>14.2} {:>16.0}",
            s.server_cpu_us_per_request, s.server_cores_busy, s.client_cpu_us_per_request
        );
    }
    let _ = writeln!(
        out,
        "\nexhaustion license: {} seats; server RSS at end {:.1} MiB (peak {:.1} MiB)",
        report.exhaustion_seats, report.server_rss_mib, report.server_peak_rss_mib
    );
    let _ = writeln!(
        out,
        "limit: {:.0} {} signatures/s on one core, {:.0} on {} cores (before/after the load: {})",
        limits.signatures_per_second_one_core,
        limits.signature_algorithm,
        limits.signatures_per_second_all_cores,
        run.cores,
        list(&limits.signatures_measured)
    );
    let _ = writeln!(
        out,
        "limit: {:.0} durable commits/s of the bare seat transaction (before/after: {})",
        limits.commits_per_second,
        list(&limits.commits_measured)
    );
    let _ = writeln!(
        out,
        "ratios: new / commit limit {:.2}; new / signing limit {:.2}\n",
        report.ratios.new_vs_commit_limit, report.ratios.new_vs_signing_limit
    );
    let _ = writeln!(out, "targets (issue 5):");
    for t in &report.targets {
        let verdict = match (t.met, t.applies) {
            (true, true) => "met".to_owned(),
            (false, true) => format!("MISSED by {:.0}%", t.missed_by_percent),
            (_, false) => "(not defined for this configuration)".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {:<42} {:>10.2} {} {:<8} {verdict}",
            t.name, t.value, t.rule, t.threshold
        );
    }
    let _ = writeln!(
        out,
        "\ndatabase check: {}",
        if report.check.ok { "ok" } else { "FAILED" }
    );
    for l in &report.check.licenses {
        let _ = writeln!(
            out,
            "  {:<14} seats {:>6}  granted (201) {:>6}  in_use {:>6}  active seats {:>6}  {}",
            l.license,
            l.seats,
            l.granted,
            l.in_use,
            l.active_seats,
            if l.ok { "ok" } else { "MISMATCH" }
        );
    }
    if report.check.unanswered > 0 {
        let _ = writeln!(
            out,
            "  {} requests got no answer: their outcome is unknown",
            report.check.unanswered
        );
    }
    if let Some(console) = &report.console {
        out.push_str(&crate::console::table(console));
    }
    if let Some(m) = &report.metered {
        extra_phases(
            &mut out,
            "metered",
            &[
                ("register (device_jwk)", &m.register),
                ("packet requests", &m.packets),
                ("same requests again", &m.repeats),
            ],
        );
        let p = &m.pool;
        let _ = writeln!(
            out,
            "  pool check: {} packets answered 201, {} stored, {} units in them, issued {}, \
             {} devices flagged: {}",
            p.packets_answered_201,
            p.packets_stored,
            p.units_in_packets,
            p.pool_issued,
            p.devices_flagged,
            if p.ok { "ok" } else { "MISMATCH" }
        );
    }
    if let Some(f) = &report.federation {
        let (before, on, after) = (&f.off_before.summary, &f.on.summary, &f.off_after.summary);
        let off = (before.per_second + after.per_second) / 2.0;
        extra_phases(
            &mut out,
            "federation (new activations)",
            &[
                ("off, before", &f.off_before),
                ("on, pushed", &f.on),
                ("off, after", &f.off_after),
            ],
        );
        let d = &f.delivery;
        let _ = writeln!(
            out,
            "  on vs the mean of off: {:+.1} %\n\
             pusher: {} events acknowledged {:.2} s after the load began ({:.0} events/s); \
             backlog at the load's end {}, drained in {:.2} s ({:.0} events/s); \
             collector CPU {:.2} s",
            if off > 0.0 {
                (on.per_second / off - 1.0) * 100.0
            } else {
                0.0
            },
            d.events,
            d.seconds_to_all_acked,
            d.events_per_second,
            d.backlog_at_load_end,
            d.drain_seconds,
            d.drain_events_per_second,
            d.collector_cpu_seconds
        );
        let _ = writeln!(
            out,
            "  federation flush of a pile: {} events in {:.2} s ({:.0} events/s); collector CPU {:.2} s",
            f.flush.events,
            f.flush.seconds,
            f.flush.events_per_second,
            f.flush.collector_cpu_seconds
        );
    }
    out
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn answers(phase: &PhaseReport) -> String {
    let mut parts = Vec::new();
    for (label, count) in [
        ("201", phase.created),
        ("200", phase.existing),
        ("409 seats_exhausted", phase.exhausted),
    ] {
        if count > 0 {
            parts.push(format!("{label}: {count}"));
        }
    }
    for (status, count) in &phase.other {
        parts.push(format!("{status}: {count}"));
    }
    if phase.errors > 0 {
        parts.push(format!("errors: {}", phase.errors));
    }
    if phase.capped {
        parts.push("stopped by time cap".into());
    }
    parts.join(", ")
}

/// The table of the optional phases (`--metered`, `--federation`): one row each.
fn extra_phases(out: &mut String, title: &str, rows: &[(&str, &PhaseReport)]) {
    let _ = writeln!(
        out,
        "\n{title:<30} per sec   p95 ms   server us/request  answers"
    );
    for (name, phase) in rows {
        let s = &phase.summary;
        let _ = writeln!(
            out,
            "  {name:<27} {:>8.0} {:>8.2} {:>19.0}  {}",
            s.per_second,
            s.p95_ms,
            s.server_cpu_us_per_request,
            answers(phase)
        );
    }
}
