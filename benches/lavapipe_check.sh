#!/usr/bin/env bash
# Issue 11, item 6: R3D-18's first and steady training step on wgpu without a GPU (Mesa's
# lavapipe compiles every shader through LLVM, so kernel counts show as time), Burn's own
# convolution against the GEMM one, 8×112² clips, batch 2, cold caches (autotune cache removed,
# Mesa's shader cache off). Usage, from the repo root, after
# `cargo build --features wgpu --profile test --bin timebalance`:
#   bash benches/lavapipe_check.sh [BINARY] [WIDTHS]     (default: target/debug/timebalance, "8 64")
# Each run is cut at LIMIT seconds (default 600) and times ITERS steps after WARMUP (default 2
# after 1; `ITERS=1 WARMUP=0` times the first step alone, for widths whose steps take minutes).
# CubeCL's compilation/autotune log of each run goes to $LOGS/cubecl_<width>_<conv>.log; its
# line count is printed.
set -uo pipefail
BIN=${1:-target/debug/timebalance}
WIDTHS=${2:-8 64}
LIMIT=${LIMIT:-600}
ITERS=${ITERS:-2}
WARMUP=${WARMUP:-1}
LOGS=${LOGS:-/tmp/lavapipe_check}
mkdir -p "$LOGS"
echo "date $(date -u +%FT%TZ) host $(nproc) cores; other load: $(uptime); iters $ITERS warmup $WARMUP limit $LIMIT"
for width in $WIDTHS; do
  for conv in gemm burn; do
    rm -rf target/autotune
    log="$LOGS/cubecl_${width}_${conv}.log"
    rm -f "$log"
    echo "== r3d18 width $width conv $conv (8x112x112, batch 2)"
    start=$(date +%s)
    if ! MESA_SHADER_CACHE_DISABLE=true CUBECL_DEBUG_LOG="$log" timeout "$LIMIT" \
      "$BIN" bench train --device wgpu --arch r3d18 --width "$width" --frames 8 --size 112 \
      --batch 2 --iters "$ITERS" --warmup "$WARMUP" --conv "$conv" 2>&1 | grep -E "first_s|median_s|rror"; then
      echo "no result within ${LIMIT} s"
    fi
    echo "wall_s $(( $(date +%s) - start )) cubecl_log_lines $(wc -l < "$log" 2>/dev/null || echo 0)"
  done
done
