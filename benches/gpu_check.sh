#!/usr/bin/env bash
# One prepared run on a machine with an NVIDIA GPU and no Rust toolchain.
# Build here first (see benches/README.md), then on the GPU machine, from the repo root:
#   bash benches/gpu_check.sh DIR_WITH_BINARIES
# DIR must hold `timebalance` (built with --features cuda) and `integration` (the integration
# test binary built with --features cuda: its `cuda::` tests are the golden and trajectory
# parity), or an archive `gpu-bin.tgz` of both. Finds NVRTC in a PyTorch wheel if the system
# has none. The strip + gzip of both binaries is ~25 MB (the device tool carries 64 MiB with
# the checkout's ~40 MB).
#
# The same script runs without a GPU, on Mesa's lavapipe (a check that it runs end to end, and
# the lavapipe column of issue 11): binaries built with `--features wgpu`, then
#   DEVICE=wgpu TORCH_DEVICE=cpu STEP_LIMIT=120 bash benches/gpu_check.sh DIR
# DEVICE: our device (cuda); TORCH_DEVICE: PyTorch's (cuda); STEP_LIMIT: seconds a step may
# take before it is cut (150); WIDTH: backbone width of every timed row (the architectures'
# own when unset; e.g. WIDTH=8 makes a lavapipe run finish its steps); the parity tests run
# are those of the modules named DEVICE.
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

# TOTAL_LIMIT: seconds the whole script may take (a lent GPU is held for minutes): each step's
# limit shrinks to what is left, and steps that would get under 10 s are skipped, so the rows
# are in order of what matters most. BURN_LIMIT: the limit of the row that runs Burn's own
# convolution (known not to finish a first step on CUDA in 150 s).
TOTAL_LIMIT=${TOTAL_LIMIT:-3600}
BURN_LIMIT=${BURN_LIMIT:-$STEP_LIMIT}
MIN_STEP=10
step_within() {
  local limit=$1; shift
  local left=$((TOTAL_LIMIT - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  echo "== $*"
  if [ "$limit" -lt "$MIN_STEP" ]; then echo "-- skipped: ${left} s left of TOTAL_LIMIT"; return; fi
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tail -14
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] && echo "cut at ${limit} s"
  echo "-- rc $rc, $((SECONDS - start)) s"
}
step() { step_within "$STEP_LIMIT" "$@"; }

R3D=(--arch r3d18 --frames 8 --size 112)
step "$BIN/timebalance" info
step "$BIN/timebalance" smoke --device "$DEVICE" --steps 5
# First step (`first_s`: compilation and autotuning included, cold caches) and steady step
# (`median_s`) of the GEMM convolution (the default). CubeCL's compile/autotune log of this
# first run goes to $OUT/cubecl_r3d18_b2.log.
rm -rf target/autotune
CUBECL_DEBUG_LOG="$OUT/cubecl_r3d18_b2.log" step "$BIN/timebalance" bench train "${R3D[@]}" --batch 2 --device "$DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
echo "compiled kernels (first run): $(grep -c END_KERNEL_COMPILATION "$OUT/cubecl_r3d18_b2.log" 2>/dev/null)"
# Warm caches from here on (the b2 row of ours repeats the first run).
for b in 2 16; do
  step "$BIN/timebalance" bench train "${R3D[@]}" --batch $b --device "$DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
  step python3 benches/pytorch_bench.py --mode train "${R3D[@]}" --batch $b --device "$TORCH_DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
done
TIMEBALANCE_GOLDEN_DIR=$PWD/tests/fixtures/golden step "$BIN/integration" "$DEVICE::" --test-threads 1
step "$BIN/timebalance" bench forward "${R3D[@]}" --batch 16 --device "$DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode forward "${R3D[@]}" --batch 16 --device "$TORCH_DEVICE" --iters 5 --warmup 2 $WIDTH_ARGS
step "$BIN/timebalance" bench train --arch slow_r50 --frames 8 --size 224 --batch 8 --device "$DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode train --arch slow_r50 --frames 8 --size 224 --batch 8 --device "$TORCH_DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode train "${R3D[@]}" --batch 16 --device "$TORCH_DEVICE" --iters 5 --warmup 2 --amp bf16 $WIDTH_ARGS
# The method's own steps (bench ssl / bench student, see benches/README.md), on random clips.
step "$BIN/timebalance" bench ssl --teacher distinctive --arch r3d18 --frames 16 --size 112 --batch 4 --device "$DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode ssl-distinctive --arch r3d18 --frames 16 --size 112 --batch 4 --device "$TORCH_DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step "$BIN/timebalance" bench student "${R3D[@]}" --batch 16 --device "$DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
step python3 benches/pytorch_bench.py --mode student "${R3D[@]}" --batch 16 --device "$TORCH_DEVICE" --iters 3 --warmup 1 $WIDTH_ARGS
# Burn's own convolution, last: its first step compiles and times every conv candidate.
CUBECL_DEBUG_LOG="$OUT/cubecl_r3d18_b2_burn.log" step_within "$BURN_LIMIT" "$BIN/timebalance" bench train "${R3D[@]}" --batch 2 --device "$DEVICE" --iters 3 --warmup 1 --conv burn $WIDTH_ARGS
echo "compiled kernels (Burn's conv run): $(grep -c END_KERNEL_COMPILATION "$OUT/cubecl_r3d18_b2_burn.log" 2>/dev/null)"
echo "total $SECONDS s"
