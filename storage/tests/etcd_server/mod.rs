//! A real etcd (3.4, as Debian ships it) on loopback for the storage tests.
//!
//! Each [`EtcdServer`] is its own etcd process with a data directory in a temporary
//! directory and free loopback ports; it is killed when dropped.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use storage::etcd::{EtcdOptions, EtcdStore};

/// Certificates for a TLS etcd (PEM files in the server's directory).
pub struct Tls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub client_port: u16,
    peer_port: u16,
    pub tls: Option<Tls>,
}

/// The etcd binary (`$RKUBE_TEST_ETCD`, else `etcd` on PATH or in /usr/bin), or a failure
/// telling how to install it.
fn etcd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RKUBE_TEST_ETCD") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            panic!(
                "etcd is not installed at RKUBE_TEST_ETCD={}: the etcd storage tests need a real \
                 etcd 3.4+; run `make deps` (it installs Debian's etcd-server)",
                p.display()
            );
        }
        return p;
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file());
    match found {
        Some(p) => p,
        None => panic!(
            "etcd is not installed (no `etcd` on PATH or in /usr/bin): the etcd storage tests \
             need a real etcd 3.4+; run `make deps` (it installs Debian's etcd-server)"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl EtcdServer {
    /// A plain-http etcd.
    pub async fn start() -> EtcdServer {
        Self::start_with(false).await
    }

    /// An etcd serving https and requiring client certificates signed by its CA.
    pub async fn start_tls() -> EtcdServer {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> EtcdServer {
        let dir = tempfile::tempdir().unwrap();
        let tls = tls.then(|| make_certs(dir.path()));
        let mut server = EtcdServer {
            child: None,
            dir,
            client_port: 0,
            peer_port: 0,
            tls,
        };
        // Ports are picked free and then handed to etcd: another process may take one in
        // between, so a start that fails is retried on other ports.
        for attempt in 0..5 {
            server.client_port = free_port();
            server.peer_port = free_port();
            server.spawn();
            if server.wait_ready(Duration::from_secs(30)).await {
                return server;
            }
            server.kill();
            if attempt == 4 {
                panic!("etcd did not start; its log:\n{}", server.log());
            }
        }
        unreachable!()
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.client_port)
    }

    /// Options for a store on this etcd: short timeouts, no automatic compaction.
    pub fn options(&self) -> EtcdOptions {
        let mut opts = EtcdOptions {
            endpoints: vec![self.endpoint()],
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            compaction_interval: Duration::ZERO,
            watch_progress_interval: Duration::from_secs(1),
            ..Default::default()
        };
        if let Some(tls) = &self.tls {
            opts.ca_file = Some(tls.ca.clone());
            opts.cert_file = Some(tls.client_cert.clone());
            opts.key_file = Some(tls.client_key.clone());
        }
        opts
    }

    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(self.options()).await.unwrap()
    }

    fn spawn(&mut self) {
        let bin = etcd_binary();
        let data = self.dir.path().join("data");
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let client = self.endpoint();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("--name=default")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .arg("--heartbeat-interval=20")
            .arg("--election-timeout=200")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .arg("--log-level=warn");
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--cert-file={}", tls.server_cert.display()))
                .arg(format!("--key-file={}", tls.server_key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                .arg("--client-cert-auth");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd: {e}; run `make deps`"));
        self.child = Some(child);
    }

    /// Waits until etcd answers a request; false if it exited or did not answer in time.
    async fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut opts = self.options();
        opts.connect_timeout = Duration::from_secs(1);
        opts.request_timeout = Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().unwrap().is_some() {
                    return false;
                }
            }
            if EtcdStore::connect(opts.clone()).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Kills etcd (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        assert!(
            self.wait_ready(Duration::from_secs(30)).await,
            "etcd did not restart; its log:\n{}",
            self.log()
        );
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("etcd is running").id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {pid} failed");
    }

    /// Freezes etcd (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a paused etcd (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused etcd dies of SIGKILL too.
            self.kill();
        }
    }
}

fn make_certs(dir: &Path) -> Tls {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "etcd-test-ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), &ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(Vec::<String>::new()).unwrap();
    server.subject_alt_names = vec![
        SanType::IpAddress("127.0.0.1".parse().unwrap()),
        SanType::DnsName("localhost".try_into().unwrap()),
    ];
    server.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rkube");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();

    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    Tls {
        ca: write("ca.pem", ca_cert.pem()),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
    }
}
