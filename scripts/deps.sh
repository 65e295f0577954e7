#!/usr/bin/env bash
# Installs what building and testing rkube needs on a Debian machine, once: Debian
# packages (only those missing) and the Rust toolchain's components. Safe to re-run.
set -euo pipefail

PACKAGES=(gcc make pkg-config ca-certificates protobuf-compiler libprotobuf-dev etcd-server etcd-client
    containerd runc containernetworking-plugins docker-registry busybox-static umoci skopeo file bzip2
    curl iproute2 util-linux haproxy)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Debian's docker-registry (and containerd) come with a service that the package starts
# on install where services may start: the registry would then hold *:5000. The tests run
# their own registry (scripts/registry.sh, loopback) and containerd (own socket, root and
# state: the packaged one is harmless), so only the packaged registry is stopped/disabled.
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ -d /run/systemd/system ]; then
    if systemctl is-enabled --quiet docker-registry 2>/dev/null || systemctl is-active --quiet docker-registry 2>/dev/null; then
        echo "deps: disabling the packaged docker-registry service (it would hold port 5000)"
        $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
elif [ -f /var/run/docker-registry.pid ] && kill -0 "$(cat /var/run/docker-registry.pid)" 2>/dev/null; then
    echo "deps: stopping the packaged docker-registry (sysvinit; it holds port 5000)"
    $SUDO /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi

if ! command -v cargo >/dev/null; then
    echo "deps: cargo is missing: install Rust with rustup (https://rustup.rs) and re-run" >&2
    exit 1
fi
if ! ls /usr/lib/google-cloud-sdk/bin/kubectl.1.* >/dev/null 2>&1 && ! command -v kubectl >/dev/null; then
    echo "deps: kubectl is missing: the end-to-end tests drive stock kubectl (1.27..1.33)" >&2
    exit 1
fi
