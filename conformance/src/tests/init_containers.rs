//! Init containers: upstream's test/e2e/common/node/init_container.go. (Upstream also
//! calls `checkInvariants` on the events it records, but records them into a copy and
//! discards the result, so it checks nothing; not ported.)

use anyhow::{bail, ensure, Context};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use kube::api::{PostParams, WatchEvent, WatchParams};
use serde_json::json;

use super::e2epod;
use super::{busybox_image, pause_image, test, uuid};
use crate::{Ctx, Test};

const AREA: &str = "Init containers";

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "init-container-starts-app-restartnever-pod",
            "[sig-node] InitContainer [NodeConformance] should invoke init containers on a RestartNever pod [Conformance]",
            restart_never
        ),
        test!(
            AREA,
            "init-container-starts-app-restartalways-pod",
            "[sig-node] InitContainer [NodeConformance] should invoke init containers on a RestartAlways pod [Conformance]",
            restart_always
        ),
        test!(
            AREA,
            "init-container-fails-stops-app-restartalways-pod",
            "[sig-node] InitContainer [NodeConformance] should not start app containers if init containers fail on a RestartAlways pod [Conformance]",
            fails_restart_always
        ),
        test!(
            AREA,
            "init-container-fails-stops-app-restartnever-pod",
            "[sig-node] InitContainer [NodeConformance] should not start app containers and fail the pod if init containers fail on a RestartNever pod [Conformance]",
            fails_restart_never
        ),
    ]
}

/// A condition on the pod of a watch event: done, not yet, or failed.
type Cond = Box<dyn Fn(&Pod) -> Result<bool, String> + Send + Sync>;

/// Upstream's `watchtools.Until` on the pod (field selector on its name) from `rv`: the
/// conditions in turn, each also tried on the event that satisfied the previous one;
/// within `PodStartTimeout`. The pod of the last event.
async fn until(ctx: &Ctx, created: &Pod, conds: Vec<Cond>) -> anyhow::Result<Pod> {
    let api = e2epod::api(ctx);
    let name = created.metadata.name.clone().unwrap_or_default();
    let rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let mut w = api
        .watch(
            &WatchParams::default().fields(&format!("metadata.name={name}")),
            &rv,
        )
        .await
        .context("watching the pod")?
        .boxed();
    let run = async {
        let mut last: Option<Pod> = None;
        for cond in &conds {
            if let Some(p) = &last {
                if cond(p).map_err(anyhow::Error::msg)? {
                    continue;
                }
            }
            loop {
                let p = match w.try_next().await? {
                    Some(WatchEvent::Added(p) | WatchEvent::Modified(p)) => p,
                    Some(WatchEvent::Deleted(_)) => bail!("pod {name:?} was deleted"),
                    Some(WatchEvent::Bookmark(_)) => continue,
                    Some(WatchEvent::Error(e)) => bail!("watch error: {e:?}"),
                    None => bail!("the watch of pod {name:?} ended"),
                };
                let done = cond(&p).map_err(anyhow::Error::msg)?;
                last = Some(p);
                if done {
                    break;
                }
            }
        }
        last.context("no event")
    };
    match tokio::time::timeout(e2epod::POD_START_TIMEOUT, run).await {
        Ok(r) => r,
        Err(_) => bail!(
            "timed out after {:?} waiting for pod {name:?}",
            e2epod::POD_START_TIMEOUT
        ),
    }
}

/// upstream's `conditions.PodCompleted`.
fn pod_completed() -> Cond {
    Box::new(|p| Ok(matches!(e2epod::phase(p), "Succeeded" | "Failed")))
}

/// upstream's `conditions.PodRunning`.
fn pod_running() -> Cond {
    Box::new(|p| match e2epod::phase(p) {
        "Running" => Ok(true),
        "Succeeded" | "Failed" => Err("pod ran to completion".into()),
        _ => Ok(false),
    })
}

fn json_of(v: &ContainerStatus) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn initialized_condition(p: &Pod) -> Option<PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Initialized")
        .cloned()
}

fn init_statuses(p: &Pod) -> Vec<ContainerStatus> {
    p.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.clone())
        .unwrap_or_default()
}

/// The end state of a pod whose init containers all succeeded.
fn check_initialized(p: &Pod, phase: &str) -> anyhow::Result<()> {
    ensure!(
        e2epod::phase(p) == phase,
        "expected phase {phase}, got {}",
        e2epod::describe(p)
    );
    let init = initialized_condition(p).context("no Initialized condition")?;
    ensure!(
        init.status == "True",
        "expected Initialized True, got {init:?}"
    );
    let statuses = init_statuses(p);
    ensure!(
        statuses.len() == 2,
        "expected 2 init container statuses, got {}",
        statuses.len()
    );
    for s in statuses {
        ensure!(
            s.ready,
            "init container {} should be in Ready status",
            s.name
        );
        let t = s.state.as_ref().and_then(|st| st.terminated.as_ref());
        ensure!(
            t.is_some_and(|t| t.exit_code == 0),
            "init container {} should have terminated with exit code 0: {}",
            s.name,
            json_of(&s)
        );
    }
    Ok(())
}

fn pod_with(
    restart_policy: Option<&str>,
    init: [&str; 2],
    run: serde_json::Value,
) -> anyhow::Result<Pod> {
    let name = format!("pod-init-{}", uuid());
    let value = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        .to_string();
    let mut pod = json!({
        "metadata": {"name": name, "labels": {"name": "foo", "time": value}},
        "spec": {
            "initContainers": [
                {"name": "init1", "image": busybox_image(), "command": [init[0]]},
                {"name": "init2", "image": busybox_image(), "command": [init[1]]},
            ],
            "containers": [run],
        },
    });
    if let Some(r) = restart_policy {
        pod["spec"]["restartPolicy"] = json!(r);
    }
    e2epod::pod(pod)
}

async fn create(ctx: &Ctx, p: &Pod) -> anyhow::Result<Pod> {
    e2epod::api(ctx)
        .create(&PostParams::default(), p)
        .await
        .context("creating the pod")
}

async fn restart_never(ctx: Ctx) -> anyhow::Result<()> {
    let pod = pod_with(
        Some("Never"),
        ["/bin/true", "/bin/true"],
        json!({"name": "run1", "image": busybox_image(), "command": ["/bin/true"]}),
    )?;
    let created = create(&ctx, &pod).await?;
    let end = until(&ctx, &created, vec![pod_completed()]).await?;
    check_initialized(&end, "Succeeded")
}

async fn restart_always(ctx: Ctx) -> anyhow::Result<()> {
    let pod = pod_with(
        None,
        ["/bin/true", "/bin/true"],
        json!({"name": "run1", "image": pause_image(), "resources": {"limits": {"cpu": "100m"}}}),
    )?;
    let created = create(&ctx, &pod).await?;
    let end = until(&ctx, &created, vec![pod_running()]).await?;
    check_initialized(&end, "Running")
}

/// Every app container still waits with reason PodInitializing.
fn app_containers_waiting(p: &Pod) -> Result<(), String> {
    for s in p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
    {
        match s.state.as_ref().and_then(|st| st.waiting.as_ref()) {
            None => {
                return Err(format!(
                    "container {:?} should not be out of waiting: {}",
                    s.name,
                    json_of(s)
                ))
            }
            Some(w) if w.reason.as_deref() != Some("PodInitializing") => {
                return Err(format!(
                    "container {:?} should have reason PodInitializing: {}",
                    s.name,
                    json_of(s)
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

async fn fails_restart_always(ctx: Ctx) -> anyhow::Result<()> {
    let pod = pod_with(
        None,
        ["/bin/false", "/bin/true"],
        json!({"name": "run1", "image": pause_image(), "resources": {"limits": {"cpu": "100m"}}}),
    )?;
    let created = create(&ctx, &pod).await?;
    // The first init container fails at least once, the rest wait.
    let first_fails: Cond = Box::new(|p| {
        app_containers_waiting(p)?;
        let st = init_statuses(p);
        if st.len() != 2 {
            return Ok(false);
        }
        match st[1].state.as_ref().and_then(|s| s.waiting.as_ref()) {
            None => {
                return Err(format!(
                    "second init container should not be out of waiting: {}",
                    json_of(&st[1])
                ))
            }
            Some(w) if w.reason.as_deref() != Some("PodInitializing") => {
                return Err(format!(
                    "second init container should have reason PodInitializing: {}",
                    json_of(&st[1])
                ))
            }
            _ => {}
        }
        if st[0]
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
        {
            return Err(format!(
                "first init container should have exitCode != 0: {}",
                json_of(&st[0])
            ));
        }
        // Until an attempt to restart it.
        Ok(st[0]
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some())
    });
    // Then restarted (restartCount 3).
    let restarted: Cond = Box::new(|p| {
        Ok(init_statuses(p)
            .first()
            .is_some_and(|s| s.restart_count >= 3))
    });
    let end = until(&ctx, &created, vec![first_fails, restarted]).await?;
    ensure!(
        e2epod::phase(&end) == "Pending",
        "expected phase Pending, got {}",
        e2epod::describe(&end)
    );
    let init = initialized_condition(&end).context("no Initialized condition")?;
    ensure!(
        init.status == "False"
            && init.reason.as_deref() == Some("ContainersNotInitialized")
            && init.message.as_deref() == Some("containers with incomplete status: [init1 init2]"),
        "expected Initialized False, ContainersNotInitialized, \"containers with incomplete status: [init1 init2]\"; got {init:?}"
    );
    ensure!(
        init_statuses(&end).len() == 2,
        "expected 2 init container statuses"
    );
    Ok(())
}

async fn fails_restart_never(ctx: Ctx) -> anyhow::Result<()> {
    let pod = pod_with(
        Some("Never"),
        ["/bin/true", "/bin/false"],
        json!({"name": "run1", "image": busybox_image(), "command": ["/bin/true"],
               "resources": {"limits": {"cpu": "100m"}}}),
    )?;
    let created = create(&ctx, &pod).await?;
    // The second init container fails, the app containers wait.
    let second_fails: Cond = Box::new(|p| {
        app_containers_waiting(p)?;
        let st = init_statuses(p);
        if st.len() != 2 {
            return Ok(false);
        }
        let first = st[0].state.clone().unwrap_or_default();
        let Some(t) = first.terminated else {
            if first
                .waiting
                .as_ref()
                .is_some_and(|w| w.reason.as_deref() != Some("PodInitializing"))
            {
                return Err(format!(
                    "second init container should have reason PodInitializing: {}",
                    json_of(&st[0])
                ));
            }
            return Ok(false);
        };
        if t.exit_code != 0 {
            return Err(format!(
                "first init container should have exitCode != 0: {}",
                json_of(&st[0])
            ));
        }
        match st[1].state.as_ref().and_then(|s| s.terminated.as_ref()) {
            None => Ok(false),
            Some(t) if t.exit_code == 0 => Err(format!(
                "second init container should have failed: {}",
                json_of(&st[1])
            )),
            Some(_) => Ok(true),
        }
    });
    let end = until(&ctx, &created, vec![second_fails, pod_completed()]).await?;
    ensure!(
        e2epod::phase(&end) == "Failed",
        "expected phase Failed, got {}",
        e2epod::describe(&end)
    );
    let init = initialized_condition(&end).context("no Initialized condition")?;
    ensure!(
        init.status == "False"
            && init.reason.as_deref() == Some("ContainersNotInitialized")
            && init.message.as_deref() == Some("containers with incomplete status: [init2]"),
        "expected Initialized False, ContainersNotInitialized, \"containers with incomplete status: [init2]\"; got {init:?}"
    );
    ensure!(
        init_statuses(&end).len() == 2,
        "expected 2 init container statuses"
    );
    let waiting = end
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.waiting.is_some());
    ensure!(
        waiting,
        "the app container should be waiting: {}",
        e2epod::describe(&end)
    );
    Ok(())
}
