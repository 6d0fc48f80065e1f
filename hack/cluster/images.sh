#!/usr/bin/env bash
# The images the one-node cluster (hack/cluster/) runs, built with buildah and
# imported into its containerd without any registry.
#
#   hack/cluster/images.sh list                         the image references, one a line
#   hack/cluster/images.sh build                        build what is missing or stale
#   hack/cluster/images.sh import --address SOCK [--snapshotter overlayfs]
#                                                       import into containerd's k8s.io namespace
#   ... build|import|list NAME...                       only these (pause, coredns, ray-worker, ...)
#
# The images (the list lives in image_table below and nowhere else):
#   registry.k8s.io/pause:3.10                   pause.c (from the kubernetes module, copied by
#                                                hack/k8s/build.sh) compiled static, FROM scratch;
#                                                containerd's sandbox_image
#   localhost/vectorpipe/kuberay-operator:VER    the KubeRay operator from hack/k8s/build.sh, /manager
#   localhost/vectorpipe/coredns:VER             CoreDNS from hack/k8s/build.sh, /coredns
#   localhost/vectorpipe/{operator,slurm-bridge,ray-worker}:TAG   hack/images/build.sh
# KubeRay's and CoreDNS's versions come from hack/k8s/build.sh's versions.env
# (its pinned values until a build has written that file).
#
# build: the small images are FROM scratch, run as a numeric non-root user (so
# runAsNonRoot can be verified) and carry the sha256 of their input (binary or
# pause.c) plus the recipe in the label io.vectorpipe.build-inputs; one is
# rebuilt only when that differs. Our own images are hack/images/build.sh's,
# which caches by content the same way (its output: cluster-images/build-NAME.log
# in the cache, its build log: images/logs/NAME.log). Needs the binaries of hack/k8s/build.sh
# (run it first), gcc with a static libc (libc6-dev).
#
# import: an image whose reference containerd's k8s.io namespace already holds,
# unpacked for the snapshotter, with a manifest whose config digest is the
# buildah image ID, is left alone. Otherwise it is pushed to an oci-archive
# (cached by image ID in ${VECTORPIPE_CACHE:-~/.cache/vectorpipe}/cluster-images/,
# older archives of the same image removed) and imported with `ctr images import`,
# which unpacks it for the snapshotter, so the CRI plugin runs it with
# imagePullPolicy Never/IfNotPresent. The archive carries the full reference, so
# nothing (no docker.io/) is prepended.
#
# Both print one line per image: name, result (built / imported / up to date), seconds.
#
# Environment:
#   VECTORPIPE_CACHE       cache root (default ~/.cache/vectorpipe)
#   VECTORPIPE_IMAGE_TAG   tag of our own images (default dev)
#   VECTORPIPE_IMAGE_STORE, VECTORPIPE_IMAGE_DRIVER   the buildah store (hack/images/storage.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ARCHIVES="${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}/cluster-images"
TAG="${VECTORPIPE_IMAGE_TAG:-dev}"
# shellcheck source=hack/images/storage.sh disable=SC1091  # followed with shellcheck -x
source "$ROOT/hack/images/storage.sh"
INPUTS_LABEL=io.vectorpipe.build-inputs
# The sandbox image's tag, as containerd's sandbox_image names it.
PAUSE_VERSION=3.10
# Bump to rebuild every small image (a change to how they are put together).
RECIPE=2

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "images.sh: $*" >&2; exit 1; }

K8S_BIN=$("$ROOT/hack/k8s/build.sh" --print-dir)
K8S_ROOT=$(dirname "$K8S_BIN")

# version_of VAR: VAR from versions.env, else the pin in hack/k8s/build.sh.
version_of() {
  local v="" f
  for f in "$K8S_ROOT/versions.env" "$ROOT/hack/k8s/build.sh"; do
    if [[ -z "$v" && -f "$f" ]]; then
      v=$(sed -n "s/^$1=\(v[0-9][^[:space:]]*\).*/\1/p" "$f" | head -n 1)
    fi
  done
  [[ -n "$v" ]] || die "no $1 in $K8S_ROOT/versions.env nor hack/k8s/build.sh"
  echo "$v"
}

# The one list of the cluster's images: NAME KIND REFERENCE. KIND says how it is
# built: pause (pause.c), bin (a static binary of hack/k8s/build.sh), project
# (hack/images/build.sh NAME).
image_table() {
  cat <<EOF
pause             pause    registry.k8s.io/pause:${PAUSE_VERSION}
kuberay-operator  bin      localhost/vectorpipe/kuberay-operator:$(version_of KUBERAY_VERSION)
coredns           bin      localhost/vectorpipe/coredns:$(version_of COREDNS_VERSION)
operator          project  localhost/vectorpipe/operator:${TAG}
slurm-bridge      project  localhost/vectorpipe/slurm-bridge:${TAG}
ray-worker        project  localhost/vectorpipe/ray-worker:${TAG}
EOF
}

now() { date +%s.%N; }
report() { # NAME RESULT START REF
  printf '%-17s %-11s %7ss  %s\n' "$1" "$2" "$(awk -v a="$3" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')" "$4"
}
image_id() { "${BUILDAH[@]}" images --no-trunc --format '{{.ID}}' "$1" 2>/dev/null | head -n 1 | sed 's/^sha256://'; }
built_inputs() {
  "${BUILDAH[@]}" inspect --type image --format "{{index .OCIv1.Config.Labels \"${INPUTS_LABEL}\"}}" "$1" 2>/dev/null || true
}

TMP=""
WORKING=""
cleanup() {
  [[ -z "$WORKING" ]] || "${BUILDAH[@]}" rm "$WORKING" >/dev/null 2>&1 || true
  [[ -z "$TMP" ]] || rm -rf "$TMP"
}
trap cleanup EXIT

# scratch_image REF DIGEST FILE PATH USER: FROM scratch, FILE at /PATH (root-owned,
# its mode and file capabilities kept), ENTRYPOINT ["/PATH"], USER. The fixed
# timestamp makes the image ID a function of the inputs.
scratch_image() {
  local ref=$1 digest=$2 file=$3 path=$4 user=$5
  WORKING=$("${BUILDAH[@]}" from --pull=never scratch)
  "${BUILDAH[@]}" copy --quiet --chown 0:0 "$WORKING" "$file" "/$path" >/dev/null
  "${BUILDAH[@]}" config --entrypoint "[\"/$path\"]" --cmd '' --user "$user" --workingdir / \
    --label "${INPUTS_LABEL}=${digest}" "$WORKING"
  "${BUILDAH[@]}" commit --quiet --timestamp 0 --rm "$WORKING" "$ref" >/dev/null
  WORKING=""
}

pause_source() {
  if [[ -f "$K8S_ROOT/pause/pause.c" ]]; then
    echo "$K8S_ROOT/pause/pause.c"
    return
  fi
  # Before hack/k8s/build.sh has copied it: straight from the kubernetes module.
  local dir
  dir=$(go mod download -json "k8s.io/kubernetes@$(version_of K8S_VERSION)" \
          | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -f "$dir/build/pause/linux/pause.c" ]] || die "no pause.c in $K8S_ROOT/pause/ (run hack/k8s/build.sh)"
  echo "$dir/build/pause/linux/pause.c"
}

# build_small NAME KIND REF: sets RESULT.
build_small() {
  local name=$1 kind=$2 ref=$3 src digest cflags file
  case "$kind" in
    pause)
      src=$(pause_source)
      cflags=(-Os -Wall -Werror -static "-DVERSION=${PAUSE_VERSION}")
      digest=$( { echo "recipe=${RECIPE} ref=${ref} cflags=${cflags[*]} user=65535:65535"
                  gcc -dumpfullversion; sha256sum < "$src"; } | sha256sum | cut -d' ' -f1) ;;
    bin)
      src="$K8S_BIN/$name"
      [[ -x "$src" ]] || die "$src is missing: run hack/k8s/build.sh first"
      digest=$( { echo "recipe=${RECIPE} ref=${ref} user=65532:65532"; sha256sum < "$src"; } \
                | sha256sum | cut -d' ' -f1) ;;
  esac
  if [[ "$(built_inputs "$ref")" == "$digest" ]]; then
    RESULT="up to date"
    return
  fi
  TMP=$(mktemp -d)
  case "$name" in
    pause)
      [[ -f "$(gcc -print-file-name=libc.a)" ]] || die "no static libc for gcc: apt-get install libc6-dev"
      gcc "${cflags[@]}" -o "$TMP/pause" "$src"
      strip "$TMP/pause"
      scratch_image "$ref" "$digest" "$TMP/pause" pause 65535:65535 ;;
    kuberay-operator)
      # KubeRay's Deployment runs `command: [/manager]`, as its own image has it.
      cp "$src" "$TMP/manager"
      scratch_image "$ref" "$digest" "$TMP/manager" manager 65532:65532 ;;
    coredns)
      # No file capability (CoreDNS's own image sets cap_net_bind_service): the
      # cluster's CoreDNS listens on 1053 with every capability dropped, and a
      # binary with file capabilities cannot be exec'd under no_new_privs.
      cp "$src" "$TMP/coredns"
      scratch_image "$ref" "$digest" "$TMP/coredns" coredns 65532:65532 ;;
    *) die "no recipe for $name" ;;
  esac
  rm -rf "$TMP"
  TMP=""
  RESULT=built
}

cmd_build() {
  local name kind ref start before
  while read -r name kind ref; do
    start=$(now)
    if [[ "$kind" == project ]]; then
      before=$(image_id "$ref")
      VECTORPIPE_IMAGE_TAG="$TAG" "$ROOT/hack/images/build.sh" -q "$name" </dev/null 2>"$ARCHIVES/build-$name.log" \
        || { cat "$ARCHIVES/build-$name.log" >&2; die "building $name failed"; }
      if [[ "$(image_id "$ref")" == "$before" ]]; then RESULT="up to date"; else RESULT=built; fi
    else
      build_small "$name" "$kind" "$ref" </dev/null
    fi
    report "$name" "$RESULT" "$start" "$ref"
  done <<<"$TABLE"
}

# ctr_config REF: the config digest (= buildah's image ID) of the image REF names
# in containerd, else nothing.
ctr_config() {
  local target
  target=$("${CTR[@]}" images ls "name==$1" </dev/null | awk -v r="$1" '$1 == r { print $3 }')
  [[ -n "$target" ]] || return 0
  "${CTR[@]}" content get "$target" </dev/null \
    | jq -r 'select(.mediaType == null or (.mediaType | test("manifest"))) | .config.digest // empty'
}
# ctr_ready REF: all of REF's content is there and unpacked for the snapshotter.
ctr_ready() {
  [[ "$("${CTR[@]}" images check --snapshotter "$SNAPSHOTTER" -q "name==$1" </dev/null)" == "$1" ]]
}

cmd_import() {
  local name kind ref start id archive old
  command -v jq >/dev/null || die "jq is missing"
  mkdir -p "$ARCHIVES"
  # Concurrent imports (two test sessions) share the archives: one at a time.
  exec 9>"$ARCHIVES/.lock"
  flock 9
  while read -r name kind ref; do
    start=$(now)
    id=$(image_id "$ref")
    [[ -n "$id" ]] || die "$ref is not built: run hack/cluster/images.sh build"
    old=$(ctr_config "$ref")
    if [[ "$old" == "sha256:$id" ]] && ctr_ready "$ref"; then
      report "$name" "up to date" "$start" "$ref"
      continue
    fi
    archive="$ARCHIVES/$name-$id.tar"
    if [[ ! -f "$archive" ]]; then
      "${BUILDAH[@]}" push --quiet "$ref" "oci-archive:$archive.tmp:$ref" </dev/null
      mv -f "$archive.tmp" "$archive"
    fi
    find "$ARCHIVES" -maxdepth 1 -type f -regextype posix-extended \
      -regex ".*/${name}-[0-9a-f]{64}\.tar(\.tmp)?" ! -name "${name}-${id}.tar" -delete
    "${CTR[@]}" images import --snapshotter "$SNAPSHOTTER" "$archive" </dev/null >/dev/null
    if [[ "$(ctr_config "$ref")" != "sha256:$id" ]] || ! ctr_ready "$ref"; then
      die "$ref: containerd does not hold image $id, unpacked, after the import"
    fi
    if [[ -n "$old" && "$old" != "sha256:$id" ]]; then
      # A replaced image: the CRI plugin gives an image its ID reference
      # (sha256:CONFIG) only when the name lacks its "managed" label, which the
      # name kept. Dropping the label makes the plugin treat it as new (it adds
      # the ID reference and the label back); the old ID reference goes.
      "${CTR[@]}" images label "$ref" io.cri-containerd.image= </dev/null >/dev/null
      "${CTR[@]}" images rm "$old" </dev/null >/dev/null 2>&1 || true
    fi
    report "$name" imported "$start" "$ref"
  done <<<"$TABLE"
}

[[ $# -gt 0 ]] || { usage >&2; exit 2; }
action=$1
shift
ADDRESS="" SNAPSHOTTER=overlayfs
names=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --address) ADDRESS=${2:?--address needs a socket path}; shift 2 ;;
    --snapshotter) SNAPSHOTTER=${2:?--snapshotter needs a name}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "images.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
TABLE=$(image_table)
if [[ ${#names[@]} -gt 0 ]]; then
  all=$TABLE TABLE=""
  for n in "${names[@]}"; do
    row=$(awk -v n="$n" '$1 == n' <<<"$all")
    [[ -n "$row" ]] || die "no image '$n' (have: $(awk '{ printf "%s ", $1 }' <<<"$all"))"
    TABLE+="${TABLE:+$'\n'}$row"
  done
fi
RESULT=""
case "$action" in
  list) awk '{ print $3 }' <<<"$TABLE" ;;
  build) mkdir -p "$ARCHIVES"; cmd_build ;;
  import)
    # Never the host's default containerd: the socket is always named.
    [[ -n "$ADDRESS" ]] || die "import needs --address /path/to/containerd.sock"
    [[ -S "$ADDRESS" ]] || die "no socket at $ADDRESS"
    CTR=(ctr --address "$ADDRESS" -n k8s.io)
    cmd_import ;;
  -h|--help|help) usage ;;
  *) echo "images.sh: unknown command $action" >&2; usage >&2; exit 2 ;;
esac
