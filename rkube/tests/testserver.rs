//! The project's test server image (`docker.io/rkube/testserver`, agnhost's role, built
//! by scripts/images.sh from `testserver/`) in a pod on a real containerd: `netexec`
//! answers HTTP and UDP on the pod IP from the host, `serve-hostname` answers the pod
//! name, and `/exit?code=3` ends the container with exit code 3. Needs root.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::{get, get_ready, udp, Cluster};

const NODE: &str = "testserver-test";
const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netexec_and_serve_hostname_answer_on_the_pod_ip() {
    let cidr = support::unique_cluster_cidr();
    let c = Cluster::start_with_agent(&["--node-name", NODE, "--cluster-cidr", &cidr]);
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    let image = support::testserver_image();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "netexec", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "netexec", "image": image, "imagePullPolicy": "IfNotPresent",
                 "args": ["netexec", "--http-port", "8080", "--udp-port", "8081"]},
                {"name": "hostname", "image": image, "imagePullPolicy": "IfNotPresent",
                 "args": ["serve-hostname", "--port", "9376"]},
            ],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let p = support::wait_for_within(
        &pods,
        "netexec",
        "pod running with an IP",
        WAIT,
        |p: &Pod| {
            let s = p.status.as_ref();
            s.and_then(|s| s.phase.as_deref()) == Some("Running")
                && s.and_then(|s| s.pod_ip.as_deref()).is_some()
        },
    )
    .await;
    let ip = p.status.unwrap().pod_ip.unwrap();

    let ip2 = ip.clone();
    tokio::task::spawn_blocking(move || {
        let ip = ip2.as_str();
        assert_eq!(get_ready(ip, 8080, "/hostname"), (200, "netexec".into()));
        assert_eq!(
            get_ready(ip, 8080, "/echo?msg=hi%20there"),
            (200, "hi there".into())
        );
        assert_eq!(get_ready(ip, 8080, "/healthz").0, 200);
        let (st, client) = get_ready(ip, 8080, "/clientip");
        assert_eq!(st, 200);
        assert!(client.contains(':'), "clientip is host:port: {client:?}");
        assert_eq!(get_ready(ip, 8080, "/exit?code=x").0, 400);
        assert_eq!(udp(ip, 8081, "hostname"), "netexec");
        assert_eq!(udp(ip, 8081, "echo hello udp"), "hello udp");
        // agnhost's /dial: the pod asks a server (itself here) over HTTP and UDP.
        let dial = |q: &str| get_ready(ip, 8080, &format!("/dial?{q}"));
        assert_eq!(
            dial(&format!(
                "request=hostname&protocol=http&host={ip}&port=9376&tries=2"
            )),
            (
                200,
                r#"{"errors":[],"responses":["netexec","netexec"]}"#.into()
            )
        );
        assert_eq!(
            dial(&format!(
                "request=echo%20hi&protocol=udp&host={ip}&port=8081&tries=1"
            )),
            (200, r#"{"errors":[],"responses":["hi"]}"#.into())
        );
        let (st, body) = dial(&format!("request=hostname&protocol=http&host={ip}&port=1"));
        assert_eq!(st, 200);
        assert!(
            body.starts_with(r#"{"errors":["dial tcp "#) && body.ends_with(r#""],"responses":[]}"#),
            "{body}"
        );
        assert_eq!(dial("request=hostname&protocol=sctp&host=x&port=1").0, 400);
        assert_eq!(get_ready(ip, 9376, "/"), (200, "netexec".into()));
        // The server exits without answering.
        let _ = get(ip, 8080, "/exit?code=3");
    })
    .await
    .unwrap();

    let exit_code = |p: &Pod| -> Option<i32> {
        p.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .iter()
            .find(|s| s.name == "netexec")?
            .state
            .as_ref()?
            .terminated
            .as_ref()
            .map(|t| t.exit_code)
    };
    let p = support::wait_for_within(&pods, "netexec", "netexec terminated", WAIT, |p: &Pod| {
        exit_code(p).is_some()
    })
    .await;
    assert_eq!(exit_code(&p), Some(3), "{:#?}", p.status);
}
