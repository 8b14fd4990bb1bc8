#!/usr/bin/env bash
# The container image, without a container runtime: builds it (image/build.sh), checks what the
# config and layer claim with skopeo, then unpacks the root filesystem and runs the binary in it
# with chroot, as root and as 65532:65532, serving HTTPS decisions to curl from outside.
#
# The root filesystem holds nothing but /tollgate: no /etc, /proc or /tmp. Added to it: a test
# certificate and key under /tls, as the chart mounts its Secret, and /dev/random and
# /dev/urandom, which every container runtime provides (the static binary reads them: see below).
#
# Usage: tests/image/run.sh          (as root: chroot; installs Debian's skopeo when missing)
#        IMAGE_KEEP=1 tests/image/run.sh   (keep the work directory)
# Prints PASS/FAIL per check and a final "N passed, N failed"; exits 1 on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
MAX_COMPRESSED=$((12 * 1024 * 1024)) # issue 14's goal for the compressed image
STEP_TIMEOUT=${IMAGE_STEP_TIMEOUT:-20}

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
check() { # description command...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
fatal() {
  echo "FAIL: $*"
  echo "$PASSED passed, $((FAILED + 1)) failed"
  exit 1
}

[ "$(id -u)" -eq 0 ] || fatal "tests/image/run.sh needs root (chroot)"
if ! command -v skopeo >/dev/null; then
  # CI runs as root on Debian; the package is the only way in (no network for anything else).
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo; } \
    >/dev/null 2>&1 || fatal "install skopeo (apt-get install skopeo)"
fi
for tool in skopeo file ldd openssl curl chroot python3; do
  command -v "$tool" >/dev/null || fatal "$tool not found"
done

W=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-image.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "${IMAGE_KEEP:-}" ]; then echo "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

# === build ===

start=$SECONDS
REF=$(bash image/build.sh | tail -n 1) || fatal "image/build.sh"
echo "built $REF in $((SECONDS - start))s"
OUT=${REF#oci:}
OUT=${OUT%%/oci:*}
BIN="$OUT/tollgate"
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/tollgate/Chart.yaml)
revision=$(git rev-parse HEAD)

# === the binary ===

echo "binary: $(stat -c %s "$BIN") bytes; $(file -b "$BIN")"
# image/build.sh links a static, fixed-address executable (not a static PIE: no relocations to
# apply at start): `file` says "statically linked" and "executable", ldd "not a dynamic
# executable" (or "statically linked").
check "binary is statically linked (file)" grep -q 'statically linked' <<<"$(file -b "$BIN")"
check "binary is a fixed-address executable, not a PIE (file)" grep -q 'LSB executable' <<<"$(file -b "$BIN")"
check "binary is stripped (file)" grep -q ', stripped' <<<"$(file -b "$BIN")"
# image/build.sh links with image/symbol-order.txt, the functions a server runs placed side by
# side at the start of the text (BENCHMARKS.md, "Peak RSS"). New dependency versions rename
# symbols and silently lose that: at least 90% of the file's symbols must be in the link, and they
# must lie in the first third of the text (unordered, they spread over all of it).
order=$(python3 image/symbol_order.py check image/symbol-order.txt "$OUT/tollgate.map") ||
  fatal "image/symbol_order.py check"
echo "$order"
read -r found total reach text_size < <(sed -E \
  's/^symbol order: ([0-9]+) of ([0-9]+) symbols found; they lie in the first ([0-9]+) of the ([0-9]+) bytes of .text$/\1 \2 \3 \4/' \
  <<<"$order")
[[ "$found $total $reach $text_size" =~ ^[0-9]+\ [0-9]+\ [0-9]+\ [0-9]+$ ]] || fatal "unexpected: $order"
check "at least 90% of image/symbol-order.txt's $total symbols are in the link ($found; else run image/order-symbols.sh)" \
  test $((found * 10)) -ge $((total * 9))
check "the ordered symbols lie in the first third of .text ($reach of $text_size bytes)" \
  test $((reach * 3)) -le "$text_size"
check "binary needs no loader (ldd)" grep -Eq 'statically linked|not a dynamic executable' <<<"$(ldd "$BIN" 2>&1 || true)"
check "chart default is ghcr.io/tollgate/tollgate:$version, the ref the image is tagged with" \
  test "$REF" = "oci:$OUT/oci:ghcr.io/tollgate/tollgate:$version"

# === what the image claims (read back through skopeo, not our writer) ===

skopeo inspect --config "$REF" >"$W/config.json" || fatal "skopeo inspect --config $REF"
skopeo inspect --raw "$REF" >"$W/manifest.json" || fatal "skopeo inspect --raw $REF"
field() { python3 -c 'import json, sys; print(json.dumps(eval("d" + sys.argv[2], {"d": json.load(open(sys.argv[1]))})))' "$@"; }
check "config User is 65532:65532" test "$(field "$W/config.json" '["config"]["User"]')" = '"65532:65532"'
check "config Entrypoint is [\"/tollgate\"]" test "$(field "$W/config.json" '["config"]["Entrypoint"]')" = '["/tollgate"]'
check "config has no Cmd" test "$(field "$W/config.json" '["config"].get("Cmd")')" = 'null'
check "config is linux/amd64" test "$(field "$W/config.json" '["os"] + "/" + d["architecture"]')" = '"linux/amd64"'
check "label version is $version" \
  test "$(field "$W/config.json" '["config"]["Labels"]["org.opencontainers.image.version"]')" = "\"$version\""
check "label revision is $revision" \
  test "$(field "$W/config.json" '["config"]["Labels"]["org.opencontainers.image.revision"]')" = "\"$revision\""
check "one layer" test "$(field "$W/manifest.json" '["layers"].__len__()')" = 1

# skopeo copies blob by blob and checks every digest on the way.
skopeo copy -q "$REF" "dir:$W/dir" || fatal "skopeo copy $REF dir:"
layer="$W/dir/$(field "$W/manifest.json" '["layers"][0]["digest"]' | tr -d '"' | sed 's/^sha256://')"
check "layer holds only tollgate, root-owned, mode 0755" \
  test "$(tar -tvzf "$layer" --numeric-owner | awk '{print $1, $2, $NF}')" = "-rwxr-xr-x 0/0 tollgate"

# The config's diff_id names the uncompressed layer: runtimes check it after unpacking.
check "config diff_id is the uncompressed layer's digest" \
  test "$(field "$W/config.json" '["rootfs"]["diff_ids"]')" = "[\"sha256:$(gzip -dc "$layer" | sha256sum | cut -d' ' -f1)\"]"

compressed=$(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(m["config"]["size"] + sum(l["size"] for l in m["layers"]))' "$W/manifest.json")
echo "compressed image (layer + config): $compressed bytes ($(awk "BEGIN {printf \"%.2f\", $compressed / 1048576}") MiB)"
check "compressed image is at most 12 MiB" test "$compressed" -le "$MAX_COMPRESSED"

# Same commit, same binary: same digests (no timestamps or builder names in the layout).
bash image/build.sh "$W/again" >/dev/null 2>&1 || fatal "image/build.sh (second run)"
check "a second build gives the same index.json (reproducible)" cmp -s "$OUT/oci/index.json" "$W/again/oci/index.json"

# === run it: the unpacked root filesystem, chroot ===

R="$W/rootfs"
mkdir -p "$R"
tar -xzf "$layer" -C "$R" --numeric-owner
# mktemp made $W 0700; the unprivileged run must be able to reach its "/".
chmod 0755 "$W" "$R"

want="tollgate $version ($(git rev-parse --short HEAD))"
out=$(chroot "$R" /tollgate --version 2>&1) || true
if [ "$out" = "$want" ]; then
  pass "chroot /tollgate --version prints $want"
else
  fail "chroot /tollgate --version prints $want"
  echo "    got: $out"
fi

# /dev/urandom and /dev/random, as every container runtime provides them (the OCI runtime spec's
# default devices): in the static binary the getrandom crate (ahash's seeds) cannot find glibc's
# getrandom() through dlsym, so it falls back to reading /dev/urandom after polling /dev/random
# (without them: "getrandom::fill() failed: os_error 2" and the policy load panics).
mkdir -p "$R/dev"
mknod -m 0444 "$R/dev/random" c 1 8
mknod -m 0444 "$R/dev/urandom" c 1 9

mkdir -p "$W/certs" "$R/tls"
(
  cd "$W/certs"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout ca.key \
    -out ca.crt -subj /CN=image-test-ca -days 1 -addext basicConstraints=critical,CA:TRUE 2>/dev/null
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout tls.key \
    -out tls.csr -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n' >ext.cnf
  openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 1 \
    -extfile ext.cnf 2>/dev/null
) || fatal "generate certificates with openssl"
cp "$W/certs/tls.crt" "$W/certs/tls.key" "$R/tls/"
# The chart mounts the Secret readable by the pod's group; here 65532 reads it as other.
chmod 0644 "$R/tls/tls.key"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

serve_and_decide() { # label uid, then chroot options
  local label=$1 uid=$2; shift 2
  local port probe log="$W/serve-$label.log" deadline status
  port=$(free_port)
  probe=$(free_port)
  chroot "$@" "$R" /tollgate serve --listen "127.0.0.1:$port" --probe-listen "127.0.0.1:$probe" \
    --tls-cert /tls/tls.crt --tls-key /tls/tls.key >"$log" 2>&1 &
  SERVER_PID=$!
  deadline=$((SECONDS + STEP_TIMEOUT))
  until curl -sf "http://127.0.0.1:$probe/readyz" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      fail "$label: tollgate serve in the chroot became ready"
      tail -n 20 "$log"
      kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
      return
    fi
    sleep 0.2
  done
  pass "$label: tollgate serve in the chroot became ready"
  # chroot execs tollgate: the pid is the server's own, and so are its credentials.
  check "$label: server runs as uid $uid" \
    test "$(awk '/^Uid:/ {print $2 " " $3}' "/proc/$SERVER_PID/status")" = "$uid $uid"
  for review in denied allowed; do
    curl -sf --cacert "$W/certs/ca.crt" -H 'Content-Type: application/json' \
      --data "@examples/review-$review.json" "https://127.0.0.1:$port/v1/admit" >"$W/answer.json" 2>&1 ||
      { fail "$label: POST review-$review.json over HTTPS"; continue; }
    allowed=$(field "$W/answer.json" '["response"]["allowed"]' 2>/dev/null) || allowed="no answer: $(head -c 200 "$W/answer.json")"
    want=$([ "$review" = allowed ] && echo true || echo false)
    check "$label: review-$review.json over HTTPS answered allowed=$want (got $allowed)" test "$allowed" = "$want"
  done
  kill -TERM "$SERVER_PID"
  status=0
  wait "$SERVER_PID" || status=$?
  SERVER_PID=""
  check "$label: SIGTERM ends the server cleanly (exit 0)" test "$status" -eq 0
}

serve_and_decide root 0
serve_and_decide uid65532 65532 --userspec=65532:65532

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
