#!/usr/bin/env bash
# Run the built-in demo on the CPU: installs missing system packages, builds in release
# mode and runs `experiment synthetic` — a dataset of real video files generated on the spot,
# then every stage of TimeBalance (two self-supervised teachers, fine-tuning, TSTR scores,
# the student, the 50/50 ablation, the supervised baseline, multi-view evaluation) into
# runs/synthetic/. Extra arguments are passed on (e.g. --device wgpu, --set pretrain.epochs=5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
cargo run --release -- experiment synthetic "$@"
