//! What upstream's tests take from `test/e2e/framework/pod` (and `pod/output`): creating
//! pods, waiting for their phases (through a watch), reading their logs, deleting them
//! and waiting until they are gone, and `TestContainerOutput`.

use std::time::Duration;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};

use crate::Ctx;

/// Upstream's `framework.PodStartTimeout` (`f.Timeouts.PodStart`).
pub const POD_START_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Upstream's `e2epod.DefaultPodDeletionTimeout`.
pub const POD_DELETION_TIMEOUT: Duration = Duration::from_secs(3 * 60);

/// A Pod from its JSON.
pub fn pod(v: serde_json::Value) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(v)?)
}

/// The pods of the test's namespace.
pub fn api(ctx: &Ctx) -> Api<Pod> {
    Api::namespaced(ctx.client.clone(), &ctx.ns)
}

/// The pod's phase ("" when it has none yet).
pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// `podutil.IsPodReady`: the pod's Ready condition is True.
pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A short account of a pod's status for error messages: its phase and each
/// container's state.
pub fn describe(p: &Pod) -> String {
    let st = p.status.clone().unwrap_or_default();
    let containers: Vec<serde_json::Value> = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .map(|c| {
            serde_json::json!({"name": c.name, "state": c.state, "restartCount": c.restart_count, "ready": c.ready})
        })
        .collect();
    format!(
        "phase {:?}, containers {}",
        st.phase.unwrap_or_default(),
        serde_json::Value::from(containers)
    )
}

/// Waits (watching) until `cond` holds for the pod `name`, for at most `timeout`; the pod
/// then. `what` says what was awaited, for the error.
pub async fn wait_for(
    api: &Api<Pod>,
    name: &str,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    let w = await_condition(api.clone(), name, |p: Option<&Pod>| p.is_some_and(&cond));
    match tokio::time::timeout(timeout, w).await {
        Ok(Ok(Some(p))) => Ok(p),
        Ok(Ok(None)) => bail!("pod {name:?} is gone while waiting for it to be {what}"),
        Ok(Err(e)) => Err(e).with_context(|| format!("watching pod {name:?}")),
        Err(_) => {
            let now = match api.get_opt(name).await {
                Ok(Some(p)) => describe(&p),
                Ok(None) => "no such pod".into(),
                Err(e) => format!("cannot get it: {e}"),
            };
            bail!("timed out after {timeout:?} waiting for pod {name:?} to be {what}: {now}")
        }
    }
}

/// Upstream's `WaitForPodSuccessInNamespaceTimeout`: phase Succeeded; Failed is an error.
pub async fn wait_for_success(
    api: &Api<Pod>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Pod> {
    let p = wait_for(api, name, timeout, "Succeeded", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await?;
    if phase(&p) != "Succeeded" {
        bail!(
            "pod {name:?} failed, expected it to succeed: {}",
            describe(&p)
        );
    }
    Ok(p)
}

/// Upstream's `WaitForPodNameRunningInNamespace` (`WaitTimeoutForPodRunningInNamespace`):
/// phase Running; a pod that ended is an error.
pub async fn wait_for_running(
    api: &Api<Pod>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Pod> {
    let p = wait_for(api, name, timeout, "Running", |p| {
        matches!(phase(p), "Running" | "Succeeded" | "Failed")
    })
    .await?;
    if phase(&p) != "Running" {
        bail!(
            "pod {name:?} ran to completion, expected it to be running: {}",
            describe(&p)
        );
    }
    Ok(p)
}

/// Upstream's `WaitForPodNoLongerRunningInNamespace`: phase Succeeded or Failed.
pub async fn wait_for_not_running(
    api: &Api<Pod>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Pod> {
    wait_for(api, name, timeout, "no longer running", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await
}

/// Upstream's `PodClient.CreateSync`: creates the pod and waits until it runs.
pub async fn create_sync(api: &Api<Pod>, p: &Pod) -> anyhow::Result<Pod> {
    let created = api
        .create(&PostParams::default(), p)
        .await
        .context("creating the pod")?;
    let name = created.metadata.name.clone().unwrap_or_default();
    wait_for_running(api, &name, POD_START_TIMEOUT).await
}

/// The log of a container (upstream's `GetPodLogs`).
pub async fn logs(api: &Api<Pod>, name: &str, container: &str) -> anyhow::Result<String> {
    api.logs(
        name,
        &LogParams {
            container: Some(container.to_string()),
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("getting the logs of pod {name:?} container {container:?}"))
}

/// Upstream's `PodClient.DeleteSync`: deletes the pod and waits until it is gone.
pub async fn delete_sync(api: &Api<Pod>, name: &str, dp: &DeleteParams) -> anyhow::Result<()> {
    let uid = match api.get_opt(name).await? {
        Some(p) => p.metadata.uid.unwrap_or_default(),
        None => return Ok(()),
    };
    match api.delete(name, dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("deleting pod {name:?}")),
    }
    let gone = await_condition(api.clone(), name, conditions::is_deleted(&uid));
    match tokio::time::timeout(POD_DELETION_TIMEOUT, gone).await {
        Ok(r) => {
            r.with_context(|| format!("watching pod {name:?} go"))?;
            Ok(())
        }
        Err(_) => bail!("pod {name:?} was not gone {POD_DELETION_TIMEOUT:?} after its deletion"),
    }
}

/// How `TestContainerOutput` matches each expected output.
#[derive(Clone, Copy, Debug)]
pub enum Matcher {
    /// gomega's `ContainSubstring`.
    Substring,
    /// gomega's `MatchRegexp`.
    Regexp,
}

/// Upstream's `e2eoutput.TestContainerOutput` (`MatchContainerOutput`): creates the pod,
/// waits for it to succeed, and checks the log of its `index`-th container against every
/// expected output; then deletes the pod and waits until it is gone.
pub async fn test_container_output(
    ctx: &Ctx,
    scenario: &str,
    p: Pod,
    index: usize,
    expected: &[&str],
) -> anyhow::Result<()> {
    match_container_output(ctx, scenario, p, index, expected, Matcher::Substring).await
}

/// As [`test_container_output`] with gomega's `MatchRegexp` (`TestContainerOutputRegexp`).
pub async fn match_container_output(
    ctx: &Ctx,
    scenario: &str,
    p: Pod,
    index: usize,
    expected: &[&str],
    matcher: Matcher,
) -> anyhow::Result<()> {
    let container = p
        .spec
        .as_ref()
        .and_then(|s| s.containers.get(index))
        .map(|c| c.name.clone())
        .with_context(|| format!("invalid container index: {index}"))?;
    let api = api(ctx);
    let created = api
        .create(&PostParams::default(), &p)
        .await
        .with_context(|| format!("creating a pod to test {scenario}"))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let r = check_output(&api, &name, &container, expected, matcher).await;
    let d = delete_sync(&api, &name, &DeleteParams::default()).await;
    r.with_context(|| scenario.to_string())?;
    d
}

async fn check_output(
    api: &Api<Pod>,
    name: &str,
    container: &str,
    expected: &[&str],
    matcher: Matcher,
) -> anyhow::Result<()> {
    if let Err(e) = wait_for_success(api, name, POD_START_TIMEOUT).await {
        // As upstream, the logs of every container tell what went wrong.
        let mut out = String::new();
        if let Ok(p) = api.get(name).await {
            let spec = p.spec.unwrap_or_default();
            for c in spec
                .init_containers
                .iter()
                .flatten()
                .chain(&spec.containers)
            {
                let l = logs(api, name, &c.name)
                    .await
                    .unwrap_or_else(|e| format!("{e:#}"));
                out += &format!("\ncontainer {:?} output: {l}", c.name);
            }
        }
        bail!("expected pod {name:?} success: {e:#}{out}");
    }
    let got = logs(api, name, container).await?;
    for want in expected {
        let ok = match matcher {
            Matcher::Substring => got.contains(want),
            Matcher::Regexp => regex::Regex::new(want)
                .with_context(|| format!("expected output {want:?} is not a regexp"))?
                .is_match(&got),
        };
        if !ok {
            bail!("expected {want:?} in container output ({matcher:?}), got: {got:?}");
        }
    }
    Ok(())
}

/// gomega's `Eventually(f, timeout, interval)`: calls `f` every `interval` until it gives
/// `Ok`, for at most `timeout`; its last `Err` (what was seen instead) makes the error.
pub async fn eventually<T, F, Fut>(
    timeout: Duration,
    interval: Duration,
    what: &str,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if tokio::time::Instant::now() + interval > deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(interval).await;
    }
}

/// Upstream's `PodClient.Update`: get, change, update; again on a conflict.
pub async fn update(api: &Api<Pod>, name: &str, change: impl Fn(&mut Pod)) -> anyhow::Result<Pod> {
    for _ in 0..5 {
        let mut p = api
            .get(name)
            .await
            .with_context(|| format!("getting pod {name:?}"))?;
        change(&mut p);
        match api.replace(name, &PostParams::default(), &p).await {
            Ok(p) => return Ok(p),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e).with_context(|| format!("updating pod {name:?}")),
        }
    }
    bail!("updating pod {name:?}: conflicts, 5 times")
}

/// Upstream's `ExecCommandInContainer`: runs `command` in the container; its stdout,
/// trimmed. Not being able to run it, or its failure, is an error.
pub async fn exec(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    command: &[&str],
) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let ap = kube::api::AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut p = api
        .exec(pod, command.to_vec(), &ap)
        .await
        .with_context(|| format!("exec {command:?} in {pod}/{container}"))?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut so = p.stdout().context("no stdout")?;
    let mut se = p.stderr().context("no stderr")?;
    let status = p.take_status().context("no status")?;
    let (r1, r2) = tokio::join!(so.read_to_end(&mut out), se.read_to_end(&mut err));
    r1.and(r2)
        .with_context(|| format!("reading the output of {command:?}"))?;
    let status = status.await;
    let out = String::from_utf8_lossy(&out).trim().to_string();
    match status {
        Some(s) if s.status.as_deref() == Some("Success") => Ok(out),
        s => bail!(
            "exec {command:?} in {pod}/{container} failed: {s:?}; stdout {out:?}, stderr {:?}",
            String::from_utf8_lossy(&err).trim()
        ),
    }
}

/// Upstream's `PodClient.WaitForErrorEventOrSuccess`: polls (every 2 s, for
/// [`POD_START_TIMEOUT`]) the events of the pod until one says its container was killed
/// (`Killing`), could not be created (`Failed`) or a sysctl was forbidden
/// (`SysctlForbidden`): that event; or until one says it started (`Started`): `None`.
pub async fn wait_for_error_event_or_success(
    ctx: &Ctx,
    p: &Pod,
) -> anyhow::Result<Option<k8s_openapi::api::core::v1::Event>> {
    use k8s_openapi::api::core::v1::Event;
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    // `Events.Search`: the involved object's kind, namespace, name and uid.
    let fs = format!(
        "involvedObject.kind=Pod,involvedObject.namespace={},involvedObject.name={},involvedObject.uid={}",
        ctx.ns,
        p.metadata.name.as_deref().unwrap_or_default(),
        p.metadata.uid.as_deref().unwrap_or_default()
    );
    let lp = kube::api::ListParams::default().fields(&fs);
    eventually(
        POD_START_TIMEOUT,
        Duration::from_secs(2),
        "an error event or a started container",
        || async {
            let list = events
                .list(&lp)
                .await
                .map_err(|e| format!("error in listing events: {e}"))?;
            for e in list.items {
                match e.reason.as_deref() {
                    Some("Killing" | "Failed" | "SysctlForbidden") => return Ok(Some(e)),
                    Some("Started") => return Ok(None),
                    _ => {}
                }
            }
            Err("no such event yet".into())
        },
    )
    .await
}

/// Upstream's `PodClient.MatchContainerOutput`: the container's log must match the
/// regexp `expected`.
pub async fn match_logs(
    api: &Api<Pod>,
    name: &str,
    container: &str,
    expected: &str,
) -> anyhow::Result<()> {
    let out = logs(api, name, container).await?;
    let re = regex::Regex::new(expected).context("expected output is not a regexp")?;
    if !re.is_match(&out) {
        bail!("failed to match regexp {expected:?} in output {out:?}");
    }
    Ok(())
}

/// Upstream's `e2epod.GetPodSecretUpdateTimeout`: 240 s plus the node's
/// `node.alpha.kubernetes.io/ttl` (rkube's nodes set none), how long the configMap, secret
/// and projected volume tests wait for the kubelet to show a change.
pub const POD_SECRET_UPDATE_TIMEOUT: Duration = Duration::from_secs(240);
/// Upstream's `framework.Poll`.
pub const POLL: Duration = Duration::from_secs(2);

/// gomega's `Eventually(GetPodLogs(pod, container), timeout, framework.Poll)
/// .Should(ContainSubstring(want))`.
pub async fn eventually_log_contains(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    want: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    eventually(
        timeout,
        POLL,
        &format!("the log of {pod}/{container} to contain {want:?}"),
        || async {
            let l = logs(api, pod, container)
                .await
                .map_err(|e| format!("{e:#}"))?;
            if l.contains(want) {
                Ok(())
            } else {
                Err(format!("log {l:?}"))
            }
        },
    )
    .await
}

/// Go's `os.FileMode(perm).String()` for permission bits: `-` and `rwxrwxrwx`, `-` for
/// unset bits.
pub fn go_perm_string(perm: u32) -> String {
    let mut s = String::from("-");
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if perm & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

/// Upstream's `getFileModeRegex`: the line agnhost's `mounttest --file_mode` prints for
/// `path` with mode `mask` (0644 when none; Windows' 0775 as the alternative).
pub fn file_mode_regex(path: &str, mask: Option<i32>) -> String {
    let (linux, windows) = match mask {
        None => (0o644, 0o775),
        Some(m) => (m as u32, m as u32),
    };
    let path = regex::escape(path);
    format!(
        "(mode of file \"{path}\": {}|mode of Windows file \"{path}\": {})",
        go_perm_string(linux),
        go_perm_string(windows)
    )
}

/// Upstream's `NewAgnhostPod`: one container "agnhost-container" running agnhost with
/// `args`, the given volumes and mounts, an empty pod security context and no grace period.
pub fn agnhost_pod(
    name: &str,
    volumes: serde_json::Value,
    mounts: serde_json::Value,
    args: &[&str],
) -> anyhow::Result<Pod> {
    pod(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "containers": [{
                "name": "agnhost-container", "image": super::agnhost_image(), "args": args,
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
            "securityContext": {},
            "terminationGracePeriodSeconds": 0,
        },
    }))
}

/// Upstream's `nonRootTestUserID`.
pub const NON_ROOT_TEST_USER_ID: i64 = 1000;

/// Upstream's `setPodNonRootUser` (Linux): the pod runs as uid 1000.
pub fn set_pod_non_root_user(p: &mut Pod) {
    let spec = p.spec.get_or_insert_with(Default::default);
    spec.security_context
        .get_or_insert_with(Default::default)
        .run_as_user = Some(NON_ROOT_TEST_USER_ID);
}
