//! `kubectl logs` end to end, on a real containerd with the busybox image
//! (scripts/images.sh): a 10 MiB log comes back byte-exact through kubelet and the API
//! server's relay (with the oldest and newest kubectl), `-f` streams lines written after
//! it started, `--since` / `--since-time` filter, `--timestamps` prefixes RFC3339Nano.
//! Each test has its own server, containerd and pod network. Needs root.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;
use sha2::{Digest, Sha256};
use support::{busybox, Cluster};

const NODE: &str = "logs-test";
const WAIT: Duration = Duration::from_secs(120);

/// Lines of the big log: `LINES` lines of `LINE` bytes each (8-digit number, padding,
/// newline), 10 MiB in all.
const LINES: usize = 10240;
const LINE: usize = 1024;

fn start() -> Cluster {
    let cidr = support::unique_cluster_cidr();
    Cluster::start_with_agent(&["--node-name", NODE, "--cluster-cidr", &cidr])
}

async fn run_pod(client: &kube::Client, name: &str, script: &str) -> Api<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": busybox(),
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
            }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    support::wait_for_within(&pods, name, "pod running", WAIT, |p: &Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    pods
}

/// What the big pod writes, built the same way here.
fn big_log() -> Vec<u8> {
    let pad = "x".repeat(LINE - 9);
    let mut out = Vec::with_capacity(LINES * LINE);
    for i in 0..LINES {
        writeln!(out, "{i:08}{pad}").unwrap();
    }
    assert_eq!(out.len(), 10 * 1024 * 1024);
    out
}

fn sha(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mib_of_logs_come_back_byte_exact() {
    let c = start();
    let client = c.client();
    let script = format!(
        "PAD=$(head -c {} /dev/zero | tr '\\0' x); i=0; \
         while [ $i -lt {LINES} ]; do printf '%08d%s\\n' $i \"$PAD\"; i=$((i+1)); done; \
         exec sleep 3600",
        LINE - 9
    );
    let pods = run_pod(&client, "big-log", &script).await;
    let want = big_log();
    let want_sha = sha(&want);

    // The writer takes a moment: wait until the whole log is there (by the client).
    let deadline = Instant::now() + WAIT;
    loop {
        let got = pods.logs("big-log", &LogParams::default()).await.unwrap();
        if got.len() >= want.len() || Instant::now() > deadline {
            assert_eq!(got.len(), want.len(), "log length (kube client)");
            assert_eq!(sha(got.as_bytes()), want_sha, "log sha256 (kube client)");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A line longer than containerd's 16 KiB entries comes back whole (P entries joined).
    let long = run_pod(
        &client,
        "long-line",
        "head -c 70000 /dev/zero | tr '\\0' y; echo; echo after; exec sleep 3600",
    )
    .await;
    let want_long = format!("{}\nafter\n", "y".repeat(70000));
    let deadline = Instant::now() + WAIT;
    loop {
        let got = long.logs("long-line", &LogParams::default()).await.unwrap();
        if got.len() >= want_long.len() || Instant::now() > deadline {
            assert_eq!(got, want_long, "a 70000-byte line");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let kubectls = support::kubectls();
    let mut bins = vec![kubectls[0].clone()];
    if kubectls.len() > 1 {
        bins.push(kubectls[kubectls.len() - 1].clone());
    }
    for bin in &bins {
        let m = support::minor(bin);
        for _ in 0..2 {
            let out = c.kubectl(bin, &["logs", "big-log"]);
            assert!(
                out.status.success(),
                "kubectl 1.{m} logs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout.len(), want.len(), "kubectl 1.{m} logs: length");
            assert_eq!(sha(&out.stdout), want_sha, "kubectl 1.{m} logs: sha256");
        }
        // The last lines, and a byte limit, of the same log.
        let out = c.kubectl(bin, &["logs", "big-log", "--tail=3"]);
        let tail = support::ok(&out, "logs --tail=3");
        assert_eq!(
            tail.as_bytes(),
            &want[want.len() - 3 * LINE..],
            "1.{m} tail"
        );
        let out = c.kubectl(bin, &["logs", "big-log", "--limit-bytes=5000000"]);
        assert!(out.status.success(), "1.{m} limit-bytes");
        assert_eq!(out.stdout, &want[..5_000_000], "1.{m} limit-bytes");

        // Following gives the same 10 MiB, then stays open (the container runs on).
        let mut child = Command::new(bin)
            .args(["logs", "-f", "big-log"])
            .env("KUBECONFIG", &c.kubeconfig)
            .env("HOME", c.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl logs -f runs");
        let mut stdout = child.stdout.take().unwrap();
        let n = want.len();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; n];
            stdout.read_exact(&mut got).map(|_| got)
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let still_following = child.try_wait().unwrap().is_none();
        child.kill().ok();
        child.wait().ok();
        let got = reader.join().unwrap().expect("10 MiB from kubectl logs -f");
        assert_eq!(sha(&got), want_sha, "kubectl 1.{m} logs -f: sha256");
        assert!(still_following, "kubectl 1.{m} logs -f ended early");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_since_and_timestamps() {
    let c = start();
    let client = c.client();
    let pods = run_pod(
        &client,
        "counter",
        "i=0; while true; do echo \"line $i\"; i=$((i+1)); sleep 0.2; done",
    )
    .await;
    let number = |l: &str| -> u64 {
        l.strip_prefix("line ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("not a counter line: {l:?}"))
    };
    // Some lines are there before following starts.
    let deadline = Instant::now() + WAIT;
    let before = loop {
        let text = pods.logs("counter", &LogParams::default()).await.unwrap();
        if let Some(last) = text.lines().last() {
            break number(last);
        }
        assert!(Instant::now() < deadline, "no log lines from counter");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let kubectls = support::kubectls();
    let bin = kubectls.last().unwrap();
    let mut child = Command::new(bin)
        .args(["logs", "-f", "counter"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f runs");
    let lines = support::lines_of(child.stdout.take().unwrap());
    let mut new: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while new.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("kubectl logs -f: {e}; new lines so far {new:?}"));
        let n = number(&line);
        if n > before {
            if let Some(prev) = new.last() {
                assert_eq!(n, prev + 1, "followed lines in order, none lost");
            }
            new.push(n);
        }
    }
    child.kill().ok();
    child.wait().ok();

    for bin in [&kubectls[0], kubectls.last().unwrap()] {
        let m = support::minor(bin);
        let out = c.kubectl(bin, &["logs", "counter", "--since=1h"]);
        let text = support::ok(&out, "logs --since=1h");
        assert!(text.lines().count() > 3, "1.{m} --since=1h: {text:?}");

        let future = (k8s_openapi::jiff::Timestamp::now()
            + k8s_openapi::jiff::SignedDuration::from_secs(3600))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
        let out = c.kubectl(bin, &["logs", "counter", &format!("--since-time={future}")]);
        let text = support::ok(&out, "logs --since-time=<future>");
        assert_eq!(text, "", "1.{m} --since-time in the future");

        let out = c.kubectl(bin, &["logs", "counter", "--tail=0"]);
        assert_eq!(support::ok(&out, "logs --tail=0"), "", "1.{m} --tail=0");

        let out = c.kubectl(bin, &["logs", "counter", "--timestamps", "--tail=5"]);
        let text = support::ok(&out, "logs --timestamps");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "1.{m} --timestamps --tail=5: {text:?}");
        for l in lines {
            let (ts, rest) = l.split_once(' ').expect("timestamp, space, line");
            let t: k8s_openapi::jiff::Timestamp = ts
                .parse()
                .unwrap_or_else(|e| panic!("1.{m}: {ts:?} is not RFC3339: {e}"));
            assert!(ts.ends_with('Z') && ts.contains('.'), "RFC3339Nano: {ts}");
            let age = k8s_openapi::jiff::Timestamp::now().duration_since(t);
            assert!(age.as_secs() < 300, "1.{m}: timestamp {ts} is recent");
            number(rest);
        }
    }
}
