//! What a hollow node does with a pod bound to it, as pure functions: upstream's kubelet
//! status generation (`pkg/kubelet/kubelet_pods.go` `generateAPIPodStatus`,
//! `pkg/kubelet/status` for conditions and their merge) with containers that start at
//! once, are ready at once and never exit.
//!
//! A pod's life on a hollow node (the only transitions there are):
//!
//! ```text
//!   bound (Pending) ──report──▶ Running ──deletionTimestamp──▶ deleted (grace 0)
//!         └─────────────────deletionTimestamp─────────────────▶ deleted (grace 0)
//! ```
//!
//! Not simulated: containers that exit (`restartPolicy` Never/OnFailure pods stay
//! Running until deleted), probes (containers are ready at once), image pulls and their
//! failures, admission rejections (OutOfcpu, OutOfpods …), ephemeral containers, and the
//! terminal status the kubelet writes before deleting a pod (the pod is deleted
//! straight away).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

/// The field manager of every write a hollow node makes to a pod.
pub const FIELD_MANAGER: &str = "hollow-kubelet";
/// The scheme of every fake container and image ID.
pub const ID_SCHEME: &str = "hollow://";

/// The pod conditions the kubelet owns, in the order it reports them.
const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// What a hollow node does next with a pod bound to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodAction {
    /// Nothing: the pod is terminal, or already deleted for good and held only by
    /// finalizers.
    Leave,
    /// Report it running (the status is written only when it differs from the API's).
    ReportRunning,
    /// Its deletion was asked for: its (absent) containers are stopped, so delete it
    /// with grace period 0, on condition it is still the pod with this uid.
    Delete { uid: Option<String> },
}

/// The next action for `pod`.
pub fn next_action(pod: &Pod) -> PodAction {
    if pod.metadata.deletion_timestamp.is_some() {
        if pod.metadata.deletion_grace_period_seconds == Some(0) {
            return PodAction::Leave;
        }
        return PodAction::Delete {
            uid: pod.metadata.uid.clone(),
        };
    }
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") | Some("Failed") => PodAction::Leave,
        _ => PodAction::ReportRunning,
    }
}

/// Whether the pod shares its node's network (its pod IP is then the node's).
pub fn uses_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod IP the pod already reports, if any (kept across hollow-node restarts).
pub fn reported_ip(pod: &Pod) -> Option<Ipv4Addr> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
}

/// A new fake container ID.
pub fn new_container_id() -> String {
    format!("{ID_SCHEME}{}", uuid::Uuid::new_v4().simple())
}

fn is_hollow(s: &ContainerStatus) -> bool {
    s.container_id
        .as_deref()
        .is_some_and(|id| id.starts_with(ID_SCHEME))
}

/// The status of one container that runs (an app container or a sidecar), keeping what
/// the API already says of it (ID, start, restarts) while its image is unchanged; a
/// changed image is a restart.
fn running(
    c: &Container,
    observed: Option<&ContainerStatus>,
    now: &Time,
    new_id: &mut dyn FnMut() -> String,
) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    let kept = observed.filter(|o| is_hollow(o));
    let (id, started_at, restarts) = match kept {
        Some(o) if o.image == image => (
            o.container_id.clone(),
            o.state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.clone())
                .or(Some(now.clone())),
            o.restart_count,
        ),
        Some(o) => (Some(new_id()), Some(now.clone()), o.restart_count + 1),
        None => (Some(new_id()), Some(now.clone()), 0),
    };
    ContainerStatus {
        name: c.name.clone(),
        image_id: format!("{ID_SCHEME}{image}"),
        image,
        container_id: id,
        ready: true,
        started: Some(true),
        restart_count: restarts,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning { started_at }),
            ..Default::default()
        }),
        last_state: Some(ContainerState::default()),
        ..Default::default()
    }
}

/// The status of an init container that ran to completion.
fn completed(
    c: &Container,
    observed: Option<&ContainerStatus>,
    now: &Time,
    new_id: &mut dyn FnMut() -> String,
) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    let done = observed
        .filter(|o| is_hollow(o) && o.image == image)
        .and_then(|o| o.state.as_ref()?.terminated.clone());
    let terminated = done.unwrap_or_else(|| {
        let id = new_id();
        ContainerStateTerminated {
            container_id: Some(id),
            exit_code: 0,
            reason: Some("Completed".into()),
            started_at: Some(now.clone()),
            finished_at: Some(now.clone()),
            ..Default::default()
        }
    });
    ContainerStatus {
        name: c.name.clone(),
        image_id: format!("{ID_SCHEME}{image}"),
        image,
        container_id: terminated.container_id.clone(),
        ready: true,
        started: Some(false),
        restart_count: 0,
        state: Some(ContainerState {
            terminated: Some(terminated),
            ..Default::default()
        }),
        last_state: Some(ContainerState::default()),
        ..Default::default()
    }
}

fn condition(type_: &str, status: bool) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        ..Default::default()
    }
}

/// The Ready condition: True unless a readiness gate's condition is missing or not
/// True (upstream's `GeneratePodReadyCondition` messages).
fn ready_condition(pod: &Pod, conditions: &[PodCondition]) -> PodCondition {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten();
    let unready: Vec<String> = gates
        .filter_map(
            |g| match conditions.iter().find(|c| c.type_ == g.condition_type) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate {:?} does not exist.",
                    g.condition_type
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate {:?} is not \"True\", but {}",
                    g.condition_type, c.status
                )),
                Some(_) => None,
            },
        )
        .collect();
    if unready.is_empty() {
        return condition("Ready", true);
    }
    PodCondition {
        reason: Some("ReadinessGatesNotReady".into()),
        message: Some(unready.join(", ")),
        ..condition("Ready", false)
    }
}

/// The status a hollow node reports for `pod` running on it: phase Running, the node's
/// and the pod's IPs, every container started and ready (init containers completed,
/// sidecars running), the kubelet's conditions after the ones others own. Everything
/// the API already holds and that still holds (container IDs, start times, transition
/// times, qosClass) is kept, so reporting twice changes nothing.
pub fn running_status(
    pod: &Pod,
    host_ip: Ipv4Addr,
    pod_ip: Ipv4Addr,
    now: &Time,
    new_id: &mut dyn FnMut() -> String,
) -> PodStatus {
    let observed = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let by_name = |list: &Option<Vec<ContainerStatus>>| -> HashMap<String, ContainerStatus> {
        list.iter()
            .flatten()
            .map(|s| (s.name.clone(), s.clone()))
            .collect()
    };
    let old_init = by_name(&observed.init_container_statuses);
    let old_main = by_name(&observed.container_statuses);
    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let old = old_init.get(&c.name);
            if c.restart_policy.as_deref() == Some("Always") {
                running(c, old, now, new_id)
            } else {
                completed(c, old, now, new_id)
            }
        })
        .collect();
    let main: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| running(c, old_main.get(&c.name), now, new_id))
        .collect();

    let old_conditions = observed.conditions.clone().unwrap_or_default();
    let mut conditions: Vec<PodCondition> = old_conditions
        .iter()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let ready = ready_condition(pod, &old_conditions);
    for type_ in KUBELET_CONDITIONS {
        let mut c = if type_ == "Ready" {
            ready.clone()
        } else {
            condition(type_, true)
        };
        let old = old_conditions.iter().find(|o| o.type_ == type_);
        c.last_transition_time = match old {
            Some(o) if o.status == c.status => o.last_transition_time.clone(),
            _ => None,
        }
        .or(Some(now.clone()));
        conditions.push(c);
    }

    let host = host_ip.to_string();
    let ip = pod_ip.to_string();
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(conditions),
        host_ip: Some(host.clone()),
        host_ips: Some(vec![HostIP { ip: host }]),
        pod_ip: Some(ip.clone()),
        pod_ips: Some(vec![PodIP { ip }]),
        start_time: observed.start_time.clone().or(Some(now.clone())),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(main),
        qos_class: observed.qos_class.clone(),
        ..Default::default()
    }
}

/// What of a pod status matters for "is it already reported": everything but times.
#[derive(PartialEq, Debug)]
struct Reported<'a> {
    phase: Option<&'a str>,
    host_ip: Option<&'a str>,
    pod_ip: Option<&'a str>,
    host_ips: Vec<&'a str>,
    pod_ips: Vec<&'a str>,
    started: bool,
    conditions: Vec<(&'a str, &'a str, Option<&'a str>, Option<&'a str>)>,
    init: Vec<ContainerReport<'a>>,
    main: Vec<ContainerReport<'a>>,
}

type ContainerReport<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    bool,
    Option<bool>,
    i32,
    (bool, bool, bool),
);

fn containers(list: &Option<Vec<ContainerStatus>>) -> Vec<ContainerReport<'_>> {
    let mut v: Vec<_> = list
        .iter()
        .flatten()
        .map(|s| {
            let st = s.state.clone().unwrap_or_default();
            (
                s.name.as_str(),
                s.image.as_str(),
                s.image_id.as_str(),
                s.container_id.as_deref(),
                s.ready,
                s.started,
                s.restart_count,
                (
                    st.running.is_some(),
                    st.terminated.is_some(),
                    st.waiting.is_some(),
                ),
            )
        })
        .collect();
    v.sort();
    v
}

fn reported(s: &PodStatus) -> Reported<'_> {
    let mut conditions: Vec<_> = s
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref(),
                c.message.as_deref(),
            )
        })
        .collect();
    conditions.sort();
    Reported {
        phase: s.phase.as_deref(),
        host_ip: s.host_ip.as_deref(),
        pod_ip: s.pod_ip.as_deref(),
        host_ips: s.host_ips.iter().flatten().map(|i| i.ip.as_str()).collect(),
        pod_ips: s.pod_ips.iter().flatten().map(|i| i.ip.as_str()).collect(),
        started: s.start_time.is_some(),
        conditions,
        init: containers(&s.init_container_statuses),
        main: containers(&s.container_statuses),
    }
}

/// Whether the API's status already says what `desired` says (times aside): then no
/// write is made.
pub fn status_current(observed: Option<&PodStatus>, desired: &PodStatus) -> bool {
    observed.is_some_and(|o| reported(o) == reported(desired))
}

/// The merge patch of `pods/status` that reports `status`, on condition (as the
/// kubelet's status manager makes it) that the pod is still the one with this uid.
pub fn status_patch(uid: Option<&str>, status: &PodStatus) -> serde_json::Value {
    let mut patch = json!({ "status": status });
    if let Some(uid) = uid {
        patch["metadata"] = json!({ "uid": uid });
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodReadinessGate, PodSpec};
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn container(name: &str, image: &str) -> Container {
        Container {
            name: name.into(),
            image: Some(image.into()),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("hollow-0".into()),
                containers,
                init_containers: (!init.is_empty()).then_some(init),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                qos_class: Some("BestEffort".into()),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    last_transition_time: Some(t(1)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("hollow://c{n}")
        }
    }

    fn report(p: &Pod, now: i64) -> PodStatus {
        running_status(p, ip("10.250.0.1"), ip("10.244.0.2"), &t(now), &mut ids())
    }

    #[test]
    fn actions() {
        let running = pod(vec![container("a", "nginx")], vec![]);
        let mut deleting = running.clone();
        deleting.metadata.deletion_timestamp = Some(t(5));
        deleting.metadata.deletion_grace_period_seconds = Some(30);
        let mut finalizing = deleting.clone();
        finalizing.metadata.deletion_grace_period_seconds = Some(0);
        let mut succeeded = running.clone();
        succeeded.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut failed = running.clone();
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let mut failed_deleting = failed.clone();
        failed_deleting.metadata.deletion_timestamp = Some(t(5));
        let no_status = Pod {
            status: None,
            ..running.clone()
        };
        let delete = PodAction::Delete {
            uid: Some("uid-1".into()),
        };
        let cases: Vec<(&str, Pod, PodAction)> = vec![
            ("pending", running, PodAction::ReportRunning),
            ("no status", no_status, PodAction::ReportRunning),
            ("deleting", deleting, delete.clone()),
            ("finalizers only", finalizing, PodAction::Leave),
            ("succeeded", succeeded, PodAction::Leave),
            ("failed", failed, PodAction::Leave),
            ("failed and deleting", failed_deleting, delete),
        ];
        for (what, p, want) in cases {
            assert_eq!(next_action(&p), want, "{what}");
        }
    }

    #[test]
    fn running_status_fields() {
        let p = pod(
            vec![container("a", "nginx:1"), container("b", "busybox")],
            vec![container("init", "alpine"), {
                let mut s = container("sidecar", "envoy");
                s.restart_policy = Some("Always".into());
                s
            }],
        );
        let s = report(&p, 10);
        let v = serde_json::to_value(&s).unwrap();
        let cases: &[(&str, serde_json::Value)] = &[
            ("/phase", json!("Running")),
            ("/hostIP", json!("10.250.0.1")),
            ("/hostIPs", json!([{"ip": "10.250.0.1"}])),
            ("/podIP", json!("10.244.0.2")),
            ("/podIPs", json!([{"ip": "10.244.0.2"}])),
            ("/startTime", json!("1970-01-01T00:00:10Z")),
            ("/qosClass", json!("BestEffort")),
            ("/conditions/0/type", json!("PodReadyToStartContainers")),
            ("/conditions/1/type", json!("Initialized")),
            ("/conditions/2/type", json!("Ready")),
            ("/conditions/3/type", json!("ContainersReady")),
            ("/conditions/4/type", json!("PodScheduled")),
            (
                "/conditions/4/lastTransitionTime",
                json!("1970-01-01T00:00:01Z"),
            ),
            ("/conditions/2/status", json!("True")),
            (
                "/conditions/2/lastTransitionTime",
                json!("1970-01-01T00:00:10Z"),
            ),
            ("/containerStatuses/0/name", json!("a")),
            ("/containerStatuses/0/image", json!("nginx:1")),
            ("/containerStatuses/0/imageID", json!("hollow://nginx:1")),
            ("/containerStatuses/0/ready", json!(true)),
            ("/containerStatuses/0/started", json!(true)),
            ("/containerStatuses/0/restartCount", json!(0)),
            (
                "/containerStatuses/0/state/running/startedAt",
                json!("1970-01-01T00:00:10Z"),
            ),
            ("/containerStatuses/1/name", json!("b")),
            ("/initContainerStatuses/0/name", json!("init")),
            ("/initContainerStatuses/0/ready", json!(true)),
            ("/initContainerStatuses/0/started", json!(false)),
            (
                "/initContainerStatuses/0/state/terminated/exitCode",
                json!(0),
            ),
            (
                "/initContainerStatuses/0/state/terminated/reason",
                json!("Completed"),
            ),
            ("/initContainerStatuses/1/name", json!("sidecar")),
            ("/initContainerStatuses/1/started", json!(true)),
            (
                "/initContainerStatuses/1/state/running/startedAt",
                json!("1970-01-01T00:00:10Z"),
            ),
        ];
        for (ptr, want) in cases {
            assert_eq!(v.pointer(ptr), Some(want), "{ptr}");
        }
        // Every container has its own hollow:// ID.
        let mut all: Vec<_> = s
            .container_statuses
            .iter()
            .chain(s.init_container_statuses.iter())
            .flatten()
            .map(|c| c.container_id.clone().unwrap())
            .collect();
        assert!(all.iter().all(|id| id.starts_with("hollow://")));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4);
        assert!(new_container_id().starts_with("hollow://"));
        assert_ne!(new_container_id(), new_container_id());
    }

    #[test]
    fn reporting_twice_changes_nothing() {
        let p = pod(vec![container("a", "nginx")], vec![container("i", "x")]);
        let first = report(&p, 10);
        assert!(!status_current(p.status.as_ref(), &first));
        assert!(!status_current(None, &first));
        let mut reported = p.clone();
        reported.status = Some(first.clone());
        let second = report(&reported, 20);
        assert_eq!(first, second, "IDs, start and transition times are kept");
        assert!(status_current(reported.status.as_ref(), &second));
    }

    #[test]
    fn changes_that_need_a_report() {
        let p = pod(vec![container("a", "nginx")], vec![]);
        let mut reported = p.clone();
        reported.status = Some(report(&p, 10));
        // (what changed in the API's pod, whether a report is needed after it)
        let mut image = reported.clone();
        image.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        let mut other_ip = reported.clone();
        other_ip.status.as_mut().unwrap().pod_ip = Some("10.9.9.9".into());
        let mut gate_added = reported.clone();
        gate_added.spec.as_mut().unwrap().readiness_gates = Some(vec![PodReadinessGate {
            condition_type: "example.com/lb".into(),
        }]);
        let mut times_only = reported.clone();
        for c in times_only
            .status
            .as_mut()
            .unwrap()
            .conditions
            .iter_mut()
            .flatten()
        {
            c.last_transition_time = Some(t(99));
        }
        let mut server_defaults = reported.clone();
        for c in server_defaults
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .iter_mut()
            .flatten()
        {
            c.last_state = None;
        }
        let cases: Vec<(&str, Pod, bool)> = vec![
            ("nothing", reported.clone(), false),
            ("image changed", image.clone(), true),
            ("pod IP differs", other_ip, true),
            ("readiness gate added", gate_added, true),
            ("times only", times_only, false),
            ("lastState dropped by the server", server_defaults, false),
        ];
        for (what, p, needed) in cases {
            let desired = report(&p, 30);
            assert_eq!(
                !status_current(p.status.as_ref(), &desired),
                needed,
                "{what}"
            );
        }
        // A new image is a restart: new ID, one more restart.
        let s = running_status(
            &image,
            ip("10.250.0.1"),
            ip("10.244.0.2"),
            &t(30),
            &mut || "hollow://new".to_string(),
        );
        let c = &s.container_statuses.as_ref().unwrap()[0];
        let old = &reported
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        assert_eq!(c.restart_count, 1);
        assert_ne!(c.container_id, old.container_id);
        assert_eq!(c.container_id.as_deref(), Some("hollow://new"));
        assert_eq!(c.image, "nginx:2");
    }

    #[test]
    fn readiness_gates() {
        let gate = |t: &str| PodReadinessGate {
            condition_type: t.into(),
        };
        let cond = |t: &str, s: &str| PodCondition {
            type_: t.into(),
            status: s.into(),
            ..Default::default()
        };
        // (gates, conditions others set, Ready status, message)
        type Case<'a> = (
            Vec<PodReadinessGate>,
            Vec<PodCondition>,
            &'a str,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (vec![], vec![], "True", None),
            (vec![gate("g")], vec![cond("g", "True")], "True", None),
            (
                vec![gate("g")],
                vec![],
                "False",
                Some("corresponding condition of pod readiness gate \"g\" does not exist."),
            ),
            (
                vec![gate("g"), gate("h")],
                vec![cond("g", "False"), cond("h", "True")],
                "False",
                Some("the status of pod readiness gate \"g\" is not \"True\", but False"),
            ),
            (
                vec![gate("g"), gate("h")],
                vec![cond("h", "Unknown")],
                "False",
                Some("corresponding condition of pod readiness gate \"g\" does not exist., the status of pod readiness gate \"h\" is not \"True\", but Unknown"),
            ),
        ];
        for (gates, others, status, message) in cases {
            let mut p = pod(vec![container("a", "x")], vec![]);
            p.spec.as_mut().unwrap().readiness_gates = Some(gates.clone());
            p.status.as_mut().unwrap().conditions = Some(others.clone());
            let s = report(&p, 10);
            let conds = s.conditions.unwrap();
            let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
            assert_eq!(ready.status, status, "{gates:?}");
            assert_eq!(ready.message.as_deref(), message, "{gates:?}");
            // Others' conditions come first and are kept as they are.
            let types: Vec<_> = conds.iter().map(|c| c.type_.as_str()).collect();
            let want: Vec<_> = others
                .iter()
                .map(|c| c.type_.as_str())
                .chain(KUBELET_CONDITIONS)
                .collect();
            assert_eq!(types, want);
        }
    }

    #[test]
    fn host_network_ips_and_patch() {
        let mut p = pod(vec![container("a", "x")], vec![]);
        assert!(!uses_host_network(&p));
        assert_eq!(reported_ip(&p), None);
        p.spec.as_mut().unwrap().host_network = Some(true);
        assert!(uses_host_network(&p));
        p.status.as_mut().unwrap().pod_ip = Some("10.244.0.9".into());
        assert_eq!(reported_ip(&p), Some(ip("10.244.0.9")));
        let s = report(&p, 1);
        let patch = status_patch(Some("uid-1"), &s);
        assert_eq!(patch["metadata"], json!({"uid": "uid-1"}));
        assert_eq!(patch["status"]["phase"], "Running");
        assert!(status_patch(None, &s).get("metadata").is_none());
    }
}
