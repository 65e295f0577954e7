//! Test support: a real `rkube server` process on a loopback port with its own data dir,
//! and stock kubectl binaries pointed at it.
#![allow(dead_code)]

pub mod etcd;
mod images;
pub mod netns;
mod wire;

pub use images::*;
#[allow(unused_imports)]
pub use wire::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Cluster {
    child: Option<Child>,
    extra: Vec<String>,
    /// Runs with its agent (kubelet and containerd), torn down on drop.
    agent: bool,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub url: String,
    pub log: PathBuf,
}

/// Every stock kubectl minor installed beside /usr/bin/kubectl (kubectl.1.27 … kubectl.1.33).
pub fn kubectls() -> Vec<PathBuf> {
    let real = std::fs::canonicalize("/usr/bin/kubectl").expect("kubectl is installed");
    let dir = real.parent().expect("kubectl has a folder").to_path_buf();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("kubectl folder is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kubectl.1."))
        })
        .collect();
    out.sort_by_key(|p| minor(p));
    // For a quicker local loop: RKUBE_KUBECTL_MINORS=32,33 runs only those.
    if let Ok(only) = std::env::var("RKUBE_KUBECTL_MINORS") {
        let keep: Vec<u32> = only
            .split(',')
            .filter_map(|m| m.trim().parse().ok())
            .collect();
        out.retain(|p| keep.contains(&minor(p)));
    }
    assert!(
        !out.is_empty(),
        "no kubectl.1.NN binaries beside {}",
        real.display()
    );
    out
}

pub fn minor(p: &Path) -> u32 {
    p.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

impl Cluster {
    /// Starts `rkube server --disable-agent` on a free port and waits until it is ready.
    pub fn start() -> Cluster {
        Self::start_in(tempfile::tempdir().expect("temp dir"), &[])
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Cluster {
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let log = dir.path().join("server.log");
        let (child, url) = spawn(dir.path(), &kubeconfig, &log, extra, false);
        Cluster {
            child: Some(child),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            agent: false,
            dir,
            kubeconfig,
            url,
            log,
        }
    }

    /// Starts `rkube server` with its agent (the kubelet and a containerd of its own,
    /// the kubelet's endpoint on a free port) and waits until the API is ready. Images
    /// are pulled for real, from the test registry ([`shared_registry`]) as docker.io's
    /// mirror, unless `extra` names a `--private-registry` of its own. On drop, everything
    /// the agent left (containers, containerd, shims, mounts, bridge, cgroups) is removed.
    pub fn start_with_agent(extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = agent_defaults(extra);
        if !extra.contains(&"--private-registry") {
            let yaml = registries_yaml(dir.path(), &format!("http://{}", shared_registry()));
            args.extend(["--private-registry".into(), yaml.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start_agent_in(dir, args)
    }

    /// As [`Cluster::start_with_agent`], with the images imported from archives instead
    /// (k3s's air-gap convention: `<data-dir>/agent/images/*.tar` at start).
    pub fn start_with_agent_airgap(extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        seed_images(&dir.path().join("agent"));
        let mut args = agent_defaults(extra);
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start_agent_in(dir, args)
    }

    fn start_agent_in(dir: tempfile::TempDir, args: Vec<String>) -> Cluster {
        let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let log = dir.path().join("server.log");
        let mut c = Cluster {
            child: None,
            extra: args.clone(),
            agent: true,
            kubeconfig,
            url: String::new(),
            log,
            dir,
        };
        let (child, url) = spawn(c.dir.path(), &c.kubeconfig, &c.log, &args_ref, true);
        c.child = Some(child);
        c.url = url;
        c
    }

    /// The port of the kubelet's endpoint (agent clusters).
    pub fn kubelet_port(&self) -> Option<u16> {
        self.flag("--kubelet-port")?.parse().ok()
    }

    /// The value the server was started with for `name`, if any.
    pub fn flag(&self, name: &str) -> Option<&str> {
        let i = self.extra.iter().position(|a| a == name)?;
        self.extra.get(i + 1).map(String::as_str)
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// kill -9, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data dir.
    pub fn restart(&mut self) {
        self.kill9();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let (child, url) = spawn(
            self.dir.path(),
            &self.kubeconfig,
            &self.log,
            &extra,
            self.agent,
        );
        self.child = Some(child);
        self.url = url;
    }

    /// Runs a kubectl binary against the cluster.
    pub fn kubectl(&self, bin: &Path, args: &[&str]) -> Output {
        self.kubectl_env(bin, args, &[])
    }

    pub fn kubectl_env(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("KUBECTL_EXTERNAL_DIFF");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("kubectl runs")
    }

    pub fn client_config(&self) -> kube::Config {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let rt = tokio::runtime::Handle::try_current();
        let opts = kube::config::KubeConfigOptions::default();
        let fut = kube::Config::from_custom_kubeconfig(kc, &opts);
        match rt {
            Ok(h) => tokio::task::block_in_place(|| h.block_on(fut)).expect("config"),
            Err(_) => tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(fut)
                .expect("config"),
        }
    }

    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.client_config()).expect("client")
    }
}

fn spawn(
    dir: &Path,
    kubeconfig: &Path,
    log: &Path,
    extra: &[&str],
    agent: bool,
) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .arg("server")
        .args((!agent).then_some("--disable-agent"))
        .arg("--data-dir")
        .arg(dir)
        .args(
            (!extra.contains(&"--bind-address"))
                .then_some(["--bind-address", "127.0.0.1"])
                .into_iter()
                .flatten(),
        )
        .args(["--https-listen-port", "0"])
        .arg("--write-kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .env("RKUBE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rkube starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let log = log.to_path_buf();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .ok();
        let mut url = None;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if let Some(u) = line.strip_prefix("rkube server listening on ") {
                url = Some(u.trim().to_string());
            }
            if line.contains("API server ready") {
                let _ = tx.send(url.clone());
            }
        }
        let _ = tx.send(None);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Some(url)) => (child, url),
        other => {
            let _ = child.kill();
            panic!("rkube server did not become ready ({other:?}); see its log above");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.agent {
            let agent = self.dir.path().join("agent");
            if std::thread::panicking() {
                let log = agent.join("containerd").join("containerd.log");
                if let Ok(text) = std::fs::read_to_string(log) {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                    eprintln!("--- containerd log (last 30 lines) ---\n{tail}");
                }
            }
            kubelet::containerd::teardown(&agent);
        }
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(&self.log) {
                eprintln!("--- rkube server log ---\n{log}");
            }
        }
    }
}

/// stdout of a successful command; panics with both streams otherwise.
pub fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// stderr of a failed command; panics if it succeeded.
pub fn fails(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "{what} should have failed, printed:\n{stdout}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The first line split into columns (kubectl's table header).
pub fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A raw HTTP exchange through the cluster's client (authenticated, TLS): the status and
/// the body as bytes.
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    try_raw(client, method, path, content_type, body)
        .await
        .expect("the server answers")
}

/// As [`raw`], for when the server may not answer.
pub async fn try_raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    use http_body_util::BodyExt;
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(kube::client::Body::from(body)).expect("request");
    let resp = client.send(req).await.map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok((code, bytes))
}

/// The JSON of a raw answer.
pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// The lines a child writes, as they come.
pub fn lines_of(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A /16 cluster CIDR that no other cluster of this test process uses: each agent's CNI
/// bridge takes a /24 of it on this machine, and two clusters on one subnet would reach
/// each other's pods.
pub fn unique_cluster_cidr() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // The process id too: another test run on this machine (a CI run beside a
    // developer's) must not land on the same subnets either.
    let n = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id();
    format!("10.{}.0.0/16", 50 + n % 200)
}

/// The flags every agent cluster gets unless `extra` has them: a free kubelet port, and
/// a service CIDR and cluster DNS address of its own (each cluster's proxy puts its
/// service IPs and its DNS address on this machine's `lo`: two clusters must not want
/// the same address and port).
fn agent_defaults(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["--kubelet-port".into(), free_port().to_string()];
    if !extra.contains(&"--service-cidr") {
        let (cidr, dns) = unique_service_cidr();
        args.extend(["--service-cidr".into(), cidr]);
        if !extra.contains(&"--cluster-dns") {
            args.extend(["--cluster-dns".into(), dns]);
        }
    }
    args
}

/// A /24 service CIDR that no other cluster of this test process uses (10.44.<n>.0/24,
/// apart from the cluster CIDRs of [`unique_cluster_cidr`] and the default 10.43/16),
/// and the cluster DNS address in it (.10, as 10.43.0.10 is in the default).
pub fn unique_service_cidr() -> (String, String) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = (NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id()) % 250;
    (format!("10.44.{n}.0/24"), format!("10.44.{n}.10"))
}

/// A free TCP port (on all addresses, as a kubelet listens).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A separate `rkube agent` process joined to a cluster: its own data dir, node name and
/// kubelet port. On drop it is killed (its PID only) and everything its agent left
/// (containerd, shims, mounts, bridge, cgroups) is removed.
pub struct Agent {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub port: u16,
    pub node_name: String,
}

/// Where and how an [`Agent`] runs.
pub struct AgentPlace<'a> {
    /// The API server's URL as the agent reaches it.
    pub server: &'a str,
    /// `--node-ip`.
    pub node_ip: &'a str,
    /// A network namespace (`ip netns` name) to run in; the host's when `None`.
    pub netns: Option<&'a str>,
    /// The registry mirroring docker.io, as `http://HOST:PORT`.
    pub registry: String,
}

impl Agent {
    /// Starts `rkube agent --server <c.url> --token-file <c's token>` with `extra` flags,
    /// on this machine's network (node IP 127.0.0.1), pulling from the test registry.
    /// Without a service proxy: the server's node already has one on this network.
    pub fn start(c: &Cluster, node_name: &str, extra: &[&str]) -> Agent {
        let place = AgentPlace {
            server: &c.url,
            node_ip: "127.0.0.1",
            netns: None,
            registry: format!("http://{}", shared_registry()),
        };
        let mut args = vec!["--disable-kube-proxy"];
        args.extend_from_slice(extra);
        Self::start_at(c, node_name, &place, &args)
    }

    /// Starts an agent of `c` as `place` says.
    pub fn start_at(c: &Cluster, node_name: &str, place: &AgentPlace, extra: &[&str]) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        let yaml = registries_yaml(dir.path(), &place.registry);
        let port = free_port();
        let log = dir.path().join("agent.log");
        let out = std::fs::File::create(&log).expect("agent log");
        // nsenter joins the network namespace only (mounts stay shared, so the teardown
        // on drop sees the agent's) and then execs rkube: the child's PID is the agent's.
        let mut cmd = match place.netns {
            Some(ns) => {
                let mut cmd = Command::new("nsenter");
                cmd.arg(format!("--net=/var/run/netns/{ns}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_rkube"));
                cmd
            }
            None => Command::new(env!("CARGO_BIN_EXE_rkube")),
        };
        let child = cmd
            .arg("agent")
            .args(["--server", place.server, "--token-file"])
            .arg(c.dir.path().join("server").join("token"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--node-name", node_name, "--node-ip", place.node_ip])
            .args(["--kubelet-port", &port.to_string()])
            .arg("--private-registry")
            .arg(&yaml)
            // The cluster's DNS address, as k3s agents take it from their server: pods
            // on this node must ask the same address as the server node's pods.
            .args(
                c.flag("--cluster-dns")
                    .filter(|_| !extra.contains(&"--cluster-dns"))
                    .map(|dns| ["--cluster-dns", dns])
                    .into_iter()
                    .flatten(),
            )
            .args(extra)
            .env("RKUBE_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("RKUBE_TOKEN")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("rkube agent starts");
        Agent {
            child: Some(child),
            dir,
            log,
            port,
            node_name: node_name.to_string(),
        }
    }

    /// The agent's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process has exited (and how).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// kill -9, as a crash would (its containerd and shims live on until drop).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the agent has logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        let agent = self.dir.path().join("agent");
        kubelet::containerd::teardown(&agent);
        if std::thread::panicking() {
            eprintln!(
                "--- rkube agent {} log ---\n{}",
                self.node_name,
                self.log_text()
            );
        }
    }
}

/// Runs `rkube <args>` to its end (at most `limit`): exit status and stderr.
pub fn run_rkube(args: &[&str], limit: Duration) -> (Option<std::process::ExitStatus>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RKUBE_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rkube starts");
    let stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, reader.join().unwrap_or_default())
}

/// Whether the Node's Ready condition is True.
pub fn node_ready(n: &k8s_openapi::api::core::v1::Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// How long [`wait_for`] waits.
pub const WAIT: Duration = Duration::from_secs(90);

/// Watches `name` until `cond` holds (at most [`WAIT`]); the object then.
pub async fn wait_for<K, F>(api: &kube::Api<K>, name: &str, what: &str, cond: F) -> K
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + 'static,
    K::DynamicType: Default,
    F: Fn(&K) -> bool,
{
    wait_for_within(api, name, what, WAIT, cond).await
}

/// Watches `name` until `cond` holds (at most `limit`); the object then.
pub async fn wait_for_within<K, F>(
    api: &kube::Api<K>,
    name: &str,
    what: &str,
    limit: Duration,
    cond: F,
) -> K
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + 'static,
    K::DynamicType: Default,
    F: Fn(&K) -> bool,
{
    let r = tokio::time::timeout(
        limit,
        kube::runtime::wait::await_condition(api.clone(), name, |o: Option<&K>| {
            o.is_some_and(&cond)
        }),
    )
    .await;
    match r {
        Ok(Ok(Some(k))) => k,
        Ok(other) => panic!("{what}: watch ended: {other:?}"),
        Err(_) => panic!(
            "{what}: not within {limit:?}; last seen: {:#?}",
            api.get_opt(name).await
        ),
    }
}

/// For `try_filter` on a ConfigMap watch: false for the root CA publisher's
/// `kube-root-ca.crt`, which the controllers put in every namespace when they get to it
/// (so it may turn up in a watch a test opened before).
pub fn not_root_ca(
    e: &kube::api::WatchEvent<k8s_openapi::api::core::v1::ConfigMap>,
) -> std::future::Ready<bool> {
    use kube::api::WatchEvent::{Added, Deleted, Modified};
    let root_ca = matches!(e, Added(o) | Modified(o) | Deleted(o)
        if o.metadata.name.as_deref() == Some("kube-root-ca.crt"));
    std::future::ready(!root_ca)
}
