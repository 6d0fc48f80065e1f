#!/usr/bin/env bash
# Builds VectorPipe's container images for real with buildah, without Docker and
# without a registry: each images/<name>/Containerfile is built FROM the local
# debootstrap base (hack/images/base.sh, cached) and tagged
# localhost/vectorpipe/<name>:dev in VectorPipe's own buildah store
# (hack/images/storage.sh: overlay where the file system allows, else vfs).
#
#   hack/images/build.sh                 all images: operator slurm-bridge ray-worker mpi-app
#   hack/images/build.sh operator        only the named ones
#   hack/images/build.sh -q operator     build output only to the log file (tail printed on failure)
#   hack/images/build.sh --force ...     build even when the image is up to date
#   hack/images/build.sh --list          the image names
#   hack/images/build.sh --prune         delete untagged (cached) layers to free disk
#   hack/images/build.sh --buildah       print the buildah command line for this store,
#                                        e.g. $(hack/images/build.sh --buildah) push IMAGE DEST
#
# An image whose inputs (images/NAME/, the files it copies, the base image,
# the build args) are unchanged since it was built is left alone: the check
# takes a second, while even a fully cached build takes a minute or more.
# Otherwise intermediate layers are cached (--layers): a change to Python
# sources rebuilds only the small `package` stage, a change to the pins only
# `deps` onwards. Prints one line per image: name, seconds, size. Logs, with
# seconds since the start on each line, go to the cache dir's images/logs/.
#
# Environment:
#   VECTORPIPE_CACHE            cache root (default ~/.cache/vectorpipe)
#   VECTORPIPE_IMAGE_TAG        tag for the built images (default dev)
#   VECTORPIPE_IMAGE_STORE      buildah store root (default /var/lib/containers/vectorpipe)
#   VECTORPIPE_IMAGE_DRIVER     overlay or vfs (default: overlay unless on overlayfs)
#   VECTORPIPE_BUILD_CA_BUNDLE  CA bundle for pip behind a TLS-intercepting proxy
#                               (default: $PIP_CERT, else $SSL_CERT_FILE)
set -euo pipefail

ALL=(operator slurm-bridge ray-worker mpi-app)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE="${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}/images"
TAG="${VECTORPIPE_IMAGE_TAG:-dev}"
# shellcheck source=hack/images/storage.sh
source "$ROOT/hack/images/storage.sh"
INPUTS_LABEL=io.vectorpipe.build-inputs

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

quiet=0 force=0
names=()
for arg in "$@"; do
  case "$arg" in
    -q|--quiet) quiet=1 ;;
    --force) force=1 ;;
    --list) printf '%s\n' "${ALL[@]}"; exit 0 ;;
    --buildah) echo "${BUILDAH[*]}"; exit 0 ;;
    --prune)
      # Cached layers pile up with every rebuild (under vfs each is a full copy of
      # the file system): drop the untagged ones (the next build is then cold,
      # except the base images).
      "${BUILDAH[@]}" rmi --prune >/dev/null
      "${BUILDAH[@]}" images
      exit 0 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "build.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *)
      if [[ ! -f "$ROOT/images/$arg/Containerfile" ]]; then
        echo "build.sh: no image '$arg' (have: ${ALL[*]})" >&2
        exit 2
      fi
      names+=("$arg") ;;
  esac
done
[[ ${#names[@]} -gt 0 ]] || names=("${ALL[@]}")

base_of() { # the local base each image builds FROM
  case "$1" in
    mpi-app) echo localhost/vectorpipe-base-mpi:bookworm ;;
    *) echo localhost/vectorpipe-base:bookworm ;;
  esac
}

need_mpi=0
for n in "${names[@]}"; do [[ "$(base_of "$n")" == *-mpi:* ]] && need_mpi=1; done
if [[ $need_mpi == 1 ]]; then "$ROOT/hack/images/base.sh" mpi; else "$ROOT/hack/images/base.sh" base; fi

cd "$ROOT"
VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
# Everything the Containerfiles COPY besides images/NAME/ (a superset is fine: it
# only costs a rebuild).
INPUT_PATHS=(pyproject.toml requirements.lock README.md .gitignore
             images/lock_subset.py images/build-constraints.txt images/.containerignore
             core/src workloads/src operator/src slurm-bridge/src)
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ "$REVISION" != unknown ]] && [[ -n "$(git status --porcelain -- images "${INPUT_PATHS[@]}" 2>/dev/null)" ]]; then
  REVISION="${REVISION}-dirty"
fi
mkdir -p "$CACHE/logs"

# Behind a TLS-intercepting proxy pip needs the proxy's CA: a copy of the host's
# bundle is bind-mounted read-only over /mnt (present and empty in Debian-based
# images, so no mount point is left behind in a layer) during RUN steps, and
# the PIP_CERT build arg points pip at it. It never enters an image.
ca_args=()
CA_BUNDLE="${VECTORPIPE_BUILD_CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-}}}"
if [[ -n "$CA_BUNDLE" && -f "$CA_BUNDLE" ]]; then
  mkdir -p "$CACHE/build-ca"
  cmp -s "$CA_BUNDLE" "$CACHE/build-ca/ca-certificates.crt" \
    || cp "$CA_BUNDLE" "$CACHE/build-ca/ca-certificates.crt"
  ca_args=(--volume "$CACHE/build-ca:/mnt:ro" --build-arg PIP_CERT=/mnt/ca-certificates.crt)
fi

# inputs_digest NAME: one hash over everything that determines the image.
inputs_digest() {
  local base_id
  base_id=$("${BUILDAH[@]}" images --no-trunc --format '{{.ID}}' "$(base_of "$1")")
  {
    echo "base=${base_id} version=${VERSION} tag=${TAG}"
    sha256sum hack/images/build.sh
    find "images/$1" "${INPUT_PATHS[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.py[cod]' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
}

# Labels that change with every commit are added by buildah after the last step,
# so they never invalidate a cached layer.
label_args=(--label "org.opencontainers.image.revision=${REVISION}")
SOURCE_URL=$(git remote get-url origin 2>/dev/null || true)
if [[ "$SOURCE_URL" == https://* ]]; then
  label_args+=(--label "org.opencontainers.image.source=${SOURCE_URL%.git}")
fi

stamp() { # prefix each line with the seconds since the build began
  local t0=$SECONDS line
  while IFS= read -r line; do printf '[%4ds] %s\n' $((SECONDS - t0)) "$line"; done
}

summary=()
for n in "${names[@]}"; do
  ref="localhost/vectorpipe/${n}:${TAG}"
  start=$(date +%s.%N)
  digest=$(inputs_digest "$n")
  built=$("${BUILDAH[@]}" inspect --type image --format "{{index .OCIv1.Config.Labels \"${INPUTS_LABEL}\"}}" "$ref" 2>/dev/null || true)
  if [[ $force == 0 && "$built" == "$digest" ]]; then
    note="up to date"
  else
    cmd=("${BUILDAH[@]}" bud --isolation chroot --pull=never --layers --force-rm
         --ignorefile images/.containerignore "${ca_args[@]}" "${label_args[@]}"
         --label "${INPUTS_LABEL}=${digest}"
         --build-arg "BASE_IMAGE=$(base_of "$n")" --build-arg "VERSION=${VERSION}"
         -f "images/${n}/Containerfile" -t "$ref" .)
    echo "+ ${cmd[*]}" >&2
    log="$CACHE/logs/${n}.log"
    if [[ $quiet == 1 ]]; then
      if ! "${cmd[@]}" 2>&1 | stamp >"$log"; then
        tail -n 60 "$log" >&2
        echo "build.sh: building $n failed; full log: $log" >&2
        exit 1
      fi
    else
      "${cmd[@]}" 2>&1 | stamp | tee "$log"
    fi
    note="built"
  fi
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  size=$("${BUILDAH[@]}" images --format '{{.Size}}' "$ref" | head -n 1)
  summary+=("$(printf '%-14s %-11s %8ss  %10s  %s' "$n" "$note" "$secs" "$size" "$ref")")
done

echo "image          result         seconds        size  reference" >&2
printf '%s\n' "${summary[@]}" >&2
