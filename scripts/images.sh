#!/usr/bin/env bash
# Builds rkube's test images offline, as OCI archives that `ctr -n k8s.io images import`
# takes and that name their images in full (the archive's org.opencontainers.image.ref.name):
#   $RKUBE_IMAGES_DIR/pause.tar    docker.io/rkube/pause:3.10      static scripts/pause.c
#   $RKUBE_IMAGES_DIR/busybox.tar  docker.io/rkube/busybox:<M.m>   upstream's busybox of the
#                                  installed busybox-static's version, built from source
#   $RKUBE_IMAGES_DIR/nonewprivs.tar  docker.io/rkube/nonewprivs:1.3  static scripts/nnp.c,
#                                  setuid root (upstream's nonewprivs image)
#   $RKUBE_IMAGES_DIR/testserver.tar  docker.io/rkube/testserver:1.0  static testserver/ crate
#                                  (agnhost's role: entrypoint /agnhost, default args pause;
#                                  busybox's applets beside it)
#   $RKUBE_IMAGES_DIR/nautilus.tar  docker.io/rkube/nautilus:1.7  the testserver image with
#                                  data.json and nautilus.jpg in / (upstream's Update Demo
#                                  image: agnhost's plus those two files)
# and $RKUBE_IMAGES_DIR/images.env with RKUBE_PAUSE_IMAGE / RKUBE_BUSYBOX_IMAGE /
# RKUBE_TESTSERVER_IMAGE / RKUBE_NONEWPRIVS_IMAGE / RKUBE_NAUTILUS_IMAGE (the refs).
# An image whose inputs (this script, pause.c, the busybox binary, testserver's sources)
# are unchanged is kept.
#
#   scripts/images.sh [--force] [--push HOST:PORT]
#
# --push copies the images to a plain-HTTP registry (e.g. one from scripts/registry.sh)
# as HOST:PORT/rkube/pause:3.10 and HOST:PORT/rkube/busybox:<M.m>.
# Needs gcc, make, bzip2, umoci, skopeo and busybox-static: scripts/deps.sh installs them;
# the busybox source comes from Debian's archive (`apt-get source`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${RKUBE_IMAGES_DIR:-$here/../target/images}"
PAUSE_TAG=3.10
TESTSERVER_TAG=1.0
NONEWPRIVS_TAG=1.3
NAUTILUS_TAG=1.7

force=0; push=""
while (($#)); do
    case "$1" in
        --force) force=1 ;;
        --push) [ $# -ge 2 ] || { echo "images: --push needs HOST:PORT" >&2; exit 2; }; push="$2"; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "images: unknown argument '$1' (usage: $0 [--force] [--push HOST:PORT])" >&2; exit 2 ;;
    esac
    shift
done

for tool in gcc umoci skopeo sha256sum; do
    command -v "$tool" >/dev/null || { echo "images: $tool is missing: run scripts/deps.sh" >&2; exit 1; }
done
BUSYBOX=/bin/busybox
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
    echo "images: busybox-static is not installed (a dynamic busybox would not run in the image): run scripts/deps.sh" >&2
    exit 1
fi
# 1:1.35.0-4+deb12u1+b1 -> 1.35
BUSYBOX_TAG="$(dpkg-query -W -f='${Version}' busybox-static | sed -E 's/^[0-9]+://; s/^([0-9]+\.[0-9]+).*/\1/')"

# upstream_busybox DIR: prints the path of upstream's busybox of the installed
# busybox-static's version (1.35.0), built static from upstream's release tarball (Debian's
# .orig.tar, fetched with `apt-get source`) with defconfig and the settings Docker's busybox
# image adds, cached in DIR. Not Debian's binary: Debian patches ash
# (revert-9c143ce52da11ec3d21a3491c3749841d3dc10f0.patch) to drop, at start, environment
# variables whose names are not shell names ("p-data-1", "a-b"), so `sh -c env` loses them;
# upstream's ash, hence the busybox image upstream's tests use, passes them on (the envFrom
# tests' "data-1=value-1"). Fails (non-zero) when the source cannot be had or built.
upstream_busybox() {
    local dir="$1" ver srcver work
    ver="$(dpkg-query -W -f='${Version}' busybox-static | sed -E 's/^[0-9]+://; s/-[^-]*$//')"
    srcver="$(dpkg-query -W -f='${source:Version}' busybox-static)"
    if [ -x "$dir/$ver/busybox" ]; then echo "$dir/$ver/busybox"; return 0; fi
    work="$dir/.work"; rm -rf "$work"; mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src" "$work/parts"
    # The machine's own Debian sources, as deb-src, in a private apt state (the system's
    # lists and configuration are left alone).
    : >"$work/sources.list"
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$work/parts/$(basename "$f")"
    done
    [ -f /etc/apt/sources.list ] && sed -nE 's/^deb[[:space:]]/deb-src /p' /etc/apt/sources.list >"$work/sources.list"
    local apt=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Get::List-Cleanup=0 -qq)
    apt-get "${apt[@]}" update >&2 || return 1
    (cd "$work/src" && { apt-get "${apt[@]}" source --download-only "busybox=$srcver" >&2 \
        || apt-get "${apt[@]}" source --download-only busybox >&2; }) || return 1
    local orig; orig="$(ls "$work/src"/busybox_"$ver".orig.tar.* 2>/dev/null | head -1)"
    [ -n "$orig" ] || { echo "images: no busybox_$ver.orig.tar.* among Debian's busybox sources" >&2; return 1; }
    tar -xf "$orig" -C "$work" || return 1
    (
        cd "$work/busybox-$ver" &&
        make defconfig >/dev/null &&
        for c in STATIC AR FEATURE_AR_CREATE FEATURE_AR_LONG_FILENAMES; do
            sed -i -E "s/^# CONFIG_$c is not set\$/CONFIG_$c=y/" .config
        done &&
        sed -i -E 's/^CONFIG_LAST_SUPPORTED_WCHAR=.*/CONFIG_LAST_SUPPORTED_WCHAR=0/' .config &&
        make oldconfig </dev/null >/dev/null &&
        make -j"$(nproc)" busybox >"$work/build.log" 2>&1
    ) || { echo "images: building busybox $ver failed (see $work/build.log)" >&2; return 1; }
    mkdir -p "$dir/$ver"
    cp "$work/busybox-$ver/busybox" "$dir/$ver/busybox"
    rm -rf "$work"
    echo "$dir/$ver/busybox"
}

PAUSE_REF="docker.io/rkube/pause:$PAUSE_TAG"
BUSYBOX_REF="docker.io/rkube/busybox:$BUSYBOX_TAG"
TESTSERVER_REF="docker.io/rkube/testserver:$TESTSERVER_TAG"
NONEWPRIVS_REF="docker.io/rkube/nonewprivs:$NONEWPRIVS_TAG"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# What an archive was built from; it is rebuilt when this changes.
inputs() { cat "$0" "$@" | sha256sum | cut -d' ' -f1; }

# build NAME REF ROOTFS-DIR UMOCI-CONFIG-ARGS...: a one-layer image from ROOTFS-DIR.
build() {
    local name="$1" ref="$2" rootfs="$3"; shift 3
    local work="$OUT/.build-$name"
    rm -rf "$work/oci"
    umoci init --layout "$work/oci"
    umoci new --image "$work/oci:$name"
    umoci insert --image "$work/oci:$name" "$rootfs" /
    umoci config --image "$work/oci:$name" --author rkube --history.created_by "scripts/images.sh" "$@"
    # Written aside and renamed, so an interrupted run never leaves a half archive.
    rm -f "$OUT/$name.tar.tmp"
    skopeo --insecure-policy copy -q "oci:$work/oci:$name" "oci-archive:$OUT/$name.tar.tmp:$ref"
    mv -f "$OUT/$name.tar.tmp" "$OUT/$name.tar"
    rm -rf "$work"
}

# --- pause -------------------------------------------------------------------------------
sum="$(inputs "$here/pause.c")"
if ((force)) || [ ! -f "$OUT/pause.tar" ] || [ "$(cat "$OUT/.pause.inputs" 2>/dev/null)" != "$sum" ]; then
    echo "images: building $PAUSE_REF"
    rootfs="$OUT/.build-pause/rootfs"
    rm -rf "$OUT/.build-pause"; mkdir -p "$rootfs"
    gcc -static -Os -Wall -o "$rootfs/pause" "$here/pause.c"
    strip "$rootfs/pause"
    # As upstream's pause image: runs as 65535:65535.
    build pause "$PAUSE_REF" "$rootfs" \
        --config.entrypoint /pause --config.user 65535:65535 --config.workingdir /
    echo "$sum" >"$OUT/.pause.inputs"
else
    echo "images: $PAUSE_REF is up to date ($OUT/pause.tar)"
fi

# --- nonewprivs --------------------------------------------------------------------------
sum="$(inputs "$here/nnp.c")"
if ((force)) || [ ! -f "$OUT/nonewprivs.tar" ] || [ "$(cat "$OUT/.nonewprivs.inputs" 2>/dev/null)" != "$sum" ]; then
    echo "images: building $NONEWPRIVS_REF"
    rootfs="$OUT/.build-nonewprivs/rootfs"
    rm -rf "$OUT/.build-nonewprivs"; mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp"
    chmod 1777 "$rootfs/tmp"
    gcc -static -Os -Wall -o "$rootfs/usr/local/bin/nnp" "$here/nnp.c"
    strip "$rootfs/usr/local/bin/nnp"
    # As upstream's: owned by root, setuid (chmod +s), the entrypoint.
    chown 0:0 "$rootfs/usr/local/bin/nnp"
    chmod 6755 "$rootfs/usr/local/bin/nnp"
    build nonewprivs "$NONEWPRIVS_REF" "$rootfs" \
        --config.entrypoint /usr/local/bin/nnp --config.workingdir /
    echo "$sum" >"$OUT/.nonewprivs.inputs"
else
    echo "images: $NONEWPRIVS_REF is up to date ($OUT/nonewprivs.tar)"
fi

# --- busybox -----------------------------------------------------------------------------
if UPSTREAM_BUSYBOX="$(upstream_busybox "$OUT/.busybox-upstream")"; then
    IMAGE_BUSYBOX="$UPSTREAM_BUSYBOX"
else
    echo "images: WARNING: upstream's busybox could not be built: the busybox image gets Debian's, whose sh drops environment variables named like 'p-data-1'" >&2
    IMAGE_BUSYBOX="$BUSYBOX"
fi
sum="$(inputs "$IMAGE_BUSYBOX")"
if ((force)) || [ ! -f "$OUT/busybox.tar" ] || [ "$(cat "$OUT/.busybox.inputs" 2>/dev/null)" != "$sum" ]; then
    echo "images: building $BUSYBOX_REF"
    rootfs="$OUT/.build-busybox/rootfs"
    rm -rf "$OUT/.build-busybox"; mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var,home,proc,sys,dev}
    chmod 1777 "$rootfs/tmp"; chmod 700 "$rootfs/root"
    cp "$IMAGE_BUSYBOX" "$rootfs/bin/busybox"
    # Every applet as a link to /bin/busybox at the path busybox itself gives it
    # (bin/sh, usr/bin/wget, usr/bin/nc, usr/bin/nslookup, bin/sleep, bin/cat, ...).
    "$IMAGE_BUSYBOX" --list-full | while read -r applet; do
        [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
        # As the busybox image upstream's tests use (Docker's busybox): every applet in
        # /bin too (e.g. /bin/sysctl, /bin/ip).
        [ -e "$rootfs/bin/${applet##*/}" ] || ln -s /bin/busybox "$rootfs/bin/${applet##*/}"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
    printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
    build busybox "$BUSYBOX_REF" "$rootfs" \
        --config.cmd sh --config.workingdir / \
        --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
    echo "$sum" >"$OUT/.busybox.inputs"
else
    echo "images: $BUSYBOX_REF is up to date ($OUT/busybox.tar)"
fi

# --- testserver --------------------------------------------------------------------------
# A std-only Rust binary linked statically (crt-static), beside a static busybox's
# applets (agnhost's image is Alpine's: tests exec cat, sh, nc ... in it).
root="$here/.."
sum="$(inputs "$IMAGE_BUSYBOX" "$root/testserver/Cargo.toml" $(find "$root/testserver/src" -type f -name '*.rs' | sort))"
if ((force)) || [ ! -f "$OUT/testserver.tar" ] || [ "$(cat "$OUT/.testserver.inputs" 2>/dev/null)" != "$sum" ]; then
    echo "images: building $TESTSERVER_REF"
    command -v cargo >/dev/null || { echo "images: cargo is missing (rustup)" >&2; exit 1; }
    triple=x86_64-unknown-linux-gnu
    (cd "$root" && RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build -q --release -p rkube-testserver --target "$triple")
    bin="$(cd "$root" && cargo metadata -q --format-version 1 --no-deps \
        | sed -E 's/.*"target_directory":"([^"]*)".*/\1/')/$triple/release/testserver"
    if ! file "$bin" | grep -q 'static'; then
        echo "images: $bin is not statically linked: $(file "$bin")" >&2; exit 1
    fi
    rootfs="$OUT/.build-testserver/rootfs"
    rm -rf "$OUT/.build-testserver"; mkdir -p "$rootfs/tmp"
    chmod 1777 "$rootfs/tmp"
    cp "$bin" "$rootfs/testserver"
    strip "$rootfs/testserver"
    # As agnhost's image: /agnhost the entrypoint (default args: pause), /agnhost-2 a link
    # to it (tests override the entrypoint with it and check argv[0]).
    cp "$rootfs/testserver" "$rootfs/agnhost"
    ln -s agnhost "$rootfs/agnhost-2"
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc}
    # The busybox image's (upstream's when it could be built): its sh finds commands
    # through PATH, as Alpine's does, so the image's nc (below) is the one tests run;
    # Debian's static busybox runs its own applets first.
    cp "$IMAGE_BUSYBOX" "$rootfs/bin/busybox"
    "$IMAGE_BUSYBOX" --list-full | while read -r applet; do
        [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
    done
    # agnhost's image has curl (hooks run `curl http://...`): a GET of the URL argument
    # through busybox's wget, its other arguments (curl's flags) ignored.
    # --connect-timeout / --max-time / -m become wget's -T.
    printf '%s\n' '#!/bin/sh' '# curl URL: busybox wget -q -O - URL (rkube testserver image)' \
        'url=""; t=""; next=""' \
        'for a in "$@"; do' \
        '  if [ -n "$next" ]; then [ "$next" = t ] && t="${a%%.*}"; next=""; continue; fi' \
        '  case "$a" in --connect-timeout|--max-time|-m) next=t ;; -o|-w|--interface|-H|-X|-d) next=x ;; -*) ;; *) url="$a" ;; esac' \
        'done' \
        'exec wget -q ${t:+-T "$t"} -O - "$url"' >"$rootfs/usr/bin/curl"
    chmod 755 "$rootfs/usr/bin/curl"
    # agnhost's image has netcat-openbsd: nc is the test server's (busybox's lacks -u/-z/-v).
    ln -sf /testserver "$rootfs/usr/bin/nc"
    # The DNS tests' probers (upstream's jessie-dnsutils: dig, getent; busybox has
    # hostname -i): the test server's.
    for tool in dig getent; do ln -sf /testserver "$rootfs/usr/bin/$tool"; done
    build testserver "$TESTSERVER_REF" "$rootfs" \
        --config.entrypoint /agnhost --config.cmd pause --config.workingdir / \
        --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
    echo "$sum" >"$OUT/.testserver.inputs"
else
    echo "images: $TESTSERVER_REF is up to date ($OUT/testserver.tar)"
fi

# --- nautilus ----------------------------------------------------------------------------
# Upstream's Update Demo image (e2e-test-images/nautilus): FROM agnhost, with data.json
# ({"image": "nautilus.jpg"}) and nautilus.jpg in its working directory, served by
# `test-webserver` (the tests' args). Here the testserver image's layer plus those files
# (the picture itself is a placeholder: the tests read only data.json).
NAUTILUS_REF="docker.io/rkube/nautilus:$NAUTILUS_TAG"
sum="$(inputs "$OUT/testserver.tar")"
if ((force)) || [ ! -f "$OUT/nautilus.tar" ] || [ "$(cat "$OUT/.nautilus.inputs" 2>/dev/null)" != "$sum" ]; then
    echo "images: building $NAUTILUS_REF"
    work="$OUT/.build-nautilus"
    rm -rf "$work"; mkdir -p "$work"
    skopeo --insecure-policy copy -q "oci-archive:$OUT/testserver.tar:$TESTSERVER_REF" "oci:$work/from:testserver"
    umoci unpack --image "$work/from:testserver" "$work/bundle" >/dev/null
    rootfs="$work/bundle/rootfs"
    printf '{\n  "image": "nautilus.jpg"\n}\n' >"$rootfs/data.json"
    printf 'nautilus.jpg: a placeholder for the Update Demo picture\n' >"$rootfs/nautilus.jpg"
    build nautilus "$NAUTILUS_REF" "$rootfs" \
        --config.entrypoint /agnhost --config.cmd pause --config.workingdir / \
        --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
    echo "$sum" >"$OUT/.nautilus.inputs"
else
    echo "images: $NAUTILUS_REF is up to date ($OUT/nautilus.tar)"
fi

cat >"$OUT/images.env" <<EOF
RKUBE_PAUSE_IMAGE=$PAUSE_REF
RKUBE_BUSYBOX_IMAGE=$BUSYBOX_REF
RKUBE_TESTSERVER_IMAGE=$TESTSERVER_REF
RKUBE_NONEWPRIVS_IMAGE=$NONEWPRIVS_REF
RKUBE_NAUTILUS_IMAGE=$NAUTILUS_REF
EOF

# --- push --------------------------------------------------------------------------------
if [ -n "$push" ]; then
    for pair in "pause:$PAUSE_REF" "busybox:$BUSYBOX_REF" "testserver:$TESTSERVER_REF" "nonewprivs:$NONEWPRIVS_REF" "nautilus:$NAUTILUS_REF"; do
        name="${pair%%:*}"; ref="${pair#*:}"
        dest="docker://$push/${ref#docker.io/}"
        echo "images: pushing $name to ${dest#docker://}"
        skopeo --insecure-policy copy -q --dest-tls-verify=false "oci-archive:$OUT/$name.tar:$ref" "$dest" || {
            echo "images: push to $push failed: is a registry there? (scripts/registry.sh start DIR PORT)" >&2
            exit 1
        }
    done
fi
