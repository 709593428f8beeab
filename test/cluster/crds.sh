#!/usr/bin/env bash
# Prints the paths of the CustomResourceDefinitions the chart's optional objects need (cert-manager's
# Issuer and Certificate, prometheus-operator's PodMonitor and ServiceMonitor), taken from those
# projects' Go modules at the versions pinned here (the Go module cache keeps them; nothing is built).
# The e2e chart test installs them on the suite's own cluster so the apiserver checks those objects too.
set -euo pipefail
modules=(
  "github.com/cert-manager/cert-manager@v1.21.2 deploy/crds/cert-manager.io_issuers.yaml deploy/crds/cert-manager.io_certificates.yaml"
  "github.com/prometheus-operator/prometheus-operator@v0.85.0 example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
)
command -v go >/dev/null || { echo "crds.sh: Go is needed to fetch the CRDs from the Go module proxy (on PATH)" >&2; exit 1; }
for entry in "${modules[@]}"; do
  read -r module files <<<"$entry"
  # Outside any module: go mod download takes the exact version and prints where it put it.
  dir=$(cd / && GOFLAGS=-mod=mod go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "crds.sh: go mod download $module gave no directory" >&2; exit 1; }
  for f in $files; do
    [ -f "$dir/$f" ] || { echo "crds.sh: $module has no $f" >&2; exit 1; }
    echo "$dir/$f"
  done
done
