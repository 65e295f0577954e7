//! What a phase cost: wall time, CPU time of the server and of this benchmark process, and
//! the machine's load (other work on the same cores skews every figure).

use std::time::Instant;

use serde_json::{json, Value};

use super::stats::round;

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// User + system CPU seconds of a process.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the 3rd field.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS)
}

/// Resident memory of a process (VmRSS of /proc/<pid>/status), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A `kB` field of /proc/<pid>/status.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    proc_kib(pid, "status", field)
}

/// Proportional memory (Pss of /proc/<pid>/smaps_rollup: shared pages split among their
/// users), in KiB.
pub fn pss_kib(pid: u32) -> Option<u64> {
    proc_kib(pid, "smaps_rollup", "Pss:")
}

/// A `kB` field of /proc/<pid>/<file>.
fn proc_kib(pid: u32, file: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub struct Usage {
    server: Option<String>,
    start: Instant,
    server_cpu: Option<f64>,
    bench_cpu: Option<f64>,
    load: Option<f64>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Spent {
    pub wall_s: f64,
    pub server_cpu_s: Option<f64>,
    pub bench_cpu_s: Option<f64>,
    pub load_start: Option<f64>,
    pub load_end: Option<f64>,
}

impl Usage {
    pub fn start(server_pid: Option<u32>) -> Usage {
        let server = server_pid.map(|p| p.to_string());
        Usage {
            server_cpu: server.as_deref().and_then(cpu_seconds),
            bench_cpu: cpu_seconds("self"),
            load: loadavg(),
            server,
            start: Instant::now(),
        }
    }

    pub fn finish(&self) -> Spent {
        let diff = |now: Option<f64>, then: Option<f64>| Some(now? - then?);
        Spent {
            wall_s: self.start.elapsed().as_secs_f64(),
            server_cpu_s: diff(
                self.server.as_deref().and_then(cpu_seconds),
                self.server_cpu,
            ),
            bench_cpu_s: diff(cpu_seconds("self"), self.bench_cpu),
            load_start: self.load,
            load_end: loadavg(),
        }
    }
}

impl Spent {
    pub fn json(&self) -> Value {
        let r = |x: Option<f64>| x.map(round);
        json!({
            "wall_s": round(self.wall_s),
            "server_cpu_s": r(self.server_cpu_s),
            "bench_cpu_s": r(self.bench_cpu_s),
            "loadavg_1m_start": r(self.load_start),
            "loadavg_1m_end": r(self.load_end),
        })
    }

    /// Server CPU milliseconds per operation.
    pub fn server_ms_per(&self, ops: usize) -> Option<f64> {
        Some(self.server_cpu_s? * 1e3 / ops.max(1) as f64)
    }

    /// e.g. `server 1.2 CPU-s, bench 0.8 CPU-s in 2.0 s, load 3.1`.
    pub fn line(&self) -> String {
        let f = |x: Option<f64>| x.map_or("?".into(), |v| format!("{v:.2}"));
        format!(
            "server {} CPU-s, benchmark {} CPU-s in {:.2} s wall; 1-min load {} -> {}",
            f(self.server_cpu_s),
            f(self.bench_cpu_s),
            self.wall_s,
            f(self.load_start),
            f(self.load_end)
        )
    }
}
