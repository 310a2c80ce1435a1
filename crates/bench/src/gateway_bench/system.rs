//! What the kernel says about this process: resident memory (`VmRSS`, peak `VmHWM`) and the CPU
//! time of each thread (`/proc/self/task/*/schedstat`), so Nexus's own threads can be told from
//! the mock's and the load generator's.

use std::time::Duration;

/// A `kB` line of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resident memory now, in MiB.
pub fn rss_mib() -> Option<f64> {
    status_mib("VmRSS:")
}

/// Peak resident memory of the process so far, in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// Whether a thread (by its name, as the kernel truncates it) does Nexus's work: the server
/// thread and its blocking pool, and SQLite's worker threads (started from the server thread).
/// The main thread is named after the binary, `nexus-bench`, and is the load generator's.
fn is_nexus_thread(name: &str) -> bool {
    name == "nexus-server" || name.starts_with("nexus-blocking") || name.starts_with("sqlx-sqlite")
}

/// CPU time used so far by Nexus's threads and by every other thread of the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    pub nexus: Duration,
    pub rest: Duration,
}

impl CpuTimes {
    /// `None` where the kernel does not expose per-thread scheduler statistics.
    pub fn now() -> Option<Self> {
        let mut times = Self::default();
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let path = task.path();
            let Ok(name) = std::fs::read_to_string(path.join("comm")) else { continue };
            let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) else { continue };
            let on_cpu_ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
            let on_cpu = Duration::from_nanos(on_cpu_ns);
            if is_nexus_thread(name.trim()) {
                times.nexus += on_cpu;
            } else {
                times.rest += on_cpu;
            }
        }
        Some(times)
    }

    /// CPU used between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self { nexus: self.nexus.saturating_sub(earlier.nexus), rest: self.rest.saturating_sub(earlier.rest) }
    }
}

/// Round trips of one byte over a socket pair between two threads pinned to `a` and `b`
/// (blocking reads, so each side sleeps and is woken as a server waiting on its network is):
/// the median and P99 in microseconds. `None` if a thread could not be pinned.
pub fn wake_round_trip(a: core_affinity::CoreId, b: core_affinity::CoreId) -> Option<(f64, f64)> {
    use std::io::{Read, Write};
    const TRIPS: usize = 5_000;
    let (mut near, mut far) = std::os::unix::net::UnixStream::pair().ok()?;
    let peer = std::thread::spawn(move || {
        if !core_affinity::set_for_current(b) {
            return false;
        }
        let mut byte = [0u8];
        while far.read_exact(&mut byte).is_ok() && far.write_all(&byte).is_ok() {}
        true
    });
    let measured = std::thread::spawn(move || {
        if !core_affinity::set_for_current(a) {
            return None;
        }
        let mut byte = [0u8];
        let mut trips = Vec::with_capacity(TRIPS);
        for _ in 0..TRIPS {
            let started = std::time::Instant::now();
            near.write_all(&byte).ok()?;
            near.read_exact(&mut byte).ok()?;
            trips.push(started.elapsed());
        }
        trips.sort_unstable();
        let us = |q: f64| trips[((trips.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        Some((us(0.5), us(0.99)))
    })
    .join()
    .ok()
    .flatten();
    // The peer ends when `near` is dropped (its read fails).
    let pinned = peer.join().unwrap_or(false);
    measured.filter(|_| pinned)
}
