#!/usr/bin/env bash
# Regenerates image/symbol-order.txt, the symbol ordering file image/build.sh gives the linker:
# every function the image's binary runs to start (embedded pack and --policies files), become
# ready and answer admission reviews (HTTP/1.1 and h2; allowed, warned and denied), hottest
# first, so that the linker places them side by side at the start of the text.
#
# Why: a page fault on the executable maps the 64 KiB around the faulting page (the kernel's
# fault-around), and the ~2,600 functions a server runs were spread over the 16 MiB of text, so
# about 12 MiB of it became resident (BENCHMARKS.md, "Peak RSS"). Placed together they need a
# quarter of that.
#
# When: after a dependency update or a large change, or when image/build.sh reports that fewer
# than 90% of the ordered symbols were found (tests/image/run.sh fails then): a Rust symbol's
# mangled name carries a hash of its crate's build metadata and, for a generic function, of its
# type arguments. A stale file costs memory, never correctness: the linker places what it finds
# and leaves the rest where it would be.
#
# How: image/build.sh builds the binary exactly as for the image, but keeps its symbol table
# (IMAGE_SYMBOLS=keep), so the names here are the names the image's link sees. callgrind runs
# it (every function executed, with its instruction count). valgrind's CPUID hides AVX-512, so
# for a function chosen at run time by CPU feature (ring's *_avx2 and the like), its variants
# for other features are ordered with it.
#
# Usage: image/order-symbols.sh      (needs valgrind, curl and openssl)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
for tool in valgrind callgrind_annotate curl openssl nm python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (Debian: apt-get install valgrind curl openssl binutils)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-order.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

IMAGE_SYMBOLS=keep bash image/build.sh "$W/image" >/dev/null
BIN="$W/image/tollgate"

(
  cd "$W"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout tls.key \
    -out tls.crt -subj /CN=localhost -days 1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
)
# The pack as the bench serves it from files: templates, constraints, one ExpansionTemplate.
mkdir -p "$W/pack"
for dir in constraints/*/; do
  name=$(basename "$dir")
  cp "$dir/template.yaml" "$W/pack/$name-template.yaml"
  cp "$dir/samples/tracker/constraint.yaml" "$W/pack/$name-constraint.yaml"
  [ -f "$W/pack/expansion.yaml" ] || cp "$dir/samples/tracker/expansion.yaml" "$W/pack/expansion.yaml"
done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

profile() { # label, then serve's policy arguments
  local label=$1 port probe
  shift
  port=$(free_port)
  probe=$(free_port)
  # As a cluster runs it: RUST_BACKTRACE set would make every error capture a backtrace.
  env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE valgrind --tool=callgrind --demangle=no --callgrind-out-file="$W/$label.callgrind" \
    "$BIN" serve --listen "127.0.0.1:$port" --probe-listen "127.0.0.1:$probe" \
    --tls-cert "$W/tls.crt" --tls-key "$W/tls.key" "$@" >"$W/$label.log" 2>&1 &
  SERVER_PID=$!
  local tries=0
  until curl -sf -o /dev/null "http://127.0.0.1:$probe/readyz"; do
    tries=$((tries + 1))
    if [ $tries -gt 600 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "FAIL: $label: the server under callgrind did not become ready; its log:" >&2
      tail -n 20 "$W/$label.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  local url="https://127.0.0.1:$port/v1/admit"
  for round in $(seq 1 20); do
    for http in --http1.1 --http2; do
      # Three reviews on one connection, then a new connection: handshakes and reuse both.
      curl -sfk "$http" -o /dev/null -H 'Content-Type: application/json' \
        --data @examples/review-allowed.json "$url" \
        --next -sfk "$http" -o /dev/null -H 'Content-Type: application/json' \
        --data @examples/review-warned.json "$url" \
        --next -sfk "$http" -o /dev/null -H 'Content-Type: application/json' \
        --data @examples/review-denied.json "$url"
    done
  done
  curl -sf -o /dev/null "http://127.0.0.1:$probe/metrics"
  curl -sf -o /dev/null "http://127.0.0.1:$probe/healthz"
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || { echo "FAIL: $label: the server did not stop cleanly; its log:" >&2; tail -n 20 "$W/$label.log" >&2; exit 1; }
  SERVER_PID=""
}

profile files --policies "$W/pack"
profile embedded

# Self cost per function of the binary (not libc's), summed over both runs; callgrind marks
# recursion levels with a 'N suffix.
for f in "$W"/*.callgrind; do
  callgrind_annotate --threshold=100 --inclusive=no "$f"
done | python3 "$ROOT/image/symbol_order.py" write "$BIN" "$(basename "$BIN")" >"$W/order.txt"
mv "$W/order.txt" image/symbol-order.txt
echo "image/symbol-order.txt: $(grep -vc '^#' image/symbol-order.txt) symbols"
