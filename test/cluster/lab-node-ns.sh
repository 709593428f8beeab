#!/usr/bin/env bash
# lab-node-ns.sh NODE_DIR: holds the private mount namespace of one real test
# node (cluster.sh starts it under `unshare --mount`, inside the lab's network
# namespace; containerd and the kubelet join it with nsenter).
#
# The kubelet and containerd write to hard-coded paths (/var/lib/kubelet,
# /var/lib/cni, /var/log/pods, /run/containerd/...); nodes sharing them would
# garbage-collect each other's files, so each node gets its own. The kubelet
# also sets three global sysctls at start: files holding the values it wants
# are bind-mounted over them here, so it finds them set and the host's values
# never change.
set -euo pipefail
d=$1
mount --bind "$d/lib" /var/lib
mount --bind "$d/log" /var/log
mount --bind "$d/run" /run/containerd
for s in vm/overcommit_memory kernel/panic kernel/panic_on_oops; do
  mount --bind "$d/sysctl/${s//\//.}" "/proc/sys/$s"
done
: >"$d/ns-ready"
trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM INT
sleep infinity &
sleeper=$!
wait
