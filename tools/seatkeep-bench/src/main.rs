//! `seatkeep-bench`: activation throughput and latency of a real `seatkeep serve`, side by
//! side with the machine's own limits (issue 5; BENCHMARKS.md has the figures).
//!
//! One run: a fresh data folder and database set up through the normal CLI (`init`,
//! `provider keygen`, `provider issue`, `keyfile import`); the limits measured (signatures
//! per second of the server key on one core, durable commits per second of a bare seat
//! transaction); the release server started; three phases driven over C keep-alive HTTP/1.1
//! connections from a single-threaded client (new activations of distinct devices, the same
//! devices again, and new devices on a license with fewer seats than requests); the server's
//! memory read; and the database checked to hold exactly the seats that were granted. The
//! exit status is non-zero when that check fails.
//!
//! ```text
//! cargo run --release -p seatkeep-bench -- [--json] [--connections 32]
//!     [--algorithm ed25519|rsa-2048] [--postgres URL] [--devices N] [--console]
//!     [--federation] [--metered]
//! ```

mod console;
mod error;
mod federation;
mod http;
mod limits;
mod load;
mod metered;
mod report;
mod server;
mod setup;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use error::{BenchError, Context, Result};
use load::{ActivationTemplate, Outcome, Phase};
use report::{Phases, Report, RunInfo};
use server::Server;
use setup::{License, Workspace};

/// Wall-clock caps of the phases (a slow server stops early instead of running long).
const NEW_CAP: Duration = Duration::from_secs(45);
const REPEAT_CAP: Duration = Duration::from_secs(20);
const EXHAUSTION_CAP: Duration = Duration::from_secs(30);
/// How long the server may take to become ready after logging its address.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(
    name = "seatkeep-bench",
    about = "Activation benchmark of a real `seatkeep serve` against the machine's own limits"
)]
struct Args {
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,
    /// Server key type.
    #[arg(long, value_enum, default_value_t = KeyType::Ed25519)]
    algorithm: KeyType,
    /// Use PostgreSQL: a URL of an existing database on the server, used to create (and
    /// drop at the end) a fresh database for the run, e.g.
    /// postgres://postgres@127.0.0.1:55440/postgres.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Distinct devices in the new-activation phase (the license has this many seats).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(8..=10_000_000))]
    devices: u32,
    /// Requests in the repeat phase (cycling over the activated devices); default 3 × devices.
    #[arg(long)]
    repeats: Option<u32>,
    /// Folder under which the temporary data folder is made (default: the system temp
    /// folder). Its disk is the one measured.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Keep the data folder (server log, databases) instead of deleting it.
    #[arg(long)]
    keep: bool,
    /// Command the server is started under, e.g. "valgrind --tool=callgrind" (split on
    /// spaces).
    #[arg(long, value_name = "CMD")]
    server_wrapper: Option<String>,
    /// Shell command run before each phase and at the end, with SEATKEEP_BENCH_SERVER_PID
    /// and SEATKEEP_BENCH_PHASE (new, repeat, exhaustion, end) set; e.g.
    /// 'callgrind_control -d $SEATKEEP_BENCH_SERVER_PID' to split a profile by phase.
    #[arg(long, value_name = "CMD")]
    phase_hook: Option<String>,
    /// After the new activations, time the console's license page of the main license
    /// (first page, a search, late pages); e.g. with --devices 100000.
    #[arg(long)]
    console: bool,
    /// After the new activations, as many new activations again on a license that pushes
    /// its federation events to a local collector, then the time until all are acknowledged.
    #[arg(long)]
    federation: bool,
    /// After the other phases, a metered license: as many devices register a key, ask for
    /// one packet each, and ask again with the same request (answered from storage).
    #[arg(long)]
    metered: bool,
}

/// The server key types of `seatkeep init --algorithm`, by the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeyType {
    /// Ed25519 (default): small, fast, constant time.
    #[value(name = "ed25519")]
    Ed25519,
    /// RSA 2048 bit, for verifiers that only know RSA.
    #[value(name = "rsa-2048")]
    Rsa2048,
    /// RSA 3072 bit.
    #[value(name = "rsa-3072")]
    Rsa3072,
}

impl Args {
    /// The `--algorithm` value passed on to `seatkeep init`.
    fn algorithm_name(&self) -> String {
        self.algorithm
            .to_possible_value()
            .map_or_else(|| "ed25519".to_owned(), |v| v.get_name().to_owned())
    }

    /// Seats of the exhaustion license, and requests sent to it (twice as many).
    fn exhaustion_plan(&self) -> (u32, u32) {
        let seats = (self.devices / 4).max(1);
        (seats, seats * 2)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("seatkeep-bench: cannot encode the report: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report::table(&report));
            }
            if report.check.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("seatkeep-bench: the database does not hold exactly the seats granted");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("seatkeep-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn progress(message: &str) {
    eprintln!("seatkeep-bench: {message}");
}

fn run(args: &Args) -> Result<Report> {
    let bin = setup::locate_server_binary()?;
    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let workspace = Workspace::create(&parent, bin, args.postgres.as_deref(), args.keep)?;
    progress(&format!(
        "{} server key, {} database, in {}",
        args.algorithm_name(),
        workspace.db.kind(),
        workspace.dir.display()
    ));
    workspace.init(&args.algorithm_name())?;
    let (scarce_seats, _) = args.exhaustion_plan();
    let main = workspace.issue("bench-main", args.devices)?;
    let scarce = workspace.issue("bench-scarce", scarce_seats)?;
    workspace.import(&[&main, &scarce])?;
    let fleet = if args.metered {
        Some(metered::Fleet::create(&workspace, args.devices)?)
    } else {
        None
    };
    let federated = if args.federation {
        Some(federation::Setup::create(&workspace, args.devices)?)
    } else {
        None
    };

    progress("measuring the machine's limits (signing, durable commits)");
    let server_key = workspace.dir.join("server-key.pem");
    let mut machine = limits::MachineLimits::default();
    machine.measure(&server_key, &workspace.db, &workspace.dir)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the load generator's runtime")?;
    let wrapper: Vec<String> = args
        .server_wrapper
        .as_deref()
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut server = Server::start(&workspace, &wrapper)?;
    runtime.block_on(load::wait_ready(server.addr, READY_TIMEOUT))?;
    let [new, repeat, exhaustion] = runtime.block_on(drive(args, &server, &main, &scarce))?;
    let metered_run = match &fleet {
        Some(fleet) => Some(runtime.block_on(metered_phases(args, &server, &workspace, fleet))?),
        None => None,
    };
    let federation_run = match &federated {
        Some(setup) => Some(runtime.block_on(federated_phases(args, &server, &workspace, setup))?),
        None => None,
    };
    let console_timings = if args.console {
        progress("console: timing the license page");
        let cookie = console::session(&workspace)?;
        // The late page is near the end of the seats actually granted.
        let granted = u32::try_from(new.created + repeat.created).unwrap_or(args.devices);
        Some(runtime.block_on(console::run(server.addr, &cookie, &main.id, granted))?)
    } else {
        None
    };
    let memory = server.memory()?;
    hook(args, &server, "end");
    server.stop()?;
    progress("measuring the machine's limits again");
    machine.measure(&server_key, &workspace.db, &workspace.dir)?;

    let mut expected = vec![
        (main.id.as_str(), main.seats, new.created + repeat.created),
        (scarce.id.as_str(), scarce.seats, exhaustion.created),
    ];
    if let (Some(setup), Some(run)) = (&federated, &federation_run) {
        for (license, outcome) in [
            (&setup.off_before, &run.off_before),
            (&setup.on, &run.on),
            (&setup.off_after, &run.off_after),
            (&setup.backlog, &run.backlog),
        ] {
            expected.push((license.id.as_str(), license.seats, outcome.created));
        }
    }
    let licenses = verify::check(&workspace.db, &expected)?;
    let run = RunInfo {
        algorithm: args.algorithm_name(),
        database: workspace.db.kind(),
        durability: machine.durability.clone(),
        connections: usize::from(args.connections),
        devices: args.devices,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let phases = Phases {
        new: &new,
        repeat: &repeat,
        exhaustion: &exhaustion,
        exhaustion_seats: scarce.seats,
    };
    let mut report = report::build(run, &phases, memory, &machine, licenses);
    report.console = console_timings;
    if let Some((register, packets, repeats)) = metered_run {
        let pool = metered::check(&workspace, packets.created)?;
        report.check.ok &= pool.ok;
        report.metered = Some(report::MeteredReport {
            register: report::PhaseReport::from(&register),
            packets: report::PhaseReport::from(&packets),
            repeats: report::PhaseReport::from(&repeats),
            pool,
        });
    }
    report.federation = federation_run.map(|run| report::FederationReport {
        off_before: report::PhaseReport::from(&run.off_before),
        on: report::PhaseReport::from(&run.on),
        off_after: report::PhaseReport::from(&run.off_after),
        delivery: run.delivery,
        flush: run.flush,
    });
    Ok(report)
}

/// The three phases, in order.
async fn drive(
    args: &Args,
    server: &Server,
    main: &License,
    scarce: &License,
) -> Result<[Outcome; 3]> {
    let addr = server.addr;
    let connections = usize::from(args.connections);

    hook(args, server, "new");
    progress(&format!(
        "new activations: {} devices over {connections} connections",
        args.devices
    ));
    let new = Phase {
        name: "new",
        template: ActivationTemplate::new(addr, &main.key_file, "bench-new-")?.into(),
        devices: (0..args.devices).collect(),
        time_cap: new_cap(args.devices),
    };
    let new = measured(server, load::run(addr, connections, new)).await?;
    if new.granted.is_empty() {
        return Err(BenchError::new(format!(
            "no new activation succeeded: {}",
            new.messages.join("; ")
        )));
    }

    hook(args, server, "repeat");
    let repeats = args.repeats.unwrap_or(args.devices.saturating_mul(3));
    progress(&format!(
        "repeat activations: {repeats} requests over the {} activated devices",
        new.granted.len()
    ));
    let repeat = Phase {
        name: "repeat",
        template: ActivationTemplate::new(addr, &main.key_file, "bench-new-")?.into(),
        devices: new
            .granted
            .iter()
            .copied()
            .cycle()
            .take(repeats as usize)
            .collect(),
        time_cap: REPEAT_CAP,
    };
    let repeat = measured(server, load::run(addr, connections, repeat)).await?;

    hook(args, server, "exhaustion");
    let (seats, requests) = args.exhaustion_plan();
    progress(&format!(
        "exhaustion: {requests} new devices on a license of {seats} seats"
    ));
    let exhaustion = Phase {
        name: "exhaustion",
        template: ActivationTemplate::new(addr, &scarce.key_file, "bench-scarce-")?.into(),
        devices: (0..requests).collect(),
        time_cap: EXHAUSTION_CAP,
    };
    let exhaustion = measured(server, load::run(addr, connections, exhaustion)).await?;
    Ok([new, repeat, exhaustion])
}

/// The federation phases' outcomes.
struct FederationRun {
    off_before: Outcome,
    on: Outcome,
    off_after: Outcome,
    delivery: federation::Delivery,
    backlog: Outcome,
    flush: federation::Flush,
}

/// New activations on a license without a URL, on the federated license while its events
/// are pushed, and on a second license without a URL; then the wait until the collector has
/// acknowledged every event of the federated one.
async fn federated_phases(
    args: &Args,
    server: &Server,
    workspace: &Workspace,
    setup: &federation::Setup,
) -> Result<FederationRun> {
    let connections = usize::from(args.connections);
    let phase = |license: &License, prefix: &str| -> Result<Phase> {
        Ok(Phase {
            name: "federation",
            template: ActivationTemplate::new(server.addr, &license.key_file, prefix)?.into(),
            devices: (0..args.devices).collect(),
            time_cap: new_cap(args.devices),
        })
    };
    hook(args, server, "federation");
    progress(&format!(
        "federation off: {} new devices on {}",
        args.devices, setup.off_before.id
    ));
    let off_before = phase(&setup.off_before, "bench-nofed-1-")?;
    let off_before = measured(server, load::run(server.addr, connections, off_before)).await?;
    progress(&format!(
        "federation on: {} new devices on {}, pushed to a local collector",
        args.devices, setup.on.id
    ));
    let collector_cpu = setup.collector.cpu_seconds()?;
    let on = phase(&setup.on, "bench-fed-")?;
    let started = std::time::Instant::now();
    let on = measured(server, load::run(server.addr, connections, on)).await?;
    let ended = std::time::Instant::now();
    progress("federation: waiting for the collector to acknowledge every event");
    let delivery = federation::drain(workspace, &setup.collector, collector_cpu, started, ended)?;
    progress(&format!(
        "federation off: {} new devices on {}",
        args.devices, setup.off_after.id
    ));
    let off_after = phase(&setup.off_after, "bench-nofed-2-")?;
    let off_after = measured(server, load::run(server.addr, connections, off_after)).await?;
    let backlog_devices = args.devices.min(federation::BACKLOG_MAX);
    progress(&format!(
        "federation backlog: {backlog_devices} new devices on {}, which the collector refuses",
        setup.backlog.id
    ));
    let backlog = Phase {
        name: "backlog",
        template: ActivationTemplate::new(server.addr, &setup.backlog.key_file, "bench-pile-")?
            .into(),
        devices: (0..backlog_devices).collect(),
        time_cap: new_cap(backlog_devices),
    };
    let backlog = load::run(server.addr, connections, backlog).await?;
    progress("federation backlog: `seatkeep federation flush` delivers it");
    let flush = federation::flush_backlog(workspace, setup)?;
    Ok(FederationRun {
        off_before,
        on,
        off_after,
        delivery,
        backlog,
        flush,
    })
}

/// The metered phases: registrations with device keys, one packet per device, the same
/// requests again.
async fn metered_phases(
    args: &Args,
    server: &Server,
    workspace: &Workspace,
    fleet: &metered::Fleet,
) -> Result<(Outcome, Outcome, Outcome)> {
    let connections = usize::from(args.connections);
    let devices: Vec<u32> = (0..args.devices).collect();
    hook(args, server, "metered");
    progress(&format!(
        "metered: {} devices register an initialization key",
        args.devices
    ));
    let register = Phase {
        name: "meter-register",
        template: load::Requests::Prebuilt(fleet.registrations(server.addr)?),
        devices: devices.clone(),
        time_cap: new_cap(args.devices),
    };
    let register = measured(server, load::run(server.addr, connections, register)).await?;
    progress("metered: one packet request each (signed before the phase)");
    let requests = fleet.packet_requests(workspace, server.addr)?;
    let packets = Phase {
        name: "packets",
        template: load::Requests::Prebuilt(requests.clone()),
        devices: devices.clone(),
        time_cap: new_cap(args.devices),
    };
    let packets = measured(server, load::run(server.addr, connections, packets)).await?;
    progress("metered: the same requests again");
    let repeats = Phase {
        name: "packet-repeats",
        template: load::Requests::Prebuilt(requests),
        devices,
        time_cap: REPEAT_CAP,
    };
    let repeats = measured(server, load::run(server.addr, connections, repeats)).await?;
    Ok((register, packets, repeats))
}

/// The new-activation phases' wall-clock cap: 45 s, or longer for big runs (100,000 seats
/// for the console figures must all be granted).
fn new_cap(devices: u32) -> Duration {
    NEW_CAP.max(Duration::from_millis(u64::from(devices) * 2))
}

/// Runs a phase and adds the CPU time the server and this process spent on it.
async fn measured(
    server: &Server,
    phase: impl std::future::Future<Output = Result<Outcome>>,
) -> Result<Outcome> {
    let me = std::process::id();
    let (server_before, client_before) = (server.cpu_seconds()?, server::process_cpu_seconds(me)?);
    let mut outcome = phase.await?;
    outcome.server_cpu = server.cpu_seconds()? - server_before;
    outcome.client_cpu = server::process_cpu_seconds(me)? - client_before;
    Ok(outcome)
}

/// Runs `--phase-hook` (if given); a failing hook is reported, not fatal.
fn hook(args: &Args, server: &Server, phase: &str) {
    let Some(command) = &args.phase_hook else {
        return;
    };
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .env("SEATKEEP_BENCH_SERVER_PID", server.pid().to_string())
        .env("SEATKEEP_BENCH_PHASE", phase)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("seatkeep-bench: warning: phase hook before {phase}: {s}"),
        Err(e) => eprintln!("seatkeep-bench: warning: phase hook before {phase}: {e}"),
    }
}
