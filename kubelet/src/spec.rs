//! What CRI is asked for a pod, as pure functions of the pod and the node: the sandbox
//! config (metadata, hostname, DNS, namespaces, cgroup parent, log directory), each
//! container's config (image, command and args with `$(VAR)` expansion, env with
//! fieldRef and resourceFieldRef, labels that let a restarted kubelet adopt it,
//! resources), the pod's QoS class — upstream's `kuberuntime_sandbox.go`,
//! `kuberuntime_container.go`, `kubelet_pods.go` (`makeEnvironmentVariables`),
//! `dns.go`, `third_party/forked/golang/expansion` and `qos.GetPodQOS`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Labels on every sandbox and container the kubelet creates (upstream's names): they
/// tie runtime objects to their pod, so a restarted kubelet adopts them.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// What the node contributes to a pod's runtime config.
#[derive(Clone, Debug)]
pub struct NodeContext {
    pub agent_dir: PathBuf,
    pub node_name: String,
    pub node_ip: IpAddr,
    pub cluster_dns: IpAddr,
    pub cluster_domain: String,
    /// The cgroup the pods go under (`/rkube-<hash>`).
    pub cgroup_root: String,
    /// The host's resolver config (for dnsPolicy Default and search paths).
    pub host_dns: ResolvConf,
    /// The node's CPU count and memory in bytes (resourceFieldRef without limits).
    pub cpus: usize,
    pub memory_bytes: u64,
}

/// `/etc/resolv.conf`, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut r = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => r.servers.extend(f.next().map(str::to_string)),
                Some("search") | Some("domain") => r.searches = f.map(str::to_string).collect(),
                Some("options") => r.options.extend(f.map(str::to_string)),
                _ => {}
            }
        }
        r
    }

    pub fn read() -> ResolvConf {
        std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| ResolvConf::parse(&t))
            .unwrap_or_default()
    }
}

fn meta(pod: &Pod) -> (&str, &str, &str) {
    (
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or(""),
    )
}

/// `<agent-dir>/pods/<ns>_<name>_<uid>`: where the pod's container logs go.
pub fn pod_log_dir(agent_dir: &Path, pod: &Pod) -> PathBuf {
    let (name, ns, uid) = meta(pod);
    agent_dir.join("pods").join(format!("{ns}_{name}_{uid}"))
}

/// `<container>/<attempt>.log`, relative to the pod's log directory.
pub fn container_log_path(container: &str, attempt: u32) -> String {
    format!("{container}/{attempt}.log")
}

/// upstream's `format.Pod`: `name_namespace(uid)`.
pub fn pod_desc(pod: &Pod) -> String {
    let (name, ns, uid) = meta(pod);
    format!("{name}_{ns}({uid})")
}

pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod's hostname: `spec.hostname` or its name, at most 63 characters (upstream's
/// `GeneratePodHostNameAndDomain`), and empty with the host's network (runc refuses a
/// hostname in the host's UTS namespace here).
pub fn hostname(pod: &Pod) -> String {
    if host_network(pod) {
        return String::new();
    }
    let spec_name = pod.spec.as_ref().and_then(|s| s.hostname.clone());
    let mut h = spec_name
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    if h.len() > 63 {
        h.truncate(63);
        while h.ends_with(['-', '.']) {
            h.pop();
        }
    }
    h
}

/// The pod's DNS config per its dnsPolicy (upstream's `GetPodDNS`).
pub fn dns_config(pod: &Pod, node: &NodeContext) -> cri::DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let (_, ns, _) = meta(pod);
    let mut policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    if policy == "ClusterFirst" && spec.host_network.unwrap_or(false) {
        policy = "Default";
    }
    if policy == "ClusterFirstWithHostNet" {
        policy = "ClusterFirst";
    }
    let d = &node.cluster_domain;
    let mut cfg = match policy {
        "ClusterFirst" => {
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            for s in &node.host_dns.searches {
                if !searches.contains(s) {
                    searches.push(s.clone());
                }
            }
            cri::DnsConfig {
                servers: vec![node.cluster_dns.to_string()],
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        "None" => cri::DnsConfig::default(),
        _ => cri::DnsConfig {
            servers: node.host_dns.servers.clone(),
            searches: node.host_dns.searches.clone(),
            options: node.host_dns.options.clone(),
        },
    };
    if let Some(extra) = spec.dns_config {
        for s in extra.nameservers.into_iter().flatten() {
            if !cfg.servers.contains(&s) {
                cfg.servers.push(s);
            }
        }
        for s in extra.searches.into_iter().flatten() {
            if !cfg.searches.contains(&s) {
                cfg.searches.push(s);
            }
        }
        for o in extra.options.into_iter().flatten() {
            let opt = match o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let key = o.name.unwrap_or_default();
            cfg.options
                .retain(|x| x.split(':').next() != Some(key.as_str()));
            cfg.options.push(opt);
        }
    }
    cfg
}

fn ns_mode(node: bool, pod: bool) -> i32 {
    if node {
        cri::NamespaceMode::Node as i32
    } else if pod {
        cri::NamespaceMode::Pod as i32
    } else {
        cri::NamespaceMode::Container as i32
    }
}

/// The namespaces of the pod's containers (network, pid, ipc).
pub fn namespace_options(pod: &Pod) -> cri::NamespaceOption {
    let s = pod.spec.clone().unwrap_or_default();
    cri::NamespaceOption {
        network: ns_mode(s.host_network.unwrap_or(false), true),
        pid: ns_mode(
            s.host_pid.unwrap_or(false),
            s.share_process_namespace.unwrap_or(false),
        ),
        ipc: ns_mode(s.host_ipc.unwrap_or(false), true),
        ..Default::default()
    }
}

fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let (name, ns, uid) = meta(pod);
    let mut l: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    l.insert(LABEL_POD_NAME.into(), name.into());
    l.insert(LABEL_POD_NAMESPACE.into(), ns.into());
    l.insert(LABEL_POD_UID.into(), uid.into());
    l
}

/// The groups a pod's processes get besides their primary one: its `fsGroup` first, then
/// its `supplementalGroups` (upstream's `determineEffectiveSecurityContext` and
/// `generatePodSandboxLinuxConfig`), so that they can read volumes owned by the fsGroup.
fn supplemental_groups(sc: &k8s_openapi::api::core::v1::PodSecurityContext) -> Vec<i64> {
    sc.fs_group
        .into_iter()
        .chain(sc.supplemental_groups.iter().flatten().copied())
        .collect()
}

/// The sandbox config of `pod`'s `attempt`-th sandbox.
pub fn sandbox_config(pod: &Pod, node: &NodeContext, attempt: u32) -> cri::PodSandboxConfig {
    let (name, ns, uid) = meta(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let sc = spec.security_context.clone().unwrap_or_default();
    let privileged = spec.containers.iter().any(|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false)
    });
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: ns.into(),
            attempt,
        }),
        hostname: hostname(pod),
        log_directory: pod_log_dir(&node.agent_dir, pod).display().to_string(),
        dns_config: Some(dns_config(pod, node)),
        port_mappings: Vec::new(),
        labels: pod_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/pod{uid}", node.cgroup_root),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: sc.run_as_user.map(|value| cri::Int64Value { value }),
                run_as_group: sc.run_as_group.map(|value| cri::Int64Value { value }),
                supplemental_groups: supplemental_groups(&sc),
                privileged,
                ..Default::default()
            }),
            sysctls: sc
                .sysctls
                .into_iter()
                .flatten()
                .map(|s| (s.name, s.value))
                .collect(),
            ..Default::default()
        }),
        windows: None,
    }
}

/// upstream's `expansion.Expand`: `$(VAR)` is replaced by VAR's value when VAR is
/// defined and left as it is otherwise; `$$` is an escaped `$`.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let b = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < b.len() {
        if b[cursor] == b'$' && cursor + 1 < b.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(end) => {
                        let name = &rest[1..end];
                        match vars(name) {
                            Some(v) => out.push_str(&v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        end + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // An operator that begins no expression: itself and the next character.
                    let ch = rest.chars().next().expect("not empty");
                    out.push('$');
                    out.push(ch);
                    ch.len_utf8()
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    out
}

/// A Kubernetes quantity in base units (`100m` → 0.1, `1Gi` → 2^30).
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * mult)
}

fn quantity(map: Option<&BTreeMap<String, Quantity>>, key: &str) -> Option<f64> {
    map.and_then(|m| m.get(key))
        .and_then(|q| parse_quantity(&q.0))
}

/// The pod's QoS class (upstream's `GetPodQOS`, cpu and memory only).
pub fn qos_class(pod: &Pod) -> &'static str {
    let spec = pod.spec.clone().unwrap_or_default();
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut requests: BTreeMap<&str, f64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, f64> = BTreeMap::new();
    let mut guaranteed = true;
    for c in &all {
        let r = c.resources.clone().unwrap_or_default();
        for key in ["cpu", "memory"] {
            if let Some(v) = quantity(r.requests.as_ref(), key).filter(|v| *v != 0.0) {
                *requests.entry(key).or_default() += v;
            }
        }
        let mut found = 0;
        for key in ["cpu", "memory"] {
            if let Some(v) = quantity(r.limits.as_ref(), key).filter(|v| *v != 0.0) {
                found += 1;
                *limits.entry(key).or_default() += v;
            }
        }
        if found != 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
    {
        return "Guaranteed";
    }
    "Burstable"
}

/// The runtime values a container's env may refer to.
#[derive(Clone, Debug, Default)]
pub struct Runtime {
    pub pod_ip: Option<String>,
    /// The ConfigMaps, Secrets and service variables the environment refers to.
    pub sources: crate::env::Sources,
    /// The container's volume mounts.
    pub mounts: Vec<cri::Mount>,
}

pub(crate) fn field_ref(
    pod: &Pod,
    path: &str,
    node: &NodeContext,
    rt: &Runtime,
) -> Result<String, String> {
    let (name, ns, uid) = meta(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let sub = |prefix: &str, map: &Option<BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?.to_string();
        Some(
            map.as_ref()
                .and_then(|m| m.get(&key).cloned())
                .unwrap_or_default(),
        )
    };
    if let Some(v) = sub("metadata.labels['", &pod.metadata.labels) {
        return Ok(v);
    }
    if let Some(v) = sub("metadata.annotations['", &pod.metadata.annotations) {
        return Ok(v);
    }
    Ok(match path {
        "metadata.name" => name.into(),
        "metadata.namespace" => ns.into(),
        "metadata.uid" => uid.into(),
        "spec.nodeName" => spec.node_name.unwrap_or_else(|| node.node_name.clone()),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => node.node_ip.to_string(),
        "status.podIP" | "status.podIPs" => rt.pod_ip.clone().unwrap_or_default(),
        other => return Err(format!("unsupported fieldRef fieldPath {other:?}")),
    })
}

pub(crate) fn resource_field_ref(
    c: &Container,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
    node: &NodeContext,
) -> Result<String, String> {
    let res = c.resources.clone().unwrap_or_default();
    let (kind, key) = r
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resourceFieldRef resource {:?}", r.resource))?;
    let map = match kind {
        "limits" => res.limits.as_ref(),
        "requests" => res.requests.as_ref(),
        _ => {
            return Err(format!(
                "unsupported resourceFieldRef resource {:?}",
                r.resource
            ))
        }
    };
    let node_value = match key {
        "cpu" => node.cpus as f64,
        "memory" => node.memory_bytes as f64,
        "ephemeral-storage" => 0.0,
        _ => {
            return Err(format!(
                "unsupported resourceFieldRef resource {:?}",
                r.resource
            ))
        }
    };
    let value = quantity(map, key)
        .or_else(|| {
            (kind == "requests")
                .then(|| quantity(res.limits.as_ref(), key))
                .flatten()
        })
        .unwrap_or(if kind == "limits" { node_value } else { 0.0 });
    let divisor = r
        .divisor
        .as_ref()
        .and_then(|d| parse_quantity(&d.0))
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    Ok(format!("{}", (value / divisor).ceil() as i64))
}

/// The container's environment (upstream's `makeEnvironmentVariables`): envFrom's
/// ConfigMaps and Secrets (prefixed; keys that are no variable names skipped), then
/// `env` in order (values expanded against the variables so far and the service
/// variables; fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef resolved),
/// then the service variables not already set. A missing ConfigMap, Secret or key that
/// is not optional is an error with upstream's message (the container then waits in
/// CreateContainerConfigError).
pub fn env(
    pod: &Pod,
    c: &Container,
    node: &NodeContext,
    rt: &Runtime,
) -> Result<Vec<(String, String)>, String> {
    let (_, ns, _) = meta(pod);
    let src = &rt.sources;
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| match out
        .iter_mut()
        .find(|(n, _)| *n == k)
    {
        Some(slot) => slot.1 = v,
        None => out.push((k, v)),
    };
    for e in c.env_from.iter().flatten() {
        let prefix = e.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &e.config_map_ref {
            match src.config_map(&r.name) {
                Some(d) => d,
                None if r.optional == Some(true) => continue,
                None => return Err(crate::env::not_found("configmap", &r.name)),
            }
        } else if let Some(r) = &e.secret_ref {
            match src.secret(&r.name) {
                Some(d) => d,
                None if r.optional == Some(true) => continue,
                None => return Err(crate::env::not_found("secret", &r.name)),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            let k = format!("{prefix}{k}");
            if crate::env::is_env_var_name(&k) {
                set(&mut out, k, v);
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) if !v.is_empty() => {
                let known: HashMap<String, String> = out.iter().cloned().collect();
                let services: HashMap<&str, &str> = src
                    .services
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                expand(v, &|name| {
                    known
                        .get(name)
                        .cloned()
                        .or_else(|| services.get(name).map(|v| v.to_string()))
                })
            }
            (_, Some(src_ref)) => {
                if let Some(f) = &src_ref.field_ref {
                    field_ref(pod, &f.field_path, node, rt)?
                } else if let Some(r) = &src_ref.resource_field_ref {
                    resource_field_ref(c, r, node)?
                } else if let Some(r) = &src_ref.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    let Some(data) = src.config_map(&r.name) else {
                        if optional {
                            continue;
                        }
                        return Err(crate::env::not_found("configmap", &r.name));
                    };
                    match data.get(&r.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            ))
                        }
                    }
                } else if let Some(r) = &src_ref.secret_key_ref {
                    let optional = r.optional == Some(true);
                    let Some(data) = src.secret(&r.name) else {
                        if optional {
                            continue;
                        }
                        return Err(crate::env::not_found("secret", &r.name));
                    };
                    match data.get(&r.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            ))
                        }
                    }
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        set(&mut out, e.name.clone(), value);
    }
    for (k, v) in &src.services {
        if !out.iter().any(|(n, _)| n == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    Ok(out)
}

/// A stable digest of the container's spec (the `io.kubernetes.container.hash`
/// annotation).
pub fn container_hash(c: &Container) -> String {
    let json = serde_json::to_vec(c).unwrap_or_default();
    let h = json.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{:x}", h as u32)
}

/// The container's cgroup resources from its requests and limits.
pub fn linux_resources(c: &Container, qos: &str) -> cri::LinuxContainerResources {
    let r = c.resources.clone().unwrap_or_default();
    let cpu_request = quantity(r.requests.as_ref(), "cpu")
        .or_else(|| quantity(r.limits.as_ref(), "cpu"))
        .unwrap_or(0.0);
    let mut out = cri::LinuxContainerResources {
        // upstream's MilliCPUToShares: at least 2.
        cpu_shares: ((cpu_request * 1024.0).round() as i64).max(2),
        oom_score_adj: match qos {
            "Guaranteed" => -997,
            "BestEffort" => 1000,
            _ => 999,
        },
        ..Default::default()
    };
    if let Some(l) = quantity(r.limits.as_ref(), "cpu") {
        out.cpu_period = 100_000;
        out.cpu_quota = ((l * 100_000.0).round() as i64).max(1000);
    }
    if let Some(m) = quantity(r.limits.as_ref(), "memory") {
        out.memory_limit_in_bytes = m as i64;
    }
    out
}

/// The config of `c`'s `attempt`-th container, of image `image_ref` (the ID the runtime
/// resolved the pod's image to).
pub fn container_config(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    image_ref: &str,
    node: &NodeContext,
    rt: &Runtime,
) -> Result<cri::ContainerConfig, String> {
    let (name, ns, uid) = meta(pod);
    let envs = env(pod, c, node, rt)?;
    let known: HashMap<String, String> = envs.iter().cloned().collect();
    let vars = |n: &str| known.get(n).cloned();
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let labels: HashMap<String, String> = [
        (LABEL_POD_NAME, name),
        (LABEL_POD_NAMESPACE, ns),
        (LABEL_POD_UID, uid),
        (LABEL_CONTAINER_NAME, c.name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let grace = spec.termination_grace_period_seconds.unwrap_or(30);
    let annotations: HashMap<String, String> = [
        ("io.kubernetes.container.hash", container_hash(c)),
        ("io.kubernetes.container.restartCount", attempt.to_string()),
        (
            "io.kubernetes.container.terminationMessagePath",
            c.termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
        (
            "io.kubernetes.container.terminationMessagePolicy",
            c.termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
        (
            "io.kubernetes.pod.terminationGracePeriod",
            grace.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let caps = sc.capabilities.clone().unwrap_or_default();
    let mut ns_opts = namespace_options(pod);
    ns_opts.pid = if spec.host_pid.unwrap_or(false) {
        cri::NamespaceMode::Node as i32
    } else if spec.share_process_namespace.unwrap_or(false) {
        cri::NamespaceMode::Pod as i32
    } else {
        cri::NamespaceMode::Container as i32
    };
    Ok(cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(cri::ImageSpec {
            image: image_ref.to_string(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: c
            .command
            .iter()
            .flatten()
            .map(|s| expand(s, &vars))
            .collect(),
        args: c.args.iter().flatten().map(|s| expand(s, &vars)).collect(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        mounts: rt.mounts.clone(),
        envs: envs
            .into_iter()
            .map(|(key, value)| cri::KeyValue { key, value })
            .collect(),
        labels,
        annotations,
        log_path: container_log_path(&c.name, attempt),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(c, qos_class(pod))),
            security_context: Some(cri::LinuxContainerSecurityContext {
                capabilities: Some(cri::Capability {
                    add_capabilities: caps.add.unwrap_or_default(),
                    drop_capabilities: caps.drop.unwrap_or_default(),
                    ..Default::default()
                }),
                privileged: sc.privileged.unwrap_or(false),
                namespace_options: Some(ns_opts),
                run_as_user: sc
                    .run_as_user
                    .or(pod_sc.run_as_user)
                    .map(|value| cri::Int64Value { value }),
                run_as_group: sc
                    .run_as_group
                    .or(pod_sc.run_as_group)
                    .map(|value| cri::Int64Value { value }),
                readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
                supplemental_groups: supplemental_groups(&pod_sc),
                no_new_privs: sc.allow_privilege_escalation == Some(false),
                ..Default::default()
            }),
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EnvVar, EnvVarSource, ObjectFieldSelector, PodDNSConfig, PodSpec, ResourceRequirements,
    };
    use kube::api::ObjectMeta;

    fn node() -> NodeContext {
        NodeContext {
            agent_dir: "/var/lib/rkube/agent".into(),
            node_name: "n1".into(),
            node_ip: "192.168.1.5".parse().unwrap(),
            cluster_dns: "10.43.0.10".parse().unwrap(),
            cluster_domain: "cluster.local".into(),
            cgroup_root: "/rkube-0000abcd".into(),
            host_dns: ResolvConf::parse("nameserver 1.1.1.1\nsearch example.org\noptions edns0\n"),
            cpus: 2,
            memory_bytes: 1 << 30,
        }
    }

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            image: Some("busybox".into()),
            ..Default::default()
        }
    }

    #[test]
    fn expansion() {
        let vars = |n: &str| match n {
            "A" => Some("alpha".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let cases = [
            ("echo $(A)", "echo alpha"),
            ("$(A)$(A)", "alphaalpha"),
            ("echo hello from $(hostname)", "echo hello from $(hostname)"),
            ("$$(A)", "$(A)"),
            ("$$", "$"),
            ("a$", "a$"),
            ("$(A", "$(A"),
            ("$x$(EMPTY)y", "$xy"),
            ("$(UNDEFINED) $(A)", "$(UNDEFINED) alpha"),
            ("no refs", "no refs"),
            ("$é", "$é"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &vars), want, "{input}");
        }
    }

    #[test]
    fn quantities_and_qos() {
        for (q, want) in [
            ("100m", 0.1),
            ("2", 2.0),
            ("1Gi", 1073741824.0),
            ("128Mi", 134217728.0),
            ("1e3", 1000.0),
            ("0.5", 0.5),
            ("1k", 1000.0),
        ] {
            assert_eq!(parse_quantity(q), Some(want), "{q}");
        }
        assert_eq!(parse_quantity("1Qi"), None);
        let res = |req: &[(&str, &str)], lim: &[(&str, &str)]| ResourceRequirements {
            requests: Some(
                req.iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            ),
            limits: Some(
                lim.iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            ),
            ..Default::default()
        };
        let with = |r: Option<ResourceRequirements>| {
            pod(PodSpec {
                containers: vec![Container {
                    resources: r,
                    ..container("a")
                }],
                ..Default::default()
            })
        };
        let cases = [
            (None, "BestEffort"),
            (Some(res(&[], &[])), "BestEffort"),
            (Some(res(&[("cpu", "100m")], &[])), "Burstable"),
            (
                Some(res(
                    &[("cpu", "1"), ("memory", "1Gi")],
                    &[("cpu", "1"), ("memory", "1Gi")],
                )),
                "Guaranteed",
            ),
            (
                Some(res(
                    &[("cpu", "1000m"), ("memory", "1Gi")],
                    &[("cpu", "1"), ("memory", "1024Mi")],
                )),
                "Guaranteed",
            ),
            (Some(res(&[], &[("cpu", "1")])), "Burstable"),
            (
                Some(res(&[("cpu", "500m")], &[("cpu", "1"), ("memory", "1Gi")])),
                "Burstable",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(qos_class(&with(r.clone())), want, "{r:?}");
        }
    }

    #[test]
    fn sandbox() {
        let n = node();
        let p = pod(PodSpec {
            containers: vec![container("a")],
            ..Default::default()
        });
        let s = sandbox_config(&p, &n, 2);
        let m = s.metadata.clone().unwrap();
        assert_eq!(
            (
                m.name.as_str(),
                m.namespace.as_str(),
                m.uid.as_str(),
                m.attempt
            ),
            ("web", "shop", "u-1", 2)
        );
        assert_eq!(s.hostname, "web");
        assert_eq!(s.log_directory, "/var/lib/rkube/agent/pods/shop_web_u-1");
        assert_eq!(s.labels.get(LABEL_POD_UID).map(String::as_str), Some("u-1"));
        assert_eq!(s.labels.get("app").map(String::as_str), Some("web"));
        let linux = s.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/rkube-0000abcd/podu-1");
        let nso = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(nso.network, cri::NamespaceMode::Pod as i32);
        assert_eq!(nso.pid, cri::NamespaceMode::Container as i32);
        let dns = s.dns_config.unwrap();
        assert_eq!(dns.servers, ["10.43.0.10"]);
        assert_eq!(
            dns.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "example.org"
            ]
        );
        assert_eq!(dns.options, ["ndots:5"]);

        // Host network: empty hostname, the node's namespace, the host's resolver.
        let hp = pod(PodSpec {
            host_network: Some(true),
            containers: vec![container("a")],
            ..Default::default()
        });
        let s = sandbox_config(&hp, &n, 0);
        assert_eq!(s.hostname, "");
        let nso = s
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(nso.network, cri::NamespaceMode::Node as i32);
        assert_eq!(s.dns_config.unwrap().servers, ["1.1.1.1"]);

        // dnsPolicy None with a dnsConfig; ClusterFirstWithHostNet.
        let none = pod(PodSpec {
            dns_policy: Some("None".into()),
            dns_config: Some(PodDNSConfig {
                nameservers: Some(vec!["9.9.9.9".into()]),
                searches: Some(vec!["x.local".into()]),
                options: Some(vec![k8s_openapi::api::core::v1::PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                }]),
            }),
            containers: vec![container("a")],
            ..Default::default()
        });
        let d = dns_config(&none, &n);
        assert_eq!(
            (d.servers, d.searches, d.options),
            (
                vec!["9.9.9.9".to_string()],
                vec!["x.local".to_string()],
                vec!["ndots:2".to_string()]
            )
        );
        let with_host = pod(PodSpec {
            host_network: Some(true),
            dns_policy: Some("ClusterFirstWithHostNet".into()),
            containers: vec![container("a")],
            ..Default::default()
        });
        assert_eq!(dns_config(&with_host, &n).servers, ["10.43.0.10"]);
    }

    #[test]
    fn env_from_config_maps_secrets_and_services() {
        use crate::env::Sources;
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        use k8s_openapi::ByteString;
        let n = node();
        let cm = |data: &[(&str, &str)]| {
            Some(ConfigMap {
                data: Some(
                    data.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            })
        };
        let mut src = Sources::default();
        src.config_maps.insert(
            "cfg".into(),
            cm(&[
                ("color", "blue"),
                ("1bad", "x"),
                ("bad key", "y"),
                ("size", "L"),
            ]),
        );
        src.config_maps.insert("gone".into(), None);
        src.secrets.insert(
            "creds".into(),
            Some(Secret {
                data: Some([("password".to_string(), ByteString(b"s3cret".to_vec()))].into()),
                ..Default::default()
            }),
        );
        src.services = vec![
            ("WEB_SERVICE_HOST".into(), "10.43.0.9".into()),
            ("COLOR".into(), "from-service".into()),
        ];
        let rt = Runtime {
            pod_ip: Some("10.42.0.7".into()),
            sources: src,
            ..Default::default()
        };
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "main",
            "command": ["echo", "$(COLOR)", "$$(COLOR)", "$(WEB_SERVICE_HOST)"],
            "envFrom": [
                {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                {"configMapRef": {"name": "gone", "optional": true}},
                {"secretRef": {"name": "creds"}},
            ],
            "env": [
                {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}}},
                {"name": "URL", "value": "http://$(WEB_SERVICE_HOST)/$(COLOR)"},
                {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            ],
            "resources": {"requests": {"cpu": "250m"}},
        }))
        .unwrap();
        let mut p = pod(PodSpec {
            service_account_name: Some("robot".into()),
            containers: vec![c.clone()],
            ..Default::default()
        });
        p.metadata.annotations = Some([("note".to_string(), "hi".to_string())].into());
        let cfg = container_config(&p, &c, 0, "i", &n, &rt).unwrap();
        let env: HashMap<String, String> =
            cfg.envs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        for (k, v) in [
            ("CFG_color", "blue"),
            ("CFG_size", "L"),
            ("password", "s3cret"),
            ("COLOR", "blue"),
            ("PW", "s3cret"),
            ("URL", "http://10.43.0.9/blue"),
            ("WEB_SERVICE_HOST", "10.43.0.9"),
            ("SA", "robot"),
            ("NOTE", "hi"),
            ("MEM", "1024"),
            ("CPU", "250"),
        ] {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(env.contains_key("CFG_1bad"));
        assert!(!env.contains_key("CFG_bad key") && !env.contains_key("OPT"));
        assert_eq!(cfg.command, ["echo", "blue", "$(COLOR)", "10.43.0.9"]);
        assert_eq!(
            crate::env::invalid_key_warnings(&p, &c, &rt.sources),
            ["Keys [CFG_bad key] from the EnvFrom configMap shop/cfg were skipped since they are considered invalid environment variable names."]
        );

        // Missing, not optional: upstream's messages.
        let with = |env: serde_json::Value| -> Container {
            serde_json::from_value(serde_json::json!({"name": "m", "env": env})).unwrap()
        };
        let cases = [
            (
                with(
                    serde_json::json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]),
                ),
                "configmap \"gone\" not found",
            ),
            (
                with(
                    serde_json::json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]),
                ),
                "couldn't find key k in ConfigMap shop/cfg",
            ),
            (
                with(
                    serde_json::json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]),
                ),
                "couldn't find key k in Secret shop/creds",
            ),
            (
                with(
                    serde_json::json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]),
                ),
                "secret \"nope\" not found",
            ),
        ];
        for (c, want) in cases {
            assert_eq!(super::env(&p, &c, &n, &rt).unwrap_err(), want);
        }
    }

    #[test]
    fn container_configs() {
        let n = node();
        let field = |path: &str| EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let var = |name: &str, value: &str| EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        };
        let from = |name: &str, path: &str| EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(field(path)),
        };
        let c = Container {
            command: Some(vec!["sh".into(), "-c".into()]),
            args: Some(vec!["echo $(GREETING) from $(hostname) on $(NODE)".into()]),
            working_dir: Some("/tmp".into()),
            env: Some(vec![
                var("GREETING", "hello"),
                var("TWICE", "$(GREETING) $(GREETING)"),
                from("POD", "metadata.name"),
                from("NS", "metadata.namespace"),
                from("UID", "metadata.uid"),
                from("NODE", "spec.nodeName"),
                from("IP", "status.podIP"),
                from("HOST", "status.hostIP"),
                from("APP", "metadata.labels['app']"),
            ]),
            ..container("main")
        };
        let p = pod(PodSpec {
            node_name: Some("n1".into()),
            containers: vec![c.clone()],
            ..Default::default()
        });
        let rt = Runtime {
            pod_ip: Some("10.42.0.7".into()),
            ..Default::default()
        };
        let cfg = container_config(&p, &c, 3, "sha256:abc", &n, &rt).unwrap();
        assert_eq!(cfg.command, ["sh", "-c"]);
        assert_eq!(cfg.args, ["echo hello from $(hostname) on n1"]);
        assert_eq!(cfg.working_dir, "/tmp");
        assert_eq!(cfg.log_path, "main/3.log");
        assert_eq!(cfg.metadata.unwrap().attempt, 3);
        assert_eq!(cfg.image.unwrap().image, "sha256:abc");
        let env: HashMap<String, String> =
            cfg.envs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        for (k, v) in [
            ("GREETING", "hello"),
            ("TWICE", "hello hello"),
            ("POD", "web"),
            ("NS", "shop"),
            ("UID", "u-1"),
            ("NODE", "n1"),
            ("IP", "10.42.0.7"),
            ("HOST", "192.168.1.5"),
            ("APP", "web"),
        ] {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        for (k, v) in [
            (LABEL_POD_NAME, "web"),
            (LABEL_POD_NAMESPACE, "shop"),
            (LABEL_POD_UID, "u-1"),
            (LABEL_CONTAINER_NAME, "main"),
        ] {
            assert_eq!(cfg.labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        let bad = Container {
            env: Some(vec![from("X", "status.nope")]),
            ..container("b")
        };
        assert!(container_config(&p, &bad, 0, "i", &n, &rt).is_err());
    }

    #[test]
    fn fs_group_is_a_supplemental_group() {
        let n = node();
        let c = container("main");
        let mut p = pod(PodSpec {
            containers: vec![c.clone()],
            security_context: Some(k8s_openapi::api::core::v1::PodSecurityContext {
                fs_group: Some(1001),
                supplemental_groups: Some(vec![5, 6]),
                run_as_user: Some(1000),
                ..Default::default()
            }),
            ..Default::default()
        });
        let groups = |p: &Pod| {
            let sandbox = sandbox_config(p, &n, 0).linux.unwrap().security_context;
            let cfg = container_config(p, &c, 0, "i", &n, &Runtime::default()).unwrap();
            (
                sandbox.unwrap().supplemental_groups,
                cfg.linux
                    .unwrap()
                    .security_context
                    .unwrap()
                    .supplemental_groups,
            )
        };
        assert_eq!(groups(&p), (vec![1001, 5, 6], vec![1001, 5, 6]));
        if let Some(sc) = p.spec.as_mut().and_then(|s| s.security_context.as_mut()) {
            sc.fs_group = None;
        }
        assert_eq!(groups(&p), (vec![5, 6], vec![5, 6]));
    }
}
