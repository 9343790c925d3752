#!/usr/bin/env bash
# Run the whole test suite: installs missing system packages, then builds and runs every
# test, including the golden parity tests on the flex, ndarray and wgpu backends (wgpu runs
# on the CPU through Mesa's software Vulkan driver when no GPU is present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
cargo test --features wgpu "$@"
