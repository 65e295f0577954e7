#!/usr/bin/env bash
# Installs what building and testing rkube needs on a Debian machine, once: Debian
# packages (only those missing) and the Rust toolchain's components. Safe to re-run.
set -euo pipefail

PACKAGES=(gcc make pkg-config ca-certificates protobuf-compiler libprotobuf-dev etcd-server etcd-client)

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

if ! command -v cargo >/dev/null; then
    echo "deps: cargo is missing: install Rust with rustup (https://rustup.rs) and re-run" >&2
    exit 1
fi
if ! ls /usr/lib/google-cloud-sdk/bin/kubectl.1.* >/dev/null 2>&1 && ! command -v kubectl >/dev/null; then
    echo "deps: kubectl is missing: the end-to-end tests drive stock kubectl (1.27..1.33)" >&2
    exit 1
fi
