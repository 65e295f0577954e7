//! A pod's volumes on this node and its containers' mounts of them (upstream's volume
//! plugins `empty_dir`, `host_path`, `configmap`, `secret`, `downwardapi`, `projected`,
//! the `AtomicWriter`, `makeMounts` and the managed `/etc/hosts`).
//!
//! Everything lives under the pod's directory (`<agent-dir>/pods/<ns>_<name>_<uid>`):
//! `volumes/kubernetes.io~<plugin>/<volume>` and `etc-hosts`. API-data volumes
//! (configMap, secret, downwardAPI, projected) are written with upstream's atomic writer
//! layout — the files in a timestamped `..<time>` directory, `..data` a symlink to it,
//! each top-level name a symlink into `..data` — so an update (the pod worker rewrites
//! them every [`RESYNC`]) swaps `..data` in one rename; with a pod `fsGroup` they belong
//! to that group and are group-readable (upstream's `SetVolumeOwnership`). A Memory emptyDir is a tmpfs
//! mounted on its directory (a plain directory if mounting fails); [`cleanup`] unmounts
//! whatever is mounted under a pod's directory before it is removed. Containers get the
//! volumes through CRI mounts (bind mounts by containerd).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use crate::spec::{self, NodeContext, Runtime};

/// How often API-data volumes are rewritten from the API.
pub const RESYNC: Duration = Duration::from_secs(10);

/// The file of a volume: its bytes and mode.
pub type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// A volume that could not be set up: its name and upstream's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    pub volume: String,
    pub message: String,
}

fn plugin_dir(v: &Volume) -> Option<&'static str> {
    Some(if v.empty_dir.is_some() {
        "kubernetes.io~empty-dir"
    } else if v.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if v.secret.is_some() {
        "kubernetes.io~secret"
    } else if v.downward_api.is_some() {
        "kubernetes.io~downward-api"
    } else if v.projected.is_some() {
        "kubernetes.io~projected"
    } else {
        return None;
    })
}

/// The directory on the host a volume is, when it has one of its own.
pub fn volume_dir(pod_dir: &Path, v: &Volume) -> Option<PathBuf> {
    plugin_dir(v).map(|p| pod_dir.join("volumes").join(p).join(&v.name))
}

/// Unmounts everything mounted under `dir` (deepest first), so it can be removed.
pub fn cleanup(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&p)
            .status();
    }
}

fn is_mounted(dir: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| {
            info.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .any(|p| Path::new(p) == dir)
        })
        .unwrap_or(false)
}

/// upstream's `FormatMap`: `k="v"` lines in key order.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn cm_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.clone().unwrap_or_default() {
        out.insert(k, v.0);
    }
    out
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in s.string_data.clone().unwrap_or_default() {
        out.insert(k, v.into_bytes());
    }
    out
}

/// Keys of an object projected per `items` (all keys when none), upstream's
/// `MakePayload` of the configmap and secret plugins.
pub fn project_keys(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    optional: bool,
    kind: &str,
) -> Result<Payload, String> {
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone(), default_mode));
            }
        }
        Some(items) => {
            for it in items {
                let Some(v) = data.get(&it.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!(
                        "{kind} references non-existent {} key: {}",
                        if kind == "secret" { "secret" } else { "config" },
                        it.key
                    ));
                };
                let mode = it.mode.map(|m| m as u32).unwrap_or(default_mode);
                out.insert(it.path.clone(), (v.clone(), mode));
            }
        }
    }
    Ok(out)
}

fn downward_items(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    node: &NodeContext,
    rt: &Runtime,
) -> Result<Payload, String> {
    let mut out = Payload::new();
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => format_map(&pod.metadata.labels.clone().unwrap_or_default()),
                "metadata.annotations" => {
                    format_map(&pod.metadata.annotations.clone().unwrap_or_default())
                }
                path => spec::field_ref(pod, path, node, rt)?,
            }
        } else if let Some(r) = &it.resource_field_ref {
            let cname = r.container_name.clone().unwrap_or_default();
            let spec = pod.spec.clone().unwrap_or_default();
            let c = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| c.name == cname)
                .ok_or_else(|| format!("container {cname:?} not found"))?;
            spec::resource_field_ref(c, r, node)?
        } else {
            continue;
        };
        let mode = it.mode.map(|m| m as u32).unwrap_or(default_mode);
        out.insert(it.path.clone(), (value.into_bytes(), mode));
    }
    Ok(out)
}

/// Objects a pod's volumes read from the API (`None`: not found).
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub config_maps: HashMap<String, Option<ConfigMap>>,
    pub secrets: HashMap<String, Option<Secret>>,
}

/// Reads the ConfigMaps and Secrets the pod's volumes refer to.
pub async fn gather(client: &kube::Client, pod: &Pod) -> Result<Objects, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        cms.extend(v.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            cms.extend(src.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(src.secret.as_ref().map(|s| s.name.clone()));
        }
    }
    let mut out = Objects::default();
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for n in cms {
        if let Entry::Vacant(e) = out.config_maps.entry(n) {
            let got = cm_api.get_opt(e.key()).await.map_err(|e| e.to_string())?;
            e.insert(got);
        }
    }
    let s_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for n in secrets {
        if let Entry::Vacant(e) = out.secrets.entry(n) {
            let got = s_api.get_opt(e.key()).await.map_err(|e| e.to_string())?;
            e.insert(got);
        }
    }
    Ok(out)
}

/// What an API-data volume holds (None for the other kinds), pure.
pub fn payload(
    pod: &Pod,
    v: &Volume,
    objs: &Objects,
    node: &NodeContext,
    rt: &Runtime,
) -> Result<Option<Payload>, String> {
    let cm = |name: &str| objs.config_maps.get(name).cloned().flatten();
    let secret = |name: &str| objs.secrets.get(name).cloned().flatten();
    if let Some(c) = &v.config_map {
        let mode = c.default_mode.unwrap_or(0o644) as u32;
        let optional = c.optional == Some(true);
        return match cm(&c.name) {
            Some(obj) => project_keys(
                &cm_data(&obj),
                c.items.as_ref(),
                mode,
                optional,
                "configmap",
            )
            .map(Some),
            None if optional => Ok(Some(Payload::new())),
            None => Err(crate::env::not_found("configmap", &c.name)),
        };
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let mode = s.default_mode.unwrap_or(0o644) as u32;
        let optional = s.optional == Some(true);
        return match secret(&name) {
            Some(obj) => project_keys(
                &secret_data(&obj),
                s.items.as_ref(),
                mode,
                optional,
                "secret",
            )
            .map(Some),
            None if optional => Ok(Some(Payload::new())),
            None => Err(crate::env::not_found("secret", &name)),
        };
    }
    if let Some(d) = &v.downward_api {
        let mode = d.default_mode.unwrap_or(0o644) as u32;
        let items = d.items.clone().unwrap_or_default();
        return downward_items(pod, &items, mode, node, rt).map(Some);
    }
    if let Some(p) = &v.projected {
        let mode = p.default_mode.unwrap_or(0o644) as u32;
        let mut out = Payload::new();
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                let optional = c.optional == Some(true);
                match cm(&c.name) {
                    Some(obj) => out.extend(project_keys(
                        &cm_data(&obj),
                        c.items.as_ref(),
                        mode,
                        optional,
                        "configmap",
                    )?),
                    None if optional => {}
                    None => return Err(crate::env::not_found("configmap", &c.name)),
                }
            } else if let Some(s) = &src.secret {
                let optional = s.optional == Some(true);
                match secret(&s.name) {
                    Some(obj) => out.extend(project_keys(
                        &secret_data(&obj),
                        s.items.as_ref(),
                        mode,
                        optional,
                        "secret",
                    )?),
                    None if optional => {}
                    None => return Err(crate::env::not_found("secret", &s.name)),
                }
            } else if let Some(d) = &src.downward_api {
                let items = d.items.clone().unwrap_or_default();
                out.extend(downward_items(pod, &items, mode, node, rt)?);
            }
            // serviceAccountToken and clusterTrustBundle sources: not written (no
            // TokenRequest yet).
        }
        return Ok(Some(out));
    }
    Ok(None)
}

fn check_relative(p: &str) -> io::Result<()> {
    let path = Path::new(p);
    if p.is_empty()
        || path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        || p.starts_with("..")
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid path {p:?}"),
        ));
    }
    Ok(())
}

fn current_payload(data_dir: &Path, payload: &Payload, fs_group: Option<u32>) -> bool {
    use std::os::unix::fs::MetadataExt;
    payload.iter().all(|(p, (bytes, mode))| {
        let f = data_dir.join(p);
        let want = match fs_group {
            Some(_) => mode | RO_MASK,
            None => *mode,
        };
        std::fs::read(&f).is_ok_and(|b| b == *bytes)
            && std::fs::metadata(&f).is_ok_and(|m| {
                m.permissions().mode() & 0o7777 == want && fs_group.is_none_or(|g| m.gid() == g)
            })
    }) && count_files(data_dir) == payload.len()
}

/// What upstream's `SetVolumeOwnership` adds to the mode of a read-only volume's files
/// (`roMask`), and to its directories besides setgid (`execMask`).
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;

/// upstream's `SetVolumeOwnership` for a read-only volume (as every API-data volume is):
/// `dir` and everything under it to group `gid`; a file's mode gains r--r-----, a
/// directory's also setgid and x for owner and group; symlinks are not followed and
/// keep their modes.
fn set_volume_ownership(dir: &Path, gid: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    std::os::unix::fs::lchown(dir, None, Some(gid))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mask = RO_MASK;
    if meta.is_dir() {
        mask |= 0o2000 | EXEC_MASK;
    }
    let mode = meta.permissions().mode() & 0o7777;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | mask))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(dir)? {
            set_volume_ownership(&e?.path(), gid)?;
        }
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// upstream's `AtomicWriter.Write`: the payload in a new timestamped directory, `..data`
/// swapped to it by one rename, a symlink into `..data` for every top-level name, stale
/// ones and the previous directory removed. Returns whether anything changed.
pub fn write_atomic(dir: &Path, payload: &Payload) -> io::Result<bool> {
    write_atomic_owned(dir, payload, None)
}

/// [`write_atomic`] for a pod with `fs_group`: before the swap, the whole volume is given
/// to that group as upstream's `setPerms` hook does ([`set_volume_ownership`]).
pub fn write_atomic_owned(
    dir: &Path,
    payload: &Payload,
    fs_group: Option<u32>,
) -> io::Result<bool> {
    for p in payload.keys() {
        check_relative(p)?;
    }
    std::fs::create_dir_all(dir)?;
    let data = dir.join("..data");
    let old = std::fs::read_link(&data).ok();
    if let Some(old) = &old {
        if current_payload(&dir.join(old), payload, fs_group) {
            return Ok(false);
        }
    }
    let now = Timestamp::now();
    let ts = format!(
        "..{}.{:09}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond()
    );
    let ts_dir = dir.join(&ts);
    std::fs::create_dir(&ts_dir)?;
    for (p, (bytes, mode)) in payload {
        let f = ts_dir.join(p);
        if let Some(parent) = f.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&f, bytes)?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode))?;
    }
    if let Some(gid) = fs_group {
        set_volume_ownership(dir, gid)?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts, &tmp)?;
    std::fs::rename(&tmp, &data)?;
    // The user-visible names: one symlink per top-level component.
    let mut top: Vec<String> = payload
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    top.dedup();
    for t in &top {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(t), &link)?;
        }
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != "..data" && name != ts {
                let _ = std::fs::remove_dir_all(e.path());
            }
            continue;
        }
        if !top.contains(&name) && e.file_type().is_ok_and(|t| t.is_symlink()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(true)
}

fn setup_host_path(path: &str, kind: &str) -> Result<(), String> {
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    let is = |f: fn(&std::fs::Metadata) -> bool| meta.as_ref().is_ok_and(f);
    let fail = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match kind {
        "DirectoryOrCreate" if meta.is_err() => {
            std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            Ok(())
        }
        "DirectoryOrCreate" | "Directory" if !is(|m| m.is_dir()) => fail("a directory"),
        "FileOrCreate" if meta.is_err() => {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| e.to_string())?;
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
            Ok(())
        }
        "FileOrCreate" | "File" if !is(|m| m.is_file()) => fail("a file"),
        "Socket" if !is(|m| m.file_type().is_socket()) => fail("a socket file"),
        "CharDevice" if !is(|m| m.file_type().is_char_device()) => fail("a character device"),
        "BlockDevice" if !is(|m| m.file_type().is_block_device()) => fail("a block device"),
        _ => Ok(()),
    }
}

/// Sets up (or refreshes) every volume of the pod; returns each volume's host path.
pub fn setup(
    pod: &Pod,
    pod_dir: &Path,
    objs: &Objects,
    node: &NodeContext,
    rt: &Runtime,
) -> Result<HashMap<String, PathBuf>, SetupError> {
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let err = |message: String| SetupError {
            volume: v.name.clone(),
            message,
        };
        if let Some(h) = &v.host_path {
            setup_host_path(&h.path, h.type_.as_deref().unwrap_or("")).map_err(err)?;
            out.insert(v.name.clone(), PathBuf::from(&h.path));
            continue;
        }
        let Some(dir) = volume_dir(pod_dir, v) else {
            // Volume kinds this kubelet has no plugin for are left out.
            continue;
        };
        if let Some(e) = &v.empty_dir {
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
            }
            if e.medium.as_deref() == Some("Memory") && !is_mounted(&dir) {
                let ok = std::process::Command::new("mount")
                    .args(["-t", "tmpfs", "-o", "mode=0777", "tmpfs"])
                    .arg(&dir)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    tracing::warn!(dir = %dir.display(), "cannot mount a tmpfs: a plain directory instead");
                }
            }
        } else if let Some(p) = payload(pod, v, objs, node, rt).map_err(err)? {
            let fs_group = pod
                .spec
                .as_ref()
                .and_then(|s| s.security_context.as_ref())
                .and_then(|sc| sc.fs_group)
                .and_then(|g| u32::try_from(g).ok());
            write_atomic_owned(&dir, &p, fs_group).map_err(|e| err(e.to_string()))?;
        }
        out.insert(v.name.clone(), dir);
    }
    Ok(out)
}

/// upstream's managed `/etc/hosts` of a pod (`ensureHostsFile`).
pub fn hosts_file(pod: &Pod, pod_ip: &str, cluster_domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut s = String::from("# Kubernetes-managed hosts file.\n");
    s.push_str("127.0.0.1\tlocalhost\n");
    s.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    s.push_str("fe00::0\tip6-localnet\n");
    s.push_str("fe00::0\tip6-mcastprefix\n");
    s.push_str("fe00::1\tip6-allnodes\n");
    s.push_str("fe00::2\tip6-allrouters\n");
    let hostname = spec::hostname(pod);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        Some(sub) => s.push_str(&format!(
            "{pod_ip}\t{hostname}.{sub}.{ns}.svc.{cluster_domain}\t{hostname}\n"
        )),
        None => s.push_str(&format!("{pod_ip}\t{hostname}\n")),
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.unwrap_or_default().join("\t");
            s.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    s
}

/// Writes the pod's `/etc/hosts` (the host's own with hostNetwork); its path.
pub fn write_hosts(pod: &Pod, pod_dir: &Path, pod_ip: &str, domain: &str) -> io::Result<PathBuf> {
    let path = pod_dir.join("etc-hosts");
    let text = if spec::host_network(pod) {
        let host = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        format!("# Kubernetes-managed hosts file (host network).\n{host}")
    } else {
        hosts_file(pod, pod_ip, domain)
    };
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::create_dir_all(pod_dir)?;
        let tmp = pod_dir.join(".etc-hosts.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// The CRI mounts of container `c` (upstream's `makeMounts`): its volumeMounts (subPath
/// created when missing, API-data volumes read-only) and the managed `/etc/hosts`.
pub fn mounts(
    pod: &Pod,
    c: &Container,
    volumes: &HashMap<String, PathBuf>,
    hosts: Option<&Path>,
    envs: &[(String, String)],
) -> Result<Vec<cri::Mount>, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(base) = volumes.get(&m.name) else {
            return Err(format!(
                "cannot find volume {:?} to mount into container {:?}",
                m.name, c.name
            ));
        };
        let vol = spec.volumes.iter().flatten().find(|v| v.name == m.name);
        let api_data = vol.is_some_and(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        });
        let mut host = base.clone();
        let sub = match m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            Some(expr) => Some(expand_sub_path_expr(expr, envs)?),
            None => m.sub_path.clone(),
        };
        if let Some(sub) = sub.as_deref().filter(|s| !s.is_empty()) {
            if Path::new(sub).is_absolute() {
                return Err(format!(
                    "error SubPath `{sub}` must not be an absolute path"
                ));
            }
            if Path::new(sub)
                .components()
                .any(|c| matches!(c, Component::ParentDir))
            {
                return Err(format!(
                    "unable to provision SubPath `{sub}`: must not contain '..'"
                ));
            }
            check_relative(sub).map_err(|e| e.to_string())?;
            host = base.join(sub);
            if std::fs::symlink_metadata(&host).is_err() {
                std::fs::create_dir_all(&host).map_err(|e| e.to_string())?;
                let _ = std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o777));
            }
            // A subPath into an atomic-writer volume is the file itself (as upstream,
            // it does not follow later updates).
            if let Ok(real) = std::fs::canonicalize(&host) {
                host = real;
            }
        }
        out.push(cri::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: m.read_only.unwrap_or(false) || api_data,
            ..Default::default()
        });
    }
    if let Some(h) = hosts {
        if !out.iter().any(|m| m.container_path == "/etc/hosts") {
            out.push(cri::Mount {
                container_path: "/etc/hosts".into(),
                host_path: h.display().to_string(),
                ..Default::default()
            });
        }
    }
    Ok(out)
}

/// upstream's `ExpandContainerVolumeMounts`: `subPathExpr` with `$(VAR)` expanded from
/// the container's environment; a variable that is missing or empty is an error.
pub fn expand_sub_path_expr(expr: &str, envs: &[(String, String)]) -> Result<String, String> {
    let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let expanded = crate::spec::expand(expr, &|k: &str| {
        let v = envs
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if v.is_empty() {
            missing.borrow_mut().insert(k.to_string());
        }
        Some(v)
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        return Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(expanded)
}

/// The file a container may leave its termination message in, mounted at its
/// `terminationMessagePath` (upstream's `makeMounts`): a new empty file of mode 0666 per
/// container instance, `<pod-dir>/containers/<name>/<8 hex digits>`; none without a path.
pub fn termination_log(pod_dir: &Path, c: &Container) -> io::Result<Option<cri::Mount>> {
    let Some(to) = c
        .termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    let dir = pod_dir.join("containers").join(&c.name);
    std::fs::create_dir_all(&dir)?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    let mut n = seed;
    let file = loop {
        let f = dir.join(format!("{n:08x}"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&f)
        {
            Ok(_) => break f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n = n.wrapping_add(1),
            Err(e) => return Err(e),
        }
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))?;
    Ok(Some(cri::Mount {
        container_path: to.to_string(),
        host_path: file.display().to_string(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sub_path_expr_expands_from_the_environment() {
        let envs = vec![
            ("POD_NAME".to_string(), "foo".to_string()),
            ("ANNOTATION".to_string(), String::new()),
        ];
        assert_eq!(expand_sub_path_expr("$(POD_NAME)", &envs).unwrap(), "foo");
        assert_eq!(
            expand_sub_path_expr("$(ANNOTATION)/$(POD_NAME)/$(NONE)", &envs).unwrap_err(),
            "missing value for ANNOTATION, NONE"
        );
    }

    use super::*;

    fn pl(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, v, m)| (p.to_string(), (v.as_bytes().to_vec(), *m)))
            .collect()
    }

    #[test]
    fn termination_log_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Container {
            name: "app".into(),
            termination_message_path: Some("/dev/termination-custom-log".into()),
            ..Default::default()
        };
        let a = termination_log(tmp.path(), &c).unwrap().unwrap();
        let b = termination_log(tmp.path(), &c).unwrap().unwrap();
        assert_eq!(a.container_path, "/dev/termination-custom-log");
        assert_ne!(a.host_path, b.host_path, "one file per container instance");
        let host = Path::new(&a.host_path);
        assert_eq!(host.parent().unwrap(), tmp.path().join("containers/app"));
        let meta = std::fs::metadata(host).unwrap();
        assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (0, 0o666));
        c.termination_message_path = None;
        assert!(termination_log(tmp.path(), &c).unwrap().is_none());
    }

    #[test]
    fn atomic_writer_layout_and_updates() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        assert!(write_atomic(&dir, &pl(&[("a", "1", 0o644), ("sub/b", "2", 0o600)])).unwrap());
        let data = std::fs::read_link(dir.join("..data")).unwrap();
        assert!(data.to_string_lossy().starts_with("..20"), "{data:?}");
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            std::fs::read_link(dir.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        let mode = std::fs::metadata(dir.join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Same payload: nothing written.
        assert!(!write_atomic(&dir, &pl(&[("a", "1", 0o644), ("sub/b", "2", 0o600)])).unwrap());
        // An update: new data dir, stale names gone, the old data dir removed.
        assert!(write_atomic(&dir, &pl(&[("a", "changed", 0o644), ("c", "3", 0o644)])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "changed");
        assert_eq!(std::fs::read_to_string(dir.join("c")).unwrap(), "3");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());
        let hidden: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".."))
            .collect();
        assert_eq!(hidden.len(), 2, "{hidden:?}");
        // A mode change alone is an update.
        assert!(write_atomic(&dir, &pl(&[("a", "changed", 0o400), ("c", "3", 0o644)])).unwrap());
        // Paths that leave the volume are refused.
        for bad in ["../x", "/etc/passwd", "..data", "a/../../x"] {
            assert!(
                write_atomic(&dir, &pl(&[(bad, "x", 0o644)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn fs_group_owns_the_volume() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        // As root any group; otherwise our own.
        let own = std::fs::metadata(tmp.path()).unwrap();
        let gid = if own.uid() == 0 { 1001 } else { own.gid() };
        let payload = pl(&[("a", "1", 0o400), ("sub/b", "2", 0o644)]);
        assert!(write_atomic_owned(&dir, &payload, Some(gid)).unwrap());
        for (f, mode) in [("a", 0o440), ("sub/b", 0o644)] {
            let m = std::fs::metadata(dir.join(f)).unwrap();
            assert_eq!(
                (m.permissions().mode() & 0o7777, m.gid()),
                (mode, gid),
                "{f}"
            );
        }
        let d = std::fs::metadata(dir.join("sub")).unwrap();
        assert_eq!(d.gid(), gid);
        assert_eq!(d.permissions().mode() & 0o2550, 0o2550);
        let root = std::fs::metadata(&dir).unwrap();
        assert_eq!(
            (root.gid(), root.permissions().mode() & 0o2000),
            (gid, 0o2000)
        );
        // The adjusted modes are what the payload asks for with that group: no rewrite.
        assert!(!write_atomic_owned(&dir, &payload, Some(gid)).unwrap());
        // Without a group a 0400 file stays 0400.
        let plain = tmp.path().join("plain");
        assert!(write_atomic(&plain, &payload).unwrap());
        let m = std::fs::metadata(plain.join("a")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o400);
    }

    #[test]
    fn key_projection() {
        let data: BTreeMap<String, Vec<u8>> = [
            ("k1".to_string(), b"v1".to_vec()),
            ("k2".to_string(), b"v2".to_vec()),
        ]
        .into();
        let all = project_keys(&data, None, 0o644, false, "configmap").unwrap();
        assert_eq!(all.len(), 2);
        let items = vec![KeyToPath {
            key: "k2".into(),
            path: "dir/two".into(),
            mode: Some(0o400),
        }];
        let some = project_keys(&data, Some(&items), 0o644, false, "configmap").unwrap();
        assert_eq!(some.get("dir/two"), Some(&(b"v2".to_vec(), 0o400)));
        assert_eq!(some.len(), 1);
        let missing = vec![KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            mode: None,
        }];
        assert_eq!(
            project_keys(&data, Some(&missing), 0o644, false, "configmap").unwrap_err(),
            "configmap references non-existent config key: nope"
        );
        assert_eq!(
            project_keys(&data, Some(&missing), 0o644, false, "secret").unwrap_err(),
            "secret references non-existent secret key: nope"
        );
        assert!(project_keys(&data, Some(&missing), 0o644, true, "secret")
            .unwrap()
            .is_empty());
        let labels: BTreeMap<String, String> = [
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "x\"y".to_string()),
        ]
        .into();
        assert_eq!(format_map(&labels), "a=\"x\\\"y\"\nb=\"2\"");
    }

    #[test]
    fn hosts() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"containers": [], "subdomain": "sub",
                     "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["foo", "bar"]}]}
        }))
        .unwrap();
        let h = hosts_file(&pod, "10.42.0.7", "cluster.local");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            h.contains("10.42.0.7\tweb.sub.shop.svc.cluster.local\tweb\n"),
            "{h}"
        );
        assert!(
            h.ends_with("\n# Entries added by HostAliases.\n1.2.3.4\tfoo\tbar\n"),
            "{h}"
        );
    }
}
