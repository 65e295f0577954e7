//! What the kubelet gives a pod's containers, on a real containerd with the busybox
//! image (scripts/images.sh): their environment (ConfigMaps, Secrets, the downward API,
//! service variables, `$(VAR)` expansion) and their volumes (emptyDir, hostPath,
//! configMap, secret, downwardAPI, projected, subPath, readOnly, `/etc/hosts`).
//! Each test has its own server, containerd and pod network. Needs root.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret, Service};
use kube::api::{
    Api, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::wait::await_condition;
use serde_json::json;
use support::{busybox, wait_for, Cluster};

const NODE: &str = "kubelet-pods-test";
const WAIT: Duration = Duration::from_secs(90);

/// A cluster with its agent; test `i` of this file gets its own /16 among 10.50–99
/// (the other suites with agents use 10.100–249), so two tests' bridges never share a
/// subnet (a probe from the host would reach the wrong bridge).
fn start() -> Cluster {
    let cidr = support::unique_cluster_cidr();
    Cluster::start_with_agent(&["--node-name", NODE, "--cluster-cidr", &cidr])
}

fn status(p: &Pod) -> serde_json::Value {
    serde_json::to_value(p.status.clone().unwrap_or_default()).unwrap()
}

fn phase_is(phase: &'static str) -> impl Fn(&Pod) -> bool {
    move |p| status(p)["phase"] == phase
}

fn waiting(p: &Pod) -> (String, String) {
    let s = status(p);
    let w = &s["containerStatuses"][0]["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or("").to_string(),
        w["message"].as_str().unwrap_or("").to_string(),
    )
}

/// Waits (by watch) until an event of `reason` exists for the pod; its message.
async fn await_event(client: &kube::Client, pod: &str, reason: &str) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let fs = format!("involvedObject.name={pod}");
    let find = |evs: &[Event]| {
        evs.iter()
            .find(|e| e.reason.as_deref() == Some(reason))
            .and_then(|e| e.message.clone())
    };
    let list = api.list(&ListParams::default().fields(&fs)).await.unwrap();
    let mut seen = list.items;
    let rv = list.metadata.resource_version.unwrap_or_default();
    let mut stream = api
        .watch(&WatchParams::default().fields(&fs), &rv)
        .await
        .unwrap()
        .boxed();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(m) = find(&seen) {
            return m;
        }
        match tokio::time::timeout_at(deadline, stream.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(e)))) | Ok(Ok(Some(WatchEvent::Modified(e)))) => {
                seen.push(e)
            }
            Ok(Ok(Some(_))) => {}
            other => panic!("event {reason} of {pod}: {other:?}"),
        }
    }
}

fn pod(name: &str, spec: serde_json::Value) -> Pod {
    let mut spec = spec;
    spec["terminationGracePeriodSeconds"] = json!(2);
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"app": "env-test", "tier": "back"},
                     "annotations": {"note": "hello"}},
        "spec": spec,
    }))
    .unwrap()
}

fn container(name: &str, script: &str) -> serde_json::Value {
    json!({
        "name": name,
        "image": busybox(),
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
    })
}

/// The container's log lines once the pod has ended.
async fn logs_of(pods: &Api<Pod>, name: &str) -> Vec<String> {
    let text = pods.logs(name, &LogParams::default()).await.unwrap();
    text.lines().map(str::to_string).collect()
}

/// The next line of a followed log, by `deadline`.
async fn next_line<S>(lines: &mut S, deadline: tokio::time::Instant) -> String
where
    S: futures::Stream<Item = std::io::Result<String>> + Unpin,
{
    match tokio::time::timeout_at(deadline, lines.try_next()).await {
        Ok(Ok(Some(line))) => line,
        other => panic!("log stream: {other:?}"),
    }
}

fn env_of(lines: &[String]) -> BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn create<K>(api: &Api<K>, obj: serde_json::Value) -> K
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize,
{
    let obj: K = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_from_config_maps_secrets_the_downward_api_and_services() {
    let c = start();
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create(
        &cms,
        json!({"metadata": {"name": "cfg"},
               "data": {"color": "blue", "size": "L", "1bad": "x", "2alsobad": "y"}}),
    )
    .await;
    create(
        &secrets,
        json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}),
    )
    .await;
    let svc: Service = create(
        &services,
        json!({"metadata": {"name": "web-front"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                  {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    )
    .await;
    let svc_ip = svc.spec.unwrap().cluster_ip.unwrap();

    let mut main = container("main", "env | sort; echo 'ARGS $(COLOR) $$(COLOR) $(NOPE)'");
    main["resources"] = json!({"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}});
    main["envFrom"] = json!([
        {"configMapRef": {"name": "cfg"}},
        {"secretRef": {"name": "creds"}, "prefix": "S_"},
        {"configMapRef": {"name": "absent", "optional": true}},
    ]);
    main["env"] = json!([
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}}},
        {"name": "URL", "value": "http://$(WEB_FRONT_SERVICE_HOST):$(WEB_FRONT_SERVICE_PORT)/$(COLOR)"},
        {"name": "ESCAPED", "value": "$$(COLOR)"},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "HOST_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}},
        {"name": "POD_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
    ]);
    pods.create(
        &PostParams::default(),
        &pod(
            "env",
            json!({"restartPolicy": "Never", "containers": [main]}),
        ),
    )
    .await
    .unwrap();
    let p = wait_for(&pods, "env", "env pod Succeeded", phase_is("Succeeded")).await;
    let pod_ip = status(&p)["podIP"].as_str().unwrap().to_string();
    let lines = logs_of(&pods, "env").await;
    let env = env_of(&lines);
    let cpus = std::thread::available_parallelism()
        .unwrap()
        .get()
        .to_string();
    for (k, v) in [
        ("COLOR", "blue"),
        ("color", "blue"),
        ("size", "L"),
        ("S_password", "s3cret"),
        ("PW", "s3cret"),
        ("URL", &format!("http://{svc_ip}:80/blue")),
        ("ESCAPED", "$(COLOR)"),
        ("APP", "env-test"),
        ("NOTE", "hello"),
        ("SA", "default"),
        ("HOST_IPS", "127.0.0.1"),
        ("POD_IPS", pod_ip.as_str()),
        ("MEM_MI", "64"),
        ("CPU_M", "250"),
        ("CPU_LIMIT", cpus.as_str()),
        ("WEB_FRONT_SERVICE_HOST", svc_ip.as_str()),
        ("WEB_FRONT_SERVICE_PORT", "80"),
        ("WEB_FRONT_SERVICE_PORT_HTTP", "80"),
        ("WEB_FRONT_SERVICE_PORT_DNS", "53"),
        ("WEB_FRONT_PORT", &format!("tcp://{svc_ip}:80")),
        ("WEB_FRONT_PORT_80_TCP", &format!("tcp://{svc_ip}:80")),
        ("WEB_FRONT_PORT_80_TCP_PROTO", "tcp"),
        ("WEB_FRONT_PORT_80_TCP_PORT", "80"),
        ("WEB_FRONT_PORT_80_TCP_ADDR", svc_ip.as_str()),
        ("WEB_FRONT_PORT_53_UDP", &format!("udp://{svc_ip}:53")),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {lines:#?}");
    }
    assert!(env.contains_key("KUBERNETES_SERVICE_HOST"), "{lines:#?}");
    assert!(
        env.contains_key("KUBERNETES_PORT_443_TCP_ADDR"),
        "{lines:#?}"
    );
    for absent in ["1bad", "2alsobad", "OPT"] {
        assert!(!env.contains_key(absent), "{absent} in {lines:#?}");
    }
    assert!(
        lines.iter().any(|l| l == "ARGS blue $(COLOR) $(NOPE)"),
        "{lines:#?}"
    );
    assert_eq!(
        await_event(&client, "env", "InvalidEnvironmentVariableNames").await,
        "Keys [1bad, 2alsobad] from the EnvFrom configMap default/cfg were skipped since they are considered invalid environment variable names."
    );

    // enableServiceLinks: false keeps the kubernetes service's variables only.
    pods.create(
        &PostParams::default(),
        &pod(
            "nolinks",
            json!({"restartPolicy": "Never", "enableServiceLinks": false,
                   "containers": [container("main", "env | sort")]}),
        ),
    )
    .await
    .unwrap();
    wait_for(&pods, "nolinks", "nolinks Succeeded", phase_is("Succeeded")).await;
    let lines = logs_of(&pods, "nolinks").await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("KUBERNETES_SERVICE_HOST=")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("WEB_FRONT")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_map_or_key_holds_the_container_in_create_container_config_error() {
    let c = start();
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut main = container("main", "echo value=$LATER");
    main["env"] = json!([
        {"name": "LATER", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "k"}}},
    ]);
    pods.create(
        &PostParams::default(),
        &pod(
            "waits",
            json!({"restartPolicy": "Never", "containers": [main]}),
        ),
    )
    .await
    .unwrap();
    let p = wait_for(&pods, "waits", "CreateContainerConfigError", |p| {
        waiting(p).0 == "CreateContainerConfigError"
    })
    .await;
    assert_eq!(waiting(&p).1, "configmap \"later\" not found");
    assert_eq!(status(&p)["phase"], "Pending");
    assert_eq!(
        await_event(&client, "waits", "Failed").await,
        "Error: configmap \"later\" not found"
    );

    create(
        &cms,
        json!({"metadata": {"name": "later"}, "data": {"other": "x"}}),
    )
    .await;
    wait_for(&pods, "waits", "missing key", |p| {
        waiting(p).1 == "couldn't find key k in ConfigMap default/later"
    })
    .await;

    cms.patch(
        "later",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "finally"}})),
    )
    .await
    .unwrap();
    wait_for(&pods, "waits", "Succeeded", phase_is("Succeeded")).await;
    assert_eq!(logs_of(&pods, "waits").await, ["value=finally"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_reach_the_containers_and_api_data_follows_updates() {
    let c = start();
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create(
        &cms,
        json!({"metadata": {"name": "cfg"}, "data": {"color": "blue", "size": "L"}}),
    )
    .await;
    create(
        &secrets,
        json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}),
    )
    .await;
    let host_dir = c.dir.path().join("host-vol");

    let script = r#"
echo "color: $(cat /cfg/dir/color)"
echo "mode: $(stat -L -c %a /cfg/dir/color)"
echo "data: $(readlink /cfg/..data | cut -c1-4)"
echo "all: $(ls /all | tr '\n' ' ')"
echo "allmode: $(stat -L -c %a /all/size)"
echo "secret: $(cat /sec/password)"
echo "labels: $(cat /dapi/labels | tr '\n' ' ')"
echo "name: $(cat /dapi/name)"
echo "proj: $(cat /proj/pc) $(cat /proj/ps) $(cat /proj/ns)"
echo "sub: $(cat /sub-color)"
echo "tmpfs: $(grep -c ' /mem tmpfs ' /proc/mounts)"
echo "from-host" > /host/f && echo "host: ok"
touch /cfg/x 2>/dev/null && echo "cfg: writable" || echo "cfg: readonly"
touch /shared-ro/x 2>/dev/null && echo "ro: writable" || echo "ro: readonly"
until [ -f /shared/msg ]; do sleep 0.1; done
echo "shared: $(cat /shared/msg)"
echo "hosts: $(grep -c "$(hostname)" /etc/hosts) $(head -1 /etc/hosts)"
while true; do echo "now: $(cat /cfg/dir/color)"; sleep 1; done
"#;
    let mut main = container("main", script);
    main["volumeMounts"] = json!([
        {"name": "cfg", "mountPath": "/cfg"},
        {"name": "all", "mountPath": "/all"},
        {"name": "sec", "mountPath": "/sec"},
        {"name": "dapi", "mountPath": "/dapi"},
        {"name": "proj", "mountPath": "/proj"},
        {"name": "cfg", "mountPath": "/sub-color", "subPath": "dir/color"},
        {"name": "mem", "mountPath": "/mem"},
        {"name": "host", "mountPath": "/host"},
        {"name": "shared", "mountPath": "/shared"},
        {"name": "shared", "mountPath": "/shared-ro", "readOnly": true},
    ]);
    let mut writer = container("writer", "echo hi-from-writer > /out/msg; sleep 3600");
    writer["volumeMounts"] = json!([{"name": "shared", "mountPath": "/out"}]);
    let spec = json!({
        "containers": [main, writer],
        "volumes": [
            {"name": "cfg", "configMap": {"name": "cfg",
                "items": [{"key": "color", "path": "dir/color", "mode": 0o400}]}},
            {"name": "all", "configMap": {"name": "cfg", "defaultMode": 0o600}},
            {"name": "sec", "secret": {"secretName": "creds"}},
            {"name": "dapi", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            ]}},
            {"name": "proj", "projected": {"sources": [
                {"configMap": {"name": "cfg", "items": [{"key": "color", "path": "pc"}]}},
                {"secret": {"name": "creds", "items": [{"key": "password", "path": "ps"}]}},
                {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]}},
            {"name": "mem", "emptyDir": {"medium": "Memory"}},
            {"name": "shared", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": host_dir.display().to_string(), "type": "DirectoryOrCreate"}},
        ],
    });
    pods.create(&PostParams::default(), &pod("vols", spec))
        .await
        .unwrap();
    wait_for(&pods, "vols", "vols Running", phase_is("Running")).await;

    let stream = pods
        .log_stream(
            "vols",
            &LogParams {
                container: Some("main".into()),
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut lines = Box::pin(stream.lines());
    let mut seen: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let l = next_line(&mut lines, deadline).await;
        let now = l.starts_with("now: ");
        seen.push(l);
        if now {
            break;
        }
    }
    let want = [
        "color: blue",
        "mode: 400",
        "data: ..20",
        "all: color size ",
        "allmode: 600",
        "secret: s3cret",
        "labels: app=\"env-test\" tier=\"back\"",
        "name: vols",
        "proj: blue s3cret default",
        "sub: blue",
        "tmpfs: 1",
        "host: ok",
        "cfg: readonly",
        "ro: readonly",
        "shared: hi-from-writer",
        "hosts: 1 # Kubernetes-managed hosts file.",
        "now: blue",
    ];
    assert_eq!(seen, want);
    assert_eq!(
        std::fs::read_to_string(host_dir.join("f")).unwrap(),
        "from-host\n"
    );

    // An update of the ConfigMap reaches the volume (the periodic resync).
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"color": "red"}})),
    )
    .await
    .unwrap();
    loop {
        let l = next_line(&mut lines, deadline).await;
        if l == "now: red" {
            break;
        }
        assert_eq!(l, "now: blue");
    }

    // A hostPath that fails its type check: FailedMount, the container never starts.
    let spec = json!({
        "containers": [container("main", "true")],
        "volumes": [{"name": "bad", "hostPath": {"path": "/nonexistent-rkube", "type": "Directory"}}],
    });
    pods.create(&PostParams::default(), &pod("badmount", spec))
        .await
        .unwrap();
    assert_eq!(
        await_event(&client, "badmount", "FailedMount").await,
        "MountVolume.SetUp failed for volume \"bad\" : hostPath type check failed: /nonexistent-rkube is not a directory"
    );
    let p = wait_for(&pods, "badmount", "ContainerCreating", |p| {
        !waiting(p).0.is_empty()
    })
    .await;
    assert_eq!(waiting(&p).0, "ContainerCreating");
    assert_eq!(status(&p)["phase"], "Pending");
}

fn condition(p: &Pod, t: &str) -> String {
    status(p)["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == t)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

fn container_status(p: &Pod, name: &str) -> serde_json::Value {
    status(p)["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_drive_readiness_and_restarts() {
    let c = start();
    let client = c.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // The host controls the probes' outcomes through a hostPath directory.
    let dir = c.dir.path().join("probe");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let vol = json!([{"name": "probe", "hostPath": {"path": dir.display().to_string()}}]);
    let mounts = json!([{"name": "probe", "mountPath": "/probe"}]);
    let cat = |f: &str| json!({"exec": {"command": ["cat", format!("/probe/{f}")]}, "periodSeconds": 1, "failureThreshold": 1});

    // Startup gates, then readiness (exec) drives Ready.
    let mut main = container("main", "sleep 3600");
    main["volumeMounts"] = mounts.clone();
    main["startupProbe"] = cat("started");
    // Startup failures up to the threshold only hold the other probes back.
    main["startupProbe"]["failureThreshold"] = json!(600);
    main["readinessProbe"] = cat("ready");
    // httpGet readiness against busybox httpd serving the host's directory.
    let mut web = container("web", "httpd -f -p 8080 -h /probe/www");
    web["volumeMounts"] = mounts.clone();
    web["ports"] = json!([{"name": "http", "containerPort": 8080}]);
    web["readinessProbe"] = json!({"httpGet": {"path": "/index.html", "port": "http",
        "httpHeaders": [{"name": "X-Probe", "value": "1"}]}, "periodSeconds": 1, "failureThreshold": 1});
    web["livenessProbe"] = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 1});
    pods.create(
        &PostParams::default(),
        &pod(
            "ready",
            json!({"containers": [main, web], "volumes": vol.clone()}),
        ),
    )
    .await
    .unwrap();
    let p = wait_for(&pods, "ready", "both running", |p| {
        ["main", "web"]
            .iter()
            .all(|n| container_status(p, n)["state"]["running"].is_object())
    })
    .await;
    assert_eq!(container_status(&p, "main")["started"], false);
    assert_eq!(container_status(&p, "main")["ready"], false);
    assert_eq!(condition(&p, "Ready"), "False");
    let msg = await_event(&client, "ready", "Unhealthy").await;
    assert!(
        msg.starts_with("Startup probe failed: cat: can't open '/probe/started'"),
        "{msg}"
    );

    std::fs::write(dir.join("started"), "").unwrap();
    wait_for(&pods, "ready", "main started", |p| {
        container_status(p, "main")["started"] == true
    })
    .await;
    std::fs::write(dir.join("ready"), "").unwrap();
    std::fs::write(dir.join("www/index.html"), "ok").unwrap();
    wait_for(&pods, "ready", "pod Ready", |p| {
        condition(p, "Ready") == "True" && condition(p, "ContainersReady") == "True"
    })
    .await;
    // The file goes: readiness fails, Ready turns False; the container is not restarted.
    std::fs::remove_file(dir.join("ready")).unwrap();
    let p = wait_for(&pods, "ready", "pod not Ready", |p| {
        condition(p, "Ready") == "False"
    })
    .await;
    assert_eq!(container_status(&p, "main")["ready"], false);
    assert_eq!(container_status(&p, "main")["restartCount"], 0);
    assert_eq!(container_status(&p, "web")["ready"], true);
    // The httpGet probe: a 404 turns web unready.
    std::fs::write(dir.join("ready"), "").unwrap();
    std::fs::remove_file(dir.join("www/index.html")).unwrap();
    let p = wait_for(&pods, "ready", "web unready", |p| {
        container_status(p, "web")["ready"] == false && container_status(p, "main")["ready"] == true
    })
    .await;
    assert_eq!(container_status(&p, "web")["restartCount"], 0);

    // Liveness: a failing probe kills the container and it is started again.
    std::fs::write(dir.join("alive"), "").unwrap();
    let mut main = container("main", "sleep 3600");
    main["volumeMounts"] = mounts;
    main["livenessProbe"] = cat("alive");
    main["lifecycle"] = json!({"preStop": {"exec": {"command": ["touch", "/probe/pre-stopped"]}}});
    pods.create(
        &PostParams::default(),
        &pod("live", json!({"containers": [main], "volumes": vol})),
    )
    .await
    .unwrap();
    wait_for(&pods, "live", "live Ready", |p| {
        condition(p, "Ready") == "True"
    })
    .await;
    std::fs::remove_file(dir.join("alive")).unwrap();
    assert_eq!(
        await_event(&client, "live", "Killing").await,
        "Container main failed liveness probe, will be restarted"
    );
    let msg = await_event(&client, "live", "Unhealthy").await;
    assert!(
        msg.starts_with("Liveness probe failed: cat: can't open '/probe/alive'"),
        "{msg}"
    );
    std::fs::write(dir.join("alive"), "").unwrap();
    let p = wait_for(&pods, "live", "restarted and running", |p| {
        let cs = container_status(p, "main");
        cs["restartCount"].as_i64().unwrap_or(0) >= 1 && cs["state"]["running"].is_object()
    })
    .await;
    assert!(container_status(&p, "main")["lastState"]["terminated"].is_object());
    // The kill ran the container's preStop hook first.
    assert!(dir.join("pre-stopped").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_start_and_pre_stop_hooks() {
    let c = start();
    let client = c.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let dir = c.dir.path().join("hooks");
    std::fs::create_dir_all(&dir).unwrap();
    let vol = json!([{"name": "h", "hostPath": {"path": dir.display().to_string()}}]);
    let mounts = json!([{"name": "h", "mountPath": "/h"}]);

    // postStart has run when the container is reported running; preStop runs on deletion.
    let mut main = container("main", "sleep 3600");
    main["volumeMounts"] = mounts.clone();
    main["lifecycle"] = json!({
        "postStart": {"exec": {"command": ["sh", "-c", "echo post > /h/post"]}},
        "preStop": {"exec": {"command": ["sh", "-c", "echo pre > /h/pre"]}},
    });
    pods.create(
        &PostParams::default(),
        &pod(
            "hooks",
            json!({"containers": [main], "volumes": vol.clone()}),
        ),
    )
    .await
    .unwrap();
    let p = wait_for(&pods, "hooks", "running", phase_is("Running")).await;
    assert_eq!(std::fs::read_to_string(dir.join("post")).unwrap(), "post\n");
    assert!(!dir.join("pre").exists());
    let uid = p.metadata.uid.clone().unwrap();
    pods.delete("hooks", &Default::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            pods.clone(),
            "hooks",
            kube::runtime::conditions::is_deleted(&uid),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("pre")).unwrap(), "pre\n");

    // A sleep preStop holds the stop back (within the grace period).
    let mut main = container("main", "sleep 3600");
    main["lifecycle"] = json!({"preStop": {"sleep": {"seconds": 1}}});
    pods.create(
        &PostParams::default(),
        &pod("sleeper", json!({"containers": [main]})),
    )
    .await
    .unwrap();
    let p = wait_for(&pods, "sleeper", "running", phase_is("Running")).await;
    let uid = p.metadata.uid.clone().unwrap();
    let t0 = std::time::Instant::now();
    pods.delete("sleeper", &Default::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            pods.clone(),
            "sleeper",
            kube::runtime::conditions::is_deleted(&uid),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());

    // A failing postStart: FailedPostStartHook, the container is killed and restarted.
    let mut main = container("main", "sleep 3600");
    main["lifecycle"] = json!({
        "postStart": {"exec": {"command": ["sh", "-c", "echo boom; exit 3"]}},
    });
    let p = pods
        .create(
            &PostParams::default(),
            &pod("hookfail", json!({"containers": [main]})),
        )
        .await
        .unwrap();
    let uid = p.metadata.uid.clone().unwrap();
    assert_eq!(
        await_event(&client, "hookfail", "FailedPostStartHook").await,
        format!(
            "Exec lifecycle hook ([sh -c echo boom; exit 3]) for Container \"main\" in Pod \"hookfail_default({uid})\" failed - error: command 'sh -c echo boom; exit 3' exited with 3: boom\n, message: \"boom\\n\""
        )
    );
    assert_eq!(
        await_event(&client, "hookfail", "Killing").await,
        "FailedPostStartHook"
    );
    wait_for(&pods, "hookfail", "restarted", |p| {
        container_status(p, "main")["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    })
    .await;
}
