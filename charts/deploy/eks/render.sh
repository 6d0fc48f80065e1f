#!/usr/bin/env bash
# Render the ${...} placeholders of every file in charts/deploy/eks/ into a
# directory, with envsubst limited to the names in vectorpipe.env.example (any
# other `$` in the files stays as it is).
#
#   charts/deploy/eks/render.sh vectorpipe.env rendered/
#
# vectorpipe.env holds KEY=value lines (a copy of vectorpipe.env.example with
# your values). Every name of the example must be set there; an empty value is
# allowed (INPUT_PREFIX= means the whole bucket). Needs envsubst (Debian and
# Ubuntu: gettext-base; macOS: brew install gettext).
set -euo pipefail

if [[ $# -ne 2 || $1 == -h || $1 == --help ]]; then
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
fi
command -v envsubst >/dev/null || { echo "render.sh: envsubst not found (package gettext-base)" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
env_file=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
mkdir -p "$2"
out=$(cd "$2" && pwd)

names=$(sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' "$here/vectorpipe.env.example")
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
missing=()
for name in $names; do
  [[ -n ${!name+set} ]] || missing+=("$name")
done
if ((${#missing[@]})); then
  echo "render.sh: not set in $1: ${missing[*]}" >&2
  exit 1
fi
# shellcheck disable=SC2016,SC2086
vars=$(printf '${%s} ' $names)

cd "$here"
find . -type f \( -name '*.yaml' -o -name '*.json' \) | sort | while read -r file; do
  mkdir -p "$out/$(dirname "$file")"
  envsubst "$vars" <"$file" >"$out/$file"
done
echo "rendered $(find "$out" -type f | wc -l) files into $out"
