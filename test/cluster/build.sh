#!/usr/bin/env bash
# Builds the control-plane binaries from test/cluster/k8s into a cache outside
# the repository, keyed by the module pins, and prints the directory holding
# them. A machine that built once reuses the binaries; a change of pins rebuilds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod="$here/k8s"
cache_root=${INPLACE_GATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inplace-gate}
key=$(cat "$mod/go.mod" "$mod/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
out="$cache_root/k8s-$key"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubemark kubectl)

complete() {
  local b
  for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done
}

if complete; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the test control plane (1.25 or newer, on PATH)" >&2; exit 1; }

version=$(awk '($1 == "k8s.io/kubernetes" || $2 == "k8s.io/kubernetes") && $NF ~ /^v[0-9]/ { print $NF; exit }' "$mod/go.mod")
[ -n "$version" ] || { echo "build.sh: no k8s.io/kubernetes version in $mod/go.mod" >&2; exit 1; }
major=${version#v}; minor=${major#*.}; major=${major%%.*}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"

echo "Building the Kubernetes $version control plane into $out" >&2
echo "(first time only: about 15 minutes and 3 GB of memory on 2 cores; later runs reuse it)" >&2
tmp="$out.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
(
  cd "$mod"
  export CGO_ENABLED=0 GOFLAGS=-mod=mod
  for b in "${bins[@]}"; do
    case $b in
      etcd) p=go.etcd.io/etcd/server/v3 ;;
      *) p=k8s.io/kubernetes/cmd/$b ;;
    esac
    echo "  go build $p" >&2
    go build -trimpath -ldflags "$ldflags" -o "$tmp/$b" "$p"
  done
)
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "Built in $(( $(date +%s) - start ))s" >&2
echo "$out"
