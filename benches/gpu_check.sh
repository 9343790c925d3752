#!/usr/bin/env bash
# One prepared run on a machine with an NVIDIA GPU and no Rust toolchain.
# Build here first (see benches/README.md), then on the GPU machine, from the repo root:
#   bash benches/gpu_check.sh DIR_WITH_BINARIES
# DIR must hold `timebalance` (built with --features cuda) and `golden` (the golden test
# binary built with --features cuda). Finds NVRTC in a PyTorch wheel if the system has none.
#
# The same script runs without a GPU, on Mesa's lavapipe (a check that it runs end to end, and
# the lavapipe column of issue 11): binaries built with `--features wgpu`, then
#   DEVICE=wgpu TORCH_DEVICE=cpu STEP_LIMIT=120 bash benches/gpu_check.sh DIR
# DEVICE: our device (cuda); TORCH_DEVICE: PyTorch's (cuda); STEP_LIMIT: seconds a step may
# take before it is cut (150); WIDTH: backbone width of every timed row (the architectures'
# own when unset; e.g. WIDTH=8 makes a lavapipe run finish its steps); the golden tests run
# are those of the module named DEVICE.
set -uo pipefail
BIN=${1:?usage: gpu_check.sh DIR_WITH_BINARIES}
DEVICE=${DEVICE:-cuda}
TORCH_DEVICE=${TORCH_DEVICE:-cuda}
STEP_LIMIT=${STEP_LIMIT:-150}
# Passed to every timed row of ours and of PyTorch (word-split on purpose: empty or two words).
WIDTH_ARGS=${WIDTH:+--width $WIDTH}
# A carried archive of the binaries is unpacked in place.
if [ -f "$BIN/gpu-bin.tgz" ]; then tar xzf "$BIN/gpu-bin.tgz" -C "$(dirname "$BIN")"; fi
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"

echo "date $(date -u +%FT%TZ) device $DEVICE torch $TORCH_DEVICE; $(nproc) cores; load: $(uptime)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
if [ "$DEVICE" = cuda ] && ! ldconfig -p | grep -q libnvrtc; then
  NVRTC_DIR=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = site.getsitepackages() + [site.getusersitepackages()]
for d in dirs:
    for lib in glob.glob(os.path.join(d, "nvidia", "*", "lib", "libnvrtc.so*")):
        print(os.path.dirname(lib)); raise SystemExit
PY
)
  [ -n "${NVRTC_DIR:-}" ] && export LD_LIBRARY_PATH="$NVRTC_DIR:${LD_LIBRARY_PATH:-}"
  echo "NVRTC from: ${NVRTC_DIR:-not found}"
fi

step() {
  echo "== $*"
  local start=$SECONDS
  timeout "$STEP_LIMIT" "$@" 2>&1 | tail -14
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] && echo "cut at ${STEP_LIMIT} s"
  echo "-- rc $rc, $((SECONDS - start)) s"
}

step "$BIN/timebalance" info
step "$BIN/timebalance" smoke --device "$DEVICE" --steps 5
TIMEBALANCE_GOLDEN_DIR=$PWD/tests/fixtures/golden step "$BIN/golden" "$DEVICE::" --test-threads 1
# First step (`first_s`: compilation and autotuning included, cold caches) and steady step
# (`median_s`), the GEMM convolution (default) and Burn's own (`--conv burn`, cut at STEP_LIMIT).
# CubeCL's compile/autotune log of the first run goes to $OUT/cubecl_r3d18_b2.log.
rm -rf target/autotune
CUBECL_DEBUG_LOG="$OUT/cubecl_r3d18_b2.log" step "$BIN/timebalance" bench train --arch r3d18 --frames 8 --size 112 --batch 2 --device "$DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
echo "compiled kernels (first run): $(grep -c END_KERNEL_COMPILATION "$OUT/cubecl_r3d18_b2.log" 2>/dev/null)"
echo "== warm caches"
step "$BIN/timebalance" bench train --arch r3d18 --frames 8 --size 112 --batch 2 --device "$DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
for b in 2 16; do
  step "$BIN/timebalance" bench train --arch r3d18 --frames 8 --size 112 --batch $b --device "$DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
  step python3 benches/pytorch_bench.py --mode train --arch r3d18 --frames 8 --size 112 --batch $b --device "$TORCH_DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
done
step "$BIN/timebalance" bench train --arch r3d18 --frames 8 --size 112 --batch 2 --device "$DEVICE" --iters 3 --warmup 1 --conv burn $WIDTH_ARGS
step "$BIN/timebalance" bench train --arch slow_r50 --frames 8 --size 224 --batch 8 --device "$DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode train --arch slow_r50 --frames 8 --size 224 --batch 8 --device "$TORCH_DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step "$BIN/timebalance" bench forward --arch r3d18 --frames 8 --size 112 --batch 16 --device "$DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode forward --arch r3d18 --frames 8 --size 112 --batch 16 --device "$TORCH_DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode train --arch r3d18 --frames 8 --size 112 --batch 16 --device "$TORCH_DEVICE" --iters 5 --warmup 2 --amp bf16 $WIDTH_ARGS
# The method's own steps (bench ssl / bench student, see benches/README.md). They come with the
# `video` feature: a binary built with --no-default-features reports them as unknown and the
# script goes on.
step "$BIN/timebalance" bench ssl --teacher distinctive --arch r3d18 --frames 16 --size 112 --batch 4 --device "$DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode ssl-distinctive --arch r3d18 --frames 16 --size 112 --batch 4 --device "$TORCH_DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step "$BIN/timebalance" bench student --arch r3d18 --frames 8 --size 112 --batch 16 --device "$DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode student --arch r3d18 --frames 8 --size 112 --batch 16 --device "$TORCH_DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
