#!/usr/bin/env bash
# Builds what `benches/gpu_check.sh` runs on a GPU machine that has no Rust toolchain: the
# `timebalance` binary and the integration-test binary, without the `video` feature (no FFmpeg
# to carry), stripped and packed as gpu-bin/gpu-bin.tgz — ~25 MB, which the device tool carries
# beside the ~40 MB checkout (its limit is 64 MiB; unstripped, the pair did not fit).
# Usage, from anywhere in the repo:
#   bash benches/gpu_build.sh            # FEATURES=cuda (default), e.g. FEATURES="cuda autotune"
# then on the GPU machine: bash benches/gpu_check.sh gpu-bin (it unpacks the archive).
set -euo pipefail
cd "$(dirname "$0")/.."
FEATURES=${FEATURES:-cuda}
ARCHIVE_DIR=gpu-bin
cargo build --release --no-default-features --features "$FEATURES" --bin timebalance
# The test binary's path has a hash in it: take it from cargo's own report.
test_bin=$(cargo test --release --no-default-features --features "$FEATURES" --test integration \
  --no-run --message-format=json |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "integration":
        print(m["executable"])')
[ -n "$test_bin" ] || { echo "gpu_build.sh: no integration test binary reported by cargo" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$ARCHIVE_DIR" "$ARCHIVE_DIR"
cp target/release/timebalance "$stage/$ARCHIVE_DIR/timebalance"
cp "$test_bin" "$stage/$ARCHIVE_DIR/integration"
strip "$stage/$ARCHIVE_DIR/timebalance" "$stage/$ARCHIVE_DIR/integration"
tar czf "$ARCHIVE_DIR/gpu-bin.tgz" -C "$stage" "$ARCHIVE_DIR"
echo "$ARCHIVE_DIR/gpu-bin.tgz: $(du -h "$ARCHIVE_DIR/gpu-bin.tgz" | cut -f1) (features: $FEATURES)"
