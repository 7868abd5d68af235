//! The server under test: `seatkeep serve` as a child process, its bound address read from
//! its log line (`url=http://127.0.0.1:PORT`), its memory read from `/proc`.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Context, Result};
use crate::setup::Workspace;

/// How long the server may take to log its address (generous for a profiler wrapper).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a graceful shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Memory of the server process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Memory {
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Current resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
}

/// A running `seatkeep serve`; killed on drop if still running.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Starts `[WRAPPER...] seatkeep --config CONFIG serve`, logging to a file in the
    /// workspace, and waits for the address line.
    pub fn start(workspace: &Workspace, wrapper: &[String]) -> Result<Self> {
        let log = workspace.dir.join("server.log");
        let log_file = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&workspace.bin);
                c
            }
            None => Command::new(&workspace.bin),
        };
        command
            .arg("--config")
            .arg(workspace.config())
            .arg("serve")
            .current_dir(&workspace.dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        let child = command.spawn().context("start seatkeep serve")?;
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        server.addr = server.wait_for_address()?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_for_address(&mut self) -> Result<SocketAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(addr) = bound_address(&text) {
                return addr;
            }
            if let Some(status) = self.child.try_wait().context("watch seatkeep serve")? {
                return Err(BenchError::new(format!(
                    "seatkeep serve exited ({status}) before listening: {}",
                    last_lines(&text, 5)
                )));
            }
            if Instant::now() > deadline {
                return Err(BenchError::new(format!(
                    "seatkeep serve did not log its address within {}s: {}",
                    START_TIMEOUT.as_secs(),
                    last_lines(&text, 5)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// CPU seconds the server has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        process_cpu_seconds(self.pid())
    }

    /// Peak and current RSS.
    pub fn memory(&self) -> Result<Memory> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .ok_or_else(|| BenchError::new(format!("{path}: no {name}")))
        };
        Ok(Memory {
            peak_rss_kib: field("VmHWM:")?,
            rss_kib: field("VmRSS:")?,
        })
    }

    /// SIGTERM, then waits for the graceful shutdown (SIGKILL after a minute).
    pub fn stop(&mut self) -> Result<()> {
        if self
            .child
            .try_wait()
            .context("watch seatkeep serve")?
            .is_some()
        {
            return Err(BenchError::new("seatkeep serve exited during the run"));
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("run kill -TERM")?;
        if !status.success() {
            return Err(BenchError::new("kill -TERM on seatkeep serve failed"));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self
                .child
                .try_wait()
                .context("wait for seatkeep serve")?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().context("kill seatkeep serve")?;
        Err(BenchError::new(format!(
            "seatkeep serve did not stop within {}s of SIGTERM",
            STOP_TIMEOUT.as_secs()
        )))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time (user + system, all threads) of a process, from `/proc/PID/stat`.
pub fn process_cpu_seconds(pid: u32) -> Result<f64> {
    // USER_HZ, the unit of these fields, is 100 on every Linux architecture.
    const USER_HZ: f64 = 100.0;
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| BenchError::new(format!("{path}: unexpected format")))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|t| t as f64 / USER_HZ)
            .ok_or_else(|| BenchError::new(format!("{path}: no CPU time field")))
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state field.
    Ok(ticks(11)? + ticks(12)?)
}

/// The address of the first `url=http://HOST:PORT` in the log.
fn bound_address(log: &str) -> Option<Result<SocketAddr>> {
    // Only complete lines: the server may be writing this one right now.
    let complete = &log[..=log.rfind('\n')?];
    let rest = complete.split("url=").nth(1)?;
    let url = rest.split_whitespace().next()?;
    let addr = url.strip_prefix("http://").unwrap_or(url);
    Some(
        addr.parse()
            .with_context(|| format!("seatkeep serve logged an odd address {url}")),
    )
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::bound_address;

    #[test]
    fn address_is_read_from_the_log_line() {
        let log = "2026 INFO seatkeep::web: listening url=http://127.0.0.1:4242 server_id=ab\n";
        let addr = bound_address(log).unwrap().unwrap();
        assert_eq!(addr.port(), 4242);
        assert!(bound_address("starting\n").is_none());
    }
}
