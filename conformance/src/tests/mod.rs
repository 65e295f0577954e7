//! The ported tests, one file per area, each test named and described as upstream's
//! conformance.yaml has it. Shared assertions live here.

mod chunking;
mod configmap_volume;
mod configmaps;
mod container_runtime;
mod dns;
mod downward_api;
mod e2enode;
mod e2epod;
mod e2erc;
mod empty_dir;
mod endpointslices;
mod ephemeral_containers;
mod events;
mod garbage_collector;
mod init_containers;
mod kubectl;
mod kubelet;
mod lease;
mod lifecycle_hooks;
mod namespaces;
mod networking;
mod nodes;
mod pods;
mod podtemplates;
mod probes;
mod projected;
mod proxy;
mod replication_controller;
mod scheduling;
mod secrets;
mod secrets_volume;
mod security_context;
mod serviceaccounts;
mod services;
mod services_net;
mod subpath;
mod svcjig;
mod taints;
mod version;
mod watchers;

use anyhow::{bail, Context};

use crate::Test;

/// A [`Test`] from an `async fn(Ctx) -> anyhow::Result<()>`.
macro_rules! test {
    ($area:expr, $testname:expr, $codename:expr, $f:path) => {
        $crate::Test {
            testname: $testname,
            codename: $codename,
            area: $area,
            run: |ctx| Box::pin($f(ctx)),
            timeout: None,
        }
    };
    ($area:expr, $testname:expr, $codename:expr, $f:path, timeout = $t:expr) => {
        $crate::Test {
            testname: $testname,
            codename: $codename,
            area: $area,
            run: |ctx| Box::pin($f(ctx)),
            timeout: Some($t),
        }
    };
}
pub(crate) use test;

pub fn all() -> Vec<Test> {
    let mut all = Vec::new();
    all.extend(configmaps::tests());
    all.extend(secrets::tests());
    all.extend(namespaces::tests());
    all.extend(container_runtime::tests());
    all.extend(kubelet::tests());
    all.extend(downward_api::tests());
    all.extend(pods::tests());
    all.extend(replication_controller::tests());
    all.extend(init_containers::tests());
    all.extend(watchers::tests());
    all.extend(events::tests());
    all.extend(serviceaccounts::tests());
    all.extend(endpointslices::tests());
    all.extend(services::tests());
    all.extend(nodes::tests());
    all.extend(security_context::tests());
    all.extend(empty_dir::tests());
    all.extend(empty_dir::serial_tests());
    all.extend(probes::tests());
    all.extend(subpath::tests());
    all.extend(subpath::expansion_tests());
    all.extend(lifecycle_hooks::tests());
    all.extend(configmap_volume::tests());
    all.extend(secrets_volume::tests());
    all.extend(projected::tests());
    all.extend(version::tests());
    all.extend(lease::tests());
    all.extend(podtemplates::tests());
    all.extend(chunking::tests());
    all.extend(garbage_collector::tests());
    all.extend(kubectl::tests());
    all.extend(scheduling::tests());
    all.extend(proxy::tests());
    all.extend(taints::tests());
    all.extend(services_net::tests());
    all.extend(networking::tests());
    all.extend(dns::tests());
    all.extend(ephemeral_containers::tests());
    all
}

/// upstream's `apierrors.IsInvalid`: reason Invalid (or, without a reason, code 422).
pub fn is_invalid(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.reason == "Invalid" || (s.reason.is_empty() && s.code == 422),
        _ => false,
    }
}

/// Expects `r` to have failed as upstream's `IsInvalid` says.
pub fn expect_invalid<T: std::fmt::Debug>(
    r: Result<T, kube::Error>,
    what: &str,
) -> anyhow::Result<()> {
    match r {
        Err(e) if is_invalid(&e) => Ok(()),
        Err(e) => bail!("{what}: expected 'invalid' as error, got instead: {e}"),
        Ok(v) => bail!("{what}: expected 'invalid' as error, but it succeeded: {v:?}"),
    }
}

/// upstream's `HaveValidResourceVersion`: a base-10 integer above 0.
pub fn valid_resource_version(rv: Option<&str>) -> anyhow::Result<u128> {
    let rv = rv.context("no metadata.resourceVersion")?;
    let n: u128 = rv
        .parse()
        .with_context(|| format!("resourceVersion {rv:?} is not a decimal integer"))?;
    anyhow::ensure!(n > 0, "resourceVersion {rv:?} is 0");
    Ok(n)
}

/// upstream's `CompareResourceVersion(older, newer) == -1`.
pub fn newer_resource_version(older: Option<&str>, newer: Option<&str>) -> anyhow::Result<()> {
    let (a, b) = (
        valid_resource_version(older)?,
        valid_resource_version(newer)?,
    );
    anyhow::ensure!(
        a < b,
        "patched object should have a larger resource version: {a} then {b}"
    );
    Ok(())
}

/// A fresh lower-case uuid, as upstream's `uuid.NewUUID()`.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The image upstream's tests call `BusyBoxImage` (`registry.k8s.io/e2e-test-images/busybox`):
/// `CONFORMANCE_BUSYBOX_IMAGE`, else rkube's (scripts/images.sh; docker.io/rkube/* is
/// what a cluster's docker.io mirror serves, as `make test`'s does).
pub fn busybox_image() -> String {
    std::env::var("CONFORMANCE_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "docker.io/rkube/busybox:1.35".into())
}

/// The image upstream's tests call agnhost (`registry.k8s.io/e2e-test-images/agnhost`):
/// `CONFORMANCE_AGNHOST_IMAGE`, else rkube's testserver, which has agnhost's subcommands,
/// flags and layout (`/agnhost` the entrypoint, default args `pause`).
pub fn agnhost_image() -> String {
    std::env::var("CONFORMANCE_AGNHOST_IMAGE")
        .unwrap_or_else(|_| "docker.io/rkube/testserver:1.0".into())
}

/// The image upstream's tests call `Nonewprivs` (`registry.k8s.io/e2e-test-images/nonewprivs`):
/// `CONFORMANCE_NONEWPRIVS_IMAGE`, else rkube's (scripts/images.sh): its entrypoint, a
/// setuid-root binary, prints `Effective uid: <euid>`.
pub fn nonewprivs_image() -> String {
    std::env::var("CONFORMANCE_NONEWPRIVS_IMAGE")
        .unwrap_or_else(|_| "docker.io/rkube/nonewprivs:1.3".into())
}

/// The pause image (upstream's `imageutils.GetPauseImageName()`): `CONFORMANCE_PAUSE_IMAGE`,
/// else rkube's.
pub fn pause_image() -> String {
    std::env::var("CONFORMANCE_PAUSE_IMAGE").unwrap_or_else(|_| "docker.io/rkube/pause:3.10".into())
}

/// Where upstream uses httpd only as a second long-running image to switch a container
/// to: `CONFORMANCE_HTTPD_IMAGE`, else the pause image (rkube's registry has no httpd).
pub fn httpd_image() -> String {
    std::env::var("CONFORMANCE_HTTPD_IMAGE").unwrap_or_else(|_| pause_image())
}
