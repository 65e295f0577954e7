//! Container lifecycle hooks as upstream's `handlerRunner` (`pkg/kubelet/lifecycle`):
//! postStart runs right after the container starts (the pod worker waits for it; a
//! failure is a `FailedPostStartHook` event and the container is killed), preStop runs
//! before the stop signal within the grace period (a failure is a `FailedPreStopHook`
//! event and the stop goes on). Handlers: exec (CRI ExecSync), httpGet (only a failed
//! connection fails, as upstream) and sleep.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use crate::cri::Cri;
use crate::probes::{self, Action};
use crate::spec;

/// The hook's action toward the pod's IP.
pub fn action_of(h: &LifecycleHandler, c: &Container, pod_ip: &str) -> Result<Action, String> {
    if let Some(e) = &h.exec {
        return Ok(Action::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(g) = &h.http_get {
        return probes::http_action(g, c, pod_ip);
    }
    if let Some(s) = &h.sleep {
        return Ok(Action::Sleep(Duration::from_secs(s.seconds.max(0) as u64)));
    }
    Err("a lifecycle handler must have one action".into())
}

/// Runs the hook; `Err` carries upstream's message for the event.
pub async fn run(
    cri: &Cri,
    container_id: &str,
    pod: &Pod,
    c: &Container,
    h: &LifecycleHandler,
    pod_ip: &str,
    timeout: Duration,
) -> Result<(), String> {
    let action = action_of(h, c, pod_ip)?;
    let desc = spec::pod_desc(pod);
    match &action {
        Action::Exec(cmd) => {
            let secs = timeout.as_secs().max(1) as i64;
            let r = tokio::time::timeout(
                timeout + Duration::from_secs(2),
                cri.exec_sync(container_id, cmd.clone(), secs),
            )
            .await;
            let (err, output) = match r {
                Ok(Ok((0, _))) => return Ok(()),
                Ok(Ok((code, out))) => (
                    format!("command '{}' exited with {code}: {out}", cmd.join(" ")),
                    out,
                ),
                Ok(Err(e)) => (e.to_string(), String::new()),
                Err(_) => (
                    format!("command '{}' timed out", cmd.join(" ")),
                    String::new(),
                ),
            };
            Err(exec_message(cmd, &c.name, &desc, &err, &output))
        }
        Action::Http { path, .. } => {
            match probes::run(cri, container_id, &action, timeout).await {
                Err(e) if !e.starts_with("HTTP probe failed with statuscode") => Err(format!(
                    "HTTP lifecycle hook ({path}) for Container {:?} in Pod {desc:?} failed - error: {e}",
                    c.name
                )),
                _ => Ok(()),
            }
        }
        _ => probes::run(cri, container_id, &action, timeout)
            .await
            .map(|_| ()),
    }
}

/// upstream's message of a failed exec hook.
pub fn exec_message(cmd: &[String], container: &str, pod: &str, err: &str, output: &str) -> String {
    format!(
        "Exec lifecycle hook ([{}]) for Container {container:?} in Pod {pod:?} failed - error: {err}, message: {output:?}",
        cmd.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_actions() {
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 3".into()];
        assert_eq!(
            exec_message(&cmd, "main", "web_shop(u-1)", "command 'sh -c exit 3' exited with 3: boom\n", "boom\n"),
            "Exec lifecycle hook ([sh -c exit 3]) for Container \"main\" in Pod \"web_shop(u-1)\" failed - error: command 'sh -c exit 3' exited with 3: boom\n, message: \"boom\\n\""
        );
        let c = Container {
            name: "c".into(),
            ..Default::default()
        };
        let h: LifecycleHandler =
            serde_json::from_value(serde_json::json!({"sleep": {"seconds": 5}})).unwrap();
        assert!(
            matches!(action_of(&h, &c, "10.0.0.1"), Ok(Action::Sleep(d)) if d == Duration::from_secs(5))
        );
        let h: LifecycleHandler =
            serde_json::from_value(serde_json::json!({"httpGet": {"port": 80, "path": "stop"}}))
                .unwrap();
        match action_of(&h, &c, "10.0.0.1").unwrap() {
            Action::Http {
                host, port, path, ..
            } => {
                assert_eq!(
                    (host.as_str(), port, path.as_str()),
                    ("10.0.0.1", 80, "/stop")
                )
            }
            _ => panic!("http"),
        }
        assert!(action_of(&LifecycleHandler::default(), &c, "x").is_err());
    }
}
