#!/usr/bin/env bash
# Installs the pinned tools the tests need into a cache outside the repository, so a warm CI run
# reuses them: the Go tools the oracle tests compare against (opa, gator, and tollgate-oracle
# built from tests/oracle), and the cargo tools CI runs (cargo-deny, cargo-fuzz). Prints the bin
# directory on its last line.
set -euo pipefail
OPA_VERSION=v1.22.3
GATOR_VERSION=v3.23.0
GATEKEEPER_VERSION=$GATOR_VERSION   # the manager, same release as gator
CARGO_DENY_VERSION=0.20.2
CARGO_FUZZ_VERSION=0.13.2
CACHE="${TOLLGATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-tools}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
install_one() { # name module version
  local name=$1 module=$2 version=$3 stamp="$BIN/.$1-$3"
  if [ -x "$BIN/$name" ] && [ -f "$stamp" ]; then return 0; fi
  echo "installing $name $version from $module" >&2
  GOBIN="$BIN" GOFLAGS=-mod=mod go install "$module@$version" >&2
  touch "$stamp"
}
install_one opa github.com/open-policy-agent/opa "$OPA_VERSION"
install_one gator github.com/open-policy-agent/gatekeeper/v3/cmd/gator "$GATOR_VERSION"
# Gatekeeper's manager itself (the image's /manager: main.go at the module root), for
# tests/gatekeeper-audit/run.sh, which runs its audit beside tollgate's. As the release image
# builds it (CGO_ENABLED=0, the version stamped by the Makefile's LDFLAGS), stripped. `go install`
# names it `gatekeeper` (the module path without /v3). The stamp names a hash of the build flags.
install_gatekeeper() {
  local ld="-s -w -X github.com/open-policy-agent/gatekeeper/v3/pkg/version.Version=$GATEKEEPER_VERSION" key
  key="$GATEKEEPER_VERSION-$(printf '%s' "$ld" | cksum | cut -d' ' -f1)"
  if [ -x "$BIN/gatekeeper" ] && [ -f "$BIN/.gatekeeper-$key" ]; then return 0; fi
  echo "installing gatekeeper (the manager) $GATEKEEPER_VERSION from github.com/open-policy-agent/gatekeeper/v3" >&2
  GOBIN="$BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 \
    go install -trimpath -ldflags "$ld" "github.com/open-policy-agent/gatekeeper/v3@$GATEKEEPER_VERSION" >&2
  rm -f "$BIN/.gatekeeper-"*
  touch "$BIN/.gatekeeper-$key"
}
install_gatekeeper
install_crate() { # name version
  local name=$1 version=$2 stamp="$BIN/.$1-$2"
  if [ -x "$BIN/$name" ] && [ -f "$stamp" ]; then return 0; fi
  echo "installing $name $version from crates.io" >&2
  cargo install --locked --quiet --version "$version" --root "$CACHE" "$name" >&2
  touch "$stamp"
}
install_crate cargo-deny "$CARGO_DENY_VERSION"
install_crate cargo-fuzz "$CARGO_FUZZ_VERSION"
TOLLGATE_TOOLS="$CACHE" bash "$(dirname "$0")/../oracle/install.sh" >/dev/null
echo "$BIN"
