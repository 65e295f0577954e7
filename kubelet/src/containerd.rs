//! The containerd an agent runs for itself (as k3s does): its configuration under
//! `<agent-dir>/containerd/` (own root, state, sockets and runc root, so it never meets
//! another containerd on the machine), its start and supervision, the import of the
//! air-gap image archives, the CNI network on the node's pod CIDR, and [`teardown`],
//! which ends and removes everything an agent left on the machine (k3s's killall).
//!
//! The settings this machine needs (see `shared/notes/machine.md` and
//! `scripts/containerd-smoke.sh`, which proved them): `restrict_oom_score_adj`, netns
//! mounts under the state dir, the cgroupfs driver unless systemd is PID 1, CNI plugins
//! from `/usr/lib/cni`, registry `hosts.toml` under `certs.d/`, rkube's pause image.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::Error;

/// The containerd binary (Debian's `containerd` package).
pub const CONTAINERD: &str = "/usr/bin/containerd";
/// Where Debian's `containernetworking-plugins` installs the CNI plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The sandbox ("pause") image: built by `scripts/images.sh`, imported from
/// `<agent-dir>/images/pause.tar`.
pub const PAUSE_IMAGE: &str = "docker.io/rkube/pause:3.10";
/// The containerd namespace CRI works in.
pub const NAMESPACE: &str = "k8s.io";

/// The files and names of one agent's containerd and network.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub runc_root: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cni_data_dir: PathBuf,
    pub certs_d: PathBuf,
    /// `rkube-<8 hex digits of the agent dir>`: the CNI network, its bridge (at most 15
    /// characters) and the pods' cgroup parent. Two agents on one machine differ here.
    pub name: String,
}

impl Layout {
    pub fn new(agent_dir: &Path) -> Layout {
        let dir = agent_dir.join("containerd");
        Layout {
            config: dir.join("config.toml"),
            socket: dir.join("containerd.sock"),
            log: dir.join("containerd.log"),
            root: dir.join("root"),
            state: dir.join("state"),
            runc_root: dir.join("runc"),
            cni_conf_dir: dir.join("cni").join("net.d"),
            cni_data_dir: dir.join("cni").join("ipam"),
            certs_d: dir.join("certs.d"),
            name: agent_name(agent_dir),
            dir,
        }
    }

    /// The cgroup (relative to each hierarchy's root) under which the pods' go.
    pub fn cgroup_root(&self) -> String {
        format!("/{}", self.name)
    }
}

/// `rkube-<8 hex digits>`, from the agent dir's absolute path.
pub fn agent_name(agent_dir: &Path) -> String {
    let abs = std::fs::canonicalize(agent_dir).unwrap_or_else(|_| agent_dir.to_path_buf());
    // 32-bit FNV-1a: stable across builds (the name outlives the process).
    let h = abs
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        });
    format!("rkube-{h:08x}")
}

/// The label of the addresses the node's service proxy puts on `lo` (`lo:rk<hash>`, the
/// hash of [`agent_name`]), so [`teardown`] and a restarted proxy find them.
pub fn lo_label(agent_dir: &Path) -> String {
    let name = agent_name(agent_dir);
    format!("lo:rk{}", name.trim_start_matches("rkube-"))
}

/// Whether runc must use the systemd cgroup driver: only when systemd is PID 1.
pub fn systemd_cgroup() -> bool {
    std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
        && Path::new("/run/systemd/system").is_dir()
}

/// containerd's config.toml for `l` (version 2, CRI plugin).
pub fn config_toml(l: &Layout, runc: &Path, systemd_cgroup: bool) -> String {
    let p = |p: &Path| p.display().to_string();
    format!(
        r#"# Written by rkube's kubelet at every start: edits are lost.
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{runc_root}"
        SystemdCgroup = {systemd_cgroup}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"#,
        root = p(&l.root),
        state = p(&l.state),
        sock = p(&l.socket),
        dir = p(&l.dir),
        pause = PAUSE_IMAGE,
        runc = p(runc),
        runc_root = p(&l.runc_root),
        cni_bin = CNI_BIN_DIR,
        cni_conf = p(&l.cni_conf_dir),
        certs = p(&l.certs_d),
    )
}

/// The CNI network of the node: a bridge (the pods' gateway, hairpin on, no
/// masquerade, so no iptables) with host-local IPAM on the node's pod CIDR.
pub fn cni_conflist(l: &Layout, pod_cidr: &str) -> String {
    let v = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": l.name,
        "plugins": [{
            "type": "bridge",
            "bridge": l.name,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": pod_cidr}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": l.cni_data_dir.display().to_string(),
            }
        }]
    });
    serde_json::to_string_pretty(&v).expect("JSON") + "\n"
}

fn find_runc() -> Option<PathBuf> {
    ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A containerd of our own, restarted when it dies, stopped on shutdown.
pub struct Containerd {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Containerd {
    /// Writes the configuration, starts containerd and waits until its socket answers.
    pub async fn start(l: &Layout, shutdown: watch::Receiver<bool>) -> Result<Containerd, Error> {
        if !Path::new(CONTAINERD).exists() {
            return Err(Error::Setup(format!(
                "{CONTAINERD} is missing: run `make deps` (scripts/deps.sh installs containerd, runc and the CNI plugins), or point --container-runtime-endpoint at a running CRI runtime"
            )));
        }
        let runc = find_runc().ok_or_else(|| {
            Error::Setup("runc is missing: run `make deps` (scripts/deps.sh installs it)".into())
        })?;
        if !Path::new(CNI_BIN_DIR).join("bridge").exists() {
            return Err(Error::Setup(format!(
                "the CNI plugins are missing in {CNI_BIN_DIR}: run `make deps` (containernetworking-plugins)"
            )));
        }
        if l.socket.as_os_str().len() > 100 {
            return Err(Error::Setup(format!(
                "containerd's socket path {} is too long for a unix socket: use a shorter --data-dir",
                l.socket.display()
            )));
        }
        for d in [&l.dir, &l.cni_conf_dir, &l.cni_data_dir, &l.certs_d] {
            std::fs::create_dir_all(d).map_err(Error::io(format!("create {}", d.display())))?;
        }
        std::fs::write(&l.config, config_toml(l, &runc, systemd_cgroup()))
            .map_err(Error::io(format!("write {}", l.config.display())))?;
        stop_stale(l).await;
        let child = spawn(l).await?;
        let l = l.clone();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(supervise(l, child, shutdown, stop_rx));
        Ok(Containerd { task, stop })
    }

    /// Stops containerd (if shutdown has not already) and waits until it is gone.
    pub async fn stopped(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The processes whose command line holds `arg` (and, if given, starts with `argv0`).
fn processes_with(arg: &str, argv0: Option<&str>) -> Vec<u32> {
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
        if argv0.is_some_and(|a| args.first().map(String::as_str) != Some(a)) {
            continue;
        }
        if args.iter().any(|a| a == arg) {
            out.push(pid);
        }
    }
    out
}

/// A containerd of an earlier run of this agent that outlived it (rkube was killed):
/// stopped, so that ours can take its socket and database. Its shims, and so the pods,
/// keep running; the new containerd finds them.
async fn stop_stale(l: &Layout) {
    let config = l.config.display().to_string();
    let stale = processes_with(&config, Some(CONTAINERD));
    if stale.is_empty() {
        return;
    }
    tracing::info!(pids = ?stale, "stopping the containerd of an earlier run");
    let pids: Vec<String> = stale.iter().map(u32::to_string).collect();
    let _ = Command::new("kill").arg("-TERM").args(&pids).status().await;
    for _ in 0..100 {
        if processes_with(&config, Some(CONTAINERD)).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").arg("-9").args(&pids).status().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Starts containerd and waits (30 s at most) until its socket accepts connections.
async fn spawn(l: &Layout) -> Result<Child, Error> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&l.log)
        .map_err(Error::io(format!("open {}", l.log.display())))?;
    let err = log
        .try_clone()
        .map_err(Error::io(format!("open {}", l.log.display())))?;
    let mut child = Command::new(CONTAINERD)
        .arg("--config")
        .arg(&l.config)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        // Its own process group: a Ctrl-C meant for rkube does not reach it; rkube stops it.
        .process_group(0)
        .spawn()
        .map_err(Error::io(format!("start {CONTAINERD}")))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::UnixStream::connect(&l.socket).await.is_ok() {
            tracing::info!(pid = ?child.id(), socket = %l.socket.display(), log = %l.log.display(), "containerd started");
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Setup(format!(
                "containerd exited at start ({status}); its log {} ends with:\n{}",
                l.log.display(),
                log_tail(&l.log)
            )));
        }
        if Instant::now() > deadline {
            let _ = child.start_kill();
            return Err(Error::Setup(format!(
                "containerd did not open {} within 30 s; its log {} ends with:\n{}",
                l.socket.display(),
                l.log.display(),
                log_tail(&l.log)
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Restarts containerd when it dies (1 s back-off doubling to 30 s, reset after a minute
/// of life); stops it when `shutdown` or `stop` turns true.
async fn supervise(
    l: Layout,
    mut child: Child,
    mut shutdown: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                if *shutdown.borrow() || *stop.borrow() {
                    return;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(status = ?status.ok(), retry_in = ?backoff, log = %l.log.display(), "containerd exited: restarting it");
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    match spawn(&l).await {
                        Ok(c) => {
                            child = c;
                            break;
                        }
                        Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "containerd did not start again"),
                    }
                }
            }
            _ = shutdown.changed() => {
                terminate(&mut child).await;
                return;
            }
            _ = stop.changed() => {
                terminate(&mut child).await;
                return;
            }
        }
    }
}

/// SIGTERM, then SIGKILL after 10 s.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            tracing::info!("containerd stopped");
            return;
        }
    }
    let _ = child.kill().await;
}

/// Imports every `*.tar` in `dir` into containerd's `k8s.io` namespace (k3s's air-gap
/// convention: `<agent-dir>/images/`). It shells out to `ctr images import` for now
/// (Debian's containerd ships ctr); an archive that fails is logged and skipped.
pub async fn import_images(socket: &Path, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut tars: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    tars.sort();
    for tar in tars {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(socket)
            .args(["-n", NAMESPACE, "images", "import"])
            .arg(&tar)
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => {
                tracing::info!(archive = %tar.display(), "imported images")
            }
            Ok(o) => tracing::warn!(
                archive = %tar.display(),
                error = %String::from_utf8_lossy(&o.stderr).trim(),
                "image import failed"
            ),
            Err(e) => {
                tracing::warn!(archive = %tar.display(), error = %e, "cannot run ctr to import images")
            }
        }
    }
}

/// The node's pod CIDR, once the cluster has given it one.
pub fn pod_cidr(node: Option<&Node>) -> Option<String> {
    node.and_then(|n| n.spec.as_ref())
        .and_then(|s| s.pod_cidr.clone())
        .filter(|c| !c.is_empty())
}

/// Writes the CNI conflist of our containerd once the Node has its pod CIDR (and again
/// if it changes), then pokes the node status (the runtime's network turns ready).
/// With a runtime of someone else's, its network is theirs: nothing is written.
pub async fn run_network(
    l: Layout,
    own: bool,
    mut node: watch::Receiver<Option<Node>>,
    poke: Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    if !own {
        let _ = shutdown.changed().await;
        return Ok(());
    }
    let file = l.cni_conf_dir.join(format!("10-{}.conflist", l.name));
    loop {
        let cidr = pod_cidr(node.borrow_and_update().as_ref());
        if let Some(cidr) = cidr {
            let want = cni_conflist(&l, &cidr);
            if std::fs::read_to_string(&file).ok().as_deref() != Some(want.as_str()) {
                // Written aside and renamed: containerd watches the folder.
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, &want)
                    .map_err(Error::io(format!("write {}", tmp.display())))?;
                std::fs::rename(&tmp, &file)
                    .map_err(Error::io(format!("rename to {}", file.display())))?;
                tracing::info!(%cidr, bridge = %l.name, "wrote the CNI network");
                poke.notify_one();
            }
        }
        tokio::select! {
            r = node.changed() => if r.is_err() { return Ok(()) },
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Ends and removes everything the agent at `agent_dir` left on the machine, as k3s's
/// killall script does: its containers (every process in its pods' cgroups), its
/// containerd and shims, the mounts under the agent dir, the bridge, the cgroups. For
/// tests and for uninstalling; a normal stop leaves the pods running.
pub fn teardown(agent_dir: &Path) {
    let l = Layout::new(agent_dir);
    let sock = l.socket.display().to_string();
    let config = l.config.display().to_string();
    let cgroups: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(&l.name))
        .filter(|p| p.is_dir())
        .collect();
    // The containers first (killing a shim leaves its container running), then
    // containerd and the shims (their command lines name our socket or config).
    for _ in 0..50 {
        let mut pids = Vec::new();
        for c in &cgroups {
            collect_procs(c, &mut pids);
        }
        if pids.is_empty() {
            break;
        }
        kill9(&pids);
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut ours = processes_with(&sock, None);
    ours.extend(processes_with(&config, None));
    kill9(&ours);
    std::thread::sleep(Duration::from_millis(200));
    // Mounts under the agent dir (rootfs overlays, shm, netns), deepest first.
    let prefix = format!("{}/", agent_dir.display());
    let canon = std::fs::canonicalize(agent_dir)
        .map(|p| format!("{}/", p.display()))
        .unwrap_or_else(|_| prefix.clone());
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix) || m.starts_with(&canon))
        .collect();
    mounts.sort();
    mounts.dedup();
    for m in mounts.iter().rev() {
        let _ = std::process::Command::new("umount")
            .args(["-l", m])
            .stderr(std::process::Stdio::null())
            .status();
    }
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &l.name])
        .stderr(std::process::Stdio::null())
        .status();
    // The service proxy's addresses on lo.
    let _ = std::process::Command::new("ip")
        .args([
            "-4",
            "addr",
            "flush",
            "dev",
            "lo",
            "label",
            &lo_label(agent_dir),
        ])
        .stderr(std::process::Stdio::null())
        .status();
    for c in &cgroups {
        remove_cgroup(c);
    }
}

fn collect_procs(dir: &Path, out: &mut Vec<u32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_procs(&e.path(), out);
        }
    }
}

fn remove_cgroup(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn kill9(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .args(pids.iter().map(u32::to_string))
        .stderr(std::process::Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_config() {
        let a = Layout::new(Path::new("/var/lib/rkube-a/agent"));
        let b = Layout::new(Path::new("/var/lib/rkube-b/agent"));
        assert_ne!(a.name, b.name);
        assert!(
            a.name.starts_with("rkube-") && a.name.len() <= 15,
            "{}",
            a.name
        );
        assert_eq!(
            a.name,
            Layout::new(Path::new("/var/lib/rkube-a/agent")).name
        );
        assert_eq!(
            a.socket,
            Path::new("/var/lib/rkube-a/agent/containerd/containerd.sock")
        );
        let toml = config_toml(&a, Path::new("/usr/sbin/runc"), false);
        for want in [
            "root = \"/var/lib/rkube-a/agent/containerd/root\"",
            "state = \"/var/lib/rkube-a/agent/containerd/state\"",
            "address = \"/var/lib/rkube-a/agent/containerd/containerd.sock\"",
            "sandbox_image = \"docker.io/rkube/pause:3.10\"",
            "restrict_oom_score_adj = true",
            "netns_mounts_under_state_dir = true",
            "Root = \"/var/lib/rkube-a/agent/containerd/runc\"",
            "SystemdCgroup = false",
            "bin_dir = \"/usr/lib/cni\"",
            "conf_dir = \"/var/lib/rkube-a/agent/containerd/cni/net.d\"",
            "config_path = \"/var/lib/rkube-a/agent/containerd/certs.d\"",
        ] {
            assert!(toml.contains(want), "{want} missing from:\n{toml}");
        }
        let cni: serde_json::Value =
            serde_json::from_str(&cni_conflist(&a, "10.42.3.0/24")).unwrap();
        let cases: &[(&str, serde_json::Value)] = &[
            ("/name", a.name.clone().into()),
            ("/plugins/0/type", "bridge".into()),
            ("/plugins/0/bridge", a.name.clone().into()),
            ("/plugins/0/isGateway", true.into()),
            ("/plugins/0/ipMasq", false.into()),
            ("/plugins/0/hairpinMode", true.into()),
            ("/plugins/0/ipam/type", "host-local".into()),
            ("/plugins/0/ipam/ranges/0/0/subnet", "10.42.3.0/24".into()),
            ("/plugins/0/ipam/routes/0/dst", "0.0.0.0/0".into()),
            (
                "/plugins/0/ipam/dataDir",
                "/var/lib/rkube-a/agent/containerd/cni/ipam".into(),
            ),
        ];
        for (ptr, want) in cases {
            assert_eq!(cni.pointer(ptr), Some(want), "{ptr}");
        }
    }
}
