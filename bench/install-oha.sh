#!/usr/bin/env bash
# Installs the pinned HTTP load generator (oha) that bench/run.sh drives, into the same cache as
# tests/tools/install.sh, and prints the bin directory on its last line. A stamp file beside the
# binary records the version, so a warm cache skips the (slow) cargo install.
set -euo pipefail
OHA_VERSION=1.16.0
CACHE="${TOLLGATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-tools}"
BIN="$CACHE/bin"
stamp="$BIN/.oha-$OHA_VERSION"
mkdir -p "$BIN"
if [ -x "$BIN/oha" ] && { [ -f "$stamp" ] || "$BIN/oha" --version 2>/dev/null | grep -qx "oha $OHA_VERSION"; }; then
  touch "$stamp"
else
  echo "installing oha $OHA_VERSION from crates.io" >&2
  cargo install --locked --quiet --version "$OHA_VERSION" --root "$CACHE" oha >&2
  touch "$stamp"
fi
echo "$BIN"
