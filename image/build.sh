#!/usr/bin/env bash
# Builds tollgate as a static, stripped x86_64 binary and assembles the OCI image layout from it
# (image/oci_layout.py), with no container daemon and no base image.
#
# Usage: image/build.sh [OUT_DIR]     (default: $CARGO_TARGET_DIR or target/, then /image)
# Writes OUT_DIR/tollgate (the binary), OUT_DIR/tollgate.map (the linker's map) and OUT_DIR/oci
# (the layout), and prints on its last line
#   oci:OUT_DIR/oci:REPO:TAG
# the reference skopeo takes, e.g. `skopeo copy <it> docker://REPO:TAG` to push.
#
# REPO:TAG are the chart's defaults (charts/tollgate: values.yaml image.repository and
# Chart.yaml appVersion), so an image pushed from here is the one `helm install` pulls.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# Only x86_64 can be built on tollgate's CI machines; IMAGE_TARGET=aarch64-unknown-linux-gnu
# builds arm64 where that target and a linker are installed (README, "Container image").
TARGET=${IMAGE_TARGET:-x86_64-unknown-linux-gnu}
case "$TARGET" in
  x86_64-*) ARCH=amd64 ;;
  aarch64-*) ARCH=arm64 ;;
  *) echo "FAIL: IMAGE_TARGET $TARGET: only x86_64 and aarch64 Linux targets are known" >&2; exit 1 ;;
esac
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${1:-$TARGET_DIR/image}

# glibc's libc.a, linked in whole: no loader or libc at run time, so the image needs nothing but
# the binary. The explicit --target keeps these flags off build scripts and proc macros (they run
# on the host, dynamically linked as usual).
# -C relocation-model=static links a fixed-address executable instead of a static PIE, as Go
# links Gatekeeper and the Kubernetes binaries: a PIE is relocated at every start (about 84,000
# relocations here), which dirties 1.8 MB of otherwise shared pages. Measured on this project's
# machine (BENCHMARKS.md, "Cold start"): about 1 ms less to ready and 3.3 MiB less RSS. The
# price is that the executable's own addresses are not randomised (heap, stacks and mappings
# still are).
export RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"
# The final link only (cargo rustc passes these to the tollgate binary alone, so the dependencies
# and their symbol names are those image/order-symbols.sh profiled):
# - -C strip=symbols drops the symbol table and debug info; panic messages still name their
#   file and line;
# - the symbol ordering file (image/order-symbols.sh) puts the functions a server runs side by
#   side at the start of the text: the kernel maps 64 KiB around every page fault on the
#   executable, so scattered functions made most of its 16 MiB resident (BENCHMARKS.md, "Peak
#   RSS"). Symbols it names that this build lacks are skipped (counted below);
# - the linker's map (OUT_DIR/tollgate.map, names mangled) says where each symbol went.
# IMAGE_SYMBOLS=keep (for image/order-symbols.sh) keeps the symbol table and the default order.
MAP="$TARGET_DIR/$TARGET/release/tollgate.map"
link_args=(-C "link-arg=-Wl,-Map=$MAP" -C link-arg=-Wl,--no-demangle)
if [ "${IMAGE_SYMBOLS:-}" != keep ]; then
  link_args+=(-C strip=symbols -C "link-arg=-Wl,--symbol-ordering-file=$ROOT/image/symbol-order.txt"
    -C link-arg=-Wl,--no-warn-symbol-ordering)
fi
nice cargo rustc --release --locked --target "$TARGET" -p tollgate --bin tollgate -- "${link_args[@]}" >&2
BIN="$TARGET_DIR/$TARGET/release/tollgate"

# A dynamic binary would start on the build machine and fail in the image ("no such file or
# directory" from the missing loader): refuse it here.
if ! file -b "$BIN" | grep -q 'static'; then
  echo "FAIL: $BIN is not statically linked: $(file -b "$BIN")" >&2
  exit 1
fi

version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/tollgate/Chart.yaml)
repository=$(awk '/^image:/ {in_image = 1; next} /^[^ #]/ {in_image = 0}
  in_image && $1 == "repository:" {print $2; exit}' charts/tollgate/values.yaml)
crate_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if [ -z "$version" ] || [ -z "$repository" ] || [ "$version" != "$crate_version" ]; then
  echo "FAIL: chart appVersion '$version' / image.repository '$repository' / crate version '$crate_version'" >&2
  exit 1
fi
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not the build's: rebuilding a commit gives the same digests.
created=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null ||
  echo 1970-01-01T00:00:00Z)

mkdir -p "$OUT"
cp "$BIN" "$OUT/tollgate"
cp "$MAP" "$OUT/tollgate.map"
if [ "${IMAGE_SYMBOLS:-}" != keep ]; then
  python3 image/symbol_order.py check image/symbol-order.txt "$OUT/tollgate.map" >&2
fi
python3 image/oci_layout.py --binary "$OUT/tollgate" --out "$OUT/oci" \
  --ref "$repository:$version" --version "$version" --revision "$revision" --created "$created" \
  --architecture "$ARCH" >&2
echo "oci:$OUT/oci:$repository:$version"
