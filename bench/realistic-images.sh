#!/usr/bin/env bash
# The images of bench/realistic.ts, pushed to the lab registry of CLUSTER_DIR
# (a running cluster with real nodes), built with lab.sh's own functions:
#
#   lab/bench-app:vN-RUN   (N 1..4, RUN = BENCH_IMAGE_RUN) base layer (busybox and BENCH_BASE_MB of incompressible data,
#                          the same in every version) + a top layer of BENCH_TOP_MB
#                          incompressible bytes, /www/index.html with the version, that
#                          changes with each version; serves HTTP on :8080 after
#                          START_SECONDS (its env), logging to /logs (an emptyDir)
#   lab/bench-sidecar:1    the same base + a small layer: a log/metrics sidecar that
#                          serves /metrics on :9090 after START_SECONDS and follows /logs
#
# Deterministic: the data come from AES-CTR over zeros keyed by a fixed word (and RUN for
# the top layers, so that no node of a kept cluster has them), the layers from make_layer;
# the base layer is kept in the cache. Prints "<ref> <digest>" per image.
# `--prepare` only builds the cached base layer (no cluster needed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
log() { echo "realistic-images: $*" >&2; }
die() { log "error: $*"; exit 1; }
prepare=false
[ "${1:-}" != --prepare ] || prepare=true
# shellcheck source=../test/cluster/lab.sh
. "$repo/test/cluster/lab.sh"
if ! $prepare; then
  : "${CLUSTER_DIR:?CLUSTER_DIR of a running cluster with real nodes}"
  CLUSTER_DIR=$(cd "$CLUSTER_DIR" && pwd)
  lab_paths
  [ -e "$netns_path" ] || die "no lab network namespace for $CLUSTER_DIR (CLUSTER_REAL_NODES=2 cluster.sh up first)"
fi
run=${BENCH_IMAGE_RUN:-$(date +%s)}

base_mb=${BENCH_BASE_MB:-150}
top_mb=${BENCH_TOP_MB:-16}
cache=${INPLACE_GATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inplace-gate}/bench-realistic
mkdir -p "$cache"
# Incompressible data: gzip gains nothing at any level, so the fastest one.
export LAB_GZIP_LEVEL=1

# data <key> <MiB> <file>
# (openssl ends on SIGPIPE once head has enough: not a failure)
data() { { openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:inplace-gate-$1" </dev/zero 2>/dev/null || true; } | head -c "$(($2 * 1024 * 1024))" >"$3"; }

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT

base=$cache/base-${base_mb}m.tar.gz
if [ ! -s "$base" ] || [ ! -s "$base.diff_id" ]; then
  t=$SECONDS
  mkdir -p "$w/base/bin" "$w/base/opt" "$w/base/logs"
  install -m 0755 /bin/busybox "$w/base/bin/busybox"
  ln -s busybox "$w/base/bin/sh"
  data base "$base_mb" "$w/base/opt/base.bin"
  chmod 0755 "$w/base" "$w/base/bin" "$w/base/opt" "$w/base/logs"
  chmod 0644 "$w/base/opt/base.bin"
  make_layer "$w/base" "$base.tmp" >"$base.diff_id.tmp"
  mv "$base.tmp" "$base" && mv "$base.diff_id.tmp" "$base.diff_id"
  rm -rf "$w/base"
  log "base layer built in $((SECONDS - t))s: $(du -m "$base" | cut -f1) MiB"
fi
base_id=$(cat "$base.diff_id")
! $prepare || exit 0

# `sleep & wait`: SIGTERM during the start-up ends it at once, as during serving.
app='["/bin/sh","-c","trap '"'"'exit 0'"'"' TERM; sleep ${START_SECONDS:-3} & wait; echo \"$(date) serving $(cat /www/index.html)\" >>/logs/app.log; /bin/busybox httpd -f -p 8080 -h /www & wait"]'
sidecar='["/bin/sh","-c","trap '"'"'exit 0'"'"' TERM; sleep ${START_SECONDS:-1} & wait; touch /logs/app.log; /bin/busybox tail -F /logs/app.log >/dev/null & /bin/busybox httpd -f -p 9090 -h /metrics & wait"]'

for v in v1 v2 v3 v4; do
  mkdir -p "$w/$v/www" "$w/$v/app"
  echo "$v" >"$w/$v/www/index.html"
  data "top-$v-$run" "$top_mb" "$w/$v/app/app.bin"
  chmod 0755 "$w/$v" "$w/$v/www" "$w/$v/app"
  chmod 0644 "$w/$v/www/index.html" "$w/$v/app/app.bin"
  id=$(make_layer "$w/$v" "$w/$v.tar.gz")
  push_layers lab/bench-app "$v-$run" "$app" "$base" "$base_id" "$w/$v.tar.gz" "$id"
  rm -rf "$w/$v" "$w/$v.tar.gz"
done
mkdir -p "$w/sidecar/metrics"
echo 'requests_total 0' >"$w/sidecar/metrics/index.html"
chmod 0755 "$w/sidecar" "$w/sidecar/metrics"
chmod 0644 "$w/sidecar/metrics/index.html"
id=$(make_layer "$w/sidecar" "$w/sidecar.tar.gz")
push_layers lab/bench-sidecar 1 "$sidecar" "$base" "$base_id" "$w/sidecar.tar.gz" "$id"
