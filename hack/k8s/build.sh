#!/usr/bin/env bash
# Builds the real Kubernetes control plane that VectorPipe's k8s tests run
# against, from Go modules only (this machine has no Docker and cannot fetch
# release binaries): kube-apiserver, kube-controller-manager, kube-scheduler and
# kubectl from k8s.io/kubernetes, etcd, helm, kwok (+ its stage configs) and the
# KubeRay operator (+ its CRDs). Every version is pinned below; the output lives
# in a cache OUTSIDE the repository, keyed by those versions, so a warm cache
# makes this script a no-op that returns within a second.
#
#   hack/k8s/build.sh              build what is missing, print the bin dir
#   hack/k8s/build.sh --print-dir  print the bin dir only (builds nothing)
#
# Layout: ${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}/k8s/<key>/{bin,crds,kwok-stages,versions.env}
# GOMODCACHE and GOCACHE are left at Go's defaults (~/go/pkg/mod,
# ~/.cache/go-build) on purpose, so they stay warm across projects and runs.
set -euo pipefail

# --- pinned versions (all build with Go 1.26.x, CGO_ENABLED=0) --------------
K8S_VERSION=v1.36.3       # matches the kubernetes Python client <37 (client 36 = k8s 1.36)
ETCD_VERSION=v3.6.16      # etcd 3.6 is what Kubernetes 1.36 documents; Debian ships 3.4
HELM_VERSION=v3.22.0
KWOK_VERSION=v0.8.0
KUBERAY_VERSION=v1.5.0
COREDNS_VERSION=v1.14.7   # built from its own module; no replace directives

KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_kwok-${KWOK_VERSION}_kuberay-${KUBERAY_VERSION}"
ROOT="${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}/k8s/${KEY}"
BIN="${ROOT}/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy etcd helm kwok
          kuberay-operator coredns)

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "${BIN}"
  exit 0
fi
if [[ $# -gt 0 ]]; then
  echo "usage: $0 [--print-dir]" >&2
  exit 2
fi

# complete: every artefact is present. versions.env is written last, so its
# presence also means a previous run was not interrupted half-way.
complete() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "${BIN}/${b}" ]] || return 1; done
  [[ -f "${ROOT}/versions.env" ]] || return 1
  compgen -G "${ROOT}/crds/ray.io_*.yaml" >/dev/null || return 1
  [[ -d "${ROOT}/kwok-stages/pod/fast" && -d "${ROOT}/kwok-stages/node/fast" ]] || return 1
  [[ -f "${ROOT}/pause/pause.c" && -d "${ROOT}/kuberay-config/rbac" ]] || return 1
}

if complete; then
  echo "${BIN}"
  exit 0
fi

# Go's official install location, for shells (or CI) whose PATH lacks it.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:${PATH}"
fi
if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<'EOF'
build.sh: the 'go' command was not found.
Install Go 1.26 or newer (Debian bookworm's golang package is too old): take the
official linux-amd64 tarball for Go 1.26, unpack it to /usr/local/go and put
/usr/local/go/bin on PATH, then run this script again.
EOF
  exit 1
fi

mkdir -p "${BIN}" "${ROOT}/src"
# Two concurrent runs (say, two pytest sessions) must not build into the same
# place at once; the second waits and then finds everything built.
exec 9>"${ROOT}/.lock"
flock 9
if complete; then
  echo "${BIN}"
  exit 0
fi

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
START=$(date +%s)
log() { echo "[k8s build +$(( $(date +%s) - START ))s] $*" >&2; }

# Binaries are built into a scratch dir and moved into bin/ only when whole,
# so an interrupted build never leaves a truncated binary that looks "built".
TMP="$(mktemp -d "${ROOT}/tmp.XXXXXX")"
trap 'rm -rf "${TMP}"' EXIT

moddir() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'; }
modfile() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p'; }
missing() { local b; for b in "$@"; do [[ -x "${BIN}/${b}" ]] || return 0; done; return 1; }

# --- Kubernetes -----------------------------------------------------------------
# k8s.io/kubernetes replaces its ~33 staging modules with ./staging/... paths,
# which `go install pkg@ver` refuses. A wrapper module requires it and maps every
# staging module to its published v0.<minor>.<patch> twin. The list is generated
# from this version's own go.mod, so it can never drift from the pinned version.
if missing kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; then
  log "kubernetes ${K8S_VERSION}: preparing wrapper module"
  W="${ROOT}/src/kubernetes"
  rm -rf "${W}" && mkdir -p "${W}"
  kmod="$(modfile "k8s.io/kubernetes@${K8S_VERSION}")"
  [[ -f "${kmod}" ]] || { echo "cannot download k8s.io/kubernetes@${K8S_VERSION}" >&2; exit 1; }
  staging_version="v0.${K8S_VERSION#v1.}"
  {
    echo "module vectorpipe.local/k8sbuild/kubernetes"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#replace \1 => \1 '"${staging_version}"'#p' "${kmod}"
  } > "${W}/go.mod"
  nrepl=$(grep -c '^replace ' "${W}/go.mod")
  [[ "${nrepl}" -gt 20 ]] || { echo "only ${nrepl} staging replaces found in ${kmod}" >&2; exit 1; }
  log "kubernetes: ${nrepl} staging replaces generated; resolving dependencies"
  PKGS=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
        k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
  (cd "${W}" && go get "${PKGS[@]/%/@${K8S_VERSION}}")

  # The version stamps hack/lib/version.sh would set; without them /version
  # says v0.0.0-master, which breaks helm's kubeVersion checks. client-go's
  # copy is what `kubectl version` prints as the client version.
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  # buildDate is the tag's time from the proxy's .info file, so rebuilds are
  # reproducible. The proxy does not know the commit, so gitCommit stays unset.
  info="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p')"
  build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${info}")"
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${p}.gitVersion=${K8S_VERSION} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${minor}"
    ldflags+=" -X ${p}.gitTreeState=clean -X ${p}.buildDate=${build_date:-1970-01-01T00:00:00Z}"
  done
  log "kubernetes: compiling ${PKGS[*]##*/} (most of a cold build; about 1 min when only relinking)"
  (cd "${W}" && go build -trimpath -ldflags "${ldflags}" -o "${TMP}/" "${PKGS[@]}")
  for p in "${PKGS[@]}"; do mv -f "${TMP}/${p##*/}" "${BIN}/"; done
  log "kubernetes: done"
fi

# --- etcd -------------------------------------------------------------------------
# Its go.mod replaces the sibling etcd modules with ../ paths, so it needs a
# wrapper module too; the required versions of those siblings are published.
if missing etcd; then
  log "etcd ${ETCD_VERSION}: building"
  W="${ROOT}/src/etcd"
  rm -rf "${W}" && mkdir -p "${W}"
  printf 'module vectorpipe.local/k8sbuild/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "${ETCD_VERSION}" > "${W}/go.mod"
  (cd "${W}" && go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" \
    && go build -trimpath -ldflags "-s -w" -o "${TMP}/etcd" go.etcd.io/etcd/server/v3)
  mv -f "${TMP}/etcd" "${BIN}/etcd"
fi

# --- helm, kwok, KubeRay: no replace directives, so plain `go install` works ----
if missing helm; then
  log "helm ${HELM_VERSION}: building"
  GOBIN="${TMP}" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  mv -f "${TMP}/helm" "${BIN}/helm"
fi

if missing kwok; then
  log "kwok ${KWOK_VERSION}: building"
  GOBIN="${TMP}" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  mv -f "${TMP}/kwok" "${BIN}/kwok"
fi
# kwok exits with "no stages found" without stage configs; they ship in the
# module (read-only files there, hence the chmod after copying).
rm -rf "${ROOT}/kwok-stages"
cp -r "$(moddir "sigs.k8s.io/kwok@${KWOK_VERSION}")/kustomize/stage" "${ROOT}/kwok-stages"
chmod -R u+w "${ROOT}/kwok-stages"

if missing kuberay-operator; then
  log "KubeRay operator ${KUBERAY_VERSION}: building"
  GOBIN="${TMP}" go install -trimpath -ldflags "-s -w" "github.com/ray-project/kuberay/ray-operator@${KUBERAY_VERSION}"
  mv -f "${TMP}/ray-operator" "${BIN}/kuberay-operator"
fi
# CoreDNS's own main imports every plugin it has (cloud DNS providers, their SDKs
# and tracers: most of a long cold build). The cluster's Corefile uses a few,
# so a wrapper module links only those, with CoreDNS's own coremain; the
# plugin order stays CoreDNS's (dnsserver.Directives).
COREDNS_PLUGINS=(errors health ready kubernetes cache reload log loadbalance)
if missing coredns; then
  log "CoreDNS ${COREDNS_VERSION}: building with plugins ${COREDNS_PLUGINS[*]}"
  W="${ROOT}/src/coredns"
  rm -rf "${W}" && mkdir -p "${W}"
  printf 'module vectorpipe.local/k8sbuild/coredns\n\ngo 1.26.0\n\nrequire github.com/coredns/coredns %s\n' "${COREDNS_VERSION}" > "${W}/go.mod"
  {
    echo "// Generated by hack/k8s/build.sh: CoreDNS with only the plugins the one-node cluster uses."
    echo "package main"
    echo
    echo "import ("
    for p in "${COREDNS_PLUGINS[@]}"; do echo "	_ \"github.com/coredns/coredns/plugin/${p}\""; done
    echo "	\"github.com/coredns/coredns/coremain\""
    echo ")"
    echo
    echo "func main() { coremain.Run() }"
  } > "${W}/main.go"
  (cd "${W}" && go get "github.com/coredns/coredns@${COREDNS_VERSION}" && go mod tidy \
    && go build -trimpath -ldflags "-s -w" -o "${TMP}/coredns" .)
  mv -f "${TMP}/coredns" "${BIN}/coredns"
fi

rm -rf "${ROOT}/crds" && mkdir -p "${ROOT}/crds"
cp "$(moddir "github.com/ray-project/kuberay/ray-operator@${KUBERAY_VERSION}")"/config/crd/bases/ray.io_*.yaml "${ROOT}/crds/"
chmod u+w "${ROOT}"/crds/*.yaml
# For the one-node cluster (hack/cluster/): KubeRay's own RBAC and Deployment
# (a kustomization there points them at the locally built image), and the pod
# sandbox's pause.c, which ships in the kubernetes module.
rm -rf "${ROOT}/kuberay-config" "${ROOT}/pause" && mkdir -p "${ROOT}/kuberay-config" "${ROOT}/pause"
kuberay_dir="$(moddir "github.com/ray-project/kuberay/ray-operator@${KUBERAY_VERSION}")"
cp -r "${kuberay_dir}/config/rbac" "${kuberay_dir}/config/manager" "${ROOT}/kuberay-config/"
cp "$(moddir "k8s.io/kubernetes@${K8S_VERSION}")/build/pause/linux/pause.c" "${ROOT}/pause/"
chmod -R u+w "${ROOT}/kuberay-config" "${ROOT}/pause"

# Written last: it marks the cache complete (see complete()) and tells the
# test fixtures which versions they are talking to.
cat > "${ROOT}/versions.env.tmp" <<EOF
K8S_VERSION=${K8S_VERSION}
ETCD_VERSION=${ETCD_VERSION}
HELM_VERSION=${HELM_VERSION}
KWOK_VERSION=${KWOK_VERSION}
KUBERAY_VERSION=${KUBERAY_VERSION}
COREDNS_VERSION=${COREDNS_VERSION}
EOF
mv -f "${ROOT}/versions.env.tmp" "${ROOT}/versions.env"
log "all built in ${ROOT}"
echo "${BIN}"
