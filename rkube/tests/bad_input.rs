//! Bad input gets a 4xx metav1.Status with upstream's reason, and stores nothing.

mod support;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use support::{json, raw, Cluster};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const PODS: &str = "/api/v1/namespaces/default/pods";

async fn names(client: &kube::Client, path: &str) -> Vec<String> {
    let (code, body) = raw(client, "GET", path, None, vec![]).await;
    assert_eq!(code, 200);
    json(&body)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    code: u16,
    reason: &'static str,
    message: &'static str,
}

fn case(
    what: &'static str,
    path: &str,
    ct: &'static str,
    body: impl Into<Vec<u8>>,
    code: u16,
    reason: &'static str,
    message: &'static str,
) -> Case {
    Case {
        what,
        method: "POST",
        path: path.to_string(),
        content_type: Some(ct),
        body: body.into(),
        code,
        reason,
        message,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_status_and_stores_nothing() {
    let c = Cluster::start();
    let client = c.client();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    // The object patched below.
    let (code, _) = raw(
        &client,
        "POST",
        CMS,
        Some("application/json"),
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"keep"},"data":{"a":"b"}}"#
            .to_vec(),
    )
    .await;
    assert_eq!(code, 201);
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let mut with_unknown = pod.clone();
    with_unknown["spec"]["bogus"] = json!(1);
    let mut bad_name = pod.clone();
    bad_name["metadata"]["name"] = json!("Bad_Name");
    let mut bad_label = pod.clone();
    bad_label["metadata"]["labels"] = json!({"a b": "c"});
    let mut bad_port = pod.clone();
    bad_port["spec"]["containers"][0]["ports"] = json!([{"containerPort": 70000}]);
    let s = |v: &Value| serde_json::to_vec(v).unwrap();
    let cases = vec![
        case(
            "malformed JSON",
            CMS,
            "application/json",
            "{\"apiVersion\":",
            400,
            "BadRequest",
            "",
        ),
        case(
            "malformed YAML",
            CMS,
            "application/yaml",
            "a: [b\n  - c: :",
            400,
            "BadRequest",
            "",
        ),
        case(
            "wrong kind",
            CMS,
            "application/json",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
            400,
            "BadRequest",
            "the kind in the data (Secret) does not match the expected kind (ConfigMap)",
        ),
        case(
            "wrong apiVersion",
            CMS,
            "application/json",
            r#"{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            400,
            "BadRequest",
            "the API version in the data (v2) does not match the expected API version (v1)",
        ),
        case(
            "wrong type",
            CMS,
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":[1]}"#,
            400,
            "BadRequest",
            "",
        ),
        case(
            "unknown field under Strict",
            &format!("{PODS}?fieldValidation=Strict"),
            "application/json",
            s(&with_unknown),
            400,
            "BadRequest",
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.bogus\"",
        ),
        case(
            "invalid name",
            PODS,
            "application/json",
            s(&bad_name),
            422,
            "Invalid",
            "",
        ),
        case(
            "invalid label",
            PODS,
            "application/json",
            s(&bad_label),
            422,
            "Invalid",
            "",
        ),
        case(
            "invalid port",
            PODS,
            "application/json",
            s(&bad_port),
            422,
            "Invalid",
            "",
        ),
        case(
            "body over 3 MiB",
            CMS,
            "application/json",
            big,
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        ),
        case(
            "protobuf garbage",
            CMS,
            "application/vnd.kubernetes.protobuf",
            vec![1, 2, 3],
            400,
            "BadRequest",
            "the body is not a Kubernetes protobuf envelope",
        ),
        case(
            "duplicate field under Strict",
            &format!("{CMS}?fieldValidation=Strict"),
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"},"data":{"a":"1"},"data":{"b":"2"}}"#,
            400,
            "BadRequest",
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \"data\"",
        ),
        Case {
            what: "name in body differs from URL",
            method: "PUT",
            path: format!("{CMS}/keep"),
            content_type: Some("application/json"),
            body: br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}"#.to_vec(),
            code: 400,
            reason: "BadRequest",
            message: "the name of the object (other) does not match the name on the URL (keep)",
        },
        Case {
            what: "invalid JSON patch",
            method: "PATCH",
            path: format!("{CMS}/keep"),
            content_type: Some("application/json-patch+json"),
            body: br#"[{"op":"explode","path":"/data"}]"#.to_vec(),
            code: 400,
            reason: "BadRequest",
            message: "",
        },
        Case {
            what: "JSON patch on a missing path",
            method: "PATCH",
            path: format!("{CMS}/keep"),
            content_type: Some("application/json-patch+json"),
            body: br#"[{"op":"replace","path":"/data/nope/deeper","value":1}]"#.to_vec(),
            code: 422,
            reason: "Invalid",
            message: "",
        },
        Case {
            what: "merge patch that is not an object",
            method: "PATCH",
            path: format!("{CMS}/keep"),
            content_type: Some("application/merge-patch+json"),
            body: b"[1,2]".to_vec(),
            code: 400,
            reason: "BadRequest",
            message: "",
        },
        Case {
            what: "unknown patch type",
            method: "PATCH",
            path: format!("{CMS}/keep"),
            content_type: Some("application/xml"),
            body: b"<x/>".to_vec(),
            code: 415,
            reason: "UnsupportedMediaType",
            message: "",
        },
        Case {
            what: "invalid label selector",
            method: "GET",
            path: format!("{CMS}?labelSelector=a%20in%20(b"),
            content_type: None,
            body: vec![],
            code: 400,
            reason: "BadRequest",
            message: "",
        },
        Case {
            what: "unsupported field selector",
            method: "GET",
            path: format!("{PODS}?fieldSelector=spec.bogus%3Dx"),
            content_type: None,
            body: vec![],
            code: 400,
            reason: "BadRequest",
            message: "field label not supported: spec.bogus",
        },
        Case {
            what: "unsupported method",
            method: "PUT",
            path: CMS.to_string(),
            content_type: Some("application/json"),
            body: b"{}".to_vec(),
            code: 405,
            reason: "MethodNotAllowed",
            message: "",
        },
    ];
    for c in &cases {
        let (code, body) = raw(&client, c.method, &c.path, c.content_type, c.body.clone()).await;
        let status = json(&body);
        assert_eq!(
            (code, status["code"].as_u64()),
            (c.code, Some(c.code as u64)),
            "{}: {status}",
            c.what
        );
        assert_eq!(status["kind"], "Status", "{}", c.what);
        assert_eq!(status["status"], "Failure", "{}", c.what);
        assert_eq!(status["reason"], c.reason, "{}: {status}", c.what);
        if !c.message.is_empty() {
            assert_eq!(status["message"], c.message, "{}", c.what);
        }
        if c.code == 422 && c.what.starts_with("invalid ") {
            assert!(
                !status["details"]["causes"].as_array().unwrap().is_empty(),
                "{}: {status}",
                c.what
            );
        }
    }
    // Nothing but what was there: `keep`, and the root CA publisher's ConfigMap.
    let mut cms = names(&client, CMS).await;
    cms.retain(|n| n != "kube-root-ca.crt");
    assert_eq!(cms, ["keep"]);
    assert!(names(&client, PODS).await.is_empty());
    let (_, body) = raw(&client, "GET", &format!("{CMS}/keep"), None, vec![]).await;
    assert_eq!(json(&body)["data"], json!({"a": "b"}));
}

/// Random mutations of valid bodies thrown at every create and patch endpoint: never a
/// 5xx, and the server stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_bodies_never_get_a_5xx() {
    let c = Cluster::start();
    let client = c.client();
    let seeds: Vec<(&str, Value)> = vec![
        (
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]}]}}),
        ),
        (
            "/api/v1/namespaces/default/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
        (
            "/api/v1/namespaces/default/replicationcontrollers",
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
            "spec": {"replicas": 1, "selector": {"a": "b"}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"k": "v"}}),
        ),
        (
            "/api/v1/namespaces/default/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {"k": "dg=="}}),
        ),
        (
            "/api/v1/namespaces/default/endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
        ),
        (
            "/api/v1/namespaces/default/events",
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "R", "message": "m"}),
        ),
        (
            "/api/v1/namespaces/default/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}),
        ),
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
        ),
        (
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "no"}}),
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
            "spec": {"holderIdentity": "h", "leaseDurationSeconds": 10}}),
        ),
        (
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "es"},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}),
        ),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for (path, seed) in &seeds {
        // The seed itself is valid.
        let (code, body) = raw(
            &client,
            "POST",
            path,
            Some("application/json"),
            serde_json::to_vec(seed).unwrap(),
        )
        .await;
        assert_eq!(
            code,
            201,
            "seed for {path}: {}",
            String::from_utf8_lossy(&body)
        );
        let name = seed["metadata"]["name"].as_str().unwrap();
        for i in 0..60 {
            let mut v = seed.clone();
            for _ in 0..rng.gen_range(1..4) {
                mutate(&mut v, &mut rng);
            }
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                if i % 2 == 0 {
                    m.insert("name".into(), json!(format!("{name}{i}")));
                }
            }
            let bytes = serde_json::to_vec(&v).unwrap();
            let (code, body) = raw(
                &client,
                "POST",
                path,
                Some("application/json"),
                bytes.clone(),
            )
            .await;
            assert!(
                code < 500,
                "POST {path} with {v} answered {code}: {}",
                String::from_utf8_lossy(&body)
            );
            for ct in [
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ] {
                let (code, body) = raw(
                    &client,
                    "PATCH",
                    &format!("{path}/{name}"),
                    Some(ct),
                    bytes.clone(),
                )
                .await;
                assert!(
                    code < 500,
                    "PATCH {ct} {path} with {v} answered {code}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let junk = random_value(&mut rng, 3);
            let (code, body) = raw(
                &client,
                "POST",
                path,
                Some("application/json"),
                serde_json::to_vec(&junk).unwrap(),
            )
            .await;
            assert!(
                (400..500).contains(&code),
                "POST {path} with {junk} answered {code}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let (code, _) = raw(&client, "GET", "/readyz", None, vec![]).await;
    assert_eq!(code, 200, "the server is still up");
}

fn random_value(rng: &mut impl Rng, depth: u32) -> Value {
    match rng.gen_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.gen::<bool>()),
        2 => json!(rng.gen_range(-70000i64..70000)),
        3 => json!(rng.gen::<f64>() * 1e6),
        4 => json!(
            [
                "",
                "a",
                "Bad_Name",
                "-",
                "x".repeat(300).as_str(),
                "10.0.0.1",
                "💥",
                "1Gi",
                "TCP"
            ][rng.gen_range(0..9)]
        ),
        5 => Value::Array(
            (0..rng.gen_range(0..3))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "name", "port", "spec", "metadata", "labels", "items", "type", "value", "x",
            ];
            Value::Object(
                (0..rng.gen_range(0..4))
                    .map(|_| {
                        (
                            keys[rng.gen_range(0..keys.len())].to_string(),
                            random_value(rng, depth - 1),
                        )
                    })
                    .collect(),
            )
        }
    }
}

/// Replaces, removes or adds one field somewhere in `v`.
fn mutate(v: &mut Value, rng: &mut impl Rng) {
    match v {
        Value::Object(m) if !m.is_empty() && rng.gen_bool(0.7) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.gen_range(0..keys.len())];
            match rng.gen_range(0..4) {
                0 => {
                    m.remove(k);
                }
                1 => {
                    m.insert(k.clone(), random_value(rng, 2));
                }
                _ => mutate(m.get_mut(k).unwrap(), rng),
            }
        }
        Value::Object(m) => {
            m.insert(
                ["bogus", "name", "nodePort", "finalizers"][rng.gen_range(0..4)].into(),
                random_value(rng, 2),
            );
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.gen_range(0..a.len());
            mutate(&mut a[i], rng);
        }
        other => *other = random_value(rng, 2),
    }
}
