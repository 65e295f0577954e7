//! The streaming subresources end to end with stock kubectl (the oldest and newest minor
//! installed): `exec` (output, exit codes, stdin, `-c`), `cp` both ways, `attach`,
//! `port-forward`, through the API server and the kubelet to containerd's streaming
//! server, on a real containerd with the busybox image of scripts/images.sh. Each test
//! has its own server, containerd and pod network and removes all of it when it ends.
//! Needs root (containerd, runc, CNI).

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use support::{busybox, fails, kubectls, lines_of, minor, ok, Cluster};

const NODE: &str = "streaming-test";
const WAIT: Duration = Duration::from_secs(90);

fn start() -> Cluster {
    let cidr = support::unique_cluster_cidr();
    Cluster::start_with_agent(&["--node-name", NODE, "--cluster-cidr", &cidr])
}

/// The oldest and the newest kubectl installed (SPDY only; WebSocket first).
fn oldest_and_newest() -> Vec<PathBuf> {
    let mut all = kubectls();
    let newest = all.pop().unwrap();
    let mut out = Vec::new();
    if !all.is_empty() {
        out.push(all.remove(0));
    }
    out.push(newest);
    out
}

fn container(name: &str, script: &str) -> serde_json::Value {
    json!({
        "name": name,
        "image": busybox(),
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
    })
}

/// Creates the pod and waits until it runs with all its containers ready.
async fn run_pod(c: &Cluster, name: &str, containers: Vec<serde_json::Value>) {
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": containers},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let ready = |p: &Pod| {
        let s = serde_json::to_value(p.status.clone().unwrap_or_default()).unwrap();
        s["phase"] == "Running"
            && s["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    let r = tokio::time::timeout(
        WAIT,
        await_condition(pods.clone(), name, |o: Option<&Pod>| o.is_some_and(ready)),
    )
    .await;
    assert!(
        matches!(r, Ok(Ok(Some(_)))),
        "pod {name} not ready within {WAIT:?}: {:#?}",
        pods.get_opt(name).await
    );
}

fn kubectl_cmd(c: &Cluster, bin: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.dir.path());
    cmd
}

/// Runs kubectl with `input` on its stdin.
fn kubectl_stdin(c: &Cluster, bin: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = kubectl_cmd(c, bin, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("kubectl ends");
    writer.join().unwrap();
    out
}

/// A child killed (and reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_cp_and_attach_work_through_the_api_server_with_old_and_new_kubectl() {
    let c = start();
    run_pod(
        &c,
        "shell",
        vec![
            container("main", "echo main > /tmp/who; exec sleep 3600"),
            container("side", "echo side > /tmp/who; exec sleep 3600"),
        ],
    )
    .await;
    let mut reader = container("reader", "while read l; do echo \"got $l\"; done");
    reader["stdin"] = json!(true);
    let ticker = container("ticker", "while true; do echo tick; sleep 0.2; done");
    run_pod(&c, "attachme", vec![reader, ticker]).await;

    // A pod no node can take, and one whose main container waits on its init container.
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    let pending: Pod = serde_json::from_value(json!({
        "metadata": {"name": "pending"},
        "spec": {"nodeSelector": {"nowhere": "x"}, "containers": [container("main", "true")]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pending).await.unwrap();
    let initing: Pod = serde_json::from_value(json!({
        "metadata": {"name": "initing"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "initContainers": [container("wait", "exec sleep 3600")],
            "containers": [container("main", "true")],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &initing).await.unwrap();
    let init_running = |p: &Pod| {
        let s = serde_json::to_value(p.status.clone().unwrap_or_default()).unwrap();
        s["initContainerStatuses"][0]["state"]["running"].is_object()
    };
    let r = tokio::time::timeout(
        WAIT,
        await_condition(pods.clone(), "initing", |o: Option<&Pod>| {
            o.is_some_and(init_running)
        }),
    )
    .await;
    assert!(matches!(r, Ok(Ok(Some(_)))), "init container never ran");

    let payload: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let local = c.dir.path().join("payload.bin");
    std::fs::write(&local, &payload).unwrap();

    for k in oldest_and_newest() {
        let v = minor(&k);
        let run = |args: &[&str]| c.kubectl(&k, args);
        // Output, and the container chosen with -c.
        let out = run(&["exec", "shell", "-c", "main", "--", "echo", "hi"]);
        assert_eq!(ok(&out, "exec echo"), "hi\n", "1.{v}");
        let out = run(&["exec", "shell", "-c", "side", "--", "cat", "/tmp/who"]);
        assert_eq!(ok(&out, "exec -c side"), "side\n", "1.{v}");
        let out = run(&["exec", "shell", "-c", "main", "--", "cat", "/tmp/who"]);
        assert_eq!(ok(&out, "exec -c main"), "main\n", "1.{v}");
        // stderr comes back apart from stdout.
        let out = run(&[
            "exec",
            "shell",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ]);
        assert_eq!(ok(&out, "exec stderr"), "out\n", "1.{v}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n", "1.{v}");
        // The exit code is kubectl's.
        let out = run(&["exec", "shell", "-c", "main", "--", "sh", "-c", "exit 3"]);
        assert_eq!(out.status.code(), Some(3), "1.{v}: {out:?}");
        // stdin round-trips.
        let out = blocking(|| {
            kubectl_stdin(
                &c,
                &k,
                &["exec", "-i", "shell", "-c", "main", "--", "cat"],
                b"round\ntrip\n",
            )
        });
        assert_eq!(ok(&out, "exec -i cat"), "round\ntrip\n", "1.{v}");
        // -it: a terminal in the container (kubectl's own under `script`), the exit code.
        let out = kubectl_cmd(&c, Path::new("script"), &[])
            .args([
                "-qec",
                &format!(
                    "{} exec -it shell -c main -- sh -c 'tty; exit 5'",
                    k.display()
                ),
                "/dev/null",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "1.{v}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"),
            "1.{v}: {out:?}"
        );
        // kubectl ≥ 1.30 speaks WebSocket v5 first: without stdin it is served (translated
        // to the runtime's v4); with stdin it is refused and kubectl falls back to SPDY.
        if v >= 30 {
            let out = run(&["-v=4", "exec", "shell", "-c", "main", "--", "echo", "ws"]);
            assert_eq!(ok(&out, "exec over WebSocket"), "ws\n", "1.{v}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("The subprotocol is v5.channel.k8s.io"),
                "1.{v}: {err}"
            );
            assert!(!err.contains("fallback"), "1.{v}: {err}");
            let out = blocking(|| {
                kubectl_stdin(
                    &c,
                    &k,
                    &["-v=4", "exec", "-i", "shell", "-c", "main", "--", "cat"],
                    b"x\n",
                )
            });
            assert_eq!(ok(&out, "exec -i (SPDY)"), "x\n", "1.{v}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("The subprotocol is"), "1.{v}: {err}");
        }
        // A container the pod does not have: upstream's 400.
        let err = fails(
            &run(&["exec", "shell", "-c", "nope", "--", "true"]),
            "exec -c nope",
        );
        assert!(
            err.contains("container nope is not valid for pod shell"),
            "1.{v}: {err}"
        );

        // Upstream's answers for a pod without a node and a container not running.
        let err = fails(&run(&["exec", "pending", "--", "true"]), "exec pending");
        assert!(
            err.contains(
                "Error from server (BadRequest): pod pending does not have a host assigned"
            ),
            "1.{v}: {err}"
        );
        let err = fails(
            &run(&["exec", "initing", "-c", "main", "--", "true"]),
            "exec initing",
        );
        assert!(
            err.contains("unable to upgrade connection: container not found (\"main\")"),
            "1.{v}: {err}"
        );

        // cp into the pod and back, byte for byte.
        let back = c.dir.path().join(format!("back-{v}.bin"));
        let remote = format!("shell:/tmp/payload-{v}.bin");
        let to = local.to_str().unwrap();
        ok(&run(&["cp", "-c", "main", to, &remote]), "cp into the pod");
        let out = run(&[
            "exec",
            "shell",
            "-c",
            "main",
            "--",
            "wc",
            "-c",
            &format!("/tmp/payload-{v}.bin"),
        ]);
        assert!(
            ok(&out, "wc").starts_with(&payload.len().to_string()),
            "1.{v}"
        );
        ok(
            &run(&["cp", "-c", "main", &remote, back.to_str().unwrap()]),
            "cp from the pod",
        );
        assert!(
            std::fs::read(&back).unwrap() == payload,
            "1.{v}: cp changed the bytes"
        );

        // attach: what we send reaches sh's stdin, its output comes back.
        let mut child = Running(
            kubectl_cmd(&c, &k, &["attach", "-i", "attachme", "-c", "reader"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let lines = lines_of(child.0.stdout.take().unwrap());
        let mut stdin = child.0.stdin.take().unwrap();
        let word = format!("ping-{v}");
        // Written before the attach is up, the line waits in the pipe.
        stdin.write_all(format!("{word}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let got = blocking(|| lines.recv_timeout(WAIT).ok());
        let mut err = String::new();
        if got.is_none() {
            drop(child.0.kill());
            let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
        }
        assert_eq!(
            got.as_deref(),
            Some(format!("got ping-{v}").as_str()),
            "1.{v}: {err}"
        );
        drop(child);
        // attach without stdin (WebSocket v5 for kubectl ≥ 1.30): the output streams.
        let mut child = Running(
            kubectl_cmd(&c, &k, &["attach", "attachme", "-c", "ticker"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let lines = lines_of(child.0.stdout.take().unwrap());
        let got = blocking(|| lines.recv_timeout(WAIT).ok());
        assert_eq!(got.as_deref(), Some("tick"), "1.{v}");
        drop(child);
    }
}

/// `kubectl -v=4 port-forward <target> :<port>`, running until dropped.
struct Forward {
    _child: Running,
    /// The local port kubectl listens on.
    port: u16,
    /// kubectl's stdout, read on (kubectl dies of SIGPIPE when it is closed).
    _lines: std::sync::mpsc::Receiver<String>,
    errors: std::sync::mpsc::Receiver<String>,
}

impl Forward {
    fn start(c: &Cluster, k: &Path, target: &str, port: u16) -> Forward {
        let mut child = Running(
            kubectl_cmd(c, k, &["-v=4", "port-forward", target, &format!(":{port}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let lines = lines_of(child.0.stdout.take().unwrap());
        let errors = lines_of(child.0.stderr.take().unwrap());
        // "Forwarding from 127.0.0.1:PORT -> 8080"
        let local: u16 = blocking(|| loop {
            let l = lines
                .recv_timeout(WAIT)
                .expect("kubectl port-forward prints its port");
            if let Some(rest) = l.strip_prefix("Forwarding from 127.0.0.1:") {
                break rest.split(' ').next().unwrap().parse().unwrap();
            }
        });
        Forward {
            _child: child,
            port: local,
            _lines: lines,
            errors,
        }
    }

    /// What kubectl has said on stderr so far.
    fn stderr(&self) -> String {
        self.errors.try_iter().collect::<Vec<_>>().join("\n")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_share_localhost_and_an_empty_dir_and_port_forward_carries_http() {
    let c = start();
    // web serves HTTP; client asks it on localhost and writes the answer into the
    // emptyDir; peer, a third container, reads it from its own mount of that emptyDir.
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "duo", "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "containers": [
                {"name": "web", "image": support::testserver_image(),
                 "args": ["netexec", "--http-port", "8080", "--udp-port", "0"]},
                {"name": "client", "image": busybox(),
                 "command": ["sh", "-c",
                    "until wget -qO /shared/answer.tmp http://localhost:8080/hostname; do sleep 0.2; done; mv /shared/answer.tmp /shared/answer; exec sleep 3600"],
                 "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                {"name": "peer", "image": busybox(),
                 "command": ["sh", "-c", "exec sleep 3600"],
                 "volumeMounts": [{"name": "shared", "mountPath": "/data"}]},
            ],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let k = kubectls().pop().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let answer = loop {
        let out = c.kubectl(
            &k,
            &["exec", "duo", "-c", "peer", "--", "cat", "/data/answer"],
        );
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer in the emptyDir: {}; pod: {:#?}",
            String::from_utf8_lossy(&out.stderr),
            pods.get_opt("duo").await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // The pod's hostname is its name: the request went to web over localhost.
    assert_eq!(answer, "duo");

    // port-forward carries HTTP requests to web, with both protocols of kubectl.
    for k in oldest_and_newest() {
        let v = minor(&k);
        let fwd = Forward::start(&c, &k, "pod/duo", 8080);
        for path in ["/hostname", "/echo?msg=through%20port-forward"] {
            let got = blocking(|| support::get("127.0.0.1", fwd.port, path));
            let want = if path == "/hostname" {
                "duo"
            } else {
                "through port-forward"
            };
            match got {
                Ok((status, body)) => {
                    assert_eq!((status, body.as_str()), (200, want), "1.{v} GET {path}")
                }
                Err(e) => panic!("1.{v} GET {path}: {e}; kubectl said: {}", fwd.stderr()),
            }
        }
        drop(fwd);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_carries_bytes_and_the_kubelet_refuses_strangers() {
    let c = start();
    run_pod(
        &c,
        "echo",
        vec![container("echo", "exec nc -ll -p 8080 -e cat")],
    )
    .await;
    // Ready means started: wait until the echo server listens (netstat through exec).
    let k = kubectls().pop().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !ok(
        &c.kubectl(&k, &["exec", "echo", "--", "netstat", "-tln"]),
        "netstat",
    )
    .contains(":8080")
    {
        assert!(std::time::Instant::now() < deadline, "nc never listened");
    }

    for k in oldest_and_newest() {
        let v = minor(&k);
        let fwd = Forward::start(&c, &k, "pod/echo", 8080);
        let port = fwd.port;
        for round in 0..2 {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let msg = format!("hello {v} {round}\n");
            tokio::io::AsyncWriteExt::write_all(&mut s, msg.as_bytes())
                .await
                .unwrap();
            let mut buf = vec![0u8; msg.len()];
            let r =
                tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read_exact(&mut s, &mut buf))
                    .await
                    .expect("the echo comes back");
            assert!(r.is_ok(), "1.{v}: {r:?}; kubectl said: {}", fwd.stderr());
            assert_eq!(String::from_utf8_lossy(&buf), msg, "1.{v}");
        }
        // kubectl ≥ 1.31 tunnels port-forward's SPDY in WebSocket (unwrapped here).
        if v >= 31 {
            let err = fwd.stderr();
            assert!(
                err.contains("negotiated protocol: portforward.k8s.io"),
                "1.{v}: {err}"
            );
        }
        drop(fwd);
    }

    // The API server wants a user (401), and an upgrade (400) before it asks a kubelet.
    let url = format!(
        "{}/api/v1/namespaces/default/pods/echo/exec?command=id&stdout=true",
        c.url
    );
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let upgrade = ["-H", "Upgrade: SPDY/3.1", "-H", "Connection: Upgrade"];
    assert_eq!(curl(&[&upgrade[..], &[url.as_str()]].concat()), "401");
    let token = std::fs::read_to_string(c.dir.path().join("server").join("token")).unwrap();
    let auth = format!("Authorization: Bearer {}", token.trim());
    assert_eq!(curl(&["-H", &auth, &url]), "400");

    // The kubelet's exec endpoint wants a client certificate of the cluster CA.
    let port = c.kubelet_port().unwrap();
    let out = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "Upgrade: SPDY/3.1",
            "-H",
            "Connection: Upgrade",
            &format!("https://127.0.0.1:{port}/exec/default/echo/echo?command=id&output=1"),
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stdout) == "000",
        "the kubelet answered a client without a certificate: {out:?}"
    );
}
