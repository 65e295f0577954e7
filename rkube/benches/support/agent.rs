//! A real `rkube agent` process joined to a benchmark's server, as `tests/support`'s
//! `Agent` starts one: its own data dir (the server's image archives seeded into
//! `<dir>/agent/images/`), node name, node IP 127.0.0.1 and kubelet port. On drop it is
//! killed (its PID only) and everything its agent left (its containerd, shims,
//! containers, mounts, bridge, cgroups) is removed with `kubelet::containerd::teardown`.
//!
//! Not in `support/mod.rs`: the benchmarks that need it include it with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::support::cli::workspace_root;
use crate::support::usage::{pss_kib, status_kib};

/// Where scripts/images.sh put the offline images (`RKUBE_IMAGES_DIR` overrides).
pub fn images_dir() -> PathBuf {
    std::env::var_os("RKUBE_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/images"))
}

/// A `KEY=value` of `target/images/images.env` (e.g. `RKUBE_TESTSERVER_IMAGE`).
pub fn image(key: &str) -> Result<String> {
    let path = images_dir().join("images.env");
    let env = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}: run `scripts/images.sh`", path.display()))?;
    env.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("no {key} in {}: run `scripts/images.sh`", path.display()))
}

/// Copies the image archives of [`images_dir`] into `<agent_dir>/images/`, which an
/// agent imports at start.
pub fn seed_images(agent_dir: &Path) -> Result<()> {
    let images = images_dir();
    if !images.join("pause.tar").exists() {
        bail!(
            "{} is missing: run `scripts/images.sh`",
            images.join("pause.tar").display()
        );
    }
    let to = agent_dir.join("images");
    std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
    for e in std::fs::read_dir(&images)?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "tar") {
            std::fs::copy(&p, to.join(e.file_name()))
                .with_context(|| format!("copying {}", p.display()))?;
        }
    }
    Ok(())
}

/// A free TCP port (on all addresses, as a kubelet listens).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("0.0.0.0:0")?
        .local_addr()?
        .port())
}

pub struct Agent {
    child: Option<Child>,
    /// The `--data-dir`; the agent's own folder is [`Agent::agent_dir`].
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub node_name: String,
    pub port: u16,
}

impl Agent {
    /// Starts `rkube agent --server <url> --token-file <token_file>` (with `extra` flags)
    /// and returns at once; the Node registers shortly after.
    pub fn start(url: &str, token_file: &Path, node_name: &str, extra: &[&str]) -> Result<Agent> {
        // Short: containerd's socket lives under it (unix socket paths are short).
        let dir = tempfile::Builder::new()
            .prefix("rkube-bench-agent-")
            .tempdir()?;
        seed_images(&dir.path().join("agent"))?;
        let port = free_port()?;
        let log = dir.path().join("agent.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .arg("agent")
            .args(["--server", url, "--token-file"])
            .arg(token_file)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--node-name", node_name, "--node-ip", "127.0.0.1"])
            .args(["--kubelet-port", &port.to_string()])
            .args(extra)
            .env("RKUBE_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("RKUBE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .context("cannot start rkube agent")?;
        Ok(Agent {
            child: Some(child),
            dir,
            log,
            node_name: node_name.to_string(),
            port,
        })
    }

    /// `<data-dir>/agent`: containerd, images, pod logs.
    pub fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    /// The socket of the agent's own containerd (its CRI endpoint).
    pub fn containerd_socket(&self) -> PathBuf {
        kubelet::containerd::Layout::new(&self.agent_dir()).socket
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The agent's containerd (a `/usr/bin/containerd` naming its config).
    pub fn containerd_pid(&self) -> Option<u32> {
        let config = kubelet::containerd::Layout::new(&self.agent_dir()).config;
        processes_with(&config.display().to_string())
            .into_iter()
            .find(|(_, argv0)| argv0 == kubelet::containerd::CONTAINERD)
            .map(|(pid, _)| pid)
    }

    /// The containerd shims of the agent's containerd (their command line names its
    /// socket).
    pub fn shim_pids(&self) -> Vec<u32> {
        processes_with(&self.containerd_socket().display().to_string())
            .into_iter()
            .filter(|(_, argv0)| argv0.contains("shim"))
            .map(|(pid, _)| pid)
            .collect()
    }

    /// If the process has ended: how, with the end of its log.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        Some(format!(
            "rkube agent ended: {status}; its log ends with:\n{}",
            self.log_tail(30)
        ))
    }

    /// The last `n` lines of the agent's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Stops the agent (SIGTERM, SIGKILL after 15 s: it stops its containerd on the way
    /// out), then removes everything it left.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let agent_dir = self.agent_dir();
        let _ =
            tokio::task::spawn_blocking(move || kubelet::containerd::teardown(&agent_dir)).await;
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            kubelet::containerd::teardown(&self.agent_dir());
        }
    }
}

/// Resident memory (VmRSS) of processes, summed, in MiB (processes gone count 0).
pub fn rss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| status_kib(*p, "VmRSS:"))
        .sum::<u64>() as f64
        / 1024.0
}

/// Proportional memory (Pss of /proc/<pid>/smaps_rollup: shared pages split among their
/// users) of processes, summed, in MiB: what many alike processes really take together.
pub fn pss_mib(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&pid| pss_kib(pid)).sum::<u64>() as f64 / 1024.0
}

/// The processes one of whose arguments is `arg`, with their argv[0].
fn processes_with(arg: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().skip(1).any(|a| a == arg) {
            out.push((pid, args.first().cloned().unwrap_or_default()));
        }
    }
    out
}
