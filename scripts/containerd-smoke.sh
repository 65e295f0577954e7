#!/usr/bin/env bash
# Proves that this machine's containerd (Debian 1.6.20) + runc + CNI run rkube's test
# images, with a private containerd that shares nothing with any other one on the host:
#   1. builds the images (scripts/images.sh, quick when up to date), starts a loopback
#      registry (scripts/registry.sh) and pushes them there;
#   2. writes a containerd config.toml (own root, state, sockets, runc root; CRI with
#      restrict_oom_score_adj, sandbox_image rkube/pause, CNI bridge + host-local, no
#      iptables; registry hosts.toml: docker.io and 127.0.0.1:PORT -> the local registry);
#   3. starts containerd, imports both images into namespace k8s.io;
#   4. runs busybox with ctr (`echo hello`; and `wget` to the registry with host network);
#   5. over CRI (runtime.v1, spoken with curl's HTTP/2 + a protobuf codec in python3:
#      there is no crictl in Debian 12): PullImage through the docker.io mirror and by
#      127.0.0.1:PORT ref, RunPodSandbox (pause + CNI), ping the pod IP, stop/remove it;
#   6. stops everything and removes it (also on failure or Ctrl-C).
#
#   scripts/containerd-smoke.sh [--keep] [--mirrors]
#
# --keep leaves containerd and the registry running and prints how to reach them (stop
# them by killing the pids it prints, then remove the directory). --mirrors uses CRI's
# older registry.mirrors config instead of config_path + hosts.toml.
# Env: RKUBE_SMOKE_DIR (parent of the temp dir, /var/tmp), RKUBE_SMOKE_PORT (registry
# port, 5051), RKUBE_SMOKE_SUBNET (pod subnet, 10.213.0.0/24), RKUBE_IMAGES_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
keep=0; mirrors=0
for a in "$@"; do
    case "$a" in
        --keep) keep=1 ;;
        --mirrors) mirrors=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "smoke: unknown argument '$a' (usage: $0 [--keep] [--mirrors])" >&2; exit 2 ;;
    esac
done

die() { echo "smoke: FAIL: $*" >&2; exit 1; }
step() { echo "smoke: --- $*"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (containerd, runc and CNI need it)"
for tool in containerd ctr runc containerd-shim-runc-v2 curl python3 skopeo umoci ip; do
    command -v "$tool" >/dev/null || die "$tool is missing: run scripts/deps.sh"
done
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] \
    || die "CNI plugins missing in /usr/lib/cni: run scripts/deps.sh (containernetworking-plugins)"

PORT="${RKUBE_SMOKE_PORT:-5051}"
SUBNET="${RKUBE_SMOKE_SUBNET:-10.213.0.0/24}"
IMAGES="${RKUBE_IMAGES_DIR:-$here/../target/images}"
BRIDGE="rkube-smk$$"; BRIDGE="${BRIDGE:0:15}"
mkdir -p "${RKUBE_SMOKE_DIR:-/var/tmp}"
# Short: containerd's socket path must stay under 108 bytes.
T="$(mktemp -d "${RKUBE_SMOKE_DIR:-/var/tmp}/rkube-ctrd.XXXXXX")"
SOCK="$T/containerd.sock"
CGROUP_PARENT="/rkube-smoke-$$"
CTR=(ctr --address "$SOCK" --namespace k8s.io)
ctrd_pid=""

# --- cleanup ----------------------------------------------------------------------------
cleanup() {
    local rc=$?
    set +e
    if ((keep)) && ((rc == 0)); then
        echo "smoke: kept: containerd pid $ctrd_pid (socket $SOCK, config $T/config.toml, log $T/containerd.log)"
        echo "smoke: kept: registry on 127.0.0.1:$PORT (stop: scripts/registry.sh stop $T/registry); then kill the shims, ip link del $BRIDGE, rmdir /sys/fs/cgroup/*$CGROUP_PARENT (depth first), rm -rf $T"
        return
    fi
    ((rc)) && [ -f "$T/containerd.log" ] && { echo "smoke: containerd log tail:" >&2; tail -n 15 "$T/containerd.log" >&2; }
    if [ -n "$ctrd_pid" ] && kill -0 "$ctrd_pid" 2>/dev/null; then
        for id in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
            "${CTR[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1
        done
        sleep 0.3
        for id in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks rm -f "$id" >/dev/null 2>&1; done
        for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do "${CTR[@]}" containers rm "$id" >/dev/null 2>&1; done
        kill "$ctrd_pid"
        for _ in $(seq 50); do kill -0 "$ctrd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$ctrd_pid" 2>/dev/null && kill -9 "$ctrd_pid"
    fi
    # Shims outlive containerd: end those of this instance (their command line names $SOCK).
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "-address $SOCK "; then kill -9 "${p#/proc/}" 2>/dev/null; fi
    done
    "$here/registry.sh" stop "$T/registry" >/dev/null 2>&1
    # Mounts under $T (rootfs overlays, sandbox shm, netns files), deepest first.
    awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    ip link del "$BRIDGE" 2>/dev/null
    for c in /sys/fs/cgroup/*"$CGROUP_PARENT"; do
        [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    rm -rf "$T"
    if ((rc)); then echo "smoke: FAILED (exit $rc)" >&2; else echo "smoke: OK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- facts ------------------------------------------------------------------------------
pid1="$(cat /proc/1/comm)"
if [ -d /sys/fs/cgroup/unified ] || [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
    cgv="v1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)"; [ -d /sys/fs/cgroup/unified ] || cgv="v1"
else
    cgv="v2 (unified)"
fi
# runc's systemd cgroup driver needs systemd as PID 1; without it, cgroupfs.
systemd_cgroup=false; [ "$pid1" = systemd ] && [ -d /run/systemd/system ] && systemd_cgroup=true
echo "smoke: $(containerd --version | cut -d' ' -f3), $(runc --version | head -1), cgroup $cgv, PID 1 '$pid1' -> SystemdCgroup=$systemd_cgroup, dir $T"

# --- images and registry ----------------------------------------------------------------
step "images + registry on 127.0.0.1:$PORT"
"$here/registry.sh" start "$T/registry" "$PORT"
RKUBE_IMAGES_DIR="$IMAGES" "$here/images.sh" --push "127.0.0.1:$PORT"
# shellcheck disable=SC1091
. "$IMAGES/images.env"   # RKUBE_PAUSE_IMAGE, RKUBE_BUSYBOX_IMAGE (docker.io/rkube/...)

# --- config -----------------------------------------------------------------------------
step "config"
mkdir -p "$T/cni/net.d" "$T/certs.d/docker.io" "$T/certs.d/127.0.0.1:$PORT" "$T/logs"
cat >"$T/cni/net.d/10-rkube-smoke.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "rkube-smoke",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$SUBNET" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$T/cni/ipam"
      }
    }
  ]
}
EOF
if ((mirrors)); then
    registry_config="  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]
    endpoint = [\"http://127.0.0.1:$PORT\"]
  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"127.0.0.1:$PORT\"]
    endpoint = [\"http://127.0.0.1:$PORT\"]"
else
    registry_config="  [plugins.\"io.containerd.grpc.v1.cri\".registry]
    config_path = \"$T/certs.d\""
    # docker.io/* is looked up in the local registry only (no internet to fall back to).
    for h in docker.io "127.0.0.1:$PORT"; do
        cat >"$T/certs.d/$h/hosts.toml" <<EOF
server = "http://127.0.0.1:$PORT"

[host."http://127.0.0.1:$PORT"]
  capabilities = ["pull", "resolve"]
EOF
    done
fi
cat >"$T/config.toml" <<EOF
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$T/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$RKUBE_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$T/runc"
        SystemdCgroup = $systemd_cgroup
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$T/cni/net.d"
    max_conf_num = 1
$registry_config
EOF

# --- containerd -------------------------------------------------------------------------
step "start containerd"
setsid containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 </dev/null &
ctrd_pid=$!
for _ in $(seq 100); do
    [ -S "$SOCK" ] && "${CTR[@]}" version >/dev/null 2>&1 && break
    kill -0 "$ctrd_pid" 2>/dev/null || die "containerd exited at start (see the log tail below)"
    sleep 0.1
done
"${CTR[@]}" version >/dev/null 2>&1 || die "containerd did not answer on $SOCK within 10 s"
grep -q 'failed to load plugin io.containerd.grpc.v1.cri' "$T/containerd.log" \
    && die "containerd's CRI plugin did not load: $(grep 'io.containerd.grpc.v1.cri' "$T/containerd.log" | tail -1)"

step "import"
for tar in pause busybox; do
    "${CTR[@]}" images import "$IMAGES/$tar.tar" >/dev/null || die "ctr images import $IMAGES/$tar.tar failed"
done
"${CTR[@]}" images ls | awk 'NR==1 || /rkube/ { print "smoke:   " $1, $2, $3, $4, $5 }'
for ref in "$RKUBE_PAUSE_IMAGE" "$RKUBE_BUSYBOX_IMAGE"; do
    "${CTR[@]}" images ls -q | grep -qx "$ref" || die "import did not create $ref"
done

# --- ctr run ----------------------------------------------------------------------------
step "ctr run busybox echo hello"
out="$("${CTR[@]}" run --rm --runc-root "$T/runc" --cgroup "$CGROUP_PARENT/ctr-1" "$RKUBE_BUSYBOX_IMAGE" "rkube-smoke-$$-1" echo hello 2>&1)" \
    || die "ctr run failed: $out"
[ "$out" = hello ] || die "ctr run printed '$out', not 'hello'"
echo "smoke:   $out"
step "ctr run --net-host busybox wget http://localhost:$PORT/v2/_catalog"
out="$("${CTR[@]}" run --rm --net-host --runc-root "$T/runc" --cgroup "$CGROUP_PARENT/ctr-2" "$RKUBE_BUSYBOX_IMAGE" "rkube-smoke-$$-2" \
    wget -q -O - "http://localhost:$PORT/v2/_catalog" 2>&1)" || die "busybox wget failed: $out"
grep -q rkube/busybox <<<"$out" || die "busybox wget printed '$out'"
echo "smoke:   $out"

# --- CRI --------------------------------------------------------------------------------
# A minimal CRI client: python3 encodes/decodes protobuf, curl speaks gRPC (HTTP/2 over the
# unix socket). Debian 12 has no crictl (cri-tools).
cat >"$T/cri.py" <<'EOF'
# cri.py SOCKET /SERVICE/METHOD MESSAGE DIR: one unary gRPC call. MESSAGE is a python
# literal: a list of (field, value), value an int, a str or a nested list. Prints the
# response's fields as "1.5.1=value" lines (a printable length-delimited field is a string).
import ast, subprocess, sys

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F; n >>= 7
        if n: out.append(b | 0x80)
        else: out.append(b); return bytes(out)

def enc(fields):
    out = b""
    for num, val in fields:
        if isinstance(val, int):
            out += varint(num << 3) + varint(val)
        else:
            data = enc(val) if isinstance(val, list) else val.encode()
            out += varint(num << 3 | 2) + varint(len(data)) + data
    return out

def rd_varint(b, i):
    n = s = 0
    while True:
        c = b[i]; i += 1; n |= (c & 0x7F) << s; s += 7
        if c < 0x80: return n, i

def dec(b, prefix, out):
    i = 0
    while i < len(b):
        key, i = rd_varint(b, i); num, wt = key >> 3, key & 7
        path = f"{prefix}{num}"
        if wt == 0:
            v, i = rd_varint(b, i); out.append(f"{path}={v}")
        elif wt == 2:
            n, i = rd_varint(b, i); data = b[i:i + n]; i += n
            if n > len(data): raise ValueError("truncated")
            if data and all(32 <= c < 127 for c in data):
                out.append(f"{path}={data.decode()}")
            else:
                sub = []
                try: dec(data, path + ".", sub); out.extend(sub)
                except Exception: out.append(f"{path}=<{len(data)} bytes>")
        elif wt == 1: i += 8
        elif wt == 5: i += 4
        else: raise ValueError("wire type %d" % wt)

sock, method, msg, d = sys.argv[1], sys.argv[2], ast.literal_eval(sys.argv[3]), sys.argv[4]
body = enc(msg)
r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--unix-socket", sock, "--max-time", "120",
                    "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@-",
                    "-D", f"{d}/cri.hdr", "-o", f"{d}/cri.body", f"http://localhost{method}"],
                   input=b"\0" + len(body).to_bytes(4, "big") + body, capture_output=True)
if r.returncode:
    sys.exit(f"{method}: curl failed: {r.stderr.decode().strip()}")
hdr = {}
for line in open(f"{d}/cri.hdr", encoding="latin-1"):
    k, _, v = line.partition(":")
    if v: hdr[k.strip().lower()] = v.strip()
if hdr.get("grpc-status") != "0":
    sys.exit(f"{method}: grpc-status {hdr.get('grpc-status', '(none)')}: {hdr.get('grpc-message', '')}")
out = []
dec(open(f"{d}/cri.body", "rb").read()[5:], "", out)
print("\n".join(out))
EOF
cri() { python3 "$T/cri.py" "$SOCK" "$1" "$2" "$T"; }
RS=/runtime.v1.RuntimeService; IS=/runtime.v1.ImageService

step "CRI Version"
cri $RS/Version "[]" | sed 's/^/smoke:   /'

# Pull an image that is not in the store, so that it must come from the registry.
"${CTR[@]}" images rm "$RKUBE_BUSYBOX_IMAGE" >/dev/null
step "CRI PullImage $RKUBE_BUSYBOX_IMAGE (docker.io -> mirror 127.0.0.1:$PORT)"
ref="$(cri $IS/PullImage "[(1, [(1, '$RKUBE_BUSYBOX_IMAGE')])]" | sed -n 's/^1=//p')" \
    || die "CRI PullImage $RKUBE_BUSYBOX_IMAGE through the mirror failed"
echo "smoke:   image_ref $ref"
direct="127.0.0.1:$PORT/${RKUBE_PAUSE_IMAGE#docker.io/}"
step "CRI PullImage $direct (plain HTTP)"
ref="$(cri $IS/PullImage "[(1, [(1, '$direct')])]" | sed -n 's/^1=//p')" \
    || die "CRI PullImage $direct failed"
echo "smoke:   image_ref $ref"
step "CRI ListImages"
cri $IS/ListImages "[]" | sed -n 's/^1\.2=/smoke:   /p'

step "CRI RunPodSandbox (pause + CNI bridge $BRIDGE, $SUBNET)"
pod="[(1, [(1, 'smoke'), (2, 'uid-$$'), (3, 'default'), (4, 0)]), (2, 'smoke'), (3, '$T/logs'), (8, [(1, '$CGROUP_PARENT')])]"
sb="$(cri $RS/RunPodSandbox "[(1, $pod)]" | sed -n 's/^1=//p')" || die "CRI RunPodSandbox failed"
[ -n "$sb" ] || die "RunPodSandbox returned no sandbox id"
status="$(cri $RS/PodSandboxStatus "[(1, '$sb')]")" || die "CRI PodSandboxStatus failed"
state="$(sed -n 's/^1\.3=//p' <<<"$status")"; ip="$(sed -n 's/^1\.5\.1=//p' <<<"$status")"
echo "smoke:   sandbox ${sb:0:12} state ${state:-0} (0 = READY) ip $ip"
[ -z "$state" ] || [ "$state" = 0 ] || die "sandbox is not READY (state $state)"
[ -n "$ip" ] || die "sandbox has no IP: CNI did not run"
/bin/busybox ping -c 1 -W 2 "$ip" >/dev/null || die "the pod IP $ip does not answer ping from the host"
echo "smoke:   host pings the pod at $ip over $BRIDGE"
cri $RS/StopPodSandbox "[(1, '$sb')]" >/dev/null || die "CRI StopPodSandbox failed"
cri $RS/RemovePodSandbox "[(1, '$sb')]" >/dev/null || die "CRI RemovePodSandbox failed"
echo "smoke:   sandbox stopped and removed"
