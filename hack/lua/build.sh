#!/usr/bin/env bash
# Builds hack/lua (the gopher-lua harness that runs Argo CD health scripts the
# way Argo CD does) into the cache OUTSIDE the repository:
#
#   ${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}/bin/lua-health
#
# and prints that path. A stamp beside the binary records a hash of main.go,
# go.mod and go.sum, so a second run is a no-op (no `go` invocation at all) until
# one of them changes. gopher-lua is pinned in go.mod/go.sum and comes from the
# Go module proxy; GOMODCACHE/GOCACHE stay at Go's defaults so they stay warm.
#
#   hack/lua/build.sh              build if missing or stale, print the binary path
#   hack/lua/build.sh --print-path print the path only (builds nothing)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN_DIR="${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}/bin"
OUT="${BIN_DIR}/lua-health"
STAMP="${OUT}.stamp"

if [[ "${1:-}" == "--print-path" ]]; then
  echo "${OUT}"
  exit 0
fi
if [[ $# -gt 0 ]]; then
  echo "usage: $0 [--print-path]" >&2
  exit 2
fi

want="$(cd "${HERE}" && cat main.go go.mod go.sum | sha256sum | cut -d' ' -f1)"
fresh() { [[ -x "${OUT}" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${want}" ]]; }

if fresh; then
  echo "${OUT}"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: the 'go' command was not found; install Go 1.24 or newer (Go 1.26 is what CI uses)." >&2
  exit 1
fi

mkdir -p "${BIN_DIR}"
# Two concurrent builds (two pytest sessions) wait for each other.
exec 9>"${OUT}.lock"
flock 9
if fresh; then
  echo "${OUT}"
  exit 0
fi

tmp="$(mktemp "${BIN_DIR}/.lua-health.XXXXXX")"
trap 'rm -f "${tmp}"' EXIT
(
  cd "${HERE}"
  CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}" go build -trimpath -o "${tmp}" .
)
chmod 0755 "${tmp}"
mv -f "${tmp}" "${OUT}"
trap - EXIT
echo "${want}" >"${STAMP}"
echo "${OUT}"
