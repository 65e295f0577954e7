//! The test images (built offline by scripts/images.sh) and where the agents get them:
//! pulled from a docker-registry on loopback (the machine's shared one, or one of a
//! test's own), or imported from archives (k3s's air-gap convention).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::ok;

/// Where scripts/images.sh put the offline images (`RKUBE_IMAGES_DIR` overrides).
pub fn images_dir() -> PathBuf {
    std::env::var_os("RKUBE_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/images"))
}

fn image_of(var: &str) -> String {
    let env = std::fs::read_to_string(images_dir().join("images.env"))
        .expect("target/images/images.env: run `scripts/images.sh` (make test does it)");
    env.lines()
        .find_map(|l| l.strip_prefix(var)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{var} in images.env: run `scripts/images.sh`"))
        .trim()
        .to_string()
}

/// The busybox image scripts/images.sh built.
pub fn busybox() -> String {
    image_of("RKUBE_BUSYBOX_IMAGE")
}

/// The test server image scripts/images.sh built: agnhost's role, with its subcommands
/// (`netexec`, `serve-hostname`, `pause`) as the container's args.
pub fn testserver_image() -> String {
    image_of("RKUBE_TESTSERVER_IMAGE")
}

/// The pause image scripts/images.sh built (the sandbox image of rkube's containerd).
pub fn pause_image() -> String {
    image_of("RKUBE_PAUSE_IMAGE")
}

/// Copies the image archives of `target/images/` into `<agent_dir>/images/`, which an
/// agent imports at start.
pub fn seed_images(agent_dir: &Path) {
    let images = images_dir();
    assert!(
        images.join("pause.tar").exists(),
        "{} is missing: run `scripts/images.sh` (make test does it)",
        images.join("pause.tar").display()
    );
    let to = agent_dir.join("images");
    std::fs::create_dir_all(&to).expect("agent images dir");
    for e in std::fs::read_dir(&images).expect("images dir").flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "tar") {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy an image archive");
        }
    }
}

/// Whether a registry answers `GET /v2/` at `host:port`.
fn answers(addr: &str) -> bool {
    let Ok(sock) = addr.parse::<std::net::SocketAddr>() else {
        return false;
    };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// The machine's test registry (`make test` starts it with `scripts/registry.sh ensure`
/// and pushes the images with `scripts/images.sh --push`), as `host:port`:
/// `RKUBE_REGISTRY`, or 127.0.0.1:5050.
pub fn shared_registry() -> String {
    let addr = std::env::var("RKUBE_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5050".into());
    assert!(
        answers(&addr),
        "no image registry answers on {addr}: run `scripts/registry.sh ensure && scripts/images.sh --push {addr}` (make test does it)"
    );
    addr
}

/// Writes a k3s registries.yaml under `dir` that mirrors docker.io to `endpoint`
/// (`http://host:port`); its path.
pub fn registries_yaml(dir: &Path, endpoint: &str) -> PathBuf {
    let yaml = dir.join("registries.yaml");
    std::fs::write(
        &yaml,
        format!("mirrors:\n  docker.io:\n    endpoint:\n      - \"{endpoint}\"\n"),
    )
    .expect("write registries.yaml");
    yaml
}

/// A registry of a test's own (scripts/registry.sh: Debian's docker-registry, storage
/// in a temporary folder), stopped on drop (its own PID file).
pub struct Registry {
    dir: tempfile::TempDir,
    /// `host:port`.
    pub addr: String,
}

impl Registry {
    /// On loopback.
    pub fn start() -> Registry {
        Self::start_on("127.0.0.1")
    }

    /// Listening on `ip` (an address of this network namespace).
    pub fn start_on(ip: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .arg(port.to_string())
            .env("RKUBE_REGISTRY_ADDR", ip)
            .output()
            .expect("registry.sh runs");
        let r = Registry {
            dir,
            addr: format!("{ip}:{port}"),
        };
        ok(&out, "scripts/registry.sh start");
        r
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Pushes `<images_dir>/<archive>.tar`'s image `reference` as `path` (e.g.
    /// `rkube/busybox:1.35`, as pulled through a docker.io mirror).
    pub fn push(&self, archive: &str, reference: &str, path: &str) {
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .arg(format!(
                "oci-archive:{}:{reference}",
                images_dir().join(format!("{archive}.tar")).display()
            ))
            .arg(format!("docker://{}/{path}", self.addr))
            .output()
            .expect("skopeo runs");
        ok(&out, &format!("skopeo copy {archive} to {}", self.addr));
    }

    /// Pushes an image built by scripts/images.sh under its own name (docker.io/ dropped).
    pub fn push_built(&self, archive: &str, reference: &str) {
        let path = reference.strip_prefix("docker.io/").unwrap_or(reference);
        self.push(archive, reference, path);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/registry.sh")
}
