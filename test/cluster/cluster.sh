#!/usr/bin/env bash
# Runs a real Kubernetes control plane on 127.0.0.1 for end-to-end tests and
# demos: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and N
# hollow kubelets (kubemark over a fake container runtime), as local processes;
# as root also real kubelets over containerd and runc, in a private network
# namespace with a registry of locally built images (lab.sh says how).
#
#   cluster.sh up [--nodes N]   start (or reuse a healthy running cluster)
#   cluster.sh down             stop everything and remove runtime state
#   cluster.sh status           exit 0 when the cluster is running and healthy
#   cluster.sh restart etcd|kube-apiserver   stop one (SIGTERM) and start it again, same data and ports
#
# Environment: CLUSTER_DIR (state dir, default <repo>/.cluster), CLUSTER_NODES
# (hollow nodes, default 2), CLUSTER_REAL_NODES (real nodes, default 2 as root,
# else 0), KUBEBUILDER_ASSETS (a folder with the six binaries, instead of building them),
# CLUSTER_MAX_PODS (pods per hollow node, default 110), CLUSTER_TIMEOUT (seconds per readiness wait, default 120),
# CLUSTER_AUDIT_LOG (a file: the apiserver logs every write there, who and what, for the benchmarks),
# CLUSTER_LAB_ROUTED (1, the default: the host routes the lab's pod and node IPs; 0: not).
# `up` prints the env file on stdout (so `eval "$(cluster.sh up)"` works);
# every message goes to stderr.
#
# Hollow nodes run the real kubelet over a fake CRI runtime. For tests: probes
# never run (every container reports ready=true, even while still
# ContainerCreating; readinessGates are honoured), every pod gets IP
# 192.168.192.168, nodes report the host's eth0 address, and the kubelet
# records no events. Never connect to their pod or node IPs. Real nodes' pods
# have real IPs in 10.88.<node>.0/24, reachable only from inside the lab.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-$repo/.cluster}
nodes=${CLUSTER_NODES:-2}
nodes_asked=${CLUSTER_NODES:+yes} # set when the caller chose a node count
# Real nodes need root (namespaces, mounts, cgroups): two by default as root, none otherwise.
real_nodes=${CLUSTER_REAL_NODES:-$([ "$(id -u)" -eq 0 ] && echo 2 || echo 0)}
timeout=${CLUSTER_TIMEOUT:-120}
webhook_port=9443 # the product's webhook listens here; never hand it out
phase=""          # what `up` was doing, for the failure message

log() { echo "cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=lab.sh
. "$here/lab.sh"

usage() {
  sed -n '8,11p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
  exit 2
}

# ---------------------------------------------------------------- paths ---

set_paths() {
  mkdir -p "$CLUSTER_DIR"
  CLUSTER_DIR=$(cd "$CLUSTER_DIR" && pwd) # absolute: it ends up in kubeconfigs and cmdlines
  bin=$CLUSTER_DIR/bin
  logs=$CLUSTER_DIR/logs
  pki=$CLUSTER_DIR/pki
  kcs=$CLUSTER_DIR/kubeconfigs
  pids=$CLUSTER_DIR/pids
  admin_kc=$CLUSTER_DIR/kubeconfig
  env_file=$CLUSTER_DIR/env
  lab_paths
}

# Serialises up/down/status on one CLUSTER_DIR (parallel test workers). The
# daemons must not inherit fd 9, or they would hold the lock forever.
take_lock() {
  exec 9>"$CLUSTER_DIR/.lock"
  flock 9
}

kubectl() { "$bin/kubectl" --kubeconfig "$admin_kc" --request-timeout=5s "$@"; }

# ------------------------------------------------------------ processes ---

# Starts a daemon in its own session (so it survives `up` exiting and `down`
# can kill its whole process group) with its output in logs/<name>.log.
start() {
  local name=$1; shift
  setsid "$@" </dev/null >"$logs/$name.log" 2>&1 9>&- &
  echo $! >"$pids/$name.pid"
}

# True when pid is one of our daemons: it runs a binary from bin/ (also when
# still inside the unshare wrapper), or is a child of this very script that
# has not exec'd yet. Pids get reused after a reboot or a crash; never signal
# somebody else's process.
ours() {
  local pid=$1 cmd
  [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" != "$$" ] || return 0
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$bin/"* ]]
}

# Alive and not a zombie (during a failed `up` the daemons are still our
# children, and a dead child stays a zombie until the script exits).
running() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

pid_of() { cat "$pids/$1.pid" 2>/dev/null || true; }

# Names of all components whose pid file exists.
components() {
  local f
  for f in "$pids"/*.pid; do [ -e "$f" ] && basename "$f" .pid; done
  return 0
}

# First component that is no longer running, if any. Liveness only: right
# after `start` the pid may still be a forked bash (or the unshare wrapper)
# that has not exec'd the binary yet, so `ours` would give false alarms.
first_dead() {
  local c
  for c in $(components); do
    running "$(pid_of "$c")" || { echo "$c"; return; }
  done
}

# The fake runtime of each hollow kubelet listens on /tmp/kubelet_remote_<n>.sock
# and its root dir is /tmp/hollow-kubelet.XXXX (both hard-coded, and left
# behind on SIGTERM). Both paths are in the node's log (see --vmodule below),
# which also works after a crash.
kubemark_leftovers() {
  grep -ohE 'unix:///tmp/kubelet_remote_[0-9]+\.sock|Using /tmp/hollow-kubelet\.[0-9]+ as root dir' "$logs"/hollow-node-*.log 2>/dev/null |
    sed -E 's|^unix://||; s|^Using ||; s| as root dir$||' | sort -u || true
}

# Waits up to 10 s for all the given pids to exit.
wait_gone() {
  local i p
  for ((i = 0; i < 100; i++)); do
    for p in "$@"; do
      if running "$p"; then sleep 0.1; continue 2; fi
    done
    return 0
  done
  return 1
}

# stop <component...>: SIGTERM each process group, SIGKILL what is left after
# 10 s. Components that are gone, or whose pid was reused, are skipped.
stop() {
  local c pid p group=()
  for c in "$@"; do
    pid=$(pid_of "$c")
    if [ -z "$pid" ] || ! running "$pid" || ! ours "$pid"; then continue; fi
    group+=("$pid")
    # each daemon leads its own process group (setsid); signal the group
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  [ ${#group[@]} -gt 0 ] || return 0
  stopped=$((stopped + ${#group[@]}))
  wait_gone "${group[@]}" && return 0
  for p in "${group[@]}"; do
    running "$p" || continue
    log "pid $p ignored SIGTERM for 10s; sending SIGKILL"
    kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
  done
  wait_gone "${group[@]}" || log "warning: some processes survived SIGKILL: ${group[*]}"
}

# Stops everything in reverse start order (clients before the apiserver
# before etcd, so nobody waits on a dead backend), then removes all runtime
# state but the logs (a failed `up` points at them).
down_locked() {
  local p stopped=0
  mapfile -t leftovers < <(kubemark_leftovers)
  lab_down
  # shellcheck disable=SC2046 # one word per component
  stop $(components | grep -Ev '^(kube-apiserver|etcd)$')
  stop kube-apiserver
  stop etcd
  for p in "${leftovers[@]}"; do
    case $p in /tmp/hollow-kubelet.* | /tmp/kubelet_remote_*.sock) rm -rf -- "$p" ;; esac
  done
  rm -rf -- "$pids" "$CLUSTER_DIR/etcd" "$pki" "$kcs" "$admin_kc" "$env_file" "$CLUSTER_DIR/hosts"
  [ "$stopped" -eq 0 ] || log "stopped $stopped processes"
}

# ----------------------------------------------------------------- ports ---

# Asks the kernel for n distinct free ports on 127.0.0.1, holding every socket
# until all are chosen so that none is handed out twice.
free_ports() {
  local n=$1
  if command -v python3 >/dev/null; then
    python3 - "$n" "$webhook_port" <<'EOF'
import socket, sys
n, avoid = int(sys.argv[1]), int(sys.argv[2])
held, ports = [], []
while len(ports) < n:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    p = s.getsockname()[1]
    if p != avoid and p not in ports:
        ports.append(p)
print(" ".join(map(str, ports)))
EOF
  else
    node -e '
      const net = require("net"); const [n, avoid] = process.argv.slice(1).map(Number);
      const held = [], ports = [];
      const next = () => { if (ports.length >= n) { console.log(ports.join(" ")); held.forEach(s => s.close()); return; }
        const s = net.createServer().listen(0, "127.0.0.1", () => { held.push(s); const p = s.address().port;
          if (p !== avoid && !ports.includes(p)) ports.push(p); next(); }); };
      next();' "$n" "$webhook_port"
  fi
}

# ------------------------------------------------------------------- PKI ---

# ECDSA P-256 keys: generated instantly, accepted by every Kubernetes
# component and by Node's TLS stack.
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

# make_ca <file stem> <CN>
make_ca() {
  new_key "$pki/$1.key"
  openssl req -x509 -new -key "$pki/$1.key" -subj "/CN=$2" -days 3650 -out "$pki/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
}

# [signer=<CA stem>] make_cert <file stem> <subject> <extendedKeyUsage> [subjectAltName]
make_cert() {
  local stem=$pki/$1 subj=$2 eku=$3 san=${4:-} ca=$pki/${signer:-ca}
  new_key "$stem.key"
  openssl req -new -key "$stem.key" -subj "$subj" -out "$stem.csr"
  openssl x509 -req -in "$stem.csr" -CA "$ca.crt" -CAkey "$ca.key" -days 365 \
    -set_serial "0x$(openssl rand -hex 16)" -out "$stem.crt" 2>/dev/null \
    -extfile <(
      echo "basicConstraints=critical,CA:FALSE"
      echo "keyUsage=critical,digitalSignature,keyEncipherment"
      echo "extendedKeyUsage=$eku"
      [ -z "$san" ] || echo "subjectAltName=$san"
    )
  rm -f "$stem.csr"
}

# write_kubeconfig <out> <user name> <cert stem>; certs are embedded so each
# file works on its own (copied elsewhere, or read by @kubernetes/client-node).
write_kubeconfig() {
  local out=$1 user=$2 stem=$pki/$3
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: inplace-gate
  cluster:
    server: $apiserver
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$stem.crt")
    client-key-data: $(base64 -w0 <"$stem.key")
contexts:
- name: inplace-gate
  context:
    cluster: inplace-gate
    user: $user
current-context: inplace-gate
EOF
  chmod 600 "$out"
}

# client <stem> <kubeconfig> <CN> [O...]: a client cert plus its kubeconfig.
client() {
  local stem=$1 out=$2 cn=$3 subj="" o
  shift 3
  for o in "$@"; do subj+="/O=$o"; done
  make_cert "$stem" "$subj/CN=$cn" clientAuth
  write_kubeconfig "$out" "$cn" "$stem"
}

make_pki() {
  local i sa_groups=(system:serviceaccounts system:serviceaccounts:inplace-gate)
  mkdir -p "$pki" "$kcs"
  make_ca ca inplace-gate-test-ca
  # 10.0.0.1 is the ClusterIP of the `kubernetes` Service in 10.0.0.0/24.
  make_cert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1"
  # front-proxy CA and client: the requestheader (aggregation) set-up kubeadm
  # does; without it the controller-manager and scheduler log an error about
  # the missing requestheader CA every minute.
  make_ca front-proxy-ca inplace-gate-front-proxy-ca
  signer=front-proxy-ca make_cert front-proxy-client "/CN=front-proxy-client" clientAuth
  # service-account token signing pair
  new_key "$pki/sa.key"
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

  client admin "$admin_kc" admin system:masters
  client kube-controller-manager "$kcs/kube-controller-manager.kubeconfig" system:kube-controller-manager
  client kube-scheduler "$kcs/kube-scheduler.kubeconfig" system:kube-scheduler
  for ((i = 0; i < nodes; i++)); do
    client "hollow-node-$i" "$kcs/hollow-node-$i.kubeconfig" "system:node:hollow-node-$i" system:nodes
  done
  for ((i = 0; i < real_nodes; i++)); do
    client "real-node-$i" "$kcs/real-node-$i.kubeconfig" "system:node:real-node-$i" system:nodes
  done
  # The product's own identities: the usernames service-account tokens would
  # carry, so its RBAC (bound to ServiceAccount subjects) applies unchanged.
  client watcher "$kcs/watcher.kubeconfig" system:serviceaccount:inplace-gate:inplace-gate-watcher "${sa_groups[@]}"
  client webhook "$kcs/webhook.kubeconfig" system:serviceaccount:inplace-gate:inplace-gate-webhook "${sa_groups[@]}"
}

# ------------------------------------------------------------ components ---

start_etcd() {
  local client_url=http://127.0.0.1:$etcd_port peer_url=http://127.0.0.1:$etcd_peer_port
  # The peer URL defaults to localhost:2380; set every peer flag so two
  # clusters (or a system etcd) never collide. No fsync: data is throwaway.
  start etcd "$bin/etcd" --name=default --data-dir="$CLUSTER_DIR/etcd" \
    --listen-client-urls="$client_url" --advertise-client-urls="$client_url" \
    --listen-peer-urls="$peer_url" --initial-advertise-peer-urls="$peer_url" \
    --initial-cluster="default=$peer_url" \
    --unsafe-no-fsync=true --log-level=warn
}

start_apiserver() {
  # envtest's flags, plus: real authn/authz (client CA, Node+RBAC, the
  # ServiceAccount admission plugin that envtest disables, NodeRestriction as
  # in kubeadm). --endpoint-reconciler-type=none: the reconciler would publish
  # the advertise address 127.0.0.1 as the endpoint of the `kubernetes`
  # Service, which endpoint validation rejects (loopback), forever retrying.
  # --shutdown-send-retry-after: on SIGTERM, close open watches after 2 s
  # instead of waiting up to 60 s for clients (the product's watcher) to go.
  # --enable-aggregator-routing: a webhook behind a Service is called at its
  # endpoints' IPs (looked up in the API), not at its ClusterIP, which nothing
  # routes here (no kube-proxy); lab.sh routes real nodes' pod IPs.
  # No --kubelet-client-certificate: nothing may reach kubelets (logs, exec,
  # port-forward would leave loopback: nodes report the host's eth0 address).
  # Writes only, at Metadata level (user, verb, resource): the benchmarks count writes by client.
  local audit=()
  if [ -n "${CLUSTER_AUDIT_LOG:-}" ]; then
    printf '%s\n' 'apiVersion: audit.k8s.io/v1' 'kind: Policy' 'omitStages: [RequestReceived]' 'rules:' \
      '- level: Metadata' '  verbs: [create, update, patch, delete, deletecollection]' '- level: None' >"$CLUSTER_DIR/audit-policy.yaml"
    audit=(--audit-policy-file="$CLUSTER_DIR/audit-policy.yaml" --audit-log-path="$CLUSTER_AUDIT_LOG" --audit-log-format=json --audit-log-maxsize=0)
  fi
  start kube-apiserver "$bin/kube-apiserver" \
    "${audit[@]}" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --secure-port="$apiserver_port" \
    --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" \
    --proxy-client-key-file="$pki/front-proxy-client.key" \
    --shutdown-send-retry-after=true \
    --enable-aggregator-routing=true
}

start_controller_manager() {
  local kc=$kcs/kube-controller-manager.kubeconfig
  # Cloud controllers are skipped on their own without --cloud-provider.
  # The cluster-signing pair lets CSRs (e.g. kubelet serving certs) be signed.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" \
    --leader-elect=false \
    --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key"
}

start_scheduler() {
  local kc=$kcs/kube-scheduler.kubeconfig
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --secure-port="$scheduler_port" \
    --leader-elect=false
}

# Every 10 s a kubelet resolves its own node name to pick the node IP; for
# "hollow-node-0" that is a DNS query to the host's resolver, i.e. traffic
# off loopback. Go's resolver reads /etc/hosts first, so each hollow kubelet
# runs in a private mount namespace whose /etc/hosts also names the nodes.
# The kubelet rejects that loopback answer as a node IP and, as after a
# failed lookup, takes the address of the host's default-route interface
# (read locally, no traffic). Without unshare rights (no root, no user
# namespaces) nodes still work; they just make those DNS queries.
hosts_wrapper=()
setup_hosts_override() {
  local f=$CLUSTER_DIR/hosts ns mnt i
  {
    cat /etc/hosts
    for ((i = 0; i < nodes; i++)); do echo "127.0.0.1 hollow-node-$i"; done
  } >"$f"
  ns=(unshare --mount --propagation private)
  [ "$(id -u)" -eq 0 ] || ns=(unshare --user --map-root-user --mount --propagation private)
  # shellcheck disable=SC2016 # $0 and $@ belong to the inner sh
  mnt=(sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$f")
  if "${ns[@]}" -- "${mnt[@]}" true 2>/dev/null; then
    hosts_wrapper=("${ns[@]}" -- "${mnt[@]}")
  else
    log "warning: cannot unshare a mount namespace; hollow kubelets will look their node names up in DNS"
  fi
}

# Hollow kubelet: the real kubelet code over kubemark's fake CRI runtime and
# fake image service (no containerd needed; --use-host-image-service=false).
# It listens on 0.0.0.0:<kubelet-port> (hard-coded in kubemark), so every node
# needs its own port; the read-only port is off and the healthz server of the
# real kubelet is never started by kubemark, so nothing else can collide.
start_node() {
  local i=$1 name=hollow-node-$1
  start "$name" "${hosts_wrapper[@]}" "$bin/kubemark" --morph=kubelet --name="$name" \
    --kubeconfig="$kcs/$name.kubeconfig" \
    --kubelet-port="${kubelet_ports[$i]}" --kubelet-read-only-port=0 \
    --use-host-image-service=false --max-pods="${CLUSTER_MAX_PODS:-110}" \
    --vmodule=remote_runtime=3 # logs the fake runtime's socket path, for `down`
}

# --------------------------------------------------------------- waiting ---

# wait_for <what> <log to read on failure> <command...>: polls the command
# until it succeeds; fails at once if a daemon died, or after $timeout s.
wait_for() {
  local what=$1 hint=$2 deadline=$((SECONDS + timeout)) dead
  shift 2
  until "$@" >/dev/null 2>&1; do
    dead=$(first_dead)
    [ -z "$dead" ] || die "$dead exited while waiting for $what; read $logs/$dead.log"
    [ $SECONDS -lt $deadline ] || die "timed out after ${timeout}s waiting for $what; read $hint"
    sleep 0.2
  done
}

etcd_healthy() { curl -sf --noproxy '*' "http://127.0.0.1:$etcd_port/health" | grep -q '"health":"true"'; }
apiserver_ready() { [ "$(kubectl get --raw /readyz 2>/dev/null)" = ok ]; }
healthz() { curl -skf --noproxy '*' "https://127.0.0.1:$1/healthz" | grep -qx ok; }
default_sa_exists() { kubectl -n default get serviceaccount default; }

# Names of hollow nodes that are not registered and Ready yet.
nodes_not_ready() {
  local ready i
  ready=$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}') || {
    echo all
    return
  }
  for ((i = 0; i < nodes; i++)); do
    grep -qx "hollow-node-$i=True" <<<"$ready" || echo "hollow-node-$i"
  done
  for ((i = 0; i < real_nodes; i++)); do
    grep -qx "real-node-$i=True" <<<"$ready" || echo "real-node-$i"
  done
}
all_nodes_ready() { [ -z "$(nodes_not_ready)" ]; }

wait_for_nodes() {
  local deadline=$((SECONDS + timeout)) dead pending
  while pending=$(nodes_not_ready) && [ -n "$pending" ]; do
    dead=$(first_dead)
    [ -z "$dead" ] || die "$dead exited while waiting for nodes; read $logs/$dead.log"
    if [ $SECONDS -ge $deadline ]; then
      die "timed out after ${timeout}s waiting for nodes to be Ready ($(tr '\n' ' ' <<<"$pending")); read $logs/$(head -1 <<<"$pending").log"
    fi
    sleep 0.2
  done
}

# ------------------------------------------------------------------ state ---

write_env() {
  {
    echo "# written by test/cluster/cluster.sh up; source it"
    printf 'export %s=%q\n' \
      CLUSTER_DIR "$CLUSTER_DIR" \
      CLUSTER_BIN "$bin" \
      CLUSTER_LOGS "$logs" \
      CLUSTER_NODES "$nodes" \
      CLUSTER_REAL_NODES "$real_nodes" \
      CLUSTER_NETNS "$([ "$real_nodes" -eq 0 ] || echo "$netns")" \
      CLUSTER_LAB_REGISTRY "$([ "$real_nodes" -eq 0 ] || echo "$lab_registry")" \
      CLUSTER_LAB_ROUTED "$lab_routed" \
      KUBECONFIG "$admin_kc" \
      APISERVER "$apiserver" \
      APISERVER_PORT "$apiserver_port" \
      CLUSTER_CA "$pki/ca.crt" \
      WATCHER_KUBECONFIG "$kcs/watcher.kubeconfig" \
      WEBHOOK_KUBECONFIG "$kcs/webhook.kubeconfig" \
      ETCD_PORT "$etcd_port" \
      ETCD_PEER_PORT "$etcd_peer_port" \
      KUBE_CONTROLLER_MANAGER_PORT "$kcm_port" \
      KUBE_SCHEDULER_PORT "$scheduler_port" \
      KUBELET_PORTS "${kubelet_ports[*]}"
  } >"$env_file.tmp"
  mv "$env_file.tmp" "$env_file" # atomically: its presence means "up finished"
}

# Healthy = env written, every daemon running, apiserver ready, nodes Ready.
healthy() {
  local why
  why=$(unhealthy_reason) || return 0
  log "$why"
  return 1
}

unhealthy_reason() {
  local dead
  if [ ! -f "$env_file" ]; then echo "not running (no $env_file)"; return 0; fi
  # shellcheck disable=SC1090
  nodes=$(. "$env_file" && echo "$CLUSTER_NODES")
  # shellcheck disable=SC1090
  real_nodes=$(. "$env_file" && echo "${CLUSTER_REAL_NODES:-0}")
  dead=$(first_dead)
  if [ -n "$dead" ]; then echo "$dead is not running; read $logs/$dead.log"; return 0; fi
  if ! apiserver_ready; then echo "kube-apiserver is not ready; read $logs/kube-apiserver.log"; return 0; fi
  if ! all_nodes_ready; then echo "nodes not Ready: $(nodes_not_ready | tr '\n' ' ')"; return 0; fi
  return 1
}

# ------------------------------------------------------------- commands ---

up_failed() {
  local rc=$?
  [ "$rc" -ne 0 ] || return 0
  log "up failed${phase:+ while $phase}; stopping everything it started (logs kept in $logs)"
  down_locked
  exit "$rc"
}

cmd_up() {
  local wanted=$nodes wanted_real=$real_nodes i
  if [ -f "$env_file" ] || [ -n "$(components)" ]; then
    if healthy; then
      local running_nodes
      # shellcheck disable=SC1090
      running_nodes=$(. "$env_file" && echo "$CLUSTER_NODES")
      # A different node count only matters when the caller asked for one.
      [ "$running_nodes" = "$wanted" ] || [ -z "$nodes_asked" ] ||
        die "a healthy cluster with $running_nodes nodes already runs in $CLUSTER_DIR; run down first to get $wanted"
      [ "$real_nodes" = "$wanted_real" ] || [ -z "${CLUSTER_REAL_NODES:-}" ] ||
        die "a healthy cluster with $real_nodes real nodes already runs in $CLUSTER_DIR; run down first to get $wanted_real"
      log "already running; kubeconfig: $admin_kc"
      cat "$env_file"
      return 0
    fi
    log "found a stale or unhealthy cluster in $CLUSTER_DIR; cleaning it up"
    down_locked
    nodes=$wanted real_nodes=$wanted_real
  fi

  local bin_dir from=build.sh
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    from=KUBEBUILDER_ASSETS
    # Binaries of one's own (envtest's layout); they must include the scheduler,
    # controller-manager and kubemark too, which envtest's own archives do not.
    bin_dir=$KUBEBUILDER_ASSETS
  else
    # Builds on first use; its progress goes to stderr, per binary with a heartbeat (progress.sh).
    bin_dir=$(bash "$here/build.sh" 2> >(bash "$here/progress.sh" >&2))
  fi
  trap up_failed EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  local t0=$SECONDS
  # Only our own logs: the e2e set-up keeps its webhook log in logs/ too.
  rm -rf "$bin" "$logs"/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler,hollow-node-*,real-node-*,lab-*,pki,apt}.log
  mkdir -p "$bin" "$logs" "$pids"
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubemark kubectl; do
    [ -x "$bin_dir/$b" ] || die "$bin_dir (from $from) has no $b"
    ln -s "$bin_dir/$b" "$bin/$b"
  done
  [ "$real_nodes" -eq 0 ] || lab_prepare

  local ports
  read -r -a ports <<<"$(free_ports $((5 + nodes)))"
  [ ${#ports[@]} -eq $((5 + nodes)) ] || die "could not get $((5 + nodes)) free ports on 127.0.0.1"
  etcd_port=${ports[0]} etcd_peer_port=${ports[1]} apiserver_port=${ports[2]}
  kcm_port=${ports[3]} scheduler_port=${ports[4]}
  kubelet_ports=("${ports[@]:5}")
  apiserver=https://127.0.0.1:$apiserver_port

  phase="generating certificates (see $logs/pki.log)"
  make_pki 2>"$logs/pki.log" # not `|| die`: that would switch off set -e inside
  phase=""

  start_etcd
  wait_for "etcd" "$logs/etcd.log" etcd_healthy
  start_apiserver
  wait_for "kube-apiserver /readyz" "$logs/kube-apiserver.log" apiserver_ready
  start_controller_manager
  start_scheduler
  setup_hosts_override
  for ((i = 0; i < nodes; i++)); do start_node "$i"; done
  [ "$real_nodes" -eq 0 ] || lab_up

  wait_for "kube-controller-manager /healthz" "$logs/kube-controller-manager.log" healthz "$kcm_port"
  wait_for "kube-scheduler /healthz" "$logs/kube-scheduler.log" healthz "$scheduler_port"
  wait_for "the default ServiceAccount" "$logs/kube-controller-manager.log" default_sa_exists
  wait_for_nodes

  write_env
  trap - EXIT INT TERM
  log "up in $((SECONDS - t0))s with $nodes hollow nodes and $real_nodes real nodes; kubeconfig: $admin_kc (source $env_file)"
  cat "$env_file"
}

# A fault for the tests: one control-plane daemon stopped and started again as
# a supervisor would, with the same flags, data dir and ports; waits until it
# serves again. Its previous log is kept as <name>.log.<n>.
cmd_restart() {
  local c=$1 stopped=0 n=1
  [ -f "$env_file" ] || die "no running cluster in $CLUSTER_DIR (no $env_file)"
  etcd_port=$(. "$env_file" && echo "$ETCD_PORT")
  etcd_peer_port=$(. "$env_file" && echo "$ETCD_PEER_PORT")
  apiserver_port=$(. "$env_file" && echo "$APISERVER_PORT")
  stop "$c"
  while [ -e "$logs/$c.log.$n" ]; do n=$((n + 1)); done
  mv "$logs/$c.log" "$logs/$c.log.$n" 2>/dev/null || true
  case $c in
    etcd) start_etcd; wait_for "etcd" "$logs/etcd.log" etcd_healthy; wait_for "kube-apiserver /readyz" "$logs/kube-apiserver.log" apiserver_ready ;;
    kube-apiserver) start_apiserver; wait_for "kube-apiserver /readyz" "$logs/kube-apiserver.log" apiserver_ready ;;
  esac
  log "restarted $c"
}

cmd_status() {
  if healthy; then
    log "running and healthy; kubeconfig: $admin_kc"
    kubectl get nodes >&2
    return 0
  fi
  return 1
}

main() {
  local cmd=${1:-} component=""
  [ -n "$cmd" ] || usage
  shift
  if [ "$cmd" = restart ]; then
    case ${1:-} in etcd | kube-apiserver) component=$1; shift ;; *) usage ;; esac
  fi
  while [ $# -gt 0 ]; do
    case $1 in
      --nodes) [ $# -ge 2 ] || usage; nodes=$2 nodes_asked=yes; shift 2 ;;
      --nodes=*) nodes=${1#*=} nodes_asked=yes; shift ;;
      *) usage ;;
    esac
  done
  if ! [[ $nodes =~ ^[0-9]+$ ]] || [ "$nodes" -lt 1 ] || [ "$nodes" -gt 100 ]; then
    die "--nodes wants 1..100, got '$nodes'"
  fi
  if ! [[ $real_nodes =~ ^[0-9]+$ ]] || [ "$real_nodes" -gt 20 ]; then
    die "CLUSTER_REAL_NODES wants 0..20, got '$real_nodes'"
  fi
  [[ $timeout =~ ^[0-9]+$ ]] || die "CLUSTER_TIMEOUT wants seconds, got '$timeout'"

  set_paths
  take_lock
  case $cmd in
    up) cmd_up ;;
    down) down_locked ;;
    status) cmd_status ;;
    restart) cmd_restart "$component" ;;
    *) usage ;;
  esac
}

main "$@"
