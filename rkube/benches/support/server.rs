//! A real `rkube server --disable-agent` process on a loopback port with its own data dir,
//! started the way `tests/support` starts it. Every server is killed when dropped (also
//! while a panic unwinds).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::mpsc;

use super::progress::note;

/// How long a server may take to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh temporary folder (a data dir, a database).
pub fn temp_dir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix("rkube-bench-").tempdir()?)
}

/// What the server's stderr told us.
enum Signal {
    Listening(String),
    Ready(Instant),
    Closed,
}

pub struct Server {
    child: Option<Child>,
    pub kubeconfig: PathBuf,
    pub log: PathBuf,
    /// Just before the process was spawned.
    pub spawned: Instant,
    url: Option<String>,
    ready_logged: Option<Instant>,
    signals: mpsc::UnboundedReceiver<Signal>,
}

/// Resident memory of a process, from /proc/<pid>/status.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

impl Server {
    /// Spawns the server on `data_dir` (created or reused) and returns at once.
    pub fn spawn(data_dir: &Path) -> Result<Server> {
        Server::spawn_with(data_dir, &[])
    }

    /// [`Server::spawn`] with more `rkube server` flags (e.g. `--datastore-endpoint`).
    pub fn spawn_with(data_dir: &Path, extra: &[String]) -> Result<Server> {
        let kubeconfig = data_dir.join("kubeconfig.yaml");
        let log = data_dir.join("server.log");
        let spawned = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .arg("server")
            .arg("--disable-agent")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--bind-address", "127.0.0.1", "--https-listen-port", "0"])
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .args(extra)
            .env("RKUBE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start rkube server")?;
        let stderr = child.stderr.take().context("rkube server has no stderr")?;
        let (tx, signals) = mpsc::unbounded_channel();
        let log_path = log.clone();
        std::thread::spawn(move || forward(stderr, &log_path, tx));
        Ok(Server {
            child: Some(child),
            kubeconfig,
            log,
            spawned,
            url: None,
            ready_logged: None,
            signals,
        })
    }

    /// Spawns the server and waits until it logs that it is ready.
    pub async fn start(data_dir: &Path) -> Result<Server> {
        Server::start_with(data_dir, &[]).await
    }

    /// [`Server::start`] with more `rkube server` flags.
    pub async fn start_with(data_dir: &Path, extra: &[String]) -> Result<Server> {
        let mut s = Server::spawn_with(data_dir, extra)?;
        s.wait_ready_logged(START_TIMEOUT).await?;
        Ok(s)
    }

    async fn next_signal(&mut self, deadline: Instant) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.signals.recv()).await {
            Ok(Some(Signal::Listening(url))) => self.url = Some(url),
            Ok(Some(Signal::Ready(at))) => self.ready_logged = Some(at),
            Ok(Some(Signal::Closed) | None) => {
                bail!("rkube server exited early:\n{}", self.log_tail())
            }
            Err(_) => bail!(
                "rkube server timed out while starting:\n{}",
                self.log_tail()
            ),
        }
        Ok(())
    }

    /// Waits for the `listening on` line (the kubeconfig is written by then); its URL.
    pub async fn wait_listening(&mut self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        while self.url.is_none() {
            self.next_signal(deadline).await?;
        }
        Ok(self.url.clone().expect("set above"))
    }

    /// Waits for the `API server ready` log line; when it was read.
    pub async fn wait_ready_logged(&mut self, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        while self.ready_logged.is_none() {
            self.next_signal(deadline).await?;
        }
        Ok(self.ready_logged.expect("set above"))
    }

    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The admin client configuration from the kubeconfig the server wrote.
    pub async fn config(&self) -> Result<kube::Config> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(cfg)
    }

    pub async fn client(&self) -> Result<kube::Client> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }

    pub fn memory(&self) -> Result<Memory> {
        use super::usage::status_kib;
        let pid = self.pid().context("the server is stopped")?;
        let field = |name: &str| {
            status_kib(pid, name).ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// If the process has ended: how, with the end of its log.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        Some(format!(
            "rkube server (pid {}) ended: {status}; its log ends with:\n{}",
            self.pid().unwrap_or(0),
            self.log_tail()
        ))
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Copies the server's stderr into its log file and reports the lines that matter.
fn forward(stderr: ChildStderr, log: &Path, tx: mpsc::UnboundedSender<Signal>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .ok();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        if let Some(u) = line.strip_prefix("rkube server listening on ") {
            let _ = tx.send(Signal::Listening(u.trim().to_string()));
        }
        if line.contains("API server ready") {
            let _ = tx.send(Signal::Ready(Instant::now()));
        }
    }
    let _ = tx.send(Signal::Closed);
}

/// A GET through the client's stack (TLS, authentication): the status and the body.
pub async fn get_raw(client: &kube::Client, path: &str) -> Result<(u16, Vec<u8>)> {
    use http_body_util::BodyExt;
    let req = http::Request::get(path).body(kube::client::Body::from(Vec::new()))?;
    let resp = client.send(req).await?;
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    Ok((code, body))
}

/// Polls `/readyz` every `interval` until it answers 200; when it did.
pub async fn poll_readyz(
    client: &kube::Client,
    interval: Duration,
    timeout: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match get_raw(client, "/readyz").await {
            Ok((200, _)) => return Ok(Instant::now()),
            Ok((code, _)) => last = format!("status {code}"),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(interval).await;
    }
    bail!("/readyz did not answer 200 within {timeout:?} (last: {last})")
}

/// The current store revision as the API reports it: a list's resourceVersion.
pub async fn current_revision(client: &kube::Client) -> Result<i64> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: kube::Api<Namespace> = kube::Api::all(client.clone());
    let list = api.list(&kube::api::ListParams::default().limit(1)).await?;
    let rv = list
        .metadata
        .resource_version
        .context("a list without resourceVersion")?;
    rv.parse()
        .with_context(|| format!("resourceVersion {rv:?} is not a number"))
}

/// How long the server kept writing after a load, until it was back to its background rate.
#[derive(Clone, Copy, Debug)]
pub struct Quiet {
    pub revisions: i64,
    pub secs: f64,
    pub settled: bool,
}

impl Quiet {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "revisions": self.revisions,
            "secs": self.secs,
            "settled": self.settled,
        })
    }
}

/// Waits (at most `max`) until the server writes no more than its background rate (at most
/// 4 revisions in 2 s), so the next measurement does not share the server with leftover
/// work of the previous one (e.g. the scheduler catching up on new pods).
pub async fn quiesce(client: &kube::Client, label: &str, max: Duration) -> Result<Quiet> {
    const STEP: Duration = Duration::from_secs(2);
    let start = Instant::now();
    let first = current_revision(client).await?;
    let mut prev = first;
    loop {
        tokio::time::sleep(STEP).await;
        let rv = current_revision(client).await?;
        let settled = rv - prev <= 4;
        if settled || start.elapsed() >= max {
            let q = Quiet {
                revisions: rv - first,
                secs: start.elapsed().as_secs_f64(),
                settled,
            };
            note(&format!(
                "{label}: {} after {:.0} s ({} revisions written meanwhile)",
                if settled {
                    "idle"
                } else {
                    "still busy, going on"
                },
                q.secs,
                q.revisions
            ));
            return Ok(q);
        }
        note(&format!(
            "{label}: server still writing ({} revisions in {} s)",
            rv - prev,
            STEP.as_secs()
        ));
        prev = rv;
    }
}

/// Creates a namespace (an existing one is fine).
pub async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: kube::Api<Namespace> = kube::Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_string());
    match api.create(&Default::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

/// `n` independent clients (each its own connection pool), each having made one request,
/// so connection setup is not part of what is timed.
pub async fn warm_clients(cfg: &kube::Config, n: usize) -> Result<Vec<kube::Client>> {
    let clients = (0..n)
        .map(|_| kube::Client::try_from(cfg.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let warm = clients.iter().map(|c| c.apiserver_version());
    for r in futures::future::join_all(warm).await {
        r.context("warming a client")?;
    }
    Ok(clients)
}
