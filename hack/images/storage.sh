# shellcheck shell=bash disable=SC2034  # BUILDAH is used by the scripts that source this
# Sourced by base.sh and build.sh: sets BUILDAH, the buildah command line that
# names VectorPipe's own image store.
#
# overlay when the file system under the store can hold an overlay upper layer
# (ext4, xfs, ...): a step's layer is then its upper directory, whereas vfs
# copies the whole root file system for every step and diffs trees to commit
# one. Measured here, a cold operator build took 306 s with overlay against
# 1600 s with vfs. On overlayfs itself (a container without a volume) overlay
# cannot nest, so vfs is used there. Each driver gets its own root, so the two
# never meet in one store (buildah refuses a store made by another driver).
#
# Environment:
#   VECTORPIPE_IMAGE_STORE    store root (default /var/lib/containers/vectorpipe)
#   VECTORPIPE_IMAGE_DRIVER   overlay or vfs (default: overlay unless on overlayfs)
# `hack/images/build.sh --buildah` prints the command line, for `push`, `from`, ...
STORE_ROOT="${VECTORPIPE_IMAGE_STORE:-/var/lib/containers/vectorpipe}"
if [[ -z "${VECTORPIPE_IMAGE_DRIVER:-}" ]]; then
  probe=$STORE_ROOT
  while [[ ! -d "$probe" ]]; do probe=$(dirname "$probe"); done
  if [[ "$(stat -f -c %T "$probe")" == overlayfs ]] || ! grep -qw overlay /proc/filesystems; then
    VECTORPIPE_IMAGE_DRIVER=vfs
  else
    VECTORPIPE_IMAGE_DRIVER=overlay
  fi
fi
BUILDAH=(buildah --storage-driver "$VECTORPIPE_IMAGE_DRIVER"
         --root "$STORE_ROOT/$VECTORPIPE_IMAGE_DRIVER"
         --runroot "/run/vectorpipe-containers/$VECTORPIPE_IMAGE_DRIVER")
