//! What a container's environment refers to in the cluster: the ConfigMaps and Secrets
//! of its `env` and `envFrom`, and the services whose variables it gets
//! (`FOO_SERVICE_HOST`, docker-link `FOO_PORT_80_TCP…`) — upstream's
//! `makeEnvironmentVariables`, `getServiceEnvVarMap` and `envvars.FromServices`.
//! [`gather`] reads them from the API; the rest is pure ([`crate::spec::env`] assembles
//! the variables from them).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, ListParams};

/// What the container's environment refers to, as the API had it (`None`: not found).
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub config_maps: HashMap<String, Option<ConfigMap>>,
    pub secrets: HashMap<String, Option<Secret>>,
    /// The service variables (name, value), in upstream's order per service.
    pub services: Vec<(String, String)>,
}

impl Sources {
    /// The data of a ConfigMap as key → value (`Ok(None)`: not found).
    pub fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.config_maps
            .get(name)
            .cloned()
            .flatten()
            .map(|cm| cm.data.unwrap_or_default())
    }

    pub fn secret(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.secrets.get(name).cloned().flatten().map(|s| {
            let mut out: BTreeMap<String, String> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            out.extend(s.string_data.unwrap_or_default());
            out
        })
    }
}

/// upstream's watch-based managers' NotFound (`configmap "x" not found`).
pub fn not_found(kind: &str, name: &str) -> String {
    format!("{kind} {name:?} not found")
}

/// upstream's `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`, not `.`, `..` or `..…`.
pub fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let ok = |c: char| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_');
    ok(first) && chars.all(|c| ok(c) || c.is_ascii_digit()) && !s.starts_with("..") && s != "."
}

/// upstream's `makeEnvVariableName`.
fn var_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The variables of the services a pod in `ns` sees (upstream's `getServiceEnvVarMap`
/// and `envvars.FromServices`): the `kubernetes` service of `default` always, the
/// services of `ns` when `enable_links`; services without a cluster IP are skipped.
pub fn service_env(services: &[Service], ns: &str, enable_links: bool) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for s in services {
        let spec = s.spec.clone().unwrap_or_default();
        let ip = spec.cluster_ip.unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = s.metadata.name.clone().unwrap_or_default();
        let sns = s.metadata.namespace.as_deref().unwrap_or("default");
        if sns == "default" && name == "kubernetes" {
            chosen.entry(name).or_insert(s);
        } else if sns == ns && enable_links {
            chosen.insert(name, s);
        }
    }
    let mut out = Vec::new();
    for (name, s) in chosen {
        let spec = s.spec.clone().unwrap_or_default();
        let ip = spec.cluster_ip.unwrap_or_default();
        let ports = spec.ports.unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let prefix = var_name(&name);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        let port_var = format!("{prefix}_SERVICE_PORT");
        out.push((port_var.clone(), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{port_var}_{}", var_name(pn)), p.port.to_string()));
            }
        }
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.clone()
        };
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let lower = proto.to_lowercase();
            let url = format!("{lower}://{host}:{}", p.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.clone()));
        }
    }
    out
}

fn enable_links(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true)
}

/// Reads from the API what `c`'s environment refers to.
pub async fn gather(client: &kube::Client, pod: &Pod, c: &Container) -> Result<Sources, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut cms: Vec<String> = Vec::new();
    let mut secrets: Vec<String> = Vec::new();
    for e in c.env_from.iter().flatten() {
        cms.extend(e.config_map_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(e.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    for e in c.env.iter().flatten() {
        if let Some(src) = &e.value_from {
            cms.extend(src.config_map_key_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(src.secret_key_ref.as_ref().map(|r| r.name.clone()));
        }
    }
    let mut out = Sources::default();
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for name in cms {
        if out.config_maps.contains_key(&name) {
            continue;
        }
        let got = cm_api.get_opt(&name).await.map_err(|e| e.to_string())?;
        out.config_maps.insert(name, got);
    }
    let s_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in secrets {
        if out.secrets.contains_key(&name) {
            continue;
        }
        let got = s_api.get_opt(&name).await.map_err(|e| e.to_string())?;
        out.secrets.insert(name, got);
    }
    let mut services: Vec<Service> = Vec::new();
    let links = enable_links(pod);
    if links {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("failed to list services: {e}"))?;
        services.extend(list.items);
    }
    if !(links && ns == "default") {
        let api: Api<Service> = Api::namespaced(client.clone(), "default");
        if let Some(s) = api.get_opt("kubernetes").await.map_err(|e| e.to_string())? {
            services.push(s);
        }
    }
    out.services = service_env(&services, ns, links);
    Ok(out)
}

/// The `InvalidEnvironmentVariableNames` warnings for `c`'s envFrom (keys that, with
/// their prefix, are no variable names, skipped as upstream skips them).
pub fn invalid_key_warnings(pod: &Pod, c: &Container, src: &Sources) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    for e in c.env_from.iter().flatten() {
        let prefix = e.prefix.clone().unwrap_or_default();
        let (kind, name, data) = if let Some(r) = &e.config_map_ref {
            ("configMap", r.name.clone(), src.config_map(&r.name))
        } else if let Some(r) = &e.secret_ref {
            ("secret", r.name.clone(), src.secret(&r.name))
        } else {
            continue;
        };
        let mut bad: Vec<String> = data
            .unwrap_or_default()
            .into_keys()
            .map(|k| format!("{prefix}{k}"))
            .filter(|k| !is_env_var_name(k))
            .collect();
        if bad.is_empty() {
            continue;
        }
        bad.sort();
        out.push(format!(
            "Keys [{}] from the EnvFrom {kind} {ns}/{name} were skipped since they are considered invalid environment variable names.",
            bad.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use kube::api::ObjectMeta;

    fn svc(ns: &str, name: &str, ip: &str, ports: &[(Option<&str>, i32, Option<&str>)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| ServicePort {
                            name: n.map(str::to_string),
                            port: *p,
                            protocol: proto.map(str::to_string),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn names() {
        for (n, ok) in [
            ("FOO", true),
            ("foo_bar", true),
            ("my.env-name", true),
            ("_x1", true),
            ("1badkey", false),
            ("", false),
            ("a b", false),
            ("a=b", false),
            (".", false),
            ("..x", false),
            ("p_1234", true),
        ] {
            assert_eq!(is_env_var_name(n), ok, "{n}");
        }
    }

    #[test]
    fn service_variables() {
        let services = [
            svc(
                "default",
                "kubernetes",
                "10.43.0.1",
                &[(Some("https"), 443, None)],
            ),
            svc(
                "shop",
                "web-front",
                "10.43.0.20",
                &[
                    (Some("http"), 80, Some("TCP")),
                    (Some("dns"), 53, Some("UDP")),
                ],
            ),
            svc("shop", "headless", "None", &[(None, 80, None)]),
            svc("other", "elsewhere", "10.43.0.30", &[(None, 80, None)]),
        ];
        let got: HashMap<String, String> =
            service_env(&services, "shop", true).into_iter().collect();
        let want = [
            ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.43.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.43.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.43.0.1"),
            ("WEB_FRONT_SERVICE_HOST", "10.43.0.20"),
            ("WEB_FRONT_SERVICE_PORT", "80"),
            ("WEB_FRONT_SERVICE_PORT_HTTP", "80"),
            ("WEB_FRONT_SERVICE_PORT_DNS", "53"),
            ("WEB_FRONT_PORT", "tcp://10.43.0.20:80"),
            ("WEB_FRONT_PORT_80_TCP", "tcp://10.43.0.20:80"),
            ("WEB_FRONT_PORT_53_UDP", "udp://10.43.0.20:53"),
            ("WEB_FRONT_PORT_53_UDP_PROTO", "udp"),
            ("WEB_FRONT_PORT_53_UDP_PORT", "53"),
            ("WEB_FRONT_PORT_53_UDP_ADDR", "10.43.0.20"),
        ];
        for (k, v) in want {
            assert_eq!(got.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(got.len(), 8 + 13, "{got:#?}");
        // Links off: only the kubernetes service.
        let off = service_env(&services, "shop", false);
        assert!(off.iter().all(|(k, _)| k.starts_with("KUBERNETES_")));
        assert_eq!(off.len(), 8);
        // A pod in default with its own kubernetes service: one set of variables.
        assert_eq!(service_env(&services[..1], "default", true).len(), 8);
    }
}
