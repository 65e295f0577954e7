//! Stock kubectl, every installed minor, against a real `rkube server --disable-agent`.
//! Outputs are compared with what upstream prints for the same commands.

mod support;

use std::path::Path;

use support::{fails, header, kubectls, minor, ok, Cluster};

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

fn pod_yaml(ns: &str, image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: {ns}
  labels:
    app: web
    tier: front
spec:
  containers:
  - name: c
    image: {image}
    ports:
    - containerPort: 80
"
    )
}

fn rc_yaml(ns: &str) -> String {
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: frontend
  namespace: {ns}
spec:
  replicas: 2
  selector:
    app: frontend
  template:
    metadata:
      labels:
        app: frontend
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"
    )
}

/// One kubectl minor through the everyday commands, in its own namespace.
fn scenario(c: &Cluster, k: &Path) {
    let m = minor(k);
    let ns = format!("k{m}");
    let ns = ns.as_str();
    let run = |args: &[&str]| c.kubectl(k, args);
    let dir = c.dir.path();

    // api-resources lists the core kinds with their short names.
    let out = ok(&run(&["api-resources"]), "api-resources");
    assert!(
        header(&out).starts_with(&["NAME".into(), "SHORTNAMES".into(), "APIVERSION".into()]),
        "{out}"
    );
    for line in [
        "pods",
        "replicationcontrollers",
        "services",
        "namespaces",
        "leases",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "api-resources lacks {line}:\n{out}"
        );
    }
    assert!(
        out.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "po", "v1", "true", "Pod"]
        ),
        "{out}"
    );

    // create namespace, as kubectl's generator sends it.
    let out = ok(&run(&["create", "namespace", ns]), "create namespace");
    assert_eq!(out.trim(), format!("namespace/{ns} created"));
    let out = ok(&run(&["get", "ns", ns]), "get ns");
    assert_eq!(header(&out), ["NAME", "STATUS", "AGE"]);
    assert_eq!(
        out.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>(),
        [ns, "Active"],
        "{out}"
    );

    // create -f, then get as a table.
    let f = write(dir, &format!("pod{m}.yaml"), &pod_yaml(ns, "nginx:1.25"));
    let out = ok(&run(&["create", "-f", &f]), "create -f");
    assert_eq!(out.trim(), "pod/web created");
    let out = fails(&run(&["create", "-f", &f]), "create twice");
    assert_eq!(
        out.trim(),
        "Error from server (AlreadyExists): error when creating \"".to_string()
            + &f
            + "\": pods \"web\" already exists"
    );
    let out = ok(&run(&["get", "pods", "-n", ns]), "get pods");
    assert_eq!(header(&out), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "0/1", "Pending", "0"], "{out}");
    let out = ok(
        &run(&["get", "pods", "-n", ns, "-o", "wide"]),
        "get -o wide",
    );
    assert_eq!(
        header(&out),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    let out = ok(&run(&["get", "pods", "-A"]), "get -A");
    assert_eq!(header(&out)[0], "NAMESPACE");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{ns} ")) && l.contains("web")),
        "{out}"
    );
    let out = ok(
        &run(&["get", "pods", "-n", ns, "--show-labels"]),
        "--show-labels",
    );
    assert_eq!(header(&out).last().unwrap(), "LABELS");
    assert!(out.contains("app=web,tier=front"), "{out}");
    let out = ok(&run(&["get", "pods", "-n", ns, "-L", "tier"]), "-L");
    assert_eq!(header(&out).last().unwrap(), "TIER");
    assert!(
        out.lines().nth(1).unwrap().trim_end().ends_with("front"),
        "{out}"
    );
    let out = ok(
        &run(&[
            "get",
            "pod",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.name}/{.spec.containers[0].image}/{.spec.restartPolicy}",
        ]),
        "jsonpath",
    );
    assert_eq!(out, "web/nginx:1.25/Always");
    let out = ok(
        &run(&["get", "pod", "web", "-n", ns, "-o", "name"]),
        "-o name",
    );
    assert_eq!(out.trim(), "pod/web");
    let out = ok(
        &run(&["get", "pod", "web", "-n", ns, "-o", "json"]),
        "-o json",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "Pod");
    assert!(v["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert_eq!(
        v["spec"]["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    let out = ok(
        &run(&["get", "pod", "web", "-n", ns, "-o", "yaml"]),
        "-o yaml",
    );
    assert!(
        out.starts_with("apiVersion: v1\nkind: Pod\nmetadata:\n"),
        "{out}"
    );

    // apply: unchanged, then changed.
    let out = ok(&run(&["apply", "-f", &f]), "apply over create");
    assert_eq!(out.trim(), "pod/web configured");
    let out = ok(&run(&["apply", "-f", &f]), "apply unchanged");
    assert_eq!(out.trim(), "pod/web unchanged");
    let f2 = write(dir, &format!("pod{m}b.yaml"), &pod_yaml(ns, "nginx:1.26"));
    let out = ok(&run(&["apply", "-f", &f2]), "apply changed");
    assert_eq!(out.trim(), "pod/web configured");
    let out = ok(
        &run(&[
            "get",
            "pod",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ]),
        "image",
    );
    assert_eq!(out, "nginx:1.26");

    // label and annotate, removal, and a stale --resource-version.
    assert_eq!(
        ok(
            &run(&["label", "pod", "web", "-n", ns, "color=blue"]),
            "label"
        )
        .trim(),
        "pod/web labeled"
    );
    assert_eq!(
        ok(
            &run(&["label", "pod", "web", "-n", ns, "color-"]),
            "unlabel"
        )
        .trim(),
        "pod/web unlabeled"
    );
    // kubectl 1.27 itself prints "annotate" (its own wording, whatever the server).
    let annotated = if m == 27 {
        "pod/web annotate"
    } else {
        "pod/web annotated"
    };
    assert_eq!(
        ok(
            &run(&["annotate", "pod", "web", "-n", ns, "note=hi"]),
            "annotate"
        )
        .trim(),
        annotated
    );
    let out = fails(
        &run(&[
            "label",
            "pod",
            "web",
            "-n",
            ns,
            "x=y",
            "--resource-version=1",
        ]),
        "stale label",
    );
    assert!(
        out.contains("Error from server (Conflict)")
            && out.contains("the object has been modified"),
        "{out}"
    );

    // patch, all three types.
    let out = ok(
        &run(&[
            "patch",
            "pod",
            "web",
            "-n",
            ns,
            "-p",
            r#"{"metadata":{"labels":{"p":"s"}}}"#,
        ]),
        "strategic patch",
    );
    assert_eq!(out.trim(), "pod/web patched");
    let out = ok(
        &run(&[
            "patch",
            "pod",
            "web",
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"labels":{"p":"m"}}}"#,
        ]),
        "merge patch",
    );
    assert_eq!(out.trim(), "pod/web patched");
    let out = ok(
        &run(&[
            "patch",
            "pod",
            "web",
            "-n",
            ns,
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/metadata/labels/p","value":"j"}]"#,
        ]),
        "json patch",
    );
    assert_eq!(out.trim(), "pod/web patched");
    let out = ok(
        &run(&[
            "get",
            "pod",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.labels.p}",
        ]),
        "patched label",
    );
    assert_eq!(out, "j");
    let out = ok(
        &run(&[
            "patch",
            "pod",
            "web",
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"labels":{"p":"j"}}}"#,
        ]),
        "no-op patch",
    );
    assert_eq!(out.trim(), "pod/web patched (no change)");

    // edit through a sed script as the editor.
    let editor = write(
        dir,
        &format!("edit{m}.sh"),
        "#!/bin/sh\nsed -i 's/tier: front/tier: back/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = c.kubectl_env(
        k,
        &["edit", "pod", "web", "-n", ns],
        &[("KUBE_EDITOR", &editor)],
    );
    assert_eq!(ok(&out, "edit").trim(), "pod/web edited");
    let out = ok(
        &run(&[
            "get",
            "pod",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.labels.tier}",
        ]),
        "edited label",
    );
    assert_eq!(out, "back");

    // replication controllers: create, scale, expose, describe.
    let f = write(dir, &format!("rc{m}.yaml"), &rc_yaml(ns));
    assert_eq!(
        ok(&run(&["apply", "-f", &f]), "apply rc").trim(),
        "replicationcontroller/frontend created"
    );
    let out = ok(&run(&["get", "rc", "-n", ns, "-o", "wide"]), "get rc");
    assert_eq!(
        header(&out),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        ok(
            &run(&["scale", "rc", "frontend", "-n", ns, "--replicas=3"]),
            "scale"
        )
        .trim(),
        "replicationcontroller/frontend scaled"
    );
    let out = ok(
        &run(&[
            "get",
            "rc",
            "frontend",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.replicas}",
        ]),
        "replicas",
    );
    assert_eq!(out, "3");
    assert_eq!(
        ok(
            &run(&[
                "scale",
                "rc",
                "frontend",
                "-n",
                ns,
                "--current-replicas=3",
                "--replicas=1"
            ]),
            "scale --current-replicas"
        )
        .trim(),
        "replicationcontroller/frontend scaled"
    );
    assert_eq!(
        ok(
            &run(&[
                "expose",
                "rc",
                "frontend",
                "-n",
                ns,
                "--port=80",
                "--type=NodePort"
            ]),
            "expose"
        )
        .trim(),
        "service/frontend exposed"
    );
    let out = ok(&run(&["get", "svc", "frontend", "-n", ns]), "get svc");
    assert_eq!(
        header(&out),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[1], "NodePort");
    assert!(row[2].starts_with("10.43."), "{out}");
    assert!(
        row[4].starts_with("80:3") && row[4].ends_with("/TCP"),
        "{out}"
    );
    for (kind, name) in [("pod", "web"), ("rc", "frontend"), ("svc", "frontend")] {
        let out = ok(&run(&["describe", kind, name, "-n", ns]), "describe");
        let first: Vec<&str> = out
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(first, ["Name:", name], "{out}");
        let second: Vec<&str> = out
            .lines()
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(second, ["Namespace:", ns], "{out}");
    }
    let out = ok(&run(&["describe", "ns", ns]), "describe ns");
    assert!(out.contains("Status:       Active"), "{out}");

    // configmaps and secrets from kubectl's generators.
    assert_eq!(
        ok(
            &run(&["create", "configmap", "cfg", "-n", ns, "--from-literal=a=b"]),
            "create cm"
        )
        .trim(),
        "configmap/cfg created"
    );
    assert_eq!(
        ok(
            &run(&[
                "create",
                "secret",
                "generic",
                "sec",
                "-n",
                ns,
                "--from-literal=p=q"
            ]),
            "create secret"
        )
        .trim(),
        "secret/sec created"
    );
    let out = ok(&run(&["get", "cm,secret", "-n", ns]), "get cm,secret");
    assert!(
        out.contains("configmap/cfg") && out.contains("secret/sec"),
        "{out}"
    );
    let out = ok(
        &run(&["get", "secret", "sec", "-n", ns, "-o", "jsonpath={.data.p}"]),
        "secret data",
    );
    assert_eq!(out, "cQ==");

    // get all (the "all" category), and --sort-by on one kind (kubectl cannot sort
    // several kinds at once, upstream neither: kubernetes/kubernetes#104318).
    let out = ok(&run(&["get", "all", "-n", ns]), "get all");
    assert!(
        out.contains("pod/web")
            && out.contains("replicationcontroller/frontend")
            && out.contains("service/frontend"),
        "{out}"
    );
    let out = ok(
        &run(&["get", "svc", "-A", "--sort-by=.metadata.name", "-o", "name"]),
        "--sort-by",
    );
    let names: Vec<&str> = out.lines().collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert!(names.len() >= 2 && names == sorted, "{out}");
    let out = ok(
        &run(&["get", "svc", "-A", "--sort-by=.metadata.creationTimestamp"]),
        "--sort-by table",
    );
    assert_eq!(header(&out)[0], "NAMESPACE");
    ok(&run(&["get", "events", "-n", ns]), "get events");

    // explain.
    let out = ok(&run(&["explain", "pods"]), "explain pods");
    assert!(
        out.contains("KIND:") && out.contains("Pod") && out.contains("VERSION:"),
        "{out}"
    );
    let out = ok(
        &run(&["explain", "pods.spec.containers"]),
        "explain containers",
    );
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");

    // server-side apply: a new object, a conflict with another manager, then forced.
    let f = write(
        dir,
        &format!("ssa{m}.yaml"),
        &pod_yaml(ns, "nginx:1.25").replace("name: web", "name: ssa"),
    );
    let out = ok(
        &run(&["apply", "--server-side", "-f", &f]),
        "apply --server-side",
    );
    assert_eq!(out.trim(), "pod/ssa serverside-applied");
    ok(
        &run(&["set", "image", "pod/ssa", "-n", ns, "c=nginx:1.27"]),
        "set image (another manager)",
    );
    let out = fails(
        &run(&["apply", "--server-side", "-f", &f]),
        "conflicting apply",
    );
    assert!(
        out.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl-set\" using v1: .spec.containers[name=\"c\"].image"
        ),
        "{out}"
    );
    let out = ok(
        &run(&["apply", "--server-side", "--force-conflicts", "-f", &f]),
        "forced apply",
    );
    assert_eq!(out.trim(), "pod/ssa serverside-applied");
    let out = ok(
        &run(&[
            "get",
            "pod",
            "ssa",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ]),
        "applied image",
    );
    assert_eq!(out, "nginx:1.25");

    // get -w sees a later change.
    let mut watch = std::process::Command::new(k)
        .args(["get", "pods", "ssa", "-n", ns, "-w", "--no-headers"])
        .env("KUBECONFIG", &c.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = support::lines_of(watch.stdout.take().unwrap());
    let first = lines
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("watch prints the pod");
    assert!(first.starts_with("ssa "), "{first}");
    ok(
        &run(&["label", "pod", "ssa", "-n", ns, "seen=yes"]),
        "label during watch",
    );
    let next = lines
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("watch prints the change");
    assert!(next.starts_with("ssa "), "{next}");
    let _ = watch.kill();
    let _ = watch.wait();

    // nodes and events, as describe and get print them.
    let node = format!("node-k{m}");
    let f = write(
        dir,
        &format!("node{m}.yaml"),
        &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n  labels:\n    node-role.kubernetes.io/control-plane: \"true\"\n"),
    );
    ok(&run(&["create", "-f", &f]), "create node");
    let out = ok(&run(&["get", "node", &node]), "get node");
    assert_eq!(header(&out), ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..3],
        [node.as_str(), "Unknown", "control-plane"],
        "{out}"
    );
    let out = ok(&run(&["describe", "node", &node]), "describe node");
    let first: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(first, ["Name:", node.as_str()], "{out}");
    assert!(out.contains("Roles:              control-plane"), "{out}");
    ok(&run(&["delete", "node", &node]), "delete node");
    let f = write(
        dir,
        &format!("event{m}.yaml"),
        &format!(
            "apiVersion: v1\nkind: Event\nmetadata:\n  name: web.1\n  namespace: {ns}\ninvolvedObject:\n  kind: Pod\n  name: web\n  namespace: {ns}\n  apiVersion: v1\nreason: Testing\nmessage: hello from the test\ntype: Normal\ncount: 1\nfirstTimestamp: \"2026-01-01T00:00:00Z\"\nlastTimestamp: \"2026-01-01T00:00:00Z\"\nsource:\n  component: e2e\n"
        ),
    );
    ok(&run(&["create", "-f", &f]), "create event");
    let out = ok(&run(&["get", "events", "-n", ns]), "get events");
    assert_eq!(
        header(&out),
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    // (The scheduler's FailedScheduling events are there too: this cluster has no nodes.)
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.contains(" Testing "))
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[1..],
        ["Normal", "Testing", "pod/web", "hello", "from", "the", "test"],
        "{out}"
    );

    // delete and wait.
    assert_eq!(
        ok(&run(&["delete", "pod", "web", "-n", ns]), "delete pod").trim(),
        "pod \"web\" deleted"
    );
    ok(
        &run(&["wait", "--for=delete", "pod/web", "-n", ns, "--timeout=10s"]),
        "wait --for=delete",
    );
    let out = fails(&run(&["get", "pod", "web", "-n", ns]), "get deleted");
    assert_eq!(
        out.trim(),
        "Error from server (NotFound): pods \"web\" not found"
    );

    // Deleting the namespace takes its contents with it.
    let out = ok(&run(&["delete", "namespace", ns]), "delete namespace");
    assert_eq!(out.trim(), format!("namespace \"{ns}\" deleted"));
    let out = fails(&run(&["get", "namespace", ns]), "get deleted namespace");
    assert_eq!(
        out.trim(),
        format!("Error from server (NotFound): namespaces \"{ns}\" not found")
    );
    for kind in [
        "pods",
        "replicationcontrollers",
        "services",
        "configmaps",
        "secrets",
        "events",
    ] {
        let out = ok(
            &run(&["get", kind, "-n", ns, "-o", "name"]),
            "get in deleted namespace",
        );
        assert_eq!(out, "", "{kind} left in {ns}");
    }
}

#[test]
fn every_kubectl_minor() {
    let c = Cluster::start();
    for k in kubectls() {
        eprintln!("== {}", k.display());
        scenario(&c, &k);
    }
}

#[test]
fn every_kubectl_minor_on_etcd() {
    let etcd = support::etcd::EtcdCluster::start(1);
    let endpoint = etcd.endpoints();
    let c = Cluster::start_in(
        tempfile::tempdir().unwrap(),
        &["--datastore-endpoint", &endpoint],
    );
    for k in kubectls() {
        eprintln!("== {} (etcd)", k.display());
        scenario(&c, &k);
    }
}
