#!/usr/bin/env bash
# Builds the verdicts program into a cache outside the repository, keyed by its
# sources, and prints the binary's path. Run it under `flock /tmp/heavy.lock`
# on a shared machine: a cold build compiles kubectl's and client-go's packages.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${INPLACE_GATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inplace-gate}
key=$(cd "$here" && cat go.mod go.sum build.sh $(ls *.go | grep -v _test.go) | sha256sum | cut -c1-16)
out="$cache_root/verdicts-$key/verdicts"

if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "verdicts/build.sh: Go is needed (1.26 or newer, on PATH)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
echo "Building test/verdicts into $out" >&2
(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp.$$" .)
mv "$out.tmp.$$" "$out"
echo "$out"
