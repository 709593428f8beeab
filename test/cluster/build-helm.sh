#!/usr/bin/env bash
# Builds the Helm CLI from test/cluster/helm (helm.sh/helm/v4, from the Go
# module proxy) into a cache outside the repository, keyed by the module pins,
# and prints the path of the binary. The chart tests call it on first use; a
# machine that built once reuses the binary. Progress goes to stderr in
# build.sh's format, so progress.sh can read it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod="$here/helm"
cache_root=${INPLACE_GATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inplace-gate}
key=$(cat "$mod/go.mod" "$mod/go.sum" "$here/build-helm.sh" | sha256sum | cut -c1-16)
out="$cache_root/helm-$key"

if [ -x "$out/helm" ]; then
  echo "$out/helm"
  exit 0
fi

command -v go >/dev/null || { echo "build-helm.sh: Go is needed to build Helm for the chart tests (on PATH)" >&2; exit 1; }
version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v4" { print $3; exit } $1 == "helm.sh/helm/v4" { print $2; exit }' "$mod/go.mod")
[ -n "$version" ] || { echo "build-helm.sh: no helm.sh/helm/v4 version in $mod/go.mod" >&2; exit 1; }

echo "Building Helm $version into $out" >&2
echo "(first time only: a few minutes on 2 cores; later runs reuse it)" >&2
tmp="$out.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
(
  cd "$mod"
  export CGO_ENABLED=0 GOFLAGS=-mod=mod
  # Helm reports this as its version (helm version); the module proxy build has no VCS stamp.
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version"
  echo "  go build helm.sh/helm/v4/cmd/helm" >&2
  go build -trimpath -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v4/cmd/helm
)
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "Built in $(( $(date +%s) - start ))s" >&2
echo "$out/helm"
