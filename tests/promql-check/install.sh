#!/usr/bin/env bash
# Builds tollgate-promql-check (tests/promql-check: Prometheus's rule and PromQL parsers at the
# version the pinned Prometheus Operator builds with, go.mod) into the tools cache, rebuilt only
# when its sources change. Prints the binary's path on its last line.
set -euo pipefail
cd "$(dirname "$0")"
CACHE="${TOLLGATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-tools}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
hash=$(cat go.mod go.sum main.go | sha256sum | cut -c1-16)
stamp="$BIN/.tollgate-promql-check-$hash"
if ! [ -x "$BIN/tollgate-promql-check" ] || ! [ -f "$stamp" ]; then
  echo "building tollgate-promql-check ($hash)" >&2
  nice -n 10 go build -trimpath -ldflags "-s -w" -o "$BIN/tollgate-promql-check" . >&2
  rm -f "$BIN"/.tollgate-promql-check-*
  touch "$stamp"
fi
echo "$BIN/tollgate-promql-check"
