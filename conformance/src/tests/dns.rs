//! DNS: upstream's test/e2e/network/dns.go and dns_common.go. A prober pod (a webserver
//! and two queriers sharing an emptyDir at /results) runs upstream's probe scripts (`dig`,
//! `getent hosts`, `hostname -i`); the test reads each result file through the pod's
//! `proxy` subresource. Both queriers ("agnhost" and "jessie") run rkube's test server
//! image, which has the dnsutils tools (testserver/src/dnsutil.rs), unless
//! `CONFORMANCE_JESSIE_DNSUTILS_IMAGE` names another.

use std::time::Duration;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::e2epod;
use super::test;
use crate::{Ctx, Test};

const AREA: &str = "DNS";

/// upstream's `framework.Logf` / `ginkgo.By`: on stderr with `CONFORMANCE_VERBOSE` set.
macro_rules! logf {
    ($($a:tt)*) => {
        if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            eprintln!("[dns {}.{:03}] {}", t.as_secs() % 86400, t.subsec_millis(), format!($($a)*));
        }
    };
}

const DNS_TEST_POD_HOST_NAME: &str = "dns-querier-1";
const DNS_TEST_SERVICE_NAME: &str = "dns-test-service";

pub fn tests() -> Vec<Test> {
    // Up to 10 minutes of polling the results (upstream's assertFilesContain), after the
    // pod starts; the ExternalName test does that three times.
    let t = Duration::from_secs(15 * 60);
    vec![
        test!(
            AREA,
            "DNS, cluster",
            "[sig-network] DNS should provide /etc/hosts entries for the cluster [Conformance]",
            etc_hosts_entries,
            timeout = t
        ),
        test!(
            AREA,
            "DNS, for ExternalName Services",
            "[sig-network] DNS should provide DNS for ExternalName services [Conformance]",
            external_name_services,
            timeout = Duration::from_secs(35 * 60)
        ),
        test!(
            AREA,
            "DNS, resolve the hostname",
            "[sig-network] DNS should provide DNS for pods for Hostname [Conformance]",
            pods_hostname,
            timeout = t
        ),
        test!(
            AREA,
            "DNS, resolve the subdomain",
            "[sig-network] DNS should provide DNS for pods for Subdomain [Conformance]",
            pods_subdomain,
            timeout = t
        ),
        test!(
            AREA,
            "DNS, services",
            "[sig-network] DNS should provide DNS for services [Conformance]",
            services,
            timeout = t
        ),
        test!(
            AREA,
            "DNS, cluster",
            "[sig-network] DNS should provide DNS for the cluster [Conformance]",
            cluster,
            timeout = t
        ),
        test!(
            AREA,
            "DNS, PQDN for services",
            "[sig-network] DNS should resolve DNS of partial qualified names for services [LinuxOnly] [Conformance]",
            partial_names_for_services,
            timeout = t
        ),
        test!(
            AREA,
            "DNS, custom dnsConfig",
            "[sig-network] DNS should support configurable pod DNS nameservers [Conformance]",
            configurable_nameservers
        ),
    ]
}

/// Upstream's `framework.TestContext.ClusterDNSDomain`: `CONFORMANCE_DNS_DOMAIN`, else
/// `cluster.local`.
fn dns_domain() -> String {
    std::env::var("CONFORMANCE_DNS_DOMAIN").unwrap_or_else(|_| "cluster.local".into())
}

/// The image upstream calls `JessieDnsutils`: `CONFORMANCE_JESSIE_DNSUTILS_IMAGE`, else
/// rkube's test server image (dig, getent and busybox's hostname).
fn jessie_dnsutils_image() -> String {
    std::env::var("CONFORMANCE_JESSIE_DNSUTILS_IMAGE").unwrap_or_else(|_| super::agnhost_image())
}

/// Upstream's `dnsQuerier`: a querier container's name prefix, image and script.
struct DnsQuerier {
    name: &'static str,
    image: String,
    cmd: String,
}

/// The agnhost and jessie queriers of upstream's tests, each with its probe command and
/// result files, from `probe(prefix)`.
fn probers(probe: impl Fn(&str) -> (String, Vec<String>)) -> (Vec<DnsQuerier>, Vec<String>) {
    let (agnhost_cmd, mut files) = probe("agnhost");
    let (jessie_cmd, jessie_files) = probe("jessie");
    files.extend(jessie_files);
    logf!("Running these commands on agnhost: {agnhost_cmd}");
    logf!("Running these commands on jessie: {jessie_cmd}");
    (
        vec![
            DnsQuerier {
                name: "agnhost",
                image: super::agnhost_image(),
                cmd: agnhost_cmd,
            },
            DnsQuerier {
                name: "jessie",
                image: jessie_dnsutils_image(),
                cmd: jessie_cmd,
            },
        ],
        files,
    )
}

/// Upstream's `createProbeCommand` (IPv4): a loop of 600 rounds that writes
/// `/results/<prefix>_{udp,tcp}@<name>` when `dig +search` answers for a name (A, or SRV
/// for `_`-names), `<prefix>_hosts@<name>` when `getent hosts` finds a host entry,
/// `<prefix>_{udp,tcp}@PodARecord` for the pod's own A record (from `hostname -i`) and
/// `<ip>_{udp,tcp}@PTR` for `ptr_lookup_ip`'s PTR record.
fn create_probe_command(
    names_to_resolve: &[String],
    host_entries: &[String],
    ptr_lookup_ip: &str,
    file_name_prefix: &str,
    namespace: &str,
    dns_domain: &str,
) -> (String, Vec<String>) {
    let mut file_names = Vec::new();
    let mut probe_cmd = String::from("for i in `seq 1 600`; do ");
    let dns_record = "A";
    for name in names_to_resolve {
        // Resolve by TCP and UDP DNS. `$$(...)`: `$(...)` is expanded by Kubernetes.
        let lookup = if name.starts_with('_') {
            format!("{name} SRV")
        } else {
            format!("{name} {dns_record}")
        };
        let file_name = format!("{file_name_prefix}_udp@{name}");
        probe_cmd += &format!(
            r#"check="$$(dig +notcp +noall +answer +search {lookup})" && test -n "$$check" && echo OK > /results/{file_name};"#
        );
        file_names.push(file_name);
        let file_name = format!("{file_name_prefix}_tcp@{name}");
        probe_cmd += &format!(
            r#"check="$$(dig +tcp +noall +answer +search {lookup})" && test -n "$$check" && echo OK > /results/{file_name};"#
        );
        file_names.push(file_name);
    }
    for name in host_entries {
        let file_name = format!("{file_name_prefix}_hosts@{name}");
        probe_cmd +=
            &format!(r#"test -n "$$(getent hosts {name})" && echo OK > /results/{file_name};"#);
        file_names.push(file_name);
    }
    let pod_a_rec_udp = format!("{file_name_prefix}_udp@PodARecord");
    let pod_a_rec_tcp = format!("{file_name_prefix}_tcp@PodARecord");
    probe_cmd += &format!(
        r#"podARec=$$(hostname -i| awk -F. '{{print $$1"-"$$2"-"$$3"-"$$4".{namespace}.pod.{dns_domain}"}}');"#
    );
    probe_cmd += &format!(
        r#"check="$$(dig +notcp +noall +answer +search $${{podARec}} {dns_record})" && test -n "$$check" && echo OK > /results/{pod_a_rec_udp};"#
    );
    probe_cmd += &format!(
        r#"check="$$(dig +tcp +noall +answer +search $${{podARec}} {dns_record})" && test -n "$$check" && echo OK > /results/{pod_a_rec_tcp};"#
    );
    file_names.push(pod_a_rec_udp);
    file_names.push(pod_a_rec_tcp);
    if !ptr_lookup_ip.is_empty() {
        let ptr_lookup = reverse_addr(ptr_lookup_ip);
        let udp = format!("{ptr_lookup_ip}_udp@PTR");
        let tcp = format!("{ptr_lookup_ip}_tcp@PTR");
        probe_cmd += &format!(
            r#"check="$$(dig +notcp +noall +answer +search {ptr_lookup} PTR)" && test -n "$$check" && echo OK > /results/{udp};"#
        );
        probe_cmd += &format!(
            r#"check="$$(dig +tcp +noall +answer +search {ptr_lookup} PTR)" && test -n "$$check" && echo OK > /results/{tcp};"#
        );
        file_names.push(udp);
        file_names.push(tcp);
    }
    probe_cmd += "sleep 1; done";
    (probe_cmd, file_names)
}

/// miekg/dns's `ReverseAddr` for IPv4: `d.c.b.a.in-addr.arpa.`.
fn reverse_addr(ip: &str) -> String {
    let mut octets: Vec<&str> = ip.split('.').collect();
    octets.reverse();
    format!("{}.in-addr.arpa.", octets.join("."))
}

/// Upstream's `createTargetedProbeCommand`: 30 rounds of `dig +short <name> <type>` into
/// `/results/<prefix>_udp@<name>`.
fn create_targeted_probe_command(
    name_to_resolve: &str,
    lookup: &str,
    file_name_prefix: &str,
) -> (String, String) {
    let file_name = format!("{file_name_prefix}_udp@{name_to_resolve}");
    let probe_cmd = format!(
        "for i in `seq 1 30`; do dig +short {name_to_resolve} {lookup} > /results/{file_name}; sleep 1; done"
    );
    (probe_cmd, file_name)
}

/// Upstream's `createDNSPod`: agnhost `test-webserver` (container "webserver") serving
/// the shared `/results`, and a `<name>-querier` container per prober running its script
/// with `sh -c`; the pod's hostname and subdomain as given.
fn create_dns_pod(
    probers: &[DnsQuerier],
    pod_host_name: &str,
    service_name: &str,
) -> anyhow::Result<Pod> {
    let pod_name = format!("dns-test-{}", super::uuid());
    let volumes = json!([{"name": "results", "emptyDir": {}}]);
    let mounts = json!([{"name": "results", "mountPath": "/results"}]);
    let mut pod = e2epod::agnhost_pod(&pod_name, volumes, mounts.clone(), &["test-webserver"])?;
    let spec = pod.spec.as_mut().context("pod spec")?;
    spec.containers[0].name = "webserver".into();
    for p in probers {
        spec.containers.push(serde_json::from_value(json!({
            "name": format!("{}-querier", p.name),
            "image": p.image,
            "command": ["sh", "-c", p.cmd],
            "volumeMounts": mounts,
        }))?);
    }
    spec.hostname = Some(pod_host_name.into());
    spec.subdomain = Some(service_name.into());
    Ok(pod)
}

/// Upstream's `framework.PodStartTimeout` for `WaitForPodRunningInNamespaceSlow`
/// (`f.Timeouts.PodStartSlow`).
const POD_START_SLOW_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Creates the pod, waits until it runs, and deletes it (grace 0) after `check`.
async fn with_probe_pod<F, Fut>(ctx: &Ctx, pod: &Pod, check: F) -> anyhow::Result<()>
where
    F: FnOnce(Pod) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    logf!("submitting the pod to kubernetes");
    let api = e2epod::api(ctx);
    let created = api
        .create(&PostParams::default(), pod)
        .await
        .context("failed to create the DNS probe pod")?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let r = async {
        e2epod::wait_for_running(&api, &name, POD_START_SLOW_TIMEOUT).await?;
        logf!("retrieving the pod");
        let pod = api.get(&name).await.context("failed to get the pod")?;
        logf!("looking for the results for each expected name from probers");
        check(pod).await
    }
    .await;
    logf!("deleting the pod");
    let _ = api
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await;
    r
}

/// Upstream's `validateDNSResults`.
async fn validate_dns_results(ctx: &Ctx, pod: &Pod, file_names: &[String]) -> anyhow::Result<()> {
    let c = ctx.clone();
    with_probe_pod(ctx, pod, |pod| async move {
        assert_files_contain(&c, file_names, "results", &pod, None).await
    })
    .await?;
    logf!("DNS probes succeeded");
    Ok(())
}

/// Upstream's `validateTargetedProbeOutput`.
async fn validate_targeted_probe_output(
    ctx: &Ctx,
    pod: &Pod,
    file_names: &[String],
    value: &str,
) -> anyhow::Result<()> {
    let c = ctx.clone();
    with_probe_pod(ctx, pod, |pod| async move {
        assert_files_contain(&c, file_names, "results", &pod, Some(value)).await
    })
    .await?;
    logf!("DNS probes succeeded");
    Ok(())
}

/// Upstream's `assertFilesContain`: every 5 s for 600 s, reads each file through
/// `GET /api/v1/namespaces/<ns>/pods/<name>/proxy/<dir>/<file>`, until all can be read
/// (and, with `expected`, hold it, trimmed).
async fn assert_files_contain(
    ctx: &Ctx,
    file_names: &[String],
    file_dir: &str,
    pod: &Pod,
    expected: Option<&str>,
) -> anyhow::Result<()> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let mut failed = Vec::new();
        for file_name in file_names {
            let req = http::Request::get(format!(
                "/api/v1/namespaces/{ns}/pods/{name}/proxy/{file_dir}/{file_name}"
            ))
            .body(Vec::new())?;
            // framework.SingleCallTimeout.
            let got =
                tokio::time::timeout(Duration::from_secs(5 * 60), ctx.client.request_text(req))
                    .await;
            match got {
                Err(_) => bail!("Unable to read {file_name} from pod {ns}/{name}: timed out"),
                Ok(Err(e)) => {
                    logf!("Unable to read {file_name} from pod {ns}/{name}: {e}");
                    failed.push(file_name.clone());
                }
                Ok(Ok(contents)) => {
                    if let Some(want) = expected {
                        if contents.trim() != want {
                            logf!(
                                "File {file_name} from pod {ns}/{name} contains '{contents}' instead of '{want}'"
                            );
                            failed.push(file_name.clone());
                        }
                    }
                }
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        logf!("Lookups using {ns}/{name} failed for: {failed:?}");
        if tokio::time::Instant::now() + Duration::from_secs(5) > deadline {
            bail!("timed out after 600s: lookups using {ns}/{name} failed for: {failed:?}");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Upstream's `e2eservice.CreateServiceSpec`.
fn create_service_spec(
    service_name: &str,
    external_name: &str,
    is_headless: bool,
    selector: Option<serde_json::Value>,
) -> anyhow::Result<Service> {
    let mut spec = json!({"selector": selector});
    if !external_name.is_empty() {
        spec["type"] = json!("ExternalName");
        spec["externalName"] = json!(external_name);
    } else {
        spec["ports"] = json!([{"port": 80, "name": "http", "protocol": "TCP"}]);
    }
    if is_headless {
        spec["clusterIP"] = json!("None");
    }
    Ok(serde_json::from_value(
        json!({"metadata": {"name": service_name}, "spec": spec}),
    )?)
}

fn services_api(ctx: &Ctx) -> Api<Service> {
    Api::namespaced(ctx.client.clone(), &ctx.ns)
}

async fn create_service(ctx: &Ctx, svc: &Service, what: &str) -> anyhow::Result<Service> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    services_api(ctx)
        .create(&PostParams::default(), svc)
        .await
        .with_context(|| format!("failed to create {what}: {name}"))
}

/// The DeferCleanup of upstream's services: deleted at the end, whatever happened.
async fn delete_services(ctx: &Ctx, names: &[&str]) {
    for n in names {
        logf!("deleting the test service {n}");
        let _ = services_api(ctx).delete(n, &DeleteParams::default()).await;
    }
}

/// When a Pod is created, the pod MUST be able to resolve cluster dns entries such as
/// kubernetes.default via DNS.
async fn cluster(ctx: Ctx) -> anyhow::Result<()> {
    let d = dns_domain();
    let names = vec![format!("kubernetes.default.svc.{d}")];
    let (probers, files) =
        probers(|prefix| create_probe_command(&names, &[], "", prefix, &ctx.ns, &d));
    logf!("creating a pod to probe DNS");
    let pod = create_dns_pod(&probers, DNS_TEST_POD_HOST_NAME, DNS_TEST_SERVICE_NAME)?;
    validate_dns_results(&ctx, &pod, &files).await
}

/// When a Pod is created, the pod MUST be able to resolve cluster dns entries such as
/// kubernetes.default via /etc/hosts.
async fn etc_hosts_entries(ctx: Ctx) -> anyhow::Result<()> {
    let d = dns_domain();
    let host_fqdn = format!(
        "{DNS_TEST_POD_HOST_NAME}.{DNS_TEST_SERVICE_NAME}.{}.svc.{d}",
        ctx.ns
    );
    let host_entries = vec![host_fqdn, DNS_TEST_POD_HOST_NAME.to_string()];
    let (probers, files) =
        probers(|prefix| create_probe_command(&[], &host_entries, "", prefix, &ctx.ns, &d));
    logf!("creating a pod to probe /etc/hosts");
    let pod = create_dns_pod(&probers, DNS_TEST_POD_HOST_NAME, DNS_TEST_SERVICE_NAME)?;
    validate_dns_results(&ctx, &pod, &files).await
}

/// A headless and a regular service selecting the prober pod: the names to resolve (by
/// `names(headless, regular)`) and the regular service's cluster IP as the PTR lookup.
async fn services_with(ctx: &Ctx, names: impl Fn(&str, &str) -> Vec<String>) -> anyhow::Result<()> {
    let selector = json!({"dns-test": "true"});
    logf!("Creating a test headless service");
    let headless = create_service_spec(DNS_TEST_SERVICE_NAME, "", true, Some(selector.clone()))?;
    create_service(ctx, &headless, "headless service").await?;
    let regular_name = "test-service-2";
    let r = async {
        let regular = create_service_spec(regular_name, "", false, Some(selector))?;
        let regular = create_service(ctx, &regular, "regular service").await?;
        let cluster_ip = regular
            .spec
            .as_ref()
            .and_then(|s| s.cluster_ip.clone())
            .unwrap_or_default();
        let names = names(DNS_TEST_SERVICE_NAME, regular_name);
        let d = dns_domain();
        let (probers, files) =
            probers(|prefix| create_probe_command(&names, &[], &cluster_ip, prefix, &ctx.ns, &d));
        logf!("creating a pod to probe DNS");
        let mut pod = create_dns_pod(&probers, DNS_TEST_POD_HOST_NAME, DNS_TEST_SERVICE_NAME)?;
        pod.metadata.labels = Some([("dns-test".to_string(), "true".to_string())].into());
        validate_dns_results(ctx, &pod, &files).await
    }
    .await;
    delete_services(ctx, &[DNS_TEST_SERVICE_NAME, regular_name]).await;
    r
}

/// When a headless service is created, the service MUST be able to resolve all the
/// required service endpoints. When the service is created, any pod in the same namespace
/// must be able to resolve the service by all of the expected DNS names.
async fn services(ctx: Ctx) -> anyhow::Result<()> {
    let (ns, d) = (ctx.ns.clone(), dns_domain());
    services_with(&ctx, |headless, regular| {
        vec![
            format!("{headless}.{ns}.svc.{d}"),
            format!("_http._tcp.{headless}.{ns}.svc.{d}"),
            format!("_http._tcp.{regular}.{ns}.svc.{d}"),
        ]
    })
    .await
}

/// Create a headless service and normal service. Both the services MUST be able to
/// resolve partial qualified DNS entries of their service endpoints by serving A records
/// and SRV records.
async fn partial_names_for_services(ctx: Ctx) -> anyhow::Result<()> {
    let ns = ctx.ns.clone();
    services_with(&ctx, |headless, regular| {
        vec![
            headless.to_string(),
            format!("{headless}.{ns}"),
            format!("{headless}.{ns}.svc"),
            format!("_http._tcp.{headless}.{ns}.svc"),
            format!("_http._tcp.{regular}.{ns}.svc"),
        ]
    })
    .await
}

/// The headless service "dns-test-service-2" and a prober pod it selects, with hostname
/// "dns-querier-2" and the service as its subdomain: upstream's Hostname and Subdomain
/// tests, with `probe(host_fqdn, subdomain)` giving the names and host entries.
async fn hostname_subdomain(
    ctx: &Ctx,
    probe: impl Fn(String, String) -> (Vec<String>, Vec<String>),
) -> anyhow::Result<()> {
    let selector = json!({"dns-test-hostname-attribute": "true"});
    let service_name = "dns-test-service-2";
    let pod_hostname = "dns-querier-2";
    logf!("Creating a test headless service");
    let headless = create_service_spec(service_name, "", true, Some(selector))?;
    create_service(ctx, &headless, "headless service").await?;
    let r = async {
        let d = dns_domain();
        let host_fqdn = format!("{pod_hostname}.{service_name}.{}.svc.{d}", ctx.ns);
        let subdomain = format!("{service_name}.{}.svc.{d}", ctx.ns);
        let (names, hosts) = probe(host_fqdn, subdomain);
        let (probers, files) =
            probers(|prefix| create_probe_command(&names, &hosts, "", prefix, &ctx.ns, &d));
        logf!("creating a pod to probe DNS");
        let mut pod = create_dns_pod(&probers, DNS_TEST_POD_HOST_NAME, DNS_TEST_SERVICE_NAME)?;
        pod.metadata.labels = Some(
            [(
                "dns-test-hostname-attribute".to_string(),
                "true".to_string(),
            )]
            .into(),
        );
        let spec = pod.spec.as_mut().context("pod spec")?;
        spec.hostname = Some(pod_hostname.into());
        spec.subdomain = Some(service_name.into());
        validate_dns_results(ctx, &pod, &files).await
    }
    .await;
    delete_services(ctx, &[service_name]).await;
    r
}

/// Create a headless service with label. Create a Pod with label to match service's
/// label, with hostname and a subdomain same as service name. Pod MUST be able to resolve
/// its fully qualified domain name as well as hostname by serving an A record at that
/// name.
async fn pods_hostname(ctx: Ctx) -> anyhow::Result<()> {
    hostname_subdomain(&ctx, |host_fqdn, _| {
        (vec![], vec![host_fqdn, "dns-querier-2".to_string()])
    })
    .await
}

/// Create a headless service with label. Create a Pod with label to match service's
/// label, with hostname and a subdomain same as service name. Pod MUST be able to resolve
/// its fully qualified domain name as well as subdomain by serving an A record at that
/// name.
async fn pods_subdomain(ctx: Ctx) -> anyhow::Result<()> {
    hostname_subdomain(&ctx, |host_fqdn, subdomain| {
        (vec![host_fqdn, subdomain], vec![])
    })
    .await
}

/// upstream's `e2eservice.UpdateService`: get, change, update; again on a conflict.
async fn update_service(
    ctx: &Ctx,
    name: &str,
    change: impl Fn(&mut Service),
) -> anyhow::Result<Service> {
    let api = services_api(ctx);
    for _ in 0..3 {
        let mut s = api.get(name).await?;
        change(&mut s);
        match api.replace(name, &PostParams::default(), &s).await {
            Ok(s) => return Ok(s),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("updating service {name}: conflicts, 3 times")
}

/// A prober pod running the targeted probe (`dig +short <fqdn> <type>`) on both
/// queriers; its files and the pod.
fn targeted_pod(host_fqdn: &str, record: &str) -> anyhow::Result<(Pod, Vec<String>)> {
    let (agnhost_cmd, agnhost_file) = create_targeted_probe_command(host_fqdn, record, "agnhost");
    let (jessie_cmd, jessie_file) = create_targeted_probe_command(host_fqdn, record, "jessie");
    logf!("Running these commands on agnhost: {agnhost_cmd}");
    logf!("Running these commands on jessie: {jessie_cmd}");
    let probers = [
        DnsQuerier {
            name: "agnhost",
            image: super::agnhost_image(),
            cmd: agnhost_cmd,
        },
        DnsQuerier {
            name: "jessie",
            image: jessie_dnsutils_image(),
            cmd: jessie_cmd,
        },
    ];
    let pod = create_dns_pod(&probers, DNS_TEST_POD_HOST_NAME, DNS_TEST_SERVICE_NAME)?;
    Ok((pod, vec![agnhost_file, jessie_file]))
}

/// Create a service with externalName. Pod MUST be able to resolve the address for this
/// service via CNAME. When externalName of this service is changed, Pod MUST resolve to
/// new DNS entry for the service. Change the service type from externalName to
/// ClusterIP, Pod MUST resolve DNS to the service by serving A records.
async fn external_name_services(ctx: Ctx) -> anyhow::Result<()> {
    logf!("Creating a test externalName service");
    let service_name = "dns-test-service-3";
    let svc = create_service_spec(service_name, "foo.example.com", false, None)?;
    create_service(&ctx, &svc, "ExternalName service").await?;
    let r = async {
        let host_fqdn = format!("{service_name}.{}.svc.{}", ctx.ns, dns_domain());

        logf!("creating a pod to probe DNS");
        let (pod1, files) = targeted_pod(&host_fqdn, "CNAME")?;
        validate_targeted_probe_output(&ctx, &pod1, &files, "foo.example.com.").await?;

        logf!("changing the externalName to bar.example.com");
        update_service(&ctx, service_name, |s| {
            if let Some(spec) = s.spec.as_mut() {
                spec.external_name = Some("bar.example.com".into());
            }
        })
        .await
        .with_context(|| format!("failed to change externalName of service: {service_name}"))?;
        logf!("creating a second pod to probe DNS");
        let (pod2, files) = targeted_pod(&host_fqdn, "CNAME")?;
        validate_targeted_probe_output(&ctx, &pod2, &files, "bar.example.com.").await?;

        logf!("changing the service to type=ClusterIP");
        update_service(&ctx, service_name, |s| {
            if let Some(spec) = s.spec.as_mut() {
                spec.type_ = Some("ClusterIP".into());
                spec.ports = Some(vec![serde_json::from_value(
                    json!({"port": 80, "name": "http", "protocol": "TCP"}),
                )
                .expect("port")]);
            }
        })
        .await
        .with_context(|| {
            format!("failed to change service type to ClusterIP for service: {service_name}")
        })?;
        logf!("creating a third pod to probe DNS");
        let (pod3, files) = targeted_pod(&host_fqdn, "A")?;
        let svc = services_api(&ctx)
            .get(service_name)
            .await
            .with_context(|| format!("failed to get service: {service_name}"))?;
        let cluster_ip = svc.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
        validate_targeted_probe_output(&ctx, &pod3, &files, &cluster_ip).await
    }
    .await;
    delete_services(&ctx, &[service_name]).await;
    r
}

/// Create a Pod with DNSPolicy as None and custom DNS configuration, specifying
/// nameservers and search path entries. Pod creation MUST be successful and provided DNS
/// configuration MUST be configured in the Pod.
async fn configurable_nameservers(ctx: Ctx) -> anyhow::Result<()> {
    logf!("Creating a pod with dnsPolicy=None and customized dnsConfig...");
    let test_server_ip = "1.1.1.1";
    let test_search_path = "resolv.conf.local";
    let mut pod = e2epod::agnhost_pod("test-dns-nameservers", json!(null), json!(null), &[])?;
    {
        let spec = pod.spec.as_mut().context("pod spec")?;
        // NewAgnhostPod with no args: the image's default (pause).
        spec.containers[0].args = None;
        spec.dns_policy = Some("None".into());
        spec.dns_config = Some(serde_json::from_value(json!({
            "nameservers": [test_server_ip],
            "searches": [test_search_path],
        }))?);
    }
    let api = e2epod::api(&ctx);
    let created = api
        .create(&PostParams::default(), &pod)
        .await
        .context("failed to create pod: test-dns-nameservers")?;
    let name = created.metadata.name.clone().unwrap_or_default();
    logf!("Created pod {name}");
    let r = async {
        e2epod::wait_for(
            &api,
            &name,
            e2epod::POD_START_TIMEOUT,
            "running and ready",
            |p| {
                e2epod::phase(p) == "Running"
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| {
                            c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
            },
        )
        .await
        .with_context(|| format!("failed to wait for pod {name} to be running"))?;
        let container = "agnhost-container";
        logf!("Verifying customized DNS suffix list is configured on pod...");
        let stdout = e2epod::exec(&api, &name, container, &["/agnhost", "dns-suffix"]).await?;
        if !stdout.contains(test_search_path) {
            bail!("customized DNS suffix list not found configured in pod, expected to contain: {test_search_path}, got: {stdout}");
        }
        logf!("Verifying customized DNS server is configured on pod...");
        let stdout =
            e2epod::exec(&api, &name, container, &["/agnhost", "dns-server-list"]).await?;
        if !stdout.contains(test_server_ip) {
            bail!("customized DNS server not found in configured in pod, expected to contain: {test_server_ip}, got: {stdout}");
        }
        Ok(())
    }
    .await;
    logf!("Deleting pod {name}...");
    let _ = api
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe script is upstream's, byte for byte (as Kubernetes sees it, `$$` and
    /// all).
    #[test]
    fn probe_command_is_upstreams() {
        let (cmd, files) = create_probe_command(
            &[
                "kubernetes.default".to_string(),
                "_http._tcp.s.ns.svc".to_string(),
            ],
            &["h".to_string()],
            "10.43.0.12",
            "agnhost",
            "ns",
            "cluster.local",
        );
        assert_eq!(
            cmd,
            concat!(
                "for i in `seq 1 600`; do ",
                r#"check="$$(dig +notcp +noall +answer +search kubernetes.default A)" && test -n "$$check" && echo OK > /results/agnhost_udp@kubernetes.default;"#,
                r#"check="$$(dig +tcp +noall +answer +search kubernetes.default A)" && test -n "$$check" && echo OK > /results/agnhost_tcp@kubernetes.default;"#,
                r#"check="$$(dig +notcp +noall +answer +search _http._tcp.s.ns.svc SRV)" && test -n "$$check" && echo OK > /results/agnhost_udp@_http._tcp.s.ns.svc;"#,
                r#"check="$$(dig +tcp +noall +answer +search _http._tcp.s.ns.svc SRV)" && test -n "$$check" && echo OK > /results/agnhost_tcp@_http._tcp.s.ns.svc;"#,
                r#"test -n "$$(getent hosts h)" && echo OK > /results/agnhost_hosts@h;"#,
                r#"podARec=$$(hostname -i| awk -F. '{print $$1"-"$$2"-"$$3"-"$$4".ns.pod.cluster.local"}');"#,
                r#"check="$$(dig +notcp +noall +answer +search $${podARec} A)" && test -n "$$check" && echo OK > /results/agnhost_udp@PodARecord;"#,
                r#"check="$$(dig +tcp +noall +answer +search $${podARec} A)" && test -n "$$check" && echo OK > /results/agnhost_tcp@PodARecord;"#,
                r#"check="$$(dig +notcp +noall +answer +search 12.0.43.10.in-addr.arpa. PTR)" && test -n "$$check" && echo OK > /results/10.43.0.12_udp@PTR;"#,
                r#"check="$$(dig +tcp +noall +answer +search 12.0.43.10.in-addr.arpa. PTR)" && test -n "$$check" && echo OK > /results/10.43.0.12_tcp@PTR;"#,
                "sleep 1; done"
            )
        );
        assert_eq!(
            files,
            [
                "agnhost_udp@kubernetes.default",
                "agnhost_tcp@kubernetes.default",
                "agnhost_udp@_http._tcp.s.ns.svc",
                "agnhost_tcp@_http._tcp.s.ns.svc",
                "agnhost_hosts@h",
                "agnhost_udp@PodARecord",
                "agnhost_tcp@PodARecord",
                "10.43.0.12_udp@PTR",
                "10.43.0.12_tcp@PTR"
            ]
        );
        let (cmd, file) =
            create_targeted_probe_command("s.ns.svc.cluster.local", "CNAME", "jessie");
        assert_eq!(
            cmd,
            "for i in `seq 1 30`; do dig +short s.ns.svc.cluster.local CNAME > /results/jessie_udp@s.ns.svc.cluster.local; sleep 1; done"
        );
        assert_eq!(file, "jessie_udp@s.ns.svc.cluster.local");
    }
}
