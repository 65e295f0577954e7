//! The pod status the kubelet reports, as pure functions of the pod and of what the
//! runtime says of its sandbox and containers: upstream's `generateAPIPodStatus`
//! (`pkg/kubelet/kubelet_pods.go`: phase, container statuses) and `pkg/kubelet/status`
//! (conditions and their merge).

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

/// A container that ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub started_at: Option<Time>,
    pub finished_at: Option<Time>,
    /// `containerd://<id>`.
    pub container_id: String,
}

/// Where one container is, as the kubelet sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Not running: being created, pulling, backing off … (upstream's waiting reasons:
    /// ContainerCreating, ErrImagePull, ImagePullBackOff, CrashLoopBackOff,
    /// CreateContainerConfigError, CreateContainerError, RunContainerError, PodInitializing).
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Option<Time>,
    },
    Terminated(Terminated),
}

/// One container as reported.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub state: State,
    /// The previous run's end (lastState).
    pub last: Option<Terminated>,
    pub restart_count: i32,
    pub image: String,
    pub image_id: String,
    /// `containerd://<id>` of the current container, if one exists.
    pub container_id: Option<String>,
    /// What its readiness and startup probes say (None: no such probe, so it follows
    /// whether it runs).
    pub ready: Option<bool>,
    pub started: Option<bool>,
    /// A restartable init container (a sidecar, `restartPolicy: Always`).
    pub restartable: bool,
}

/// The pod as the kubelet sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    /// The sandbox is up with its network.
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    pub init: Vec<ContainerView>,
    pub main: Vec<ContainerView>,
    /// The ephemeral containers: reported, but of no account for the phase or readiness.
    pub ephemeral: Vec<ContainerView>,
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn exit_code(v: &ContainerView) -> Option<i32> {
    match &v.state {
        State::Terminated(t) => Some(t.exit_code),
        _ => None,
    }
}

/// Whether an init container is done: completed (exit 0), or, a sidecar, running and
/// started.
fn init_done(v: &ContainerView) -> bool {
    if v.restartable {
        matches!(v.state, State::Running { .. }) && v.started != Some(false)
    } else {
        exit_code(v) == Some(0)
    }
}

/// Whether every init container is done (completed; sidecars started).
pub fn initialized(view: &PodView) -> bool {
    view.init.iter().all(init_done)
}

/// The pod's phase (upstream's `getPhase`). A phase the API already holds as terminal
/// is kept: a pod never leaves Succeeded or Failed.
pub fn phase(pod: &Pod, view: &PodView) -> &'static str {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => return "Succeeded",
        Some("Failed") => return "Failed",
        _ => {}
    }
    let policy = restart_policy(pod);
    if policy == "Never"
        && view
            .init
            .iter()
            .any(|c| !c.restartable && exit_code(c).is_some_and(|e| e != 0))
    {
        return "Failed";
    }
    if !initialized(view) {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &view.main {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if c.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 && stopped == view.main.len() {
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn state(s: &State) -> ContainerState {
    match s {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: started_at.clone(),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        },
    }
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()).filter(|r| !r.is_empty()),
        message: Some(t.message.clone()).filter(|m| !m.is_empty()),
        started_at: t.started_at.clone(),
        finished_at: t.finished_at.clone(),
        container_id: Some(t.container_id.clone()).filter(|c| !c.is_empty()),
        signal: None,
    }
}

fn container_status(v: &ContainerView) -> ContainerStatus {
    let running = matches!(v.state, State::Running { .. });
    ContainerStatus {
        name: v.name.clone(),
        state: Some(state(&v.state)),
        last_state: Some(ContainerState {
            terminated: v.last.as_ref().map(terminated),
            ..Default::default()
        }),
        // A running container is started and ready unless its probes say otherwise.
        ready: running && v.ready.unwrap_or(true),
        started: Some(running && v.started.unwrap_or(true)),
        restart_count: v.restart_count,
        image: v.image.clone(),
        image_id: v.image_id.clone(),
        container_id: v.container_id.clone(),
        ..Default::default()
    }
}

fn init_status(v: &ContainerView) -> ContainerStatus {
    let mut s = container_status(v);
    // A completed init container counts as ready (upstream); a sidecar as a main one.
    if !v.restartable && exit_code(v) == Some(0) {
        s.ready = true;
    }
    s
}

/// An ephemeral container's status: never ready, and no `started` (upstream's prober
/// sets both only for init and regular containers).
fn ephemeral_status(v: &ContainerView) -> ContainerStatus {
    ContainerStatus {
        ready: false,
        started: None,
        ..container_status(v)
    }
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

/// The pod conditions the kubelet owns, in the order upstream reports them.
pub const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

fn conditions(pod: &Pod, view: &PodView, phase: &str) -> Vec<PodCondition> {
    let names = |list: &[&ContainerView]| {
        list.iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let incomplete: Vec<&ContainerView> = view.init.iter().filter(|c| !init_done(c)).collect();
    let initialized = if incomplete.is_empty() || phase == "Succeeded" {
        condition("Initialized", true, None, None)
    } else {
        condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                names(&incomplete)
            )),
        )
    };
    // Sidecars count for readiness as the main containers do.
    let unready: Vec<&ContainerView> = view
        .init
        .iter()
        .filter(|c| c.restartable)
        .chain(&view.main)
        .filter(|c| !matches!(c.state, State::Running { .. }) || c.ready == Some(false))
        .collect();
    let (ready, reason, message) = if phase == "Succeeded" || phase == "Failed" {
        (false, Some("PodCompleted"), None)
    } else if !incomplete.is_empty() {
        (
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                names(&incomplete)
            )),
        )
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                names(&unready)
            )),
        )
    };
    let gates_unready: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.clone())
        .into_iter()
        .flatten()
        .filter_map(|g| {
            let have = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == g.condition_type));
            match have {
                None => Some(format!(
                    "corresponding condition of pod readiness gate {:?} does not exist.",
                    g.condition_type
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate {:?} is not \"True\", but {}",
                    g.condition_type, c.status
                )),
                Some(_) => None,
            }
        })
        .collect();
    let pod_ready = if ready && !gates_unready.is_empty() {
        condition(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(gates_unready.join(", ")),
        )
    } else {
        condition("Ready", ready, reason, message.clone())
    };
    vec![
        condition("PodReadyToStartContainers", view.sandbox_ready, None, None),
        initialized,
        pod_ready,
        condition("ContainersReady", ready, reason, message),
        condition("PodScheduled", true, None, None),
    ]
}

/// The status to report for `pod`: what the API holds that the kubelet does not own
/// (other conditions, nominatedNodeName …) kept, transition times kept while a
/// condition's status holds, `startTime` kept once set.
pub fn pod_status(pod: &Pod, view: &PodView, host_ip: &str, qos: &str, now: &Time) -> PodStatus {
    let observed = pod.status.clone().unwrap_or_default();
    let phase = phase(pod, view);
    let old = observed.conditions.clone().unwrap_or_default();
    let mut all: Vec<PodCondition> = old
        .iter()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    for mut c in conditions(pod, view, phase) {
        let prev = old.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match prev {
            Some(o) if o.status == c.status => o.last_transition_time.clone(),
            _ => None,
        }
        .or(Some(now.clone()));
        all.push(c);
    }
    let pod_ip = view.pod_ip.clone().or(observed.pod_ip.clone());
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(all),
        host_ip: Some(host_ip.into()),
        host_ips: Some(vec![HostIP { ip: host_ip.into() }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: observed.start_time.clone().or(Some(now.clone())),
        init_container_statuses: (!view.init.is_empty())
            .then(|| view.init.iter().map(init_status).collect()),
        container_statuses: Some(view.main.iter().map(container_status).collect()),
        ephemeral_container_statuses: (!view.ephemeral.is_empty())
            .then(|| view.ephemeral.iter().map(ephemeral_status).collect()),
        qos_class: Some(qos.into()),
        nominated_node_name: observed.nominated_node_name,
        message: observed.message,
        reason: observed.reason,
        ..Default::default()
    }
}

/// What of a status matters for "is it already reported": all but the times.
pub fn summary(s: &PodStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(cs) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in cs.iter_mut() {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
                o.remove("lastProbeTime");
            }
        }
        cs.sort_by_key(|c| c["type"].as_str().unwrap_or("").to_string());
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("startTime");
    }
    v
}

/// Whether the API's status already says what `desired` says.
pub fn status_current(observed: Option<&PodStatus>, desired: &PodStatus) -> bool {
    observed.is_some_and(|o| summary(o) == summary(desired))
}

/// The merge patch of `pods/status` that reports `status`, on condition that the pod
/// is still the one with this uid.
pub fn status_patch(uid: &str, status: &PodStatus) -> serde_json::Value {
    json!({"metadata": {"uid": uid}, "status": status})
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn pod(policy: &str, phase: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                containers: vec![Container {
                    name: "c".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: phase.map(str::to_string),
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

    fn ended(code: i32) -> Terminated {
        Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: String::new(),
            started_at: Some(t(5)),
            finished_at: Some(t(6)),
            container_id: "containerd://x".into(),
        }
    }

    fn view(main: Vec<(State, Option<Terminated>)>, init: Vec<State>) -> PodView {
        let cv = |(i, (state, last)): (usize, (State, Option<Terminated>))| ContainerView {
            name: format!("c{i}"),
            state,
            last,
            restart_count: 0,
            image: "busybox".into(),
            image_id: "sha256:1".into(),
            container_id: Some("containerd://x".into()),
            ready: None,
            started: None,
            restartable: false,
        };
        PodView {
            sandbox_ready: true,
            pod_ip: Some("10.42.0.5".into()),
            init: init
                .into_iter()
                .map(|s| (s, None))
                .enumerate()
                .map(cv)
                .collect(),
            main: main.into_iter().enumerate().map(cv).collect(),
            ephemeral: Vec::new(),
        }
    }

    fn waiting(r: &str) -> State {
        State::Waiting {
            reason: r.into(),
            message: None,
        }
    }

    fn running() -> State {
        State::Running {
            started_at: Some(t(5)),
        }
    }

    #[test]
    fn phases() {
        let term = |c| State::Terminated(ended(c));
        // (restart policy, observed phase, main containers, init containers, phase)
        type Case = (
            &'static str,
            Option<&'static str>,
            Vec<(State, Option<Terminated>)>,
            Vec<State>,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "Always",
                None,
                vec![(waiting("ContainerCreating"), None)],
                vec![],
                "Pending",
            ),
            ("Always", None, vec![(running(), None)], vec![], "Running"),
            (
                "Always",
                None,
                vec![(running(), None), (waiting("ContainerCreating"), None)],
                vec![],
                "Pending",
            ),
            (
                "Always",
                None,
                vec![(waiting("CrashLoopBackOff"), Some(ended(1)))],
                vec![],
                "Running",
            ),
            ("Always", None, vec![(term(1), None)], vec![], "Running"),
            ("Never", None, vec![(term(3), None)], vec![], "Failed"),
            ("Never", None, vec![(term(0), None)], vec![], "Succeeded"),
            (
                "OnFailure",
                None,
                vec![(term(0), None)],
                vec![],
                "Succeeded",
            ),
            (
                "OnFailure",
                None,
                vec![(waiting("CrashLoopBackOff"), Some(ended(1)))],
                vec![],
                "Running",
            ),
            (
                "Never",
                None,
                vec![(term(0), None), (term(2), None)],
                vec![],
                "Failed",
            ),
            (
                "Never",
                None,
                vec![(running(), None), (term(2), None)],
                vec![],
                "Running",
            ),
            (
                "Always",
                None,
                vec![(waiting("PodInitializing"), None)],
                vec![running()],
                "Pending",
            ),
            (
                "Always",
                None,
                vec![(running(), None)],
                vec![term(0)],
                "Running",
            ),
            (
                "Never",
                None,
                vec![(waiting("PodInitializing"), None)],
                vec![term(1)],
                "Failed",
            ),
            (
                "Always",
                Some("Failed"),
                vec![(running(), None)],
                vec![],
                "Failed",
            ),
        ];
        for (i, (policy, observed, main, init, want)) in cases.into_iter().enumerate() {
            let p = pod(policy, observed);
            assert_eq!(phase(&p, &view(main, init)), want, "case {i}");
        }
    }

    #[test]
    fn status_fields() {
        let p = pod("Always", Some("Pending"));
        let v = view(vec![(running(), None)], vec![]);
        let s = pod_status(&p, &v, "192.168.1.5", "BestEffort", &t(10));
        let j = serde_json::to_value(&s).unwrap();
        let cases: &[(&str, serde_json::Value)] = &[
            ("/phase", json!("Running")),
            ("/podIP", json!("10.42.0.5")),
            ("/podIPs", json!([{"ip": "10.42.0.5"}])),
            ("/hostIP", json!("192.168.1.5")),
            ("/hostIPs", json!([{"ip": "192.168.1.5"}])),
            ("/qosClass", json!("BestEffort")),
            ("/startTime", json!("1970-01-01T00:00:10Z")),
            ("/conditions/0/type", json!("PodReadyToStartContainers")),
            ("/conditions/1/type", json!("Initialized")),
            ("/conditions/2/type", json!("Ready")),
            ("/conditions/2/status", json!("True")),
            ("/conditions/3/type", json!("ContainersReady")),
            ("/conditions/4/type", json!("PodScheduled")),
            // PodScheduled kept its transition time.
            (
                "/conditions/4/lastTransitionTime",
                json!("1970-01-01T00:00:01Z"),
            ),
            ("/containerStatuses/0/name", json!("c0")),
            ("/containerStatuses/0/ready", json!(true)),
            ("/containerStatuses/0/started", json!(true)),
            ("/containerStatuses/0/restartCount", json!(0)),
            (
                "/containerStatuses/0/state/running/startedAt",
                json!("1970-01-01T00:00:05Z"),
            ),
            ("/containerStatuses/0/imageID", json!("sha256:1")),
            ("/containerStatuses/0/containerID", json!("containerd://x")),
        ];
        for (ptr, want) in cases {
            assert_eq!(j.pointer(ptr), Some(want), "{ptr}");
        }
        // Reporting again at a later time is no change.
        let mut p2 = p.clone();
        p2.status = Some(s.clone());
        let again = pod_status(&p2, &v, "192.168.1.5", "BestEffort", &t(20));
        assert!(status_current(Some(&s), &again));
        assert_eq!(again.start_time, Some(t(10)));

        // Crash looping: not ready, waiting CrashLoopBackOff with lastState.
        let mut crash = view(vec![(waiting("CrashLoopBackOff"), Some(ended(1)))], vec![]);
        crash.main[0].restart_count = 2;
        let s = pod_status(&p2, &crash, "192.168.1.5", "BestEffort", &t(30));
        assert!(!status_current(p2.status.as_ref(), &s));
        let j = serde_json::to_value(&s).unwrap();
        let cases: &[(&str, serde_json::Value)] = &[
            ("/phase", json!("Running")),
            ("/conditions/2/status", json!("False")),
            ("/conditions/2/reason", json!("ContainersNotReady")),
            (
                "/conditions/2/message",
                json!("containers with unready status: [c0]"),
            ),
            (
                "/conditions/2/lastTransitionTime",
                json!("1970-01-01T00:00:30Z"),
            ),
            (
                "/containerStatuses/0/state/waiting/reason",
                json!("CrashLoopBackOff"),
            ),
            (
                "/containerStatuses/0/lastState/terminated/exitCode",
                json!(1),
            ),
            (
                "/containerStatuses/0/lastState/terminated/reason",
                json!("Error"),
            ),
            ("/containerStatuses/0/restartCount", json!(2)),
            ("/containerStatuses/0/ready", json!(false)),
        ];
        for (ptr, want) in cases {
            assert_eq!(j.pointer(ptr), Some(want), "{ptr}");
        }
        // Failed: PodCompleted.
        let p = pod("Never", Some("Running"));
        let s = pod_status(
            &p,
            &view(vec![(State::Terminated(ended(3)), None)], vec![]),
            "h",
            "BestEffort",
            &t(40),
        );
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["phase"], "Failed");
        assert_eq!(j["conditions"][2]["reason"], "PodCompleted");
        assert_eq!(
            j["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            3
        );
    }

    #[test]
    fn a_started_sidecar_initializes_and_counts_for_readiness() {
        let p = pod("Never", None);
        let running = || State::Running { started_at: None };
        let mut v = view(vec![(running(), None)], vec![running()]);
        v.init[0].restartable = true;
        // Running, no startup probe: started, so initialized; the pod runs and is ready.
        assert!(initialized(&v));
        assert_eq!(phase(&p, &v), "Running");
        let ready = |v: &PodView| {
            conditions(&p, v, "Running")
                .into_iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .status
        };
        assert_eq!(ready(&v), "True");
        // Its readiness probe fails: the pod is not ready.
        v.init[0].ready = Some(false);
        assert_eq!(ready(&v), "False");
        // Its startup probe has not succeeded yet: not initialized, Pending.
        v.init[0].started = Some(false);
        assert!(!initialized(&v));
        assert_eq!(phase(&p, &v), "Pending");
        // An exited sidecar is restarted, never a failed init container.
        v.init[0].state = State::Terminated(ended(1));
        assert_eq!(phase(&p, &v), "Pending");
    }

    #[test]
    fn ephemeral_containers_are_reported_apart() {
        let p = pod("Always", Some("Running"));
        let mut v = view(vec![(running(), None)], vec![]);
        assert!(pod_status(&p, &v, "h", "BestEffort", &t(10))
            .ephemeral_container_statuses
            .is_none());
        let mut debugger = v.main[0].clone();
        debugger.name = "debugger".into();
        v.ephemeral.push(debugger.clone());
        // An exited ephemeral container changes neither the phase nor readiness.
        debugger.name = "debugger2".into();
        debugger.state = State::Terminated(ended(1));
        v.ephemeral.push(debugger);
        let s = pod_status(&p, &v, "h", "BestEffort", &t(10));
        let j = serde_json::to_value(&s).unwrap();
        let cases: &[(&str, serde_json::Value)] = &[
            ("/phase", json!("Running")),
            ("/conditions/2/type", json!("Ready")),
            ("/conditions/2/status", json!("True")),
            ("/containerStatuses/0/name", json!("c0")),
            ("/ephemeralContainerStatuses/0/name", json!("debugger")),
            (
                "/ephemeralContainerStatuses/0/state/running/startedAt",
                json!("1970-01-01T00:00:05Z"),
            ),
            ("/ephemeralContainerStatuses/0/ready", json!(false)),
            ("/ephemeralContainerStatuses/1/name", json!("debugger2")),
            (
                "/ephemeralContainerStatuses/1/state/terminated/exitCode",
                json!(1),
            ),
        ];
        for (ptr, want) in cases {
            assert_eq!(j.pointer(ptr), Some(want), "{ptr}");
        }
        assert_eq!(j.pointer("/ephemeralContainerStatuses/0/started"), None);
    }
}
