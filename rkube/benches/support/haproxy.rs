//! Debian's haproxy as a peer L4 proxy: TCP mode, one frontend on a free loopback port
//! per backend address, default threads (one per core), started as a child in the
//! foreground with a generated configuration and killed (its PID only) when stopped or
//! dropped.
//!
//! Not in `support/mod.rs`: the benchmarks that need it include it with `#[path]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Where Debian's package puts it.
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// `haproxy -v`'s first line, e.g. `HAProxy version 2.6.12-1+deb12u4 2026/10/17 - …`.
pub fn version() -> Option<String> {
    let out = Command::new(HAPROXY).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().next()?;
    Some(
        line.strip_prefix("HAProxy version ")
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or(line)
            .to_string(),
    )
}

/// A free TCP port on 127.0.0.1 (free when asked; nothing holds it afterwards).
pub fn free_loopback_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The configuration: mode tcp, a frontend on `127.0.0.1:<port>` for each backend.
pub fn config(routes: &[(u16, SocketAddr)]) -> String {
    let mut cfg = String::from(
        "global\n    maxconn 8000\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n",
    );
    for (i, (port, backend)) in routes.iter().enumerate() {
        cfg.push_str(&format!(
            "\nfrontend f{i}\n    bind 127.0.0.1:{port}\n    default_backend b{i}\n\
             \nbackend b{i}\n    server s{i} {backend}\n"
        ));
    }
    cfg
}

pub struct Haproxy {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    /// Where to connect for each backend of [`Haproxy::start`], in order.
    pub fronts: Vec<SocketAddr>,
}

impl Haproxy {
    /// Starts haproxy relaying a loopback port to each of `backends`, and waits until
    /// every frontend accepts connections.
    pub async fn start(backends: &[SocketAddr]) -> Result<Haproxy> {
        if !Path::new(HAPROXY).exists() {
            bail!("{HAPROXY} is missing: install Debian's haproxy (scripts/deps.sh)");
        }
        let routes = backends
            .iter()
            .map(|b| Ok((free_loopback_port()?, *b)))
            .collect::<Result<Vec<_>>>()?;
        let dir = tempfile::Builder::new()
            .prefix("rkube-bench-haproxy-")
            .tempdir()?;
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(&routes))?;
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(HAPROXY)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot start haproxy")?;
        let mut h = Haproxy {
            child: Some(child),
            dir,
            log,
            fronts: routes
                .iter()
                .map(|(p, _)| SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for front in h.fronts.clone() {
            loop {
                if let Some(how) = h.exited() {
                    bail!("{how}");
                }
                if tokio::net::TcpStream::connect(front).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "haproxy does not listen on {front} after 20 s; its log:\n{}",
                        h.log_tail()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(h)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// If the process has ended: how, with its log.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        Some(format!(
            "haproxy ended: {status}; its log:\n{}",
            self.log_tail()
        ))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops haproxy (its PID only).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.stop();
    }
}
