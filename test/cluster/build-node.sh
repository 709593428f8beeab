#!/usr/bin/env bash
# Builds what a real node of the test cluster runs, into a cache outside the
# repository, and prints the directory holding it: the real kubelet (from the
# control plane's own module in test/cluster/k8s, so both share one Go build
# cache and one set of pins), containerd with ctr and its runc shim, and the
# CNI plugins the nodes use. A second run prints the directory at once.
#
# A separate script with a key of its own: the control plane's cache key
# (build.sh) does not change when this one does. runc, the registry and the
# image rootfs are Debian packages; cluster.sh installs those.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod="$here/k8s"
containerd_version=v2.4.2
cni_version=v1.10.0
cache_root=${INPLACE_GATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inplace-gate}
key=$(cat "$mod/go.mod" "$mod/go.sum" "$here/build-node.sh" | sha256sum | cut -c1-16)
out="$cache_root/node-$key"
bins=(kubelet containerd ctr containerd-shim-runc-v2 cni/bridge cni/host-local cni/loopback)

complete() {
  local b
  for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done
}

if complete; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build-node.sh: Go is needed to build the test nodes (1.26 or newer, on PATH)" >&2; exit 1; }

version=$(awk '($1 == "k8s.io/kubernetes" || $2 == "k8s.io/kubernetes") && $NF ~ /^v[0-9]/ { print $NF; exit }' "$mod/go.mod")
[ -n "$version" ] || { echo "build-node.sh: no k8s.io/kubernetes version in $mod/go.mod" >&2; exit 1; }
major=${version#v}; minor=${major#*.}; major=${major%%.*}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
kubelet_ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
containerd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$containerd_version"

echo "Building the test nodes (kubelet $version, containerd $containerd_version, CNI plugins $cni_version) into $out" >&2
echo "(first time only: about 15 minutes on 2 cores; later runs reuse it)" >&2
tmp="$out.tmp.$$"
mkdir -p "$tmp/cni"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
export CGO_ENABLED=0
step() { echo "  go $1 ${*: -1}" >&2; local t=$SECONDS; "go" "$@"; echo "    ($((SECONDS - t))s)" >&2; }
# containerd and the plugins at their own modules' pins (no replace
# directives in either, so `go install pkg@version` builds them as released).
c=github.com/containerd/containerd/v2/cmd
(cd "$tmp" && GOBIN="$tmp" step install -trimpath -ldflags "$containerd_ldflags" \
  "$c/containerd@$containerd_version" "$c/ctr@$containerd_version" "$c/containerd-shim-runc-v2@$containerd_version")
p=github.com/containernetworking/plugins/plugins
(cd "$tmp" && GOBIN="$tmp/cni" step install -trimpath -ldflags "-s -w" \
  "$p/main/bridge@$cni_version" "$p/ipam/host-local@$cni_version" "$p/main/loopback@$cni_version")
# -mod=readonly: the kubelet's dependencies are already in the control
# plane's go.sum (tools.go names it); a build must never rewrite the pins.
(cd "$mod" && step build -mod=readonly -trimpath -ldflags "$kubelet_ldflags" -o "$tmp/kubelet" k8s.io/kubernetes/cmd/kubelet)
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "Built in $(( $(date +%s) - start ))s" >&2
echo "$out"
