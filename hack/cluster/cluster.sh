#!/usr/bin/env bash
# shellcheck disable=SC2015  # `cond && cmd || true`: best-effort cleanup, on purpose
# A real one-node Kubernetes on this machine, to try VectorPipe's Kubernetes
# path (`make cluster`, `make cluster-down`) and for the `node` test tier.
#
#   hack/cluster/cluster.sh up       start it (idempotent); prints how to use it
#   hack/cluster/cluster.sh down     stop it and remove every trace (pods, mounts, netns)
#   hack/cluster/cluster.sh env      print its settings as `export KEY=VALUE` lines
#   hack/cluster/cluster.sh status   nodes and pods, or "down"
#
# What runs, all built from Go modules (hack/k8s/build.sh) or Debian packages:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
#   kube-proxy (iptables mode) as processes; containerd 1.6 + runc + the CNI
#   `bridge` plugin from Debian; CoreDNS and the KubeRay operator as pods.
# Networking: everything lives in the network namespace `vp-<name>` that this
# script creates (`ip netns add`): the node's address NODE_IP on a veth
# whose both ends stay in the namespace, the pods on the bridge vp0 (POD_CIDR), Services in SVC_CIDR. The
# namespace has no route out and no link to the root namespace; kubectl on this
# machine reaches the API server through hack/cluster/forward.py (127.0.0.1 in
# the root namespace -> NODE_IP:6443 in the cluster's), like `kubectl
# port-forward`. Processes enter the namespace with `nsenter --net=...`, not `ip
# netns exec`, which remounts /sys and hides the cgroup mounts from kubelet.
#
# What kubelet 1.36 needs on this machine kind:
#   - cgroup v1 is what is mounted: kubelet >= 1.35 refuses v1 unless
#     `failCgroupV1: false`, and with cgroup v1 the driver is `cgroupfs` (no
#     systemd here). Pods go under the cgroup `vectorpipe-<name>` (cgroupRoot),
#     so `down` can find and kill everything the cluster started.
#   - the sandbox lacks CAP_SYS_RESOURCE, so containerd's CRI plugin needs
#     `restrict_oom_score_adj = true` or runc cannot start a container;
#   - swap may be on: `failSwapOn: false`; images are never garbage-collected
#     (they come from `ctr images import`, not a registry).
#
# Environment:
#   VECTORPIPE_CLUSTER_NAME      cluster name (default vectorpipe); netns vp-<name>
#   VECTORPIPE_CLUSTER_DIR       state dir (default /tmp/vectorpipe-cluster-<name>)
#   VECTORPIPE_CLUSTER_API_PORT  loopback port of the API forwarder (default 0 = any)
#   VECTORPIPE_CLUSTER_IMAGES    0 to skip importing images (default 1)
#   VECTORPIPE_CACHE             cache root (default ~/.cache/vectorpipe): containerd's
#                                image store lives in <cache>/cluster/containerd
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
NAME=${VECTORPIPE_CLUSTER_NAME:-vectorpipe}
DIR=${VECTORPIPE_CLUSTER_DIR:-/tmp/vectorpipe-cluster-${NAME}}
NS=vp-${NAME}
NETNS=/run/netns/${NS}
CACHE=${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}
CTRD_ROOT=${CACHE}/cluster/containerd
NODE=vpnode
NODE_IP=10.250.0.10
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/16
KUBE_SVC_IP=10.96.0.1
DNS_IP=10.96.0.10
CGROUP=vectorpipe-${NAME}
# shellcheck source=hack/cluster/pki.sh
source "$HERE/pki.sh"

START=$(date +%s)
log() { echo "[cluster +$(( $(date +%s) - START ))s] $*" >&2; }
die() { echo "cluster.sh: $*" >&2; exit 1; }
in_ns() { nsenter --net="$NETNS" -- "$@"; }
pidfile() { echo "$DIR/pids/$1.pid"; }
alive() { local f; f=$(pidfile "$1"); [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; }

# spawn NAME CMD...: a daemon in the cluster's namespace, detached from this
# shell (setsid) so `up` can return, its output in logs/NAME.log.
spawn() {
  local name=$1; shift
  setsid nsenter --net="$NETNS" -- "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

# wait_for WHAT SECONDS DAEMON CMD...: poll CMD until it succeeds; fail early,
# with DAEMON's log, if DAEMON died.
wait_for() {
  local what=$1 secs=$2 daemon=$3; shift 3
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$daemon" ]] && ! alive "$daemon"; then
      tail -n 40 "$DIR/logs/$daemon.log" >&2 || true
      die "$daemon exited while waiting for $what (log above: $DIR/logs/$daemon.log)"
    fi
    if (( $(date +%s) > deadline )); then
      [[ -n "$daemon" ]] && tail -n 40 "$DIR/logs/$daemon.log" >&2
      die "timed out after ${secs}s waiting for $what"
    fi
    sleep 1
  done
  log "$what"
}

kubectl_ns() { in_ns "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig.in-ns" "$@"; }

print_env() {
  local port=""
  [[ -f "$DIR/forward.ready" ]] && port=$(head -n 1 "$DIR/forward.ready" | cut -d= -f1)
  cat <<EOF
export KUBECONFIG=$DIR/kubeconfig
export VECTORPIPE_CLUSTER_DIR=$DIR
export VECTORPIPE_CLUSTER_NETNS=$NETNS
export VECTORPIPE_CLUSTER_NODE_IP=$NODE_IP
export VECTORPIPE_CLUSTER_API_PORT=$port
export VECTORPIPE_CLUSTER_CONTAINERD=$DIR/containerd.sock
EOF
}

check_prerequisites() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, containerd, kubelet)"
  local t missing=()
  for t in containerd runc ctr ip iptables nsenter openssl curl; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  [[ ${#missing[@]} -eq 0 ]] || die "missing ${missing[*]}: run 'make system-deps'"
}

write_configs() {
  mkdir -p "$DIR/cni/conf" "$DIR/cni/ipam" "$DIR/kubelet" "$DIR/containerd-state"
  cat >"$DIR/cni/conf/10-vectorpipe.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "vectorpipe",
  "plugins": [
    {"type": "bridge", "bridge": "vp0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$DIR/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}
EOF
  cat >"$DIR/containerd.toml" <<EOF
version = 2
root = "$CTRD_ROOT"
state = "$DIR/containerd-state"
[grpc]
  address = "$DIR/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
EOF
  # An empty resolv.conf: pods with dnsPolicy Default get no resolver, and
  # CoreDNS forwards nothing (nothing leaves the namespace).
  : >"$DIR/resolv.conf"
  cat >"$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP
failSwapOn: false
containerRuntimeEndpoint: unix://$DIR/containerd.sock
address: 0.0.0.0
readOnlyPort: 0
tlsCertFile: $DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $DIR/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: AlwaysAllow}
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: $DIR/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
maxPods: 110
EOF
  cat >"$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# Leave the conntrack sysctls alone: they are not per network namespace.
conntrack: {maxPerCore: 0, min: 0}
EOF
}

start_network() {
  if [[ ! -e "$NETNS" ]]; then
    ip netns add "$NS"
  fi
  ip -n "$NS" link set lo up
  if ! ip -n "$NS" link show vpnode0 >/dev/null 2>&1; then
    # The node's own interface: a veth pair with both ends in the namespace
    # (this kernel has no `dummy` driver); it leads nowhere.
    ip -n "$NS" link add vpnode0 type veth peer name vpnode1
    ip -n "$NS" addr add "$NODE_IP/32" dev vpnode0
    ip -n "$NS" link set vpnode1 up
    ip -n "$NS" link set vpnode0 up
    # Processes on the node (the API server calling a webhook Service) look up
    # a route before kube-proxy's DNAT: give Service IPs one, on that veth.
    ip -n "$NS" route add "$SVC_CIDR" dev vpnode0
  fi
  # Forwarding between the pod bridge and the node's own addresses, and
  # bridged traffic through iptables so kube-proxy's DNAT is undone for a pod
  # that reaches a Service backed by a pod on the same bridge. Both are per
  # namespace.
  in_ns sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward; echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables'
}

start_control_plane() {
  spawn etcd "$BIN/etcd" --name=vectorpipe --data-dir="$DIR/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=vectorpipe=http://127.0.0.1:2380 --unsafe-no-fsync --log-level=warn
  wait_for "etcd is healthy" 60 etcd in_ns curl -sf http://127.0.0.1:2379/health

  spawn kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --advertise-address="$NODE_IP" --secure-port=6443 \
    --cert-dir="$DIR/apiserver-certs" \
    --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
    --client-ca-file="$DIR/pki/ca.crt" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --service-cluster-ip-range="$SVC_CIDR" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$DIR/pki/sa.pub" --service-account-signing-key-file="$DIR/pki/sa.key" \
    --kubelet-client-certificate="$DIR/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$DIR/pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP --allow-privileged=true --profiling=false
  wait_for "kube-apiserver is ready" 120 kube-apiserver \
    in_ns curl -sf --cacert "$DIR/pki/ca.crt" --cert "$DIR/pki/admin.crt" --key "$DIR/pki/admin.key" \
    "https://$NODE_IP:6443/readyz"

  spawn kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
    --root-ca-file="$DIR/pki/ca.crt" --service-account-private-key-file="$DIR/pki/sa.key" \
    --use-service-account-credentials=true --service-cluster-ip-range="$SVC_CIDR" \
    --cluster-signing-cert-file="$DIR/pki/ca.crt" --cluster-signing-key-file="$DIR/pki/ca.key" \
    --controllers='*'
  spawn kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false
}

start_node() {
  mkdir -p "$CTRD_ROOT"
  # One containerd per image store: a second cluster on the same cache would
  # fight over its database.
  exec 8>"$CACHE/cluster/containerd.lock"
  flock -n 8 || die "another cluster uses $CTRD_ROOT; stop it first (hack/cluster/cluster.sh down)"
  spawn containerd containerd --config "$DIR/containerd.toml"
  wait_for "containerd answers" 60 containerd ctr --address "$DIR/containerd.sock" version
  if [[ "${VECTORPIPE_CLUSTER_IMAGES:-1}" == 1 ]]; then
    "$HERE/images.sh" import --address "$DIR/containerd.sock"
  fi
  # The pod cgroup root, in every v1 hierarchy kubelet uses.
  local c
  for c in /sys/fs/cgroup/*/; do
    [[ -f "$c/cgroup.procs" ]] && mkdir -p "$c$CGROUP"
  done
  spawn kubelet "$BIN/kubelet" --config="$DIR/kubelet/config.yaml" \
    --kubeconfig="$DIR/kubelet.kubeconfig" --root-dir="$DIR/kubelet" \
    --hostname-override="$NODE" --node-ip="$NODE_IP" --v=1
  wait_for "node $NODE is Ready" 180 kubelet \
    kubectl_ns wait --for=condition=Ready "node/$NODE" --timeout=2s
  spawn kube-proxy "$BIN/kube-proxy" --config="$DIR/kube-proxy.yaml"
  wait_for "kube-proxy is healthy" 60 kube-proxy in_ns curl -sf http://127.0.0.1:10256/healthz
}

start_addons() {
  local versions="$K8S_ROOT/versions.env"
  # shellcheck disable=SC1090
  source "$versions"
  sed -e "s/@DNS_IP@/$DNS_IP/g" -e "s/@COREDNS_VERSION@/${COREDNS_VERSION}/g" \
    "$HERE/manifests/coredns.yaml" | kubectl_ns apply -f - >/dev/null
  kubectl_ns apply --server-side -f "$K8S_ROOT/crds/" >/dev/null
  # KubeRay's own RBAC and Deployment (copied from its module), pointed at the
  # image built from that module.
  rm -rf "$DIR/kuberay" && mkdir -p "$DIR/kuberay"
  cp -r "$K8S_ROOT/kuberay-config/rbac" "$K8S_ROOT/kuberay-config/manager" "$DIR/kuberay/"
  cat >"$DIR/kuberay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: kuberay-system
resources: [namespace.yaml, rbac, manager]
images:
- name: kuberay/operator
  newName: localhost/vectorpipe/kuberay-operator
  newTag: ${KUBERAY_VERSION}
EOF
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kuberay-system\n' >"$DIR/kuberay/namespace.yaml"
  kubectl_ns apply -k "$DIR/kuberay" >/dev/null
  wait_for "CoreDNS is available" 180 "" \
    kubectl_ns -n kube-system wait --for=condition=Available deployment/coredns --timeout=2s
  wait_for "the KubeRay operator is available" 180 "" \
    kubectl_ns -n kuberay-system wait --for=condition=Available deployment/kuberay-operator --timeout=2s
}

up() {
  check_prerequisites
  if alive kubelet && alive kube-apiserver; then
    log "already up ($DIR)"
    print_env
    return 0
  fi
  [[ -d "$DIR" ]] && { log "cleaning up a previous, stopped cluster in $DIR"; down_quiet; }
  BIN=$("$REPO/hack/k8s/build.sh" | tail -n 1)
  K8S_ROOT=$(dirname "$BIN")
  for b in kubelet kube-proxy coredns; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing (hack/k8s/build.sh)"
  done
  mkdir -p "$DIR/logs" "$DIR/pids" "$CACHE/cluster"
  echo "$BIN" >"$DIR/bin-dir"
  log "network namespace $NS, node $NODE at $NODE_IP, pods $POD_CIDR, services $SVC_CIDR"
  start_network
  write_pki "$DIR/pki" "$NODE_IP" "$NODE" "$KUBE_SVC_IP"
  local c
  write_kubeconfig "$DIR/kubeconfig.in-ns" "https://$NODE_IP:6443" "$DIR/pki" admin
  for c in controller-manager scheduler kube-proxy kubelet; do
    write_kubeconfig "$DIR/$c.kubeconfig" "https://$NODE_IP:6443" "$DIR/pki" "$c"
  done
  write_configs
  # The forwarder first: kubectl on this machine works as soon as the API does.
  rm -f "$DIR/forward.ready"
  setsid python3 "$HERE/forward.py" --netns "$NETNS" --ready-file "$DIR/forward.ready" \
    "${VECTORPIPE_CLUSTER_API_PORT:-0}=$NODE_IP:6443" >>"$DIR/logs/forward.log" 2>&1 </dev/null &
  echo $! >"$(pidfile forward)"
  wait_for "API forwarder listens" 30 forward test -s "$DIR/forward.ready"
  write_kubeconfig "$DIR/kubeconfig" \
    "https://127.0.0.1:$(head -n 1 "$DIR/forward.ready" | cut -d= -f1)" "$DIR/pki" admin
  start_control_plane
  start_node
  start_addons
  log "up: export KUBECONFIG=$DIR/kubeconfig  (or: source <(hack/cluster/cluster.sh env))"
  print_env
}

# Stop the cluster: pods first (through containerd, while it still runs), then
# the daemons, then whatever is left in the pod cgroups, the mounts and the
# namespace.
down_quiet() {
  [[ -d "$DIR" ]] || { [[ -e "$NETNS" ]] && ip netns del "$NS"; return 0; }
  local p name
  alive kubelet && kill "$(cat "$(pidfile kubelet)")" 2>/dev/null || true
  if [[ -S "$DIR/containerd.sock" ]] && alive containerd; then
    local ctr=(ctr --address "$DIR/containerd.sock" -n k8s.io)
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 1
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
      "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  for name in kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd containerd forward kubelet; do
    p=$(cat "$(pidfile "$name")" 2>/dev/null || true)
    [[ -n "$p" ]] && kill "$p" 2>/dev/null || true
  done
  sleep 1
  for name in kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd containerd forward kubelet; do
    p=$(cat "$(pidfile "$name")" 2>/dev/null || true)
    [[ -n "$p" ]] && kill -9 "$p" 2>/dev/null || true
  done
  # containerd's shims outlive containerd; they carry its socket on their command line.
  pkill -9 -f -- "-address $DIR/containerd.sock" 2>/dev/null || true
  local c procs
  for c in /sys/fs/cgroup/*/"$CGROUP"; do
    [[ -d "$c" ]] || continue
    procs=$(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
    # shellcheck disable=SC2086  # one pid per word
    [[ -n "$procs" ]] && kill -9 $procs 2>/dev/null || true
  done
  sleep 0.5
  findmnt -rn -o TARGET | grep -E "^($DIR|$CTRD_ROOT)/" | sort -r | xargs -r -n 1 umount -l 2>/dev/null || true
  for c in /sys/fs/cgroup/*/"$CGROUP"; do
    [[ -d "$c" ]] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  # Pod network namespaces: containerd's CRI plugin makes one per pod under
  # /run/netns (cni-<uuid>) and removes it only through the kubelet; the pods
  # were killed above, so remove those holding an address of this cluster's
  # pod range.
  local pns prefix=${POD_CIDR%.*}.
  for pns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do
    if ip -n "$pns" -4 -o addr show 2>/dev/null | grep -qF " $prefix"; then
      ip netns del "$pns" 2>/dev/null || true
    fi
  done
  [[ -e "$NETNS" ]] && ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}

down() {
  [[ $(id -u) -eq 0 ]] || die "needs root"
  down_quiet
  log "down ($DIR removed, network namespace $NS deleted)"
}

status() {
  if [[ ! -f "$DIR/kubeconfig" ]] || ! alive kube-apiserver; then
    echo "down"
    return 1
  fi
  BIN=$(cat "$DIR/bin-dir")
  "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get nodes -o wide
  "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get pods -A -o wide
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) print_env ;;
  status) status ;;
  *) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
