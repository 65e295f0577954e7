//! k3s's `registries.yaml` (`--private-registry`): registry mirrors and per-registry
//! credentials and TLS. Mirrors and TLS become containerd `certs.d/<host>/hosts.toml`
//! files (the CRI plugin's `config_path`); credentials go with each CRI PullImage of an
//! image from that registry (or from a mirror of it). Pure apart from [`load`] and
//! [`write_hosts`].
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000"]
//! configs:
//!   "127.0.0.1:5000":
//!     auth: {username: u, password: p}
//!     tls: {insecure_skip_verify: true, ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::Error;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// The endpoints that serve a registry's images, tried in order before the registry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// Credentials and TLS of one registry host (`host` or `host:port`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub auth: Option<Auth>,
    pub tls: Option<Tls>,
}

/// Registry credentials (k3s's `auth` block).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub identity_token: String,
}

/// TLS towards a registry host.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    #[serde(default)]
    pub insecure_skip_verify: bool,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

/// Credentials for one pull: the registry host they belong to (`None`: any host of the
/// pull, as for `docker.io`) and the [`Auth`].
#[derive(Clone, Debug, PartialEq)]
pub struct PullAuth {
    pub server_address: Option<String>,
    pub auth: Auth,
}

/// Reads `path`; a missing file is an empty configuration. A parse error names the file
/// and the line.
pub fn load(path: &Path) -> Result<Registries, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Registries::default()),
        Err(e) => return Err(Error::io(format!("read {}", path.display()))(e)),
    };
    parse(&text).map_err(|e| Error::Setup(format!("{}: {e}", path.display())))
}

/// Parses the YAML text (errors say the line).
pub fn parse(text: &str) -> Result<Registries, String> {
    if text.trim().is_empty() {
        return Ok(Registries::default());
    }
    let r: Registries = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(l) => format!("line {}: {e}", l.line()),
        None => e.to_string(),
    })?;
    for (host, m) in &r.mirrors {
        for ep in &m.endpoint {
            endpoint_url(ep).map_err(|e| format!("mirrors.{host:?}: {e}"))?;
        }
    }
    Ok(r)
}

/// `http(s)://host[:port][/path]` from an endpoint (no scheme means https).
fn endpoint_url(ep: &str) -> Result<String, String> {
    let ep = ep.trim().trim_end_matches('/');
    let url = if ep.contains("://") {
        ep.to_string()
    } else {
        format!("https://{ep}")
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("endpoint {ep:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "endpoint {ep:?} must be http://host[:port] or https://host[:port]"
        ));
    }
    Ok(url)
}

/// `host[:port]` of an endpoint URL.
fn endpoint_host(url: &str) -> String {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// The registry host of an image reference (`busybox` → `docker.io`).
pub fn image_registry(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            if first == "index.docker.io" || first == "registry-1.docker.io" {
                "docker.io".into()
            } else {
                first.to_string()
            }
        }
        _ => "docker.io".into(),
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// TOML lines for a host's TLS settings (containerd's hosts.toml keys).
fn tls_lines(tls: Option<&Tls>, indent: &str) -> String {
    let mut out = String::new();
    let Some(t) = tls else { return out };
    if t.insecure_skip_verify {
        out.push_str(&format!("{indent}skip_verify = true\n"));
    }
    if let Some(ca) = &t.ca_file {
        out.push_str(&format!("{indent}ca = {}\n", quote(ca)));
    }
    match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => out.push_str(&format!(
            "{indent}client = [[{}, {}]]\n",
            quote(c),
            quote(k)
        )),
        (Some(c), None) => out.push_str(&format!("{indent}client = [{}]\n", quote(c))),
        _ => {}
    }
    out
}

impl Registries {
    /// Whether the file configures nothing.
    pub fn is_empty(&self) -> bool {
        self.mirrors.is_empty() && self.configs.is_empty()
    }

    /// The `certs.d` directory names (a registry host, `_default` for `*`) and their
    /// `hosts.toml`: every mirrored registry, and every configured host with TLS settings.
    pub fn hosts_toml(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut registries: Vec<&String> = self.mirrors.keys().collect();
        for (host, c) in &self.configs {
            if c.tls.is_some() && !self.mirrors.contains_key(host) {
                registries.push(host);
            }
        }
        for reg in registries {
            let dir = if reg == "*" {
                "_default".to_string()
            } else {
                reg.clone()
            };
            let mut toml =
                String::from("# Written by rkube from registries.yaml at every start.\n");
            if reg != "*" {
                let server = if reg == "docker.io" {
                    "https://registry-1.docker.io".to_string()
                } else {
                    format!("https://{reg}")
                };
                toml.push_str(&format!("server = {}\n", quote(&server)));
                toml.push_str(&tls_lines(
                    self.configs.get(reg).and_then(|c| c.tls.as_ref()),
                    "",
                ));
            }
            for ep in self
                .mirrors
                .get(reg)
                .map(|m| &m.endpoint[..])
                .unwrap_or(&[])
            {
                let Ok(url) = endpoint_url(ep) else { continue };
                let tls = self
                    .configs
                    .get(&endpoint_host(&url))
                    .and_then(|c| c.tls.as_ref());
                toml.push_str(&format!(
                    "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n{}",
                    quote(&url),
                    tls_lines(tls, "  ")
                ));
            }
            out.insert(dir, toml);
        }
        out
    }

    /// Credentials for pulling `image`: its registry's, else those of the first of its
    /// mirrors that has some (bound to that mirror's host).
    pub fn auth_for(&self, image: &str) -> Option<PullAuth> {
        let reg = image_registry(image);
        if let Some(a) = self.configs.get(&reg).and_then(|c| c.auth.clone()) {
            let server_address = (reg != "docker.io").then_some(reg);
            return Some(PullAuth {
                server_address,
                auth: a,
            });
        }
        let mirror = self.mirrors.get(&reg).or_else(|| self.mirrors.get("*"))?;
        mirror.endpoint.iter().find_map(|ep| {
            let host = endpoint_host(&endpoint_url(ep).ok()?);
            let a = self.configs.get(&host)?.auth.clone()?;
            Some(PullAuth {
                server_address: Some(host),
                auth: a,
            })
        })
    }
}

/// Replaces the `certs.d` tree with the hosts of `r` (a host removed from the file loses
/// its directory).
pub fn write_hosts(certs_d: &Path, r: &Registries) -> Result<(), Error> {
    if certs_d.exists() {
        std::fs::remove_dir_all(certs_d)
            .map_err(Error::io(format!("clear {}", certs_d.display())))?;
    }
    std::fs::create_dir_all(certs_d).map_err(Error::io(format!("create {}", certs_d.display())))?;
    for (dir, toml) in r.hosts_toml() {
        let d = certs_d.join(dir);
        std::fs::create_dir_all(&d).map_err(Error::io(format!("create {}", d.display())))?;
        let f = d.join("hosts.toml");
        std::fs::write(&f, toml).map_err(Error::io(format!("write {}", f.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (registries.yaml, expected certs.d/<dir>/hosts.toml files)
    fn check(yaml: &str, want: &[(&str, &str)]) {
        let r = parse(yaml).unwrap();
        let got = r.hosts_toml();
        let got: Vec<(&str, &str)> = got
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    v.strip_prefix("# Written by rkube from registries.yaml at every start.\n")
                        .unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "for:\n{yaml}");
    }

    #[test]
    fn mirrors_and_tls_render_as_containerd_hosts_toml() {
        check("", &[]);
        check(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:5000\"]\n",
            &[(
                "docker.io",
                "server = \"https://registry-1.docker.io\"\n\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            )],
        );
        check(
            r#"
mirrors:
  registry.example.com:
    endpoint:
      - "https://mirror.example.com:8443/"
      - mirror2.example.com
  "*":
    endpoint: ["http://10.0.0.1:5000"]
configs:
  "mirror.example.com:8443":
    tls:
      ca_file: /etc/ssl/ca.pem
      cert_file: /etc/ssl/c.pem
      key_file: /etc/ssl/k.pem
  "registry.example.com":
    tls: {insecure_skip_verify: true}
  "other.example.com":
    tls: {ca_file: /o.pem}
    auth: {username: u, password: p}
  "auth-only.example.com":
    auth: {username: u, password: p}
"#,
            &[
                (
                    "_default",
                    "\n[host.\"http://10.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
                ),
                (
                    "mirror.example.com:8443",
                    "server = \"https://mirror.example.com:8443\"\nca = \"/etc/ssl/ca.pem\"\n\
                     client = [[\"/etc/ssl/c.pem\", \"/etc/ssl/k.pem\"]]\n",
                ),
                ("other.example.com", "server = \"https://other.example.com\"\nca = \"/o.pem\"\n"),
                (
                    "registry.example.com",
                    "server = \"https://registry.example.com\"\nskip_verify = true\n\n\
                     [host.\"https://mirror.example.com:8443\"]\n  capabilities = [\"pull\", \"resolve\"]\n  \
                     ca = \"/etc/ssl/ca.pem\"\n  client = [[\"/etc/ssl/c.pem\", \"/etc/ssl/k.pem\"]]\n\n\
                     [host.\"https://mirror2.example.com\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
                ),
            ],
        );
    }

    #[test]
    fn credentials_follow_the_image_registry_or_its_mirror() {
        let r = parse(
            r#"
mirrors:
  docker.io: {endpoint: ["http://127.0.0.1:5000"]}
configs:
  "127.0.0.1:5000": {auth: {username: m, password: mp}}
  "private.example.com": {auth: {username: u, password: p}}
"#,
        )
        .unwrap();
        let user = |image: &str| {
            r.auth_for(image)
                .map(|a| (a.server_address, a.auth.username))
        };
        // (image, Some((server_address, username)) of the credentials sent)
        type Want = Option<(Option<&'static str>, &'static str)>;
        let cases: &[(&str, Want)] = &[
            ("busybox", Some((Some("127.0.0.1:5000"), "m"))),
            (
                "docker.io/library/busybox:1",
                Some((Some("127.0.0.1:5000"), "m")),
            ),
            (
                "private.example.com/a/b:1",
                Some((Some("private.example.com"), "u")),
            ),
            ("quay.io/a/b:1", None),
        ];
        for (image, want) in cases {
            let want = want.map(|(s, u)| (s.map(String::from), u.to_string()));
            assert_eq!(user(image), want, "{image}");
        }
        assert_eq!(image_registry("localhost/x"), "localhost");
        assert_eq!(image_registry("127.0.0.1:5000/x/y:1"), "127.0.0.1:5000");
        assert_eq!(image_registry("library/busybox"), "docker.io");
    }

    #[test]
    fn errors_name_the_line() {
        for (yaml, want) in [
            ("mirrors:\n  docker.io:\n    endpoints: [x]\n", "line 3"),
            (
                "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
                "must be http://",
            ),
            (
                "configs:\n  a:\n    tls: {insecure_skip_verify: maybe}\n",
                "line 3",
            ),
            ("mirrors: [\n", "line"),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(want), "{yaml:?}: {e}");
        }
    }

    #[test]
    fn a_missing_file_is_empty_and_a_bad_one_names_itself() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(&d.path().join("none.yaml")).unwrap().is_empty());
        let f = d.path().join("registries.yaml");
        std::fs::write(&f, "mirrors:\n  x: {endpoint: 3}\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: line 2", f.display())), "{e}");
        let certs = d.path().join("certs.d");
        std::fs::create_dir_all(certs.join("gone")).unwrap();
        write_hosts(
            &certs,
            &parse("mirrors: {docker.io: {endpoint: [\"http://h:1\"]}}").unwrap(),
        )
        .unwrap();
        assert!(!certs.join("gone").exists());
        assert!(certs.join("docker.io/hosts.toml").exists());
    }
}
