#!/usr/bin/env bash
# Run the built-in demo on the CPU: installs missing system packages, builds in release
# mode and runs a short end-to-end job (a tiny video ResNet trained on the CPU backend).
# Extra arguments are passed to the smoke command (e.g. --device ndarray).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
cargo run --release -- smoke "$@"
