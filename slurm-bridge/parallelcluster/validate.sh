#!/usr/bin/env bash
# Validates a ParallelCluster cluster config offline with the aws-parallelcluster
# package's own schema and validators (see validate_config.py for exactly what
# runs and what cannot without AWS). Prints a JSON report; exit 0 valid, 1 not.
#
#   slurm-bridge/parallelcluster/validate.sh                      # the shipped config
#   slurm-bridge/parallelcluster/validate.sh my-cluster.yaml      # yours (several: one report each)
#   slurm-bridge/parallelcluster/validate.sh --setup-only         # just build the venv
#
# aws-parallelcluster pins packages that clash with VectorPipe's (old boto3,
# marshmallow, aws-cdk 1.x), so it gets its own venv outside the repo,
# built once from requirements-pcluster.lock (hash-checked) and reused:
#   ${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}/pcluster-venv-<version>
# Environment: VECTORPIPE_CACHE, PCLUSTER_PYTHON (interpreter for the venv,
# default python3.11 then python3), UV (a uv binary; else the repo's .venv/bin/uv,
# else uv on PATH, else pip), AWS_DEFAULT_REGION (only a fallback: the config's
# Region wins; nothing ever reaches AWS).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOCK="$HERE/requirements-pcluster.lock"
PCLUSTER_VERSION="$(sed -n 's/^aws-parallelcluster==\([0-9.]*\).*/\1/p' "$LOCK")"
CACHE="${VECTORPIPE_CACHE:-$HOME/.cache/vectorpipe}"
VENV="$CACHE/pcluster-venv-$PCLUSTER_VERSION"
STAMP="$VENV/.vectorpipe-lock.sha256"
# Bump when the way the venv is built changes, so existing venvs are rebuilt.
BUILD_REV=2

log() { printf 'validate.sh: %s\n' "$*" >&2; }

pick_python() {
  local py
  for py in "${PCLUSTER_PYTHON:-}" python3.11 python3; do
    if [ -n "$py" ] && command -v "$py" >/dev/null 2>&1; then
      command -v "$py"
      return 0
    fi
  done
  log "no python3 found (set PCLUSTER_PYTHON)"
  return 1
}

pick_uv() {
  local repo_uv="$HERE/../../.venv/bin/uv"
  if [ -n "${UV:-}" ]; then
    printf '%s\n' "$UV"
  elif [ -x "$repo_uv" ]; then
    printf '%s\n' "$repo_uv"
  elif command -v uv >/dev/null 2>&1; then
    command -v uv
  fi
}

stamp() { printf '%s rev%s\n' "$(sha256sum "$LOCK" | cut -d' ' -f1)" "$BUILD_REV"; }

venv_ready() {
  [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp)" ]
}

ensure_venv() {
  mkdir -p "$CACHE"
  # One builder at a time (parallel test workers share the cache).
  exec 9>"$CACHE/.pcluster-venv.lock"
  flock 9
  if venv_ready; then
    flock -u 9
    exec 9>&-
    return 0
  fi
  local py uv start
  py="$(pick_python)"
  uv="$(pick_uv)"
  start=$SECONDS
  log "building $VENV (aws-parallelcluster==$PCLUSTER_VERSION, $py)"
  # Built in place; the stamp is written last, so a half-built venv is rebuilt.
  rm -rf "$VENV"
  if [ -n "$uv" ]; then
    "$uv" venv -q --python "$py" "$VENV"
    # Bytecode at install time: imports stay fast even where PYTHONDONTWRITEBYTECODE is set.
    "$uv" pip install -q --python "$VENV/bin/python" --require-hashes --compile-bytecode -r "$LOCK"
  else
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$LOCK"
  fi
  stamp >"$STAMP"
  log "built in $((SECONDS - start))s"
  flock -u 9
  exec 9>&-
}

main() {
  local setup_only=0 args=() configs=() facts="$HERE/offline-facts.json"
  while [ $# -gt 0 ]; do
    case "$1" in
      --setup-only) setup_only=1 ;;
      --print-venv) printf '%s\n' "$VENV"; return 0 ;;
      --facts) facts="$2"; shift ;;
      --no-facts) facts="" ;;
      --cluster-name) args+=(--cluster-name "$2"); shift ;;
      -h | --help) sed -n '2,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p}' "${BASH_SOURCE[0]}"; return 0 ;;
      -*) log "unknown option $1"; return 2 ;;
      *) configs+=("$1") ;;
    esac
    shift
  done
  ensure_venv
  if [ "$setup_only" -eq 1 ]; then
    printf '%s\n' "$VENV"
    return 0
  fi
  if [ ${#configs[@]} -eq 0 ]; then configs=("$HERE/cluster-config.yaml"); fi
  if [ -n "$facts" ]; then args+=(--facts "$facts"); fi
  AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
    "$VENV/bin/python" "$HERE/validate_config.py" "${args[@]}" "${configs[@]}"
}

main "$@"
