# shellcheck shell=bash
# Real nodes for cluster.sh (sourced by it; uses its paths and helpers).
#
# CLUSTER_REAL_NODES=N real kubelets over containerd and runc, next to the
# hollow nodes, all inside one private network namespace (the "lab") that
# only this cluster uses: no address of theirs leaves the machine and no
# port of theirs collides with the host's. The control plane, the product's
# webhook and watcher stay on the host's loopback, where they were: a
# forwarder in the lab listens on 127.0.0.1:<apiserver port> (so the same
# kubeconfigs and the same serving certificate work from inside) and hands
# each connection over a Unix socket to the host's apiserver.
#
#   lab              ip netns <name>: lo up, node IPs 10.87.0.<n+1>/32 on lo,
#                    a registry of locally built images on 127.0.0.1:5000
#   routes           (CLUSTER_LAB_ROUTED, default 1) a veth pair igh-<id> (host,
#                    10.86.0.1/30) to uplink (lab, 10.86.0.2/30) and host routes
#                    for 10.87.0.0/24 and 10.88.0.0/16 through it, so the
#                    apiserver reaches pods (a webhook Service's endpoints)
#   10.0.0.1:443     the `kubernetes` Service's ClusterIP, an address of the
#                    lab's loopback where a forwarder to the apiserver listens:
#                    pods in the lab reach the API the in-cluster way
#   real-node-<n>    its own mount namespace (lab-node-ns.sh), containerd,
#                    the kubelet; pods on the CNI bridge igbr<n>, 10.88.<n>.0/24,
#                    cgroups under /<cgroup prefix>-<n> in every hierarchy
#
# Real nodes carry the label and NoSchedule taint inplace-gate.dev/test-node=real,
# so pods of the hollow-node tests never land on them.

lab_registry=127.0.0.1:5000
lab_taint=inplace-gate.dev/test-node

# Per cluster dir, so two clusters on one machine never share a lab.
lab_id() { printf '%s' "$CLUSTER_DIR" | sha256sum | cut -c1-8; }
lab_paths() {
  lab_dir=$CLUSTER_DIR/lab
  netns=inplace-gate-$(lab_id)
  netns_path=/run/netns/$netns
  cgroup_prefix=inplace-gate-$(lab_id)-node
  veth_host=igh-$(lab_id)
}
lab_routed=0
lab_enter() { nsenter --net="$netns_path" -- "$@"; }
node_name() { echo "real-node-$1"; }
node_ip() { echo "10.87.0.$(($1 + 1))"; }

# Root only (namespaces, mounts, cgroups); Debian packages it lacks, it installs.
lab_prerequisites() {
  [ "$(id -u)" -eq 0 ] || die "CLUSTER_REAL_NODES needs root (network and mount namespaces, cgroups)"
  local missing=()
  command -v runc >/dev/null || missing+=(runc)
  [ -x /bin/busybox ] && file_is_static /bin/busybox || missing+=(busybox-static)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v socat >/dev/null || missing+=(socat)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages for the real nodes: ${missing[*]}"
  # (an out-of-date package list is refreshed once)
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >"$logs/apt.log" 2>&1 ||
    { apt-get update >>"$logs/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$logs/apt.log" 2>&1; } ||
    die "apt-get install ${missing[*]} failed; read $logs/apt.log"
  # Debian starts its registry service on :5000 after install where no
  # policy-rc.d forbids it (container images have one); the lab runs its own.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && [ -x /etc/init.d/docker-registry ]; then
    /etc/init.d/docker-registry stop >>"$logs/apt.log" 2>&1 || true
  fi
}
# A busybox that needs no libraries works as an image's only binary.
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- images ---

# push_blob <repo> <file>: a blob over the registry's v2 API; prints its digest.
push_blob() {
  local repo=$1 f=$2 digest location
  digest=sha256:$(sha256sum "$f" | cut -d' ' -f1)
  if ! lab_enter curl -sfI "http://$lab_registry/v2/$repo/blobs/$digest" >/dev/null; then
    location=$(lab_enter curl -sf -X POST -D - -o /dev/null "http://$lab_registry/v2/$repo/blobs/uploads/" |
      tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [ -n "$location" ] || die "the lab registry refused an upload to $repo"
    case $location in /*) location=http://$lab_registry$location ;; esac
    case $location in *\?*) location="$location&digest=$digest" ;; *) location="$location?digest=$digest" ;; esac
    lab_enter curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$f" "$location" >/dev/null ||
      die "pushing $f to $repo failed"
  fi
  echo "$digest"
}

# make_layer <rootfs dir> <out file>: a layer whose bytes depend on nothing but
# the files (sorted entries, zero times and owners, gzip without a timestamp);
# prints its diff_id (the digest of the uncompressed tar).
make_layer() {
  local root=$1 out=$2
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -C "$root" -cf "$out.tar" .
  echo "sha256:$(sha256sum "$out.tar" | cut -d' ' -f1)"
  gzip -n -"${LAB_GZIP_LEVEL:-9}" <"$out.tar" >"$out"
  rm -f "$out.tar"
}

# push_layers <repo> <tag> <entrypoint JSON array> <layer.tar.gz> <diff_id> [<layer> <diff_id>...]:
# an OCI image of those layers, bottom first; prints "<ref> <manifest digest>".
push_layers() {
  local repo=$1 tag=$2 entrypoint=$3 w diff_ids="" layers="" digest config config_digest manifest
  shift 3
  w=$(mktemp -d)
  while [ $# -ge 2 ]; do
    digest=$(push_blob "$repo" "$1")
    diff_ids+="${diff_ids:+,}\"$2\""
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$digest\",\"size\":$(stat -c %s "$1")}"
    shift 2
  done
  config=$w/config.json
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$entrypoint" "$diff_ids" >"$config"
  config_digest=$(push_blob "$repo" "$config")
  manifest=$w/manifest.json
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[%s]}' \
    "$config_digest" "$(stat -c %s "$config")" "$layers" >"$manifest"
  lab_enter curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$manifest" "http://$lab_registry/v2/$repo/manifests/$tag" >/dev/null || die "pushing $repo:$tag failed"
  echo "$lab_registry/$repo:$tag sha256:$(sha256sum "$manifest" | cut -d' ' -f1)"
  rm -rf "$w"
}

# push_image <repo> <tag> <rootfs dir> <entrypoint JSON array>: a one-layer
# image of the directory: the same busybox-static gives the same digests on
# every machine.
push_image() {
  local w diff_id
  w=$(mktemp -d)
  diff_id=$(make_layer "$3" "$w/layer.tar.gz")
  push_layers "$1" "$2" "$4" "$w/layer.tar.gz" "$diff_id"
  rm -rf "$w"
}

# The lab's images, from Debian's static busybox:
#   lab/pause:1        the pod sandbox (sleeps; containerd stops sandboxes with SIGKILL)
#   lab/app:v1, :v2    an HTTP server on :8080 answering GET / with its version;
#                      it exits on SIGTERM, as a real server stops serving
#   lab/app:v1-same    the very bytes of v1 under another tag (the same digest)
#   lab/app:crash      exits at once, so it crash-loops
lab_images() {
  local w v
  w=$(mktemp -d)
  mkdir -p "$w/base/bin"
  install -m 0755 /bin/busybox "$w/base/bin/busybox"
  ln -s busybox "$w/base/bin/sh"
  chmod 0755 "$w/base" "$w/base/bin" # not the umask's
  push_image lab/pause 1 "$w/base" '["/bin/busybox","sleep","2147483647"]' >"$lab_dir/images"
  local serve="[\"/bin/sh\",\"-c\",\"trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait\"]"
  for v in v1 v2; do
    cp -a "$w/base" "$w/$v"
    mkdir -m 0755 "$w/$v/www"
    echo "$v" >"$w/$v/www/index.html"
    chmod 0644 "$w/$v/www/index.html"
    push_image lab/app "$v" "$w/$v" "$serve" >>"$lab_dir/images"
  done
  push_image lab/app v1-same "$w/v1" "$serve" >>"$lab_dir/images"
  push_image lab/app crash "$w/base" '["/bin/sh","-c","exit 1"]' >>"$lab_dir/images"
  rm -rf "$w"
}

# ----------------------------------------------------------------- nodes ---

# One controller hierarchy per line (cgroup v1 here; v2 has one).
cgroup_mounts() { awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts; }

make_cgroup_root() {
  local c g=$1
  for c in $(cgroup_mounts); do
    mkdir -p "$c/$g"
    # a v1 cpuset cgroup starts empty, and no task can join it then
    if [ -f "$c/$g/cpuset.cpus" ]; then
      cat "$c/cpuset.cpus" >"$c/$g/cpuset.cpus"
      cat "$c/cpuset.mems" >"$c/$g/cpuset.mems"
    fi
  done
}

write_node_config() {
  local i=$1 d=$2 name ip
  name=$(node_name "$i") ip=$(node_ip "$i")
  mkdir -p "$d"/{lib,log,run,sysctl,cni}
  echo 1 >"$d/sysctl/vm.overcommit_memory"
  echo 10 >"$d/sysctl/kernel.panic"
  echo 1 >"$d/sysctl/kernel.panic_on_oops"
  : >"$d/resolv.conf"
  cat >"$d/cni/10-lab.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "lab", "plugins": [{"type": "bridge", "bridge": "igbr$i", "isGateway": true,
  "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.$i.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
  # Paths in /var/lib and /run/containerd are the node's own (lab-node-ns.sh).
  cat >"$d/containerd.toml" <<EOF
version = 3
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '$lab_registry/lab/pause:1'
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '$lab_dir/certs.d'
[plugins.'io.containerd.cri.v1.runtime']
  # lowering an oom_score_adj needs CAP_SYS_RESOURCE, which this machine
  # withholds (runc then fails the container); keep containers at or above
  # containerd's own
  restrict_oom_score_adj = true
  # pods' network namespaces pinned in the node's own /run/containerd, not
  # in the host's /run/netns, where they would outlive the node
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['$bin/cni']
    conf_dir = '$d/cni'
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    BinaryName = '$(command -v runc)'
EOF
  cat >"$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: $ip
healthzPort: 10248
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
# cgroup v1 without systemd here; each node under its own root
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_prefix-$i
failSwapOn: false
oomScoreAdj: 0
resolvConf: $d/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
# a shared disk: only a full one should evict or collect images
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 50
serializeImagePulls: false
registerWithTaints:
- {key: $lab_taint, value: real, effect: NoSchedule}
EOF
}

start_real_node() {
  local i=$1 name d holder
  name=$(node_name "$i") d=$CLUSTER_DIR/nodes/$(node_name "$i")
  write_node_config "$i" "$d"
  make_cgroup_root "$cgroup_prefix-$i"
  ip -n "$netns" addr add "$(node_ip "$i")/32" dev lo
  start "$name-ns" nsenter --net="$netns_path" -- unshare --mount --propagation private -- bash "$bin/lab-node-ns.sh" "$d"
  wait_for "the mount namespace of $name" "$logs/$name-ns.log" test -e "$d/ns-ready"
  holder=$(pid_of "$name-ns")
  # containerd finds its shim on PATH
  start "$name-containerd" env PATH="$bin:$PATH" nsenter --target="$holder" --mount --net -- \
    "$bin/containerd" --config "$d/containerd.toml"
  wait_for "containerd of $name" "$logs/$name-containerd.log" "$bin/ctr" --address "$d/run/containerd.sock" version
  start "$name-kubelet" nsenter --target="$holder" --mount --net -- "$bin/kubelet" \
    --config="$d/kubelet.yaml" --kubeconfig="$kcs/$name.kubeconfig" \
    --hostname-override="$name" --node-ip="$(node_ip "$i")" --node-labels="$lab_taint=real"
}

# Before anything starts: root, Debian packages, the node binaries.
lab_prepare() {
  lab_prerequisites
  node_bin=$(bash "$here/build-node.sh") # builds on first use; progress on stderr
}

# The product installed as pods needs two paths across the lab's edge.
# apiserver -> webhook pods: with --enable-aggregator-routing the apiserver
# dials the Service's endpoints (pod IPs) itself, from the host, so the host
# routes the lab's pod and node ranges into it over a veth pair (nothing else:
# the lab still has no default route, and nothing listens on the host's end).
# pods -> apiserver: the in-cluster config dials the `kubernetes` Service,
# 10.0.0.1:443. There is no iptables or nft on this machine for kube-proxy, and
# the product needs no other ClusterIP: the lab holds 10.0.0.1 itself, where a
# forwarder listens (the apiserver's certificate names that IP).
lab_links_up() {
  ip -n "$netns" addr add 10.0.0.1/32 dev lo
  start lab-apiserver-pods nsenter --net="$netns_path" -- "$bin/socat" \
    "TCP-LISTEN:443,bind=10.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$lab_dir/apiserver.sock"
  [ "${CLUSTER_LAB_ROUTED:-1}" = 1 ] || return 0
  # another lab on this machine routes these already: run without (the tests that need it say so)
  if [ -n "$(ip route show 10.88.0.0/16)$(ip route show 10.87.0.0/24)" ]; then
    log "warning: the host routes 10.88.0.0/16 or 10.87.0.0/24 already (another lab?); this one runs unrouted"
    return 0
  fi
  ip link add "$veth_host" type veth peer name uplink netns "$netns"
  ip addr add 10.86.0.1/30 dev "$veth_host"
  ip link set "$veth_host" up
  ip -n "$netns" addr add 10.86.0.2/30 dev uplink
  ip -n "$netns" link set uplink up
  ip route add 10.87.0.0/24 via 10.86.0.2 dev "$veth_host"
  ip route add 10.88.0.0/16 via 10.86.0.2 dev "$veth_host"
  lab_routed=1
}

lab_up() {
  local i b
  for b in kubelet containerd ctr containerd-shim-runc-v2 cni; do
    [ -e "$node_bin/$b" ] || die "$node_bin (from build-node.sh) has no $b"
    ln -s "$node_bin/$b" "$bin/$b"
  done
  ln -s "$(command -v socat)" "$bin/socat"
  ln -s "$(command -v docker-registry)" "$bin/docker-registry"
  ln -s "$here/lab-node-ns.sh" "$bin/lab-node-ns.sh"

  mkdir -p "$lab_dir/registry" "$lab_dir/certs.d/$lab_registry"
  # the lab of an earlier run of this cluster dir that nothing cleaned up
  if [ -e "$netns_path" ]; then log "removing a stale $netns_path"; lab_down; mkdir -p "$lab_dir/registry" "$lab_dir/certs.d/$lab_registry"; fi
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  # pods of different nodes talk through the lab's routing table
  lab_enter sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
  mkdir -p /run/containerd # the nodes' bind-mount target

  # the apiserver, reachable from the lab at the address the kubeconfigs name
  start lab-apiserver-host "$bin/socat" "UNIX-LISTEN:$lab_dir/apiserver.sock,fork,unlink-early" "TCP:127.0.0.1:$apiserver_port"
  start lab-apiserver nsenter --net="$netns_path" -- "$bin/socat" \
    "TCP-LISTEN:$apiserver_port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$lab_dir/apiserver.sock"
  lab_links_up

  cat >"$lab_dir/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $lab_dir/registry}
http: {addr: $lab_registry}
EOF
  cat >"$lab_dir/certs.d/$lab_registry/hosts.toml" <<EOF
server = "http://$lab_registry"
[host."http://$lab_registry"]
  capabilities = ["pull", "resolve"]
EOF
  start lab-registry nsenter --net="$netns_path" -- "$bin/docker-registry" serve "$lab_dir/registry.yml"
  wait_for "the lab registry" "$logs/lab-registry.log" lab_enter curl -sf "http://$lab_registry/v2/"
  local t=$SECONDS
  lab_images
  log "lab images pushed in $((SECONDS - t))s ($lab_dir/images names their digests)"

  for ((i = 0; i < real_nodes; i++)); do start_real_node "$i"; done
}

# Every process whose namespace of the given kind is the one at path.
procs_in_ns() {
  local kind=$1 want p
  want=$(stat -L -c %i "$2" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    [ "$(stat -L -c %i "$p/ns/$kind" 2>/dev/null)" = "$want" ] && echo "${p#/proc/}"
  done
  return 0
}

kill_all() { [ $# -eq 0 ] || kill -KILL "$@" 2>/dev/null || true; }

# Tears the lab down to nothing: no process, mount, cgroup or namespace left.
# Works from what is on disk and in /proc, so it also cleans up after a crash.
lab_down() {
  lab_paths
  local d name holder c g victims
  for d in "$CLUSTER_DIR"/nodes/real-node-*; do
    [ -d "$d" ] || continue
    name=$(basename "$d")
    stop "$name-kubelet"
    # the containers: every task in the node's cgroups
    for c in $(cgroup_mounts); do
      g=$c/$cgroup_prefix-${name#real-node-}
      [ -d "$g" ] || continue
      mapfile -t victims < <(find "$g" -name cgroup.procs -exec cat {} + 2>/dev/null)
      kill_all "${victims[@]}"
    done
    # containerd and its shims: everything in the node's mount namespace
    holder=$(pid_of "$name-ns")
    if [ -n "$holder" ] && running "$holder" && ours "$holder"; then
      mapfile -t victims < <(procs_in_ns mnt "/proc/$holder/ns/mnt" | grep -vx "$holder")
      kill_all "${victims[@]}"
    fi
    stop "$name-containerd" "$name-ns"
  done
  # whatever else runs in the lab (the registry, forwarders, test clients)
  stop lab-registry lab-apiserver lab-apiserver-pods lab-apiserver-host
  # the veth (its routes go with it; the lab's end goes with the namespace)
  if ip link show "$veth_host" >/dev/null 2>&1; then ip link del "$veth_host"; fi
  if [ -e "$netns_path" ]; then
    mapfile -t victims < <(procs_in_ns net "$netns_path")
    kill_all "${victims[@]}"
    [ ${#victims[@]} -eq 0 ] || sleep 0.5
    ip netns del "$netns" 2>/dev/null || umount "$netns_path" 2>/dev/null || true
    rm -f "$netns_path"
  fi
  for c in $(cgroup_mounts); do
    for g in "$c/$cgroup_prefix"-*; do
      [ -d "$g" ] && find "$g" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  rm -rf -- "$CLUSTER_DIR/nodes" "$lab_dir"
  rmdir /run/containerd 2>/dev/null || true
}
