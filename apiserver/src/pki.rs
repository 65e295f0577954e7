//! The cluster's certificates and tokens, generated on first start under
//! `<data-dir>/server/tls` and reused afterwards (as k3s lays them out).

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Paths of the files that make up the cluster's PKI.
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// The API server's client certificate for kubelets (kubeadm's
    /// `apiserver-kubelet-client`, k3s's `client-kube-apiserver`).
    pub kubelet_client_cert: PathBuf,
    pub kubelet_client_key: PathBuf,
    /// The node join token (`<data-dir>/server/token`).
    pub token: PathBuf,
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = time_now();
    params.not_before = now - std::time::Duration::from_secs(3600);
    params.not_after = now + std::time::Duration::from_secs(years as u64 * 365 * 86400);
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn random_hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
        .collect()
}

impl Pki {
    pub fn at(data_dir: &Path) -> Pki {
        let dir = data_dir.join("server").join("tls");
        Pki {
            ca_cert: dir.join("server-ca.crt"),
            ca_key: dir.join("server-ca.key"),
            serving_cert: dir.join("serving-kube-apiserver.crt"),
            serving_key: dir.join("serving-kube-apiserver.key"),
            admin_cert: dir.join("client-admin.crt"),
            admin_key: dir.join("client-admin.key"),
            kubelet_client_cert: dir.join("client-kube-apiserver.crt"),
            kubelet_client_key: dir.join("client-kube-apiserver.key"),
            token: data_dir.join("server").join("token"),
            dir,
        }
    }

    /// Creates whatever is missing; keeps what exists. `sans` are the serving certificate's
    /// extra names and addresses.
    pub fn ensure(data_dir: &Path, sans: &[String]) -> Result<Pki> {
        let pki = Pki::at(data_dir);
        fs::create_dir_all(&pki.dir)
            .with_context(|| format!("cannot create {}", pki.dir.display()))?;

        let ca_key = if pki.ca_cert.exists() && pki.ca_key.exists() {
            KeyPair::from_pem(&fs::read_to_string(&pki.ca_key)?)
                .context("the CA key is unreadable; remove the tls directory to regenerate")?
        } else {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            let mut dn = DistinguishedName::new();
            dn.push(
                DnType::CommonName,
                format!("rkube-server-ca@{}", chrono_secs()),
            );
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            validity(&mut params, 10);
            let cert = params.self_signed(&key)?;
            fs::write(&pki.ca_cert, cert.pem())?;
            write_private(&pki.ca_key, &key.serialize_pem())?;
            key
        };
        let issuer = Issuer::from_ca_cert_pem(&fs::read_to_string(&pki.ca_cert)?, &ca_key)
            .context("the CA certificate is unreadable; remove the tls directory to regenerate")?;

        if !(pki.serving_cert.exists() && pki.serving_key.exists()) {
            let mut names: Vec<String> = vec![
                "kubernetes".into(),
                "kubernetes.default".into(),
                "kubernetes.default.svc".into(),
                "kubernetes.default.svc.cluster.local".into(),
                "localhost".into(),
                "127.0.0.1".into(),
                "::1".into(),
            ];
            for s in sans {
                if !names.contains(s) {
                    names.push(s.clone());
                }
            }
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.subject_alt_names = names
                .iter()
                .map(|n| match n.parse::<IpAddr>() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) => Ok(SanType::DnsName(n.as_str().try_into()?)),
                })
                .collect::<Result<Vec<_>, rcgen::Error>>()?;
            params
                .distinguished_name
                .push(DnType::CommonName, "kube-apiserver");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            validity(&mut params, 1);
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            fs::write(&pki.serving_cert, cert.pem())?;
            write_private(&pki.serving_key, &key.serialize_pem())?;
        }

        if !(pki.admin_cert.exists() && pki.admin_key.exists()) {
            let (cert, key) = client_cert(&issuer, "system:admin", &["system:masters"])?;
            fs::write(&pki.admin_cert, cert)?;
            write_private(&pki.admin_key, &key)?;
        }

        if !(pki.kubelet_client_cert.exists() && pki.kubelet_client_key.exists()) {
            let (cert, key) = client_cert(
                &issuer,
                "kube-apiserver-kubelet-client",
                &["system:masters"],
            )?;
            fs::write(&pki.kubelet_client_cert, cert)?;
            write_private(&pki.kubelet_client_key, &key)?;
        }

        if !pki.token.exists() {
            let ca_pem = fs::read(&pki.ca_cert)?;
            // k3s's secure token format: K10<sha256 of the CA>::server:<secret>
            let digest = sha256_hex(&ca_pem);
            write_private(
                &pki.token,
                &format!("K10{digest}::server:{}\n", random_hex(32)),
            )?;
        }
        Ok(pki)
    }

    /// The node join token, trimmed.
    pub fn read_token(&self) -> Result<String> {
        Ok(fs::read_to_string(&self.token)?.trim().to_string())
    }
}

/// A client certificate and key (PEM) for `user` in `groups`, signed by the CA.
pub fn client_cert(
    issuer: &Issuer<'_, &KeyPair>,
    user: &str,
    groups: &[&str],
) -> Result<(String, String)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    for g in groups {
        params.distinguished_name.push(DnType::OrganizationName, *g);
    }
    params.distinguished_name.push(DnType::CommonName, user);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    validity(&mut params, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn chrono_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// SHA-256 of `data` as lower-case hex (for the k3s token's CA hash).
fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a kubeconfig for the admin user at `path` with `mode`.
pub fn write_kubeconfig(pki: &Pki, server_url: &str, path: &Path, mode: u32) -> Result<()> {
    use base64::Engine;
    let b64 = |p: &Path| -> Result<String> {
        Ok(base64::engine::general_purpose::STANDARD.encode(fs::read(p)?))
    };
    let cfg = format!(
        "apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server_url}
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = b64(&pki.ca_cert)?,
        cert = b64(&pki.admin_cert)?,
        key = b64(&pki.admin_key)?,
    );
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, cfg).with_context(|| format!("cannot write {}", tmp.display()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path)?;
    Ok(())
}
