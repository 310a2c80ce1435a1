//! `nexus serve` as a child process, as a user starts it: the release binary beside the
//! benchmark's own (or the one `NEXUS_BENCH_BINARY` names), its own data directory, no
//! inherited `NEXUS_*` settings, optionally pinned to one core with `taskset`. Used where a
//! figure must be the shipped server's, not an in-process assembly's.

// The benchmark starts `nexus` as a child process and signals it.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long a start may take before the benchmark gives up on it.
pub const START_LIMIT: Duration = Duration::from_secs(120);

/// The release `nexus` binary beside this one (`cargo xtask bench` builds it first), or the one
/// `NEXUS_BENCH_BINARY` names: the shipped build (`cargo xtask dist` puts it in
/// `target/dist/ship/nexus`), or another build to compare in the same minutes.
pub fn nexus_binary() -> anyhow::Result<PathBuf> {
    if let Some(chosen) = std::env::var_os("NEXUS_BENCH_BINARY") {
        let binary = PathBuf::from(chosen);
        if !binary.is_file() {
            bail!("NEXUS_BENCH_BINARY names {}, which is not a file", binary.display());
        }
        return Ok(binary);
    }
    let me = std::env::current_exe().context("finding the benchmark's own path")?;
    let binary = me.with_file_name("nexus");
    if !binary.is_file() {
        bail!("{} is missing: build it with `cargo build --release -p nexus`", binary.display());
    }
    Ok(binary)
}

/// `nexus --data-dir DIR ARGS` with `vars` and nothing inherited from `NEXUS_*`.
fn command(binary: &Path, data_dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("NEXUS_") {
            command.env_remove(key);
        }
    }
    command.arg("--data-dir").arg(data_dir).args(args).envs(vars.iter().copied()).current_dir(data_dir);
    command
}

/// Runs a one-shot `nexus` command (e.g. `keys create`) and returns its standard output.
pub fn run(binary: &Path, data_dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> anyhow::Result<String> {
    let out = command(binary, data_dir, args, vars).output().with_context(|| format!("running nexus {args:?}"))?;
    if !out.status.success() {
        bail!("nexus {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A process's resident memory in MiB, each `None` where the kernel does not say.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: Option<f64>,
    /// `VmHWM`: the peak of `rss` so far.
    pub peak: Option<f64>,
    /// `RssAnon`: the heap, stacks and other private memory.
    pub anon: Option<f64>,
    /// `RssFile`: pages of mapped files (the binary's code, the database's memory map) now in
    /// the page cache; the kernel can drop these when memory is short.
    pub file: Option<f64>,
    /// `RssShmem`: shared memory, which includes mapped files on a tmpfs (SQLite's `-shm`
    /// index and the database's memory map when the data directory is on one).
    pub shared: Option<f64>,
}

/// A running `nexus serve`.
pub struct Serve {
    child: Child,
    /// When the process was spawned.
    pub started: Instant,
    pub address: String,
}

impl Serve {
    /// Spawns `nexus serve` on a free port (pinned to `core` when given) and waits until it
    /// logs its address.
    pub fn start(binary: &Path, data_dir: &Path, vars: &[(&str, &str)], core: Option<usize>) -> anyhow::Result<Self> {
        let args = ["serve", "--listen", "127.0.0.1:0"];
        let mut command = match core {
            Some(core) => {
                let mut pinned = Command::new("taskset");
                let inner = command(binary, data_dir, &args, vars);
                pinned.args(["-c", &core.to_string()]).arg(inner.get_program()).args(inner.get_args());
                for (key, value) in inner.get_envs() {
                    match value {
                        Some(value) => pinned.env(key, value),
                        None => pinned.env_remove(key),
                    };
                }
                pinned.current_dir(data_dir);
                pinned
            }
            None => command(binary, data_dir, &args, vars),
        };
        let started = Instant::now();
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let address = match read_address(&mut child, started) {
            Ok(address) => address,
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(error);
            }
        };
        Ok(Self { child, started, address })
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in MiB.
    pub fn memory_mib(&self) -> (Option<f64>, Option<f64>) {
        let memory = self.memory();
        (memory.rss, memory.peak)
    }

    /// The process's resident memory as the kernel reports it (`/proc/PID/status`).
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kib| kib / 1024.0)
        };
        Memory {
            rss: field("VmRSS:"),
            peak: field("VmHWM:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
            shared: field("RssShmem:"),
        }
    }

    /// Time from spawn until `path` answers 200.
    pub fn until_ok(&self, path: &str) -> anyhow::Result<Duration> {
        loop {
            if get_status(&self.address, path) == Some(200) {
                return Ok(self.started.elapsed());
            }
            if self.started.elapsed() > START_LIMIT {
                bail!("{path} did not answer 200 within {} s", START_LIMIT.as_secs());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGTERM, as an init system stops it; waits for the exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().context("waiting for nexus serve to exit")?;
        if !status.success() {
            bail!("nexus serve exited with {status} after SIGTERM");
        }
        Ok(())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the server's log until it names its address; keeps draining it afterwards so the
/// server never blocks on a full pipe.
fn read_address(child: &mut Child, started: Instant) -> anyhow::Result<String> {
    let stderr = child.stderr.take().context("the server's standard error")?;
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let address = loop {
        let left = START_LIMIT.saturating_sub(started.elapsed());
        let line = lines.recv_timeout(left).context("the server did not log its address")?;
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split_whitespace().next().context("an address after http://")?.to_owned();
        }
    };
    std::thread::spawn(move || lines.iter().for_each(drop));
    Ok(address)
}

fn get_status(address: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(address).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}
