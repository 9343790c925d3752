#!/usr/bin/env bash
# Run the whole test suite: installs missing system packages, then builds and runs every
# test, including the golden parity tests on the flex, ndarray and wgpu backends (wgpu runs
# on the CPU through Mesa's software Vulkan driver when no GPU is present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh

# A cold test build (Burn, wgpu, FFmpeg bindings; no debug info for dependencies) fills 3.0 GB
# under target/ (measured from a clean clone). With less free space than this (with margin) the
# compiler fails with "No space left on device" deep in the build log; say so up front instead.
NEEDED_FREE_GIB=8
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
free_gib=$(df -Pk "$target_dir" | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "$free_gib" -lt "$NEEDED_FREE_GIB" ]; then
  echo "test.sh: warning: only ${free_gib} GiB free under $target_dir;" \
    "a cold build needs about ${NEEDED_FREE_GIB} GiB" >&2
fi

cargo test --features wgpu "$@"
