//! Upstream printers (pkg/printers/internalversion): Table columns and cells per resource.
//! Server-side Tables (`meta.k8s.io/v1` Table) with the columns and cells upstream
//! kube-apiserver 1.33 prints (`pkg/printers/internalversion/printers.go`, and
//! `staging/src/k8s.io/apiserver/pkg/registry/rest/table.go` for everything else).
//!
//! The apiserver always generates tables with `Wide: true`, so `cells` returns the
//! priority-1 (`-o wide`) cells too. Objects are the versioned JSON; where upstream's
//! decode-time defaulting or v1 -> internal conversion affects a cell, it is applied here.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
}

// Descriptions: the SwaggerDoc() strings upstream's column definitions reference (k8s.io/api v0.33).
const META_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const META_CREATED: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const TEMPLATE_NAMES: &str = "Names of each container in the template.";
const TEMPLATE_IMAGES: &str = "Images referenced by each container in the template.";
const NODE_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(c: Column) -> Column {
    Column { priority: 1, ..c }
}

const NAME: Column = Column {
    format: "name",
    ..col("Name", "string", META_NAME)
};
const AGE: Column = col("Age", "string", META_CREATED);

const POD: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide(col("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.")),
    wide(col("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename")),
    wide(col("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.")),
    wide(col("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates")),
];

const REPLICATION_CONTROLLER: &[Column] = &[
    NAME,
    col("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"),
    col("Current", "integer", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"),
    col("Ready", "integer", "The number of ready replicas for this replication controller."),
    AGE,
    wide(col("Containers", "string", TEMPLATE_NAMES)),
    wide(col("Images", "string", TEMPLATE_IMAGES)),
    wide(col("Selector", "string", "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors")),
];

const POD_TEMPLATE: &[Column] = &[
    NAME,
    col("Containers", "string", TEMPLATE_NAMES),
    col("Images", "string", TEMPLATE_IMAGES),
    col("Pod Labels", "string", "The labels for the pod template."),
];

const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types"),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system."),
    col("Port(s)", "string", "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
    AGE,
    wide(col("Selector", "string", "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/")),
];

const ENDPOINTS: &[Column] = &[
    NAME,
    col("Endpoints", "string", "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service."),
    AGE,
];

const NODE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide(col("Internal-IP", "string", NODE_ADDRESSES)),
    wide(col("External-IP", "string", NODE_ADDRESSES)),
    wide(col("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).")),
    wide(col("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).")),
    wide(col("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).")),
];

const EVENT: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide(col("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.")),
    wide(col("Source", "string", "The component reporting this event. Should be a short machine understandable string.")),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide(col("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)")),
    wide(col("Count", "string", "The number of times this event has occurred.")),
    wide(NAME),
];

const NAMESPACE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
    col("Data", "string", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"),
    AGE,
];

const SERVICE_ACCOUNT: &[Column] = &[
    NAME,
    col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret"),
    AGE,
];

const CONFIG_MAP: &[Column] = &[
    NAME,
    col("Data", "string", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process."),
    AGE,
];

const LEASE: &[Column] = &[
    NAME,
    col("Holder", "string", "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field."),
    AGE,
];

const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name."),
    col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports."),
    col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints."),
    AGE,
];

/// apiserver's defaultTableConvertor, used for every resource without a printer.
const DEFAULT: &[Column] = &[NAME, col("Created At", "date", META_CREATED)];

#[derive(Clone, Copy)]
enum Kind {
    Pod,
    ReplicationController,
    PodTemplate,
    Service,
    Endpoints,
    Namespace,
    Node,
    Event,
    /// events.k8s.io/v1 Event: same printer, after upstream's conversion to the internal type.
    EventsV1,
    ConfigMap,
    Secret,
    ServiceAccount,
    Lease,
    EndpointSlice,
    Default,
}

fn kind(group: &str, resource: &str) -> Kind {
    match (group, resource) {
        ("", "pods") => Kind::Pod,
        ("", "replicationcontrollers") => Kind::ReplicationController,
        ("", "podtemplates") => Kind::PodTemplate,
        ("", "services") => Kind::Service,
        ("", "endpoints") => Kind::Endpoints,
        ("", "namespaces") => Kind::Namespace,
        ("", "nodes") => Kind::Node,
        ("", "events") => Kind::Event,
        ("events.k8s.io", "events") => Kind::EventsV1,
        ("", "configmaps") => Kind::ConfigMap,
        ("", "secrets") => Kind::Secret,
        ("", "serviceaccounts") => Kind::ServiceAccount,
        ("coordination.k8s.io", "leases") => Kind::Lease,
        ("discovery.k8s.io", "endpointslices") => Kind::EndpointSlice,
        _ => Kind::Default,
    }
}

/// Columns for a resource, given its group ("" for core) and plural resource name (e.g. "pods").
pub fn columns(group: &str, resource: &str) -> Vec<Column> {
    match kind(group, resource) {
        Kind::Pod => POD,
        Kind::ReplicationController => REPLICATION_CONTROLLER,
        Kind::PodTemplate => POD_TEMPLATE,
        Kind::Service => SERVICE,
        Kind::Endpoints => ENDPOINTS,
        Kind::Namespace => NAMESPACE,
        Kind::Node => NODE,
        Kind::Event | Kind::EventsV1 => EVENT,
        Kind::ConfigMap => CONFIG_MAP,
        Kind::Secret => SECRET,
        Kind::ServiceAccount => SERVICE_ACCOUNT,
        Kind::Lease => LEASE,
        Kind::EndpointSlice => ENDPOINT_SLICE,
        Kind::Default => DEFAULT,
    }
    .to_vec()
}

/// The cells of one row for `obj` (the full object as JSON), in column order; `now` for ages.
pub fn cells(group: &str, resource: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(s(&obj["metadata"]["name"]));
    let age = json!(since(time(&obj["metadata"]["creationTimestamp"]), now));
    let (spec, status) = (&obj["spec"], &obj["status"]);
    match kind(group, resource) {
        Kind::Pod => pod_cells(obj, now),
        Kind::ReplicationController => {
            let template = &spec["template"];
            let (names, images) = container_cells(&template["spec"]["containers"]);
            // Decode-time defaulting: replicas defaults to 1, an empty selector to the template labels.
            let selector = match &spec["selector"] {
                sel if size(sel) == 0 => &template["metadata"]["labels"],
                sel => sel,
            };
            vec![
                name,
                json!(spec["replicas"].as_i64().unwrap_or(1)),
                json!(int(&status["replicas"])),
                json!(int(&status["readyReplicas"])),
                age,
                json!(names),
                json!(images),
                json!(format_labels(selector)),
            ]
        }
        Kind::PodTemplate => {
            let template = &obj["template"];
            let (names, images) = container_cells(&template["spec"]["containers"]);
            vec![
                name,
                json!(names),
                json!(images),
                json!(format_labels(&template["metadata"]["labels"])),
            ]
        }
        Kind::Service => service_cells(obj, name, age),
        Kind::Endpoints => vec![name, json!(format_endpoints(obj)), age],
        Kind::Namespace => vec![name, json!(non_empty(s(&status["phase"]), "Active")), age],
        Kind::Node => node_cells(obj, name, age),
        Kind::Event => event_cells(obj, false, now),
        Kind::EventsV1 => event_cells(obj, true, now),
        Kind::ConfigMap => {
            vec![
                name,
                json!(size(&obj["data"]) + size(&obj["binaryData"])),
                age,
            ]
        }
        Kind::Secret => {
            // v1 -> internal conversion merges stringData into data.
            let data = obj["data"].as_object();
            let only_string = obj["stringData"].as_object().map_or(0, |sd| {
                sd.keys()
                    .filter(|k| data.is_none_or(|d| !d.contains_key(k.as_str())))
                    .count()
            });
            let count = size(&obj["data"]) + only_string;
            vec![
                name,
                json!(non_empty(s(&obj["type"]), "Opaque")),
                json!(count),
                age,
            ]
        }
        Kind::ServiceAccount => vec![name, json!(size(&obj["secrets"])), age],
        Kind::Lease => vec![name, json!(s(&spec["holderIdentity"])), age],
        Kind::EndpointSlice => {
            let ports = list(&obj["ports"])
                .iter()
                .map(|p| match (&p["port"], &p["name"]) {
                    (Value::Number(n), _) => n.to_string(),
                    (_, Value::String(n)) => n.clone(),
                    _ => "*".to_string(),
                });
            let addresses = list(&obj["endpoints"])
                .iter()
                .flat_map(|e| list(&e["addresses"]))
                .map(|a| s(a).to_string());
            vec![
                name,
                json!(s(&obj["addressType"])),
                json!(list_with_more(ports)),
                json!(list_with_more(addresses)),
                age,
            ]
        }
        Kind::Default => {
            let created = time(&obj["metadata"]["creationTimestamp"])
                .map_or("0001-01-01T00:00:00Z".to_string(), |t| {
                    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                });
            vec![name, json!(created)]
        }
    }
}

/// Upstream's duration formatting used for AGE (k8s.io/apimachinery/pkg/util/duration.HumanDuration).
pub fn human_duration(d: Duration) -> String {
    // num_seconds truncates toward zero, like Go's int(d.Seconds()).
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let with_rest = |major: i64, unit: &str, minor: i64, minor_unit: &str| match minor {
        0 => format!("{major}{unit}"),
        _ => format!("{major}{unit}{minor}{minor_unit}"),
    };
    let minutes = seconds / 60;
    let hours = seconds / 3600;
    let days = hours / 24;
    match () {
        _ if minutes < 10 => with_rest(minutes, "m", seconds % 60, "s"),
        _ if minutes < 60 * 3 => format!("{minutes}m"),
        _ if hours < 8 => with_rest(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => with_rest(days, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{days}d"),
        _ if hours < 24 * 365 * 8 => with_rest(days / 365, "y", days % 365, "d"),
        _ => format!("{}y", days / 365),
    }
}

// ---- JSON helpers: missing or mistyped fields read as Go zero values ----

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn truthy(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Go's len() of a slice or map field.
fn size(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    }
}

fn non_empty<'a>(v: &'a str, fallback: &'a str) -> &'a str {
    if v.is_empty() {
        fallback
    } else {
        v
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s(v))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// translateTimestampSince / translateMicroTimestampSince.
fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map_or("<unknown>".into(), |t| human_duration(now - t))
}

/// Keeps the latest of the timestamps seen (upstream's `lastRestartDate.Before(&terminatedDate)`).
fn latest(acc: &mut Option<DateTime<Utc>>, t: Option<DateTime<Utc>>) {
    if t > *acc {
        *acc = t;
    }
}

/// The first condition of the given type, as upstream's condition loops find it.
fn condition<'a>(conditions: &'a Value, type_: &str) -> Option<&'a Value> {
    list(conditions).iter().find(|c| s(&c["type"]) == type_)
}

/// labels.FormatLabels: sorted `k=v` pairs joined by ",", or "<none>".
fn format_labels(labels: &Value) -> String {
    let mut pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// layoutContainerCells: comma-joined container names and images.
fn container_cells(containers: &Value) -> (String, String) {
    let join = |field: &str| {
        list(containers)
            .iter()
            .map(|c| s(&c[field]))
            .collect::<Vec<_>>()
            .join(",")
    };
    (join("name"), join("image"))
}

/// listWithMoreString with max 3, as used by the EndpointSlice printer.
fn list_with_more(items: impl Iterator<Item = String>) -> String {
    const MAX: usize = 3;
    let items: Vec<String> = items.collect();
    let shown = items[..items.len().min(MAX)].join(",");
    match items.len() {
        n if n > MAX => format!("{shown} + {} more...", n - MAX),
        0 => "<unset>".into(),
        _ => shown,
    }
}

// ---- printers ----

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (spec, status) = (&pod["spec"], &pod["status"]);
    let conditions = &status["conditions"];
    let phase = s(&status["phase"]);
    let mut reason = non_empty(s(&status["reason"]), phase).to_string();
    if list(conditions)
        .iter()
        .any(|c| s(&c["type"]) == "PodScheduled" && s(&c["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let init_specs = list(&spec["initContainers"]);
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(&c["name"]) == name && s(&c["restartPolicy"]) == "Always")
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| s(&c["restartPolicy"]) == "Always")
        .count();
    let total = size(&spec["containers"]) + sidecars;
    let mut ready = 0;
    let (mut restarts, mut sidecar_restarts) = (0, 0);
    let (mut last_restart, mut last_sidecar_restart) = (None, None);

    let mut initializing = false;
    for (i, c) in list(&status["initContainerStatuses"]).iter().enumerate() {
        let finished = time(&c["lastState"]["terminated"]["finishedAt"]);
        restarts += int(&c["restartCount"]);
        latest(&mut last_restart, finished);
        let sidecar = restartable(s(&c["name"]));
        if sidecar {
            sidecar_restarts += int(&c["restartCount"]);
            latest(&mut last_sidecar_restart, finished);
        }
        let (terminated, waiting) = (
            &c["state"]["terminated"],
            s(&c["state"]["waiting"]["reason"]),
        );
        if !terminated.is_null() && int(&terminated["exitCode"]) == 0 {
            continue;
        }
        if sidecar && truthy(&c["started"]) {
            ready += usize::from(truthy(&c["ready"]));
            continue;
        }
        reason = if !terminated.is_null() {
            format!("Init:{}", terminated_reason(terminated))
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    let initialized =
        condition(conditions, "Initialized").is_some_and(|c| s(&c["status"]) == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in list(&status["containerStatuses"]).iter().rev() {
            restarts += int(&c["restartCount"]);
            latest(
                &mut last_restart,
                time(&c["lastState"]["terminated"]["finishedAt"]),
            );
            let (waiting, terminated) = (
                s(&c["state"]["waiting"]["reason"]),
                &c["state"]["terminated"],
            );
            if !waiting.is_empty() {
                reason = waiting.into();
            } else if !terminated.is_null() {
                reason = terminated_reason(terminated);
            } else if truthy(&c["ready"]) && !c["state"]["running"].is_null() {
                has_running = true;
                ready += 1;
            }
        }
        // Back to "Running" if at least one container still reports as running.
        if reason == "Completed" && has_running {
            let pod_ready = list(conditions)
                .iter()
                .any(|c| s(&c["type"]) == "Ready" && s(&c["status"]) == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }

    let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
    if deleting && s(&status["reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    // v1 -> internal conversion: status.podIP is authoritative, else the first of status.podIPs.
    let ip = non_empty(s(&status["podIP"]), s(&status["podIPs"][0]["ip"]));
    let gates = list(&spec["readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_conditions = gates
            .iter()
            .filter(|g| {
                condition(conditions, s(&g["conditionType"]))
                    .is_some_and(|c| s(&c["status"]) == "True")
            })
            .count();
        format!("{true_conditions}/{}", gates.len())
    };
    vec![
        json!(s(&pod["metadata"]["name"])),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(since(time(&pod["metadata"]["creationTimestamp"]), now)),
        json!(non_empty(ip, "<none>")),
        json!(non_empty(s(&spec["nodeName"]), "<none>")),
        json!(non_empty(s(&status["nominatedNodeName"]), "<none>")),
        json!(readiness_gates),
    ]
}

/// A terminated container state's reason, or "Signal:N" / "ExitCode:N" when it has none.
fn terminated_reason(terminated: &Value) -> String {
    match (s(&terminated["reason"]), int(&terminated["signal"])) {
        ("", 0) => format!("ExitCode:{}", int(&terminated["exitCode"])),
        ("", signal) => format!("Signal:{signal}"),
        (reason, _) => reason.into(),
    }
}

fn service_cells(svc: &Value, name: Value, age: Value) -> Vec<Value> {
    let (spec, status) = (&svc["spec"], &svc["status"]);
    let svc_type = non_empty(s(&spec["type"]), "ClusterIP");
    let cluster_ip = non_empty(s(&spec["clusterIPs"][0]), s(&spec["clusterIP"]));
    let external_ips: Vec<&str> = list(&spec["externalIPs"]).iter().map(s).collect();
    let external_ip = match svc_type {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            // loadBalancerStatusStringer: sorted, de-duplicated IPs (or hostnames); wide, so unclipped.
            let mut ingress: Vec<&str> = list(&status["loadBalancer"]["ingress"])
                .iter()
                .map(|i| non_empty(s(&i["ip"]), s(&i["hostname"])))
                .filter(|a| !a.is_empty())
                .collect();
            ingress.sort_unstable();
            ingress.dedup();
            ingress.extend(&external_ips);
            if ingress.is_empty() {
                "<pending>".into()
            } else {
                ingress.join(",")
            }
        }
        "ExternalName" => s(&spec["externalName"]).into(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = list(&spec["ports"])
        .iter()
        .map(|p| {
            let protocol = non_empty(s(&p["protocol"]), "TCP");
            match int(&p["nodePort"]) {
                node_port if node_port > 0 => format!("{}:{node_port}/{protocol}", int(&p["port"])),
                _ => format!("{}/{protocol}", int(&p["port"])),
            }
        })
        .collect();
    vec![
        name,
        json!(svc_type),
        json!(non_empty(cluster_ip, "<none>")),
        json!(external_ip),
        json!(non_empty(&ports.join(","), "<none>")),
        age,
        json!(format_labels(&spec["selector"])),
    ]
}

/// formatEndpoints with all ports: up to 3 "ip:port" (or bare ip for port-less subsets).
fn format_endpoints(endpoints: &Value) -> String {
    const MAX: usize = 3;
    let subsets = list(&endpoints["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    let (mut shown, mut count, mut more) = (Vec::new(), 0, false);
    for subset in subsets {
        let addresses = list(&subset["addresses"]);
        let ports = list(&subset["ports"]);
        // Headless services may have no ports: list bare IPs, once.
        let port_numbers: Vec<Option<i64>> = match ports.len() {
            0 => vec![None],
            _ => ports.iter().map(|p| Some(int(&p["port"]))).collect(),
        };
        for port in port_numbers {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                let ip = s(&address["ip"]);
                shown.push(match port {
                    None => ip.to_string(),
                    Some(port) if ip.contains(':') => format!("[{ip}]:{port}"),
                    Some(port) => format!("{ip}:{port}"),
                });
            }
        }
    }
    let joined = shown.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn node_cells(node: &Value, name: Value, age: Value) -> Vec<Value> {
    let status = &node["status"];
    // Upstream indexes conditions by type, so the last Ready condition wins.
    let ready = list(&status["conditions"])
        .iter()
        .rev()
        .find(|c| s(&c["type"]) == "Ready");
    let mut states = vec![match ready {
        Some(c) if s(&c["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if truthy(&node["spec"]["unschedulable"]) {
        states.push("SchedulingDisabled");
    }

    let mut roles: Vec<&str> = node["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => Some(role),
            None if k == "kubernetes.io/role" => Some(s(v)),
            None => None,
        })
        .filter(|role| !role.is_empty())
        .collect();
    roles.sort_unstable();
    roles.dedup();

    let address = |type_: &str| {
        list(&status["addresses"])
            .iter()
            .find(|a| s(&a["type"]) == type_)
            .map_or("<none>", |a| s(&a["address"]))
    };
    let info = |field: &str| non_empty(s(&status["nodeInfo"][field]), "<unknown>").to_string();
    vec![
        name,
        json!(states.join(",")),
        json!(non_empty(&roles.join(","), "<none>")),
        age,
        json!(s(&status["nodeInfo"]["kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// printEvent. `events_v1` reads events.k8s.io/v1 field names, mapped as upstream's
/// conversion to the internal Event does (note -> message, regarding -> involvedObject, ...).
fn event_cells(event: &Value, events_v1: bool, now: DateTime<Utc>) -> Vec<Value> {
    let field = |core: &str, v1: &str| &event[if events_v1 { v1 } else { core }];
    let involved = field("involvedObject", "regarding");
    let source = field("source", "deprecatedSource");

    let first_seen = time(field("firstTimestamp", "deprecatedFirstTimestamp"))
        .or_else(|| time(&event["eventTime"]));
    let first_seen = since(first_seen, now);
    let mut last_seen = match time(field("lastTimestamp", "deprecatedLastTimestamp")) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int(field("count", "deprecatedCount"));
    let series = &event["series"];
    if !series.is_null() {
        last_seen = since(time(&series["lastObservedTime"]), now);
        count = int(&series["count"]);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }

    let kind = s(&involved["kind"]).to_lowercase();
    let target = match s(&involved["name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let component = non_empty(
        s(&source["component"]),
        s(field("reportingComponent", "reportingController")),
    );
    let instance = non_empty(s(&source["host"]), s(&event["reportingInstance"]));
    let source = match instance {
        "" => component.to_string(),
        _ => format!("{component}, {instance}"),
    };
    vec![
        json!(last_seen),
        json!(s(&event["type"])),
        json!(s(&event["reason"])),
        json!(target),
        json!(s(&involved["fieldPath"])),
        json!(source),
        json!(s(field("message", "note")).trim()),
        json!(first_seen),
        json!(count),
        json!(s(&event["metadata"]["name"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        time(&json!("2026-11-22T10:00:00Z")).unwrap()
    }

    /// Asserts the cells printed for each `(group, resource, object, expected cells)` case.
    fn check(cases: &[(&str, &str, Value, Value)]) {
        for (group, resource, obj, want) in cases {
            let got = Value::Array(cells(group, resource, obj, now()));
            assert_eq!(&got, want, "{group}/{resource}: {obj}");
            assert_eq!(
                size(&got),
                columns(group, resource).len(),
                "{group}/{resource}"
            );
        }
    }

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": "2026-11-22T08:00:00Z"})
    }

    fn running(name: &str, restarts: i64, finished: Option<&str>) -> Value {
        let mut c = json!({"name": name, "ready": true, "started": true, "restartCount": restarts,
            "state": {"running": {"startedAt": "2026-11-22T08:00:00Z"}}});
        if let Some(f) = finished {
            c["lastState"] =
                json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": f}});
        }
        c
    }

    #[test]
    fn pods() {
        let ready_conditions =
            json!([{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]);
        check(&[
            (
                "",
                "pods",
                json!({"metadata": meta("web"), "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
                    "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}], "conditions": ready_conditions,
                        "containerStatuses": [running("a", 0, None), running("b", 0, None)]}}),
                json!([
                    "web", "2/2", "Running", "0", "120m", "10.0.0.5", "node-1", "<none>", "<none>"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": meta("init"), "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}],
                        "readinessGates": [{"conditionType": "example.com/gate"}]},
                    "status": {"phase": "Pending", "podIPs": [{"ip": "fd00::1"}], "conditions": [{"type": "Initialized", "status": "False"}],
                        "initContainerStatuses": [
                            {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                            {"name": "i2", "restartCount": 0, "state": {"running": {}}}],
                        "containerStatuses": [{"name": "a", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}}),
                json!([
                    "init", "0/1", "Init:1/2", "0", "120m", "fd00::1", "<none>", "<none>", "0/1"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": meta("crash"), "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
                    "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i1", "restartCount": 3,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-22T09:55:00Z"}}}]}}),
                json!([
                    "crash",
                    "0/1",
                    "Init:CrashLoopBackOff",
                    "3 (5m ago)",
                    "120m",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": {"name": "bye", "creationTimestamp": "2026-11-19T10:00:00Z", "deletionTimestamp": "2026-11-22T10:00:30Z"},
                    "spec": {"nodeName": "node-1", "containers": [{"name": "a"}]},
                    "status": {"phase": "Running", "nominatedNodeName": "node-2", "conditions": ready_conditions,
                        "containerStatuses": [running("a", 0, None)]}}),
                json!([
                    "bye",
                    "1/1",
                    "Terminating",
                    "0",
                    "3d",
                    "<none>",
                    "node-1",
                    "node-2",
                    "<none>"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": {"name": "lost", "deletionTimestamp": "2026-11-22T10:00:00Z"}, "spec": {"containers": [{"name": "a"}]},
                    "status": {"phase": "Running", "reason": "NodeLost"}}),
                json!([
                    "lost",
                    "0/1",
                    "Unknown",
                    "0",
                    "<unknown>",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": meta("flaky"), "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                    "status": {"phase": "Running", "conditions": ready_conditions, "containerStatuses": [
                        running("a", 1, Some("2026-11-22T09:00:00Z")), running("b", 2, Some("2026-11-22T09:56:40Z"))]}}),
                json!([
                    "flaky",
                    "2/2",
                    "Running",
                    "3 (3m20s ago)",
                    "120m",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": meta("job"), "spec": {"containers": [{"name": "a"}]},
                    "status": {"phase": "Succeeded", "containerStatuses": [{"name": "a", "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
                json!([
                    "job",
                    "0/1",
                    "Completed",
                    "0",
                    "120m",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": meta("half"), "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": [
                        {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        running("b", 0, None)]}}),
                json!([
                    "half", "1/2", "NotReady", "0", "120m", "<none>", "<none>", "<none>", "<none>"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": meta("sidecar"), "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "a"}]},
                    "status": {"phase": "Running", "conditions": ready_conditions,
                        "initContainerStatuses": [running("proxy", 4, Some("2026-11-22T09:00:00Z"))],
                        "containerStatuses": [running("a", 0, None)]}}),
                json!([
                    "sidecar",
                    "2/2",
                    "Running",
                    "4 (60m ago)",
                    "120m",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": meta("gated"), "spec": {"containers": [{"name": "a"}]},
                    "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}),
                json!([
                    "gated",
                    "0/1",
                    "SchedulingGated",
                    "0",
                    "120m",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                "",
                "pods",
                json!({"metadata": meta("oom"), "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                    "status": {"phase": "Running", "containerStatuses": [
                        {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}},
                        {"name": "b", "state": {"terminated": {"exitCode": 2}}}]}}),
                json!([
                    "oom", "0/2", "Signal:9", "0", "120m", "<none>", "<none>", "<none>", "<none>"
                ]),
            ),
        ]);
    }

    #[test]
    fn services() {
        check(&[
            (
                "",
                "services",
                json!({"metadata": meta("web"), "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "nodePort": 30053, "protocol": "UDP"}],
                    "selector": {"tier": "fe", "app": "web"}}}),
                json!([
                    "web",
                    "NodePort",
                    "10.96.0.10",
                    "<none>",
                    "80:30080/TCP,53:30053/UDP",
                    "120m",
                    "app=web,tier=fe"
                ]),
            ),
            (
                "",
                "services",
                json!({"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "example.com"}}),
                json!([
                    "ext",
                    "ExternalName",
                    "<none>",
                    "example.com",
                    "<none>",
                    "120m",
                    "<none>"
                ]),
            ),
            (
                "",
                "services",
                json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 443}]}}),
                json!([
                    "lb",
                    "LoadBalancer",
                    "10.96.0.11",
                    "<pending>",
                    "443/TCP",
                    "120m",
                    "<none>"
                ]),
            ),
            (
                "",
                "services",
                json!({"metadata": meta("lb2"), "spec": {"type": "LoadBalancer", "clusterIP": "None", "externalIPs": ["1.1.1.1"]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "5.5.5.5"}, {"hostname": "lb.example.com"}, {"ip": "5.5.5.5"}]}}}),
                json!([
                    "lb2",
                    "LoadBalancer",
                    "None",
                    "5.5.5.5,lb.example.com,1.1.1.1",
                    "<none>",
                    "120m",
                    "<none>"
                ]),
            ),
        ]);
    }

    #[test]
    fn nodes() {
        check(&[
            (
                "",
                "nodes",
                json!({"metadata": {"name": "cp-1", "creationTimestamp": "2026-11-12T10:00:00Z", "labels": {
                        "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "master", "node-role.kubernetes.io/": "x"}},
                    "spec": {"unschedulable": true},
                    "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "False"}],
                        "addresses": [{"type": "InternalIP", "address": "192.168.0.2"}, {"type": "Hostname", "address": "cp-1"}],
                        "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0"}}}),
                json!([
                    "cp-1",
                    "NotReady,SchedulingDisabled",
                    "control-plane,master",
                    "10d",
                    "v1.33.1",
                    "192.168.0.2",
                    "<none>",
                    "Debian GNU/Linux 12 (bookworm)",
                    "6.1.0",
                    "<unknown>"
                ]),
            ),
            (
                "",
                "nodes",
                json!({"metadata": meta("new")}),
                json!([
                    "new",
                    "Unknown",
                    "<none>",
                    "120m",
                    "",
                    "<none>",
                    "<none>",
                    "<unknown>",
                    "<unknown>",
                    "<unknown>"
                ]),
            ),
        ]);
    }

    #[test]
    fn events() {
        check(&[
            (
                "",
                "events",
                json!({"metadata": meta("web.1"), "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container\n",
                    "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
                    "source": {"component": "kubelet", "host": "node-1"}, "count": 7,
                    "firstTimestamp": "2026-11-22T09:00:00Z", "lastTimestamp": "2026-11-22T09:59:30Z"}),
                json!([
                    "30s",
                    "Warning",
                    "BackOff",
                    "pod/web",
                    "spec.containers{a}",
                    "kubelet, node-1",
                    "Back-off restarting failed container",
                    "60m",
                    7,
                    "web.1"
                ]),
            ),
            (
                "",
                "events",
                json!({"metadata": meta("ns.1"), "type": "Normal", "reason": "Created", "message": "created",
                    "involvedObject": {"kind": "Namespace"}, "reportingComponent": "ctrl", "eventTime": "2026-11-22T09:58:00.123456Z"}),
                json!([
                    "119s",
                    "Normal",
                    "Created",
                    "namespace",
                    "",
                    "ctrl",
                    "created",
                    "119s",
                    1,
                    "ns.1"
                ]),
            ),
            (
                "events.k8s.io",
                "events",
                json!({"metadata": meta("web.2"), "type": "Normal", "reason": "Pulled", "note": "pulled image",
                    "regarding": {"kind": "Pod", "name": "web"}, "reportingController": "kubelet", "reportingInstance": "node-1",
                    "eventTime": "2026-11-22T07:00:00.000001Z", "series": {"count": 4, "lastObservedTime": "2026-11-22T09:59:00.5Z"}}),
                json!([
                    "59s",
                    "Normal",
                    "Pulled",
                    "pod/web",
                    "",
                    "kubelet, node-1",
                    "pulled image",
                    "179m",
                    4,
                    "web.2"
                ]),
            ),
            (
                "events.k8s.io",
                "events",
                json!({"metadata": meta("web.3"), "type": "Normal", "reason": "Scheduled", "note": "ok",
                    "regarding": {"kind": "Pod", "name": "web"}, "deprecatedSource": {"component": "scheduler"},
                    "deprecatedCount": 2, "deprecatedFirstTimestamp": "2026-11-22T09:50:00Z", "deprecatedLastTimestamp": "2026-11-22T09:55:00Z"}),
                json!([
                    "5m",
                    "Normal",
                    "Scheduled",
                    "pod/web",
                    "",
                    "scheduler",
                    "ok",
                    "10m",
                    2,
                    "web.3"
                ]),
            ),
        ]);
    }

    #[test]
    fn other_resources() {
        let addresses = json!([{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}, {"ip": "10.0.0.5"}]);
        check(&[
            (
                "",
                "endpoints",
                json!({"metadata": meta("web"), "subsets": [{"addresses": addresses, "ports": [{"port": 80}, {"port": 443}]}]}),
                json!([
                    "web",
                    "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 7 more...",
                    "120m"
                ]),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": meta("mixed"), "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]},
                    {"addresses": [{"ip": "10.0.0.9"}]}]}),
                json!(["mixed", "[fd00::1]:53,10.0.0.9", "120m"]),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": meta("none")}),
                json!(["none", "<none>", "120m"]),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": meta("web-abc"), "addressType": "IPv4", "ports": [{"port": 80, "name": "http"}, {"name": "dns"}, {}],
                    "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"]}]}),
                json!([
                    "web-abc",
                    "IPv4",
                    "80,dns,*",
                    "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
                    "120m"
                ]),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": meta("empty"), "addressType": "IPv6"}),
                json!(["empty", "IPv6", "<unset>", "<unset>", "120m"]),
            ),
            (
                "",
                "replicationcontrollers",
                json!({"metadata": meta("rc"), "spec": {"template": {"metadata": {"labels": {"app": "rc"}},
                        "spec": {"containers": [{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "busybox"}]}}},
                    "status": {"replicas": 2, "readyReplicas": 1}}),
                json!(["rc", 1, 2, 1, "120m", "a,b", "nginx:1,busybox", "app=rc"]),
            ),
            (
                "",
                "replicationcontrollers",
                json!({"metadata": meta("rc0"), "spec": {"replicas": 0, "selector": {"app": "x"}}}),
                json!(["rc0", 0, 0, 0, "120m", "", "", "app=x"]),
            ),
            (
                "",
                "secrets",
                json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
                json!(["tls", "kubernetes.io/tls", 2, "120m"]),
            ),
            (
                "",
                "secrets",
                json!({"metadata": meta("s"), "data": {"a": ""}, "stringData": {"a": "x", "b": "y"}}),
                json!(["s", "Opaque", 2, "120m"]),
            ),
            (
                "",
                "configmaps",
                json!({"metadata": meta("cm"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}}),
                json!(["cm", 3, "120m"]),
            ),
            (
                "",
                "serviceaccounts",
                json!({"metadata": meta("default"), "secrets": [{"name": "t"}]}),
                json!(["default", 1, "120m"]),
            ),
            (
                "",
                "namespaces",
                json!({"metadata": meta("kube-system")}),
                json!(["kube-system", "Active", "120m"]),
            ),
            (
                "",
                "namespaces",
                json!({"metadata": meta("old"), "status": {"phase": "Terminating"}}),
                json!(["old", "Terminating", "120m"]),
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "cp-1_1234"}}),
                json!(["kube-scheduler", "cp-1_1234", "120m"]),
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": meta("free"), "spec": {}}),
                json!(["free", "", "120m"]),
            ),
            (
                "apps",
                "deployments",
                json!({"metadata": {"name": "d", "creationTimestamp": "2026-11-22T08:00:00.5+02:00"}}),
                json!(["d", "2026-11-22T06:00:00Z"]),
            ),
            (
                "",
                "limitranges",
                json!({"metadata": {"name": "t"}}),
                json!(["t", "0001-01-01T00:00:00Z"]),
            ),
            // printPodTemplate: no age column.
            (
                "",
                "podtemplates",
                json!({"metadata": meta("pt"), "template": {
                    "metadata": {"labels": {"app": "a", "tier": "b"}},
                    "spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}]}}}),
                json!(["pt", "c1,c2", "i1,i2", "app=a,tier=b"]),
            ),
            (
                "",
                "podtemplates",
                json!({"metadata": meta("empty"), "template": {"spec": {"containers": []}}}),
                json!(["empty", "", "", "<none>"]),
            ),
        ]);
    }

    #[test]
    fn column_definitions() {
        let names = |group, resource| {
            columns(group, resource)
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join("|")
        };
        let wide = |group, resource| {
            columns(group, resource)
                .iter()
                .map(|c| c.priority)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("", "pods"),
            "Name|Ready|Status|Restarts|Age|IP|Node|Nominated Node|Readiness Gates"
        );
        assert_eq!(wide("", "pods"), [0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(names("", "events"), names("events.k8s.io", "events"));
        assert_eq!(
            names("", "events"),
            "Last Seen|Type|Reason|Object|Subobject|Source|Message|First Seen|Count|Name"
        );
        assert_eq!(wide("", "events"), [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
        assert_eq!(names("", "nodes"), "Name|Status|Roles|Age|Version|Internal-IP|External-IP|OS-Image|Kernel-Version|Container-Runtime");
        assert_eq!(
            names("", "services"),
            "Name|Type|Cluster-IP|External-IP|Port(s)|Age|Selector"
        );
        assert_eq!(
            names("", "replicationcontrollers"),
            "Name|Desired|Current|Ready|Age|Containers|Images|Selector"
        );
        assert_eq!(
            names("", "podtemplates"),
            "Name|Containers|Images|Pod Labels"
        );
        assert_eq!(
            names("discovery.k8s.io", "endpointslices"),
            "Name|AddressType|Ports|Endpoints|Age"
        );
        assert_eq!(names("coordination.k8s.io", "leases"), "Name|Holder|Age");
        let default = columns("apps", "deployments");
        assert_eq!(
            default[0],
            Column {
                name: "Name",
                type_: "string",
                format: "name",
                description: META_NAME,
                priority: 0
            }
        );
        assert_eq!(
            default[1],
            Column {
                name: "Created At",
                type_: "date",
                format: "",
                description: META_CREATED,
                priority: 0
            }
        );
        assert!(columns("", "events")
            .iter()
            .all(|c| c.format == if c.name == "Name" { "name" } else { "" }));
    }

    #[test]
    fn human_durations() {
        let (s, m, h, d) = (
            Duration::seconds,
            Duration::minutes,
            Duration::hours,
            Duration::days,
        );
        let (ms, ns) = (Duration::milliseconds(1), Duration::nanoseconds(1));
        let y = |n: i64| d(365 * n);
        let cases = [
            // TestHumanDuration
            (s(1), "1s"),
            (s(70), "70s"),
            (s(190), "3m10s"),
            (m(70), "70m"),
            (h(47), "47h"),
            (h(49), "2d1h"),
            (h(8 * 24 + 2), "8d"),
            (h(367 * 24), "367d"),
            (h(365 * 2 * 24 + 25), "2y1d"),
            (h(365 * 8 * 24 + 2), "8y"),
            // TestHumanDurationBoundaries
            (s(-2), "<invalid>"),
            (s(-2) + ns, "0s"),
            (s(0), "0s"),
            (s(1) - ms, "0s"),
            (m(2) - ms, "119s"),
            (m(2), "2m"),
            (m(2) + s(1), "2m1s"),
            (m(10) - ms, "9m59s"),
            (m(10), "10m"),
            (m(10) + s(1), "10m"),
            (h(3) - ms, "179m"),
            (h(3), "3h"),
            (h(3) + m(1), "3h1m"),
            (h(8) - ms, "7h59m"),
            (h(8), "8h"),
            (h(8) + m(59), "8h"),
            (d(2) - ms, "47h"),
            (d(2), "2d"),
            (d(2) + h(1), "2d1h"),
            (d(8) - ms, "7d23h"),
            (d(8), "8d"),
            (d(8) + h(23), "8d"),
            (y(2) - ms, "729d"),
            (y(2), "2y"),
            (y(2) + h(23), "2y"),
            (y(2) + h(23) + m(59), "2y"),
            (y(2) + d(1) - ms, "2y"),
            (y(2) + d(1), "2y1d"),
            (y(3), "3y"),
            (y(4), "4y"),
            (y(5), "5y"),
            (y(6), "6y"),
            (y(7), "7y"),
            (y(8) - ms, "7y364d"),
            (y(8), "8y"),
            (y(8) + d(364), "8y"),
            (y(9), "9y"),
        ];
        for (duration, want) in cases {
            assert_eq!(human_duration(duration), want, "{duration:?}");
        }
    }
}
