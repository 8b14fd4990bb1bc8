#!/usr/bin/env bash
# Soak test: two `tollgate serve` instances under steady HTTPS load while policies are reloaded
# (alternating a good and a broken set), the certificate is rotated by symlink swap, and the
# instances are restarted by SIGTERM one at a time; every answer is checked (tests/soak/soak.py
# has the details). Exits non-zero on any wrong answer or any request that failed on both
# instances.
#
#   SOAK_SECONDS        duration (default 600; CI: 20)
#   SOAK_RATE           requests per second (default 40)
#   SOAK_RELOAD_EVERY   seconds between policy flips (default 3)
#   SOAK_ROTATE_EVERY   seconds between certificate rotations (default SOAK_SECONDS/4, 4..30)
#   SOAK_RESTART_EVERY  seconds between restarts (default SOAK_SECONDS/3, 6..60; 0: none)
#   TOLLGATE_BIN        the binary to run (default: target/debug/tollgate, built here)
# Needs python3 (standard library only) and the openssl CLI (certificates).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${TOLLGATE_BIN:-}" ]; then
  cargo build -q -p tollgate
  export TOLLGATE_BIN="$PWD/target/debug/tollgate"
fi
exec python3 tests/soak/soak.py
