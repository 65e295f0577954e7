//! The service proxy end to end, on a real containerd: an RC of 3 testserver replicas
//! behind Services, reached from the host and from a pod through cluster IPs (/32s on
//! `lo`), a NodePort, TCP and UDP; round-robin, ClientIP affinity, readiness, a
//! long-lived connection across scaling, deletion; and no iptables/nftables rule
//! anywhere. Needs root and the images of scripts/images.sh (pulled from the test
//! registry).

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Pod, ReplicationController, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{busybox, get, kubectls, ok, testserver_image, udp, wait_for_within, Cluster};

const WAIT: Duration = Duration::from_secs(120);

/// An RC of `n` replicas: `web` serves netexec (HTTP 8080, UDP 8081); `gate` (busybox)
/// is ready while /tmp/ready exists, so a test can turn one replica unready.
fn rc(n: i32) -> ReplicationController {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": n,
            "selector": {"app": "web"},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {"name": "web", "image": testserver_image(),
                         "args": ["netexec", "--http-port", "8080", "--udp-port", "8081"],
                         "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}},
                        {"name": "gate", "image": busybox(),
                         "command": ["sh", "-c", "touch /tmp/ready; exec sleep 3600"],
                         "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                                            "periodSeconds": 1, "failureThreshold": 1}},
                    ],
                },
            },
        },
    }))
    .unwrap()
}

fn service(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn ready_addresses(e: &Endpoints) -> usize {
    e.subsets
        .iter()
        .flatten()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum()
}

/// GETs `/hostname` through `ip:port` until the answers of the last `window` requests
/// are exactly `want` (the proxy follows the endpoints a moment after the API has them).
fn await_hostnames(ip: &str, port: u16, want: &BTreeSet<String>, window: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut seen: Vec<String> = Vec::new();
    loop {
        if let Ok((200, body)) = get(ip, port, "/hostname") {
            seen.push(body);
        }
        if seen.len() >= window {
            let last = &seen[seen.len() - window..];
            if last.iter().cloned().collect::<BTreeSet<_>>() == *want {
                return last.to_vec();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{ip}:{port} never answered with exactly {want:?}; last answers: {:?}",
            &seen[seen.len().saturating_sub(10)..]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lo_addresses() -> String {
    let out = Command::new("ip")
        .args(["-4", "addr", "show", "dev", "lo"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP/1.1 keep-alive request on an open connection: the body.
fn request_on(conn: &mut BufReader<TcpStream>, path: &str) -> String {
    write!(
        conn.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: web\r\nConnection: keep-alive\r\n\r\n"
    )
    .unwrap();
    let mut len = 0usize;
    let mut status = String::new();
    conn.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_answer_on_cluster_ips_and_node_ports_without_iptables() {
    let cidr = support::unique_cluster_cidr();
    let mut c = Cluster::start_with_agent(&["--node-name", "proxy-test", "--cluster-cidr", &cidr]);
    let client = c.client();
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    rcs.create(&pp, &rc(3)).await.unwrap();
    let web = svcs
        .create(
            &pp,
            &service(
                "web",
                json!({"type": "NodePort", "selector": {"app": "web"}, "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080},
                    {"name": "udp", "port": 81, "targetPort": 8081, "protocol": "UDP"}]}),
            ),
        )
        .await
        .unwrap();
    let sticky = svcs
        .create(
            &pp,
            &service(
                "sticky",
                json!({"selector": {"app": "web"}, "sessionAffinity": "ClientIP",
                       "ports": [{"port": 80, "targetPort": 8080}]}),
            ),
        )
        .await
        .unwrap();
    let spec = web.spec.unwrap();
    let ip = spec.cluster_ip.unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap() as u16;
    let sticky_ip = sticky.spec.unwrap().cluster_ip.unwrap();
    wait_for_within(&eps, "web", "3 ready endpoints", WAIT, |e| {
        ready_addresses(e) == 3
    })
    .await;
    let names: BTreeSet<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(names.len(), 3);

    // The cluster IP is a /32 on lo; from the host each replica answers in turn.
    assert!(
        lo_addresses().contains(&format!("inet {ip}/32")),
        "{}",
        lo_addresses()
    );
    let turn = await_hostnames(&ip, 80, &names, 3);
    let next: Vec<String> = (0..3)
        .map(|_| get(&ip, 80, "/hostname").unwrap().1)
        .collect();
    assert_eq!(next, turn, "round robin repeats the same turn");
    // UDP through the service.
    assert!(names.contains(&udp(&ip, 81, "hostname")));
    // The NodePort on the node's addresses.
    await_hostnames("127.0.0.1", node_port, &names, 3);
    // ClientIP affinity pins this client to one replica.
    let deadline = Instant::now() + WAIT;
    while !matches!(get(&sticky_ip, 80, "/hostname"), Ok((200, _))) {
        assert!(Instant::now() < deadline, "{sticky_ip}:80 never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pinned: BTreeSet<String> = (0..6)
        .map(|_| get(&sticky_ip, 80, "/hostname").unwrap().1)
        .collect();
    assert_eq!(pinned.len(), 1, "{pinned:?}");

    // From inside a pod (busybox wget through the pod's default route to the host).
    let k = kubectls().pop().unwrap();
    let first_pod = names.iter().next().unwrap().clone();
    let out = c.kubectl(
        &k,
        &[
            "exec",
            &first_pod,
            "-c",
            "gate",
            "--",
            "wget",
            "-qO-",
            &format!("http://{ip}/hostname"),
        ],
    );
    assert!(names.contains(&ok(&out, "wget from a pod")), "{out:?}");

    // UDP from inside a pod: the replica's netexec asks the service (agnhost's /dial;
    // Debian's busybox nc has no UDP).
    let first_ip = pods
        .get(&first_pod)
        .await
        .unwrap()
        .status
        .and_then(|s| s.pod_ip)
        .unwrap();
    let (status, body) = get(
        &first_ip,
        8080,
        &format!("/dial?request=hostname&protocol=udp&host={ip}&port=81&tries=1"),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &v["errors"]), (200, &json!([])), "{body}");
    assert!(
        names.contains(v["responses"][0].as_str().unwrap()),
        "{body}"
    );

    // Cluster DNS from the pod: the service by its full name and by its short name (the
    // pod's search path), a headless service's ready pods, an ExternalName's CNAME.
    svcs.create(
        &pp,
        &service(
            "web-headless",
            json!({"clusterIP": "None", "selector": {"app": "web"},
                   "ports": [{"name": "http", "port": 8080}]}),
        ),
    )
    .await
    .unwrap();
    svcs.create(
        &pp,
        &service(
            "elsewhere",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
    )
    .await
    .unwrap();
    let pod_ips: BTreeSet<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.status?.pod_ip)
        .collect();
    let in_pod = |args: &[&str]| {
        let mut all = vec!["exec", first_pod.as_str(), "-c", "gate", "--"];
        all.extend_from_slice(args);
        c.kubectl(&k, &all)
    };
    let lookup = |name: &str, want: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = in_pod(&["nslookup", "-type=a", name]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if want(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "nslookup {name}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    lookup("web.default.svc.cluster.local", &|t| {
        t.contains(&format!("Address: {ip}"))
    });
    lookup("web-headless.default.svc.cluster.local", &|t| {
        pod_ips.iter().all(|p| t.contains(&format!("Address: {p}")))
    });
    lookup("elsewhere.default.svc.cluster.local", &|t| {
        t.contains("canonical name = example.com")
    });
    let out = in_pod(&[
        "nslookup",
        "-type=a",
        "nothing-here.default.svc.cluster.local",
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("NXDOMAIN"), "{text}");
    let by_name = in_pod(&["wget", "-qO-", "http://web/hostname"]);
    assert!(
        names.contains(&ok(&by_name, "wget http://web by its short name")),
        "{by_name:?}"
    );

    // A long-lived connection through the service...
    let mut conn = BufReader::new(TcpStream::connect((ip.as_str(), 80)).unwrap());
    conn.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let held = request_on(&mut conn, "/hostname");

    // A replica whose readiness fails stops receiving traffic.
    let unready = names.iter().find(|n| **n != held).unwrap().clone();
    ok(
        &c.kubectl(
            &k,
            &["exec", &unready, "-c", "gate", "--", "rm", "/tmp/ready"],
        ),
        "rm /tmp/ready",
    );
    wait_for_within(&eps, "web", "2 ready endpoints", WAIT, |e| {
        ready_addresses(e) == 2
    })
    .await;
    let rest: BTreeSet<String> = names.iter().filter(|n| **n != unready).cloned().collect();
    await_hostnames(&ip, 80, &rest, 6);

    // ...survives the scaling of its service.
    rcs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    wait_for_within(&eps, "web", "4 ready endpoints", WAIT, |e| {
        ready_addresses(e) == 4
    })
    .await;
    assert_eq!(request_on(&mut conn, "/hostname"), held);
    assert_eq!(
        request_on(&mut conn, "/echo?msg=still%20here"),
        "still here"
    );

    // Deleting the service removes its address and listener.
    svcs.delete("web", &Default::default()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while lo_addresses().contains(&format!("inet {ip}/32")) {
        assert!(
            Instant::now() < deadline,
            "{ip} still on lo: {}",
            lo_addresses()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // (Not a refusal everywhere: off this machine the address may route somewhere.)
    let after = get(&ip, 80, "/hostname");
    assert!(
        !matches!(&after, Ok((200, n)) if names.contains(n)),
        "{ip}:80 still reaches a replica: {after:?}"
    );

    // A restarted proxy cleans up what a dead one left: kill -9 leaves its addresses on
    // lo; one that no service wants any more (as if its service had been deleted while
    // the proxy was down) is gone after the restart, the others stay.
    let label = kubelet::containerd::lo_label(&c.dir.path().join("agent"));
    let stale = "10.255.254.1";
    c.kill9();
    assert!(
        lo_addresses().contains(&format!("inet {sticky_ip}/32")),
        "{}",
        lo_addresses()
    );
    let added = Command::new("ip")
        .args([
            "addr",
            "add",
            &format!("{stale}/32"),
            "dev",
            "lo",
            "label",
            &label,
        ])
        .status()
        .unwrap();
    assert!(added.success());
    c.restart();
    let deadline = Instant::now() + WAIT;
    while lo_addresses().contains(&format!("inet {stale}/32")) {
        assert!(
            Instant::now() < deadline,
            "{stale} left on lo: {}",
            lo_addresses()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        lo_addresses().contains(&format!("inet {sticky_ip}/32")),
        "{}",
        lo_addresses()
    );

    // No packet filter rule anywhere mentions the services.
    for (tool, args) in [
        ("iptables-save", &[][..]),
        ("nft", &["list", "ruleset"][..]),
    ] {
        if let Ok(out) = Command::new(tool).args(args).output() {
            let rules = String::from_utf8_lossy(&out.stdout);
            for needle in [ip.as_str(), sticky_ip.as_str(), "KUBE-"] {
                assert!(
                    !rules.contains(needle),
                    "{tool} has a rule with {needle}:\n{rules}"
                );
            }
        }
    }
}
