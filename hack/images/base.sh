#!/usr/bin/env bash
# Builds the local base images the VectorPipe images are built FROM in tests and
# `make images`. This machine has no registry to pull `python:3.11-slim-bookworm`
# from, so the base is made from Debian packages instead:
#
#   localhost/vectorpipe-base:bookworm      debootstrap minbase + Debian's python3
#                                           (3.11), python3-venv, ca-certificates
#   localhost/vectorpipe-base-mpi:bookworm  the above + Open MPI's runtime (openmpi-bin)
#
#   hack/images/base.sh              build both if missing
#   hack/images/base.sh base         only localhost/vectorpipe-base:bookworm
#   hack/images/base.sh mpi          base + localhost/vectorpipe-base-mpi:bookworm
#
# The root filesystem tarball is cached OUTSIDE the repository in
# ${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}/images/ and the images live in
# VectorPipe's own buildah store (hack/images/storage.sh: overlay where possible),
# the same store hack/images/build.sh and tests/images/ use. An image that already exists with the current recipe
# makes this script a no-op (well under a second).
#
# Environment:
#   VECTORPIPE_CACHE          cache root (default ~/.cache/vectorpipe)
#   VECTORPIPE_DEBIAN_MIRROR  Debian mirror (default: the one in /etc/apt/sources.list.d)
set -euo pipefail

# Bump BASE_RECIPE whenever what goes into a base image changes; an image built
# from an older recipe is rebuilt.
BASE_RECIPE=1
SUITE=bookworm
BASE_PACKAGES=(python3 python3-venv ca-certificates netbase)
MPI_PACKAGES=(openmpi-bin)

BASE_IMAGE=localhost/vectorpipe-base:${SUITE}
MPI_IMAGE=localhost/vectorpipe-base-mpi:${SUITE}
RECIPE_LABEL=io.vectorpipe.base-recipe
BASE_RECIPE_ID="${BASE_RECIPE}:${SUITE}:${BASE_PACKAGES[*]}"
MPI_RECIPE_ID="${BASE_RECIPE_ID}+${MPI_PACKAGES[*]}"

CACHE="${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}/images"
# shellcheck source=hack/images/storage.sh
source "$(dirname "${BASH_SOURCE[0]}")/storage.sh"

want_base=1 want_mpi=1
case "${1:-all}" in
  all) ;;
  base) want_mpi=0 ;;
  mpi) ;;
  *) echo "usage: $0 [all|base|mpi]" >&2; exit 2 ;;
esac

START=$(date +%s)
log() { echo "[images/base +$(( $(date +%s) - START ))s] $*" >&2; }

# image_current IMAGE RECIPE: the image exists and was built from RECIPE.
image_current() {
  local got
  got=$("${BUILDAH[@]}" inspect --type image --format "{{index .OCIv1.Config.Labels \"${RECIPE_LABEL}\"}}" "$1" 2>/dev/null) || return 1
  [[ "$got" == "$2" ]]
}

need() {
  [[ $want_base == 1 ]] && ! image_current "$BASE_IMAGE" "$BASE_RECIPE_ID" && return 0
  [[ $want_mpi == 1 ]] && ! image_current "$MPI_IMAGE" "$MPI_RECIPE_ID" && return 0
  return 1
}

if ! need; then
  exit 0
fi

for tool in buildah debootstrap tar; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "base.sh: '$tool' is missing; run 'make system-deps' (Debian packages buildah, debootstrap)." >&2
    exit 1
  fi
done
if [[ $(id -u) -ne 0 ]]; then
  echo "base.sh: debootstrap and buildah's chroot builds need root." >&2
  exit 1
fi

mkdir -p "$CACHE"
# Two concurrent runs (make images + a pytest session) must not build at once;
# the second waits, then finds the images built.
exec 9>"$CACHE/.base.lock"
flock 9
if ! need; then
  exit 0
fi

# The Debian mirror: the first deb822 entry (or one-line `deb` source) on this
# machine that serves the plain suite; security from the entry serving -security.
find_uri() { # $1 = suite to look for, e.g. bookworm or bookworm-security
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    uri=$(awk -v suite="$1" '
      function flush() { if (!done && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "") { split(uris, u, " "); print u[1]; done = 1; exit } types=""; suites=""; uris="" }
      /^[[:space:]]*$/ { flush(); next }
      /^Types:/  { sub(/^Types:[[:space:]]*/, "");  types=$0 }
      /^URIs:/   { sub(/^URIs:[[:space:]]*/, "");   uris=$0 }
      /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites=$0 }
      END { flush() }' "$f")
    [[ -n "$uri" ]] && { echo "$uri"; return 0; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    uri=$(awk -v suite="$1" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == suite) { print $i; exit } }' "$f")
    [[ -n "$uri" ]] && { echo "$uri"; return 0; }
  done
  return 1
}
MIRROR="${VECTORPIPE_DEBIAN_MIRROR:-$(find_uri "$SUITE" || echo http://deb.debian.org/debian)}"
SECURITY="$(find_uri "${SUITE}-security" || echo http://deb.debian.org/debian-security)"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

TARBALL="$CACHE/base-${SUITE}-r${BASE_RECIPE}.tgz"
WORK=$(mktemp -d "$CACHE/work.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

build_rootfs() {
  local root="$WORK/rootfs" includes
  includes=$(IFS=,; echo "${BASE_PACKAGES[*]}")
  log "debootstrap --variant=minbase $SUITE from $MIRROR (+ $includes)"
  mkdir -p "$CACHE/debs"
  debootstrap --variant=minbase --include="$includes" --keyring="$KEYRING" \
    --cache-dir="$CACHE/debs" "$SUITE" "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
      tail -n 30 "$WORK/debootstrap.log" >&2
      echo "base.sh: debootstrap failed (log above)" >&2
      exit 1
    }
  # apt sources for later `apt-get install` steps in Containerfiles.
  cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR ${SUITE}-updates main
deb $SECURITY ${SUITE}-security main
EOF
  # Keep docs, man pages and translations out of this image and of every
  # package a Containerfile installs on top of it (as Debian's slim images do).
  cat >"$root/etc/dpkg/dpkg.cfg.d/90-vectorpipe-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  cat >"$root/etc/apt/apt.conf.d/90-vectorpipe" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "${root:?}"/var/log/* "${root:?}"/tmp/* "${root:?}"/dev/* "$root"/etc/resolv.conf "$root"/etc/hostname
  : >"$root/etc/machine-id"
  log "tar the root filesystem ($(du -sh "$root" | cut -f1))"
  tar --numeric-owner --xattrs -C "$root" -czf "$TARBALL.part" .
  mv "$TARBALL.part" "$TARBALL"
  rm -rf "$root"
}

build_base() {
  if [[ ! -s "$TARBALL" ]]; then
    build_rootfs
  else
    log "reusing cached root filesystem $TARBALL"
  fi
  ln "$TARBALL" "$WORK/base.tgz" 2>/dev/null || cp "$TARBALL" "$WORK/base.tgz"
  cat >"$WORK/Containerfile" <<EOF
FROM scratch
ADD base.tgz /
ENV LANG=C.UTF-8 \\
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL ${RECIPE_LABEL}="${BASE_RECIPE_ID}" \\
      org.opencontainers.image.title="vectorpipe-base" \\
      org.opencontainers.image.description="Debian ${SUITE} minbase + python3 (3.11) + venv; a local stand-in for python:3.11-slim-${SUITE}" \\
      org.opencontainers.image.base.name="debootstrap:${SUITE}"
CMD ["python3"]
EOF
  log "import as $BASE_IMAGE"
  "${BUILDAH[@]}" bud --isolation chroot --pull=never --quiet -f "$WORK/Containerfile" \
    -t "$BASE_IMAGE" "$WORK" >/dev/null
  rm -f "$WORK/base.tgz"
}

build_mpi() {
  cat >"$WORK/Containerfile.mpi" <<EOF
FROM ${BASE_IMAGE}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${MPI_PACKAGES[*]} >/dev/null \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log
LABEL ${RECIPE_LABEL}="${MPI_RECIPE_ID}" \\
      org.opencontainers.image.title="vectorpipe-base-mpi" \\
      org.opencontainers.image.description="vectorpipe-base + Open MPI runtime (${MPI_PACKAGES[*]})"
EOF
  log "build $MPI_IMAGE (+ ${MPI_PACKAGES[*]})"
  "${BUILDAH[@]}" bud --isolation chroot --pull=never --quiet -f "$WORK/Containerfile.mpi" \
    -t "$MPI_IMAGE" "$WORK" >/dev/null
}

if ! image_current "$BASE_IMAGE" "$BASE_RECIPE_ID"; then
  build_base
  # A rebuilt base makes any MPI base built on the old one stale.
  "${BUILDAH[@]}" rmi "$MPI_IMAGE" >/dev/null 2>&1 || true
fi
if [[ $want_mpi == 1 ]] && ! image_current "$MPI_IMAGE" "$MPI_RECIPE_ID"; then
  build_mpi
fi
log "done: $("${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -E 'vectorpipe-base(-mpi)?:' | tr '\n' ' ')"
