#!/usr/bin/env bash
# Builds the constraint CRD oracle (tests/crd-oracle: Gatekeeper v3.23.0's own CRD generation for
# a ConstraintTemplate, at the versions pinned in go.mod) into the tools cache, rebuilt only when
# its sources change. Prints the binary's path on its last line.
set -euo pipefail
cd "$(dirname "$0")"
CACHE="${TOLLGATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-tools}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
hash=$(cat go.mod go.sum main.go | sha256sum | cut -c1-16)
stamp="$BIN/.tollgate-crd-oracle-$hash"
if ! [ -x "$BIN/tollgate-crd-oracle" ] || ! [ -f "$stamp" ]; then
  echo "building tollgate-crd-oracle ($hash)" >&2
  nice -n 10 go build -trimpath -ldflags "-s -w" -o "$BIN/tollgate-crd-oracle" . >&2
  rm -f "$BIN"/.tollgate-crd-oracle-*
  touch "$stamp"
fi
echo "$BIN/tollgate-crd-oracle"
