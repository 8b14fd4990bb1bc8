#!/usr/bin/env bash
# Builds the parser oracle (tests/oracle: Kubernetes' quantity parser and the distribution
# reference grammar, at the versions pinned in go.mod) into the tools cache, rebuilt only when its
# sources change. Prints the binary's path on its last line.
set -euo pipefail
cd "$(dirname "$0")"
CACHE="${TOLLGATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-tools}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
hash=$(cat go.mod go.sum main.go | sha256sum | cut -c1-16)
stamp="$BIN/.tollgate-oracle-$hash"
if ! [ -x "$BIN/tollgate-oracle" ] || ! [ -f "$stamp" ]; then
  echo "building tollgate-oracle ($hash)" >&2
  go build -trimpath -o "$BIN/tollgate-oracle" . >&2
  rm -f "$BIN"/.tollgate-oracle-*
  touch "$stamp"
fi
echo "$BIN/tollgate-oracle"
