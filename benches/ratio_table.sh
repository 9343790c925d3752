#!/usr/bin/env bash
# Ours vs PyTorch, one row at a time (ours first, then PyTorch, same thread count and device),
# printed as a markdown table:  row | shape | ours_s | pytorch_s | ratio (ours/pytorch).
# A ratio below 1 means ours is faster, in every row (data rows included, see below).
#
# Rows (tags in brackets, for --rows):
#   forward / train step of r3d18, r2plus1d18, slow_r50 at 8x112², 16x112², 8x224²
#       [forward|train, r3d18|r2plus1d18|slow_r50, 8x112|16x112|8x224, models]
#       ours: bench forward|train;  PyTorch: pytorch_bench.py --mode forward|train
#   ssl step of each teacher, 16x112², --ssl-batch videos (x 10 clips)
#       [ssl, ssl-invariant|ssl-distinctive]   ours: bench ssl --teacher ...
#   student step, 8x112², --student-batch labeled + as many unlabeled clips
#       [student]                              ours: bench student
#   the small regime of the demo, synthetic_claim and the tests: r3d18 at width 8, 16x32²
#   (always width 8, whatever --width): train step, batch 80 clips; ssl step of each
#   teacher, 16 videos (x 10 clips); student step, 40 labeled + 40 unlabeled clips
#       [w8, train-w8|ssl-w8|student-w8]      ours: bench train|ssl|student --width 8
#   data loader, clips/s on the videos of benches/make_bench_videos.sh (made if missing)
#       [data, data-ssl|data-train, ucf|k400]  ours: bench data;  Python: benches/bench_data.py
#       The cells hold clips/s (higher is better); the ratio is pytorch clips/s / ours clips/s,
#       i.e. again ours' time / PyTorch's time (below 1 = ours faster).
# A row whose command fails (non-zero exit, timeout, or no `median_s`/clips/s line) shows
# `failed` in its cell and the script goes on. Raw outputs go to OUT_DIR/ratio_table-<time>.log,
# the table also to OUT_DIR/table-<time>.md.
#
# Usage: bash benches/ratio_table.sh [--quick] [--iters N] [--warmup N] [--threads N]
#          [--device cpu|cuda] [--bin PATH] [--rows TAG,TAG,...] [--out DIR]
#          [--batch B] [--ssl-batch B] [--student-batch B] [--ssl-arch ARCH] [--width W] [--pairs N]
#          [--videos DIR] [--video-count N] [--workers N] [--data-batches N]
#          [--data-backend pyav|decord] [--python PY] [--torchvision] [--timeout S]
#   --quick     only r3d18 8x112² (forward, train) + ssl + student + the width-8 rows, iters 2
#               (unless --iters)
#   --rows      comma-separated tags, any of which selects a row; `a+b` needs both tags
#               (e.g. --rows train+r3d18,ssl,student)
#   --threads   CPU threads of both sides, default nproc (ours: RAYON_NUM_THREADS; PyTorch:
#               --threads and OMP_NUM_THREADS); also the loader workers unless --workers
#   --width     base width passed to both sides (only when given; 64 = real models)
#   --pairs N   time each timed row (not the data rows) N times, ours then PyTorch, alternately (default 1): the
#               seconds cells are each side's median over the N runs, the ratio the median of
#               the N pairs' ratios with their range, `0.85 (0.80-0.89)`. For a machine whose
#               speed drifts between minutes (a shared VM): a pair's two runs see the same
#               machine, and one disturbed pair moves the median little.
#   --conv C    ours' convolution (`bench --conv`: auto, im2col, gemm, burn); default auto
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

quick=0
iters=3
iters_set=0
warmup=1
warmup_set=0
pairs=1
# nproc honours OMP_NUM_THREADS, which this script sets for PyTorch.
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
threads=$cpus
device=cpu
bin="$repo/target/release/timebalance"
rows=""
out=/tmp/ratio_table
batch=2
ssl_batch=1
student_batch=2
ssl_arch=r3d18
width=""
conv=""
videos=/tmp/bench_videos
video_count=16
workers=""
data_batches=2
data_backend=pyav
python=python3
torchvision=0
cmd_timeout=3600

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
need() { [ $# -ge 2 ] || { echo "ratio_table.sh: $1 needs a value" >&2; exit 2; }; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --iters) need "$@"; iters=$2; iters_set=1; shift ;;
        --warmup) need "$@"; warmup=$2; warmup_set=1; shift ;;
        --threads) need "$@"; threads=$2; shift ;;
        --device) need "$@"; device=$2; shift ;;
        --bin) need "$@"; bin=$2; shift ;;
        --rows) need "$@"; rows=$2; shift ;;
        --out) need "$@"; out=$2; shift ;;
        --batch) need "$@"; batch=$2; shift ;;
        --ssl-batch) need "$@"; ssl_batch=$2; shift ;;
        --student-batch) need "$@"; student_batch=$2; shift ;;
        --ssl-arch) need "$@"; ssl_arch=$2; shift ;;
        --width) need "$@"; width=$2; shift ;;
        --pairs) need "$@"; pairs=$2; shift ;;
        --conv) need "$@"; conv=$2; shift ;;
        --videos) need "$@"; videos=$2; shift ;;
        --video-count) need "$@"; video_count=$2; shift ;;
        --workers) need "$@"; workers=$2; shift ;;
        --data-batches) need "$@"; data_batches=$2; shift ;;
        --data-backend) need "$@"; data_backend=$2; shift ;;
        --python) need "$@"; python=$2; shift ;;
        --torchvision) torchvision=1 ;;
        --timeout) need "$@"; cmd_timeout=$2; shift ;;
        -h|--help) usage 0 ;;
        *) echo "ratio_table.sh: unknown option $1" >&2; usage 2 ;;
    esac
    shift
done
[ "$quick" = 1 ] && [ "$iters_set" = 0 ] && iters=2
case "$pairs" in '' | *[!0-9]* | 0) echo "ratio_table.sh: --pairs needs a positive integer" >&2; exit 2 ;; esac
workers=${workers:-$threads}
# PyTorch's device: cuda[:N] as given, anything else (cpu, ndarray, flex, ...) is the CPU.
case "$device" in cuda*) py_device=$device ;; *) py_device=cpu ;; esac

mkdir -p "$out" || exit 2
stamp=$(date +%Y%m%d-%H%M%S)
log="$out/ratio_table-$stamp.log"
table="$out/table-$stamp.md"
: >"$log"
: >"$table"

# Both sides get the same thread count.
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
    OPENBLAS_NUM_THREADS=$threads

ours_common=(--device "$device" --iters "$iters")
[ "$warmup_set" = 1 ] && ours_common+=(--warmup "$warmup")
[ -n "$conv" ] && ours_common+=(--conv "$conv")
py_common=(--device "$py_device" --iters "$iters" --warmup "$warmup" --threads "$threads")
[ "$torchvision" = 1 ] && py_common+=(--torchvision)
# The width of the rows being timed: --width's (none = the models' own), 8 for the w8 rows.
row_width=$width

# selected TAG... : is a row with these tags wanted by --rows (empty = all)? --rows is a
# comma-separated list of alternatives; an alternative `a+b` needs both tags a and b.
selected() {
    [ -z "$rows" ] && return 0
    local alts alt need_tags t tag found
    IFS=',' read -ra alts <<<"$rows"
    for alt in "${alts[@]}"; do
        IFS='+' read -ra need_tags <<<"$alt"
        [ "${#need_tags[@]}" -gt 0 ] || continue
        found=1
        for t in "${need_tags[@]}"; do
            local hit=0
            for tag in "$@"; do
                [ "$t" = "$tag" ] && hit=1
            done
            [ "$hit" = 1 ] || { found=0; break; }
        done
        [ "$found" = 1 ] && return 0
    done
    return 1
}

# run NAME PATTERN CMD... : runs CMD, logs everything, prints the number that follows
# PATTERN on the output's last matching line, or `failed`.
run() {
    local name=$1 pattern=$2
    shift 2
    local tmp rc value
    tmp=$(mktemp)
    echo "ratio_table: $name" >&2
    {
        echo "===== $name"
        echo "\$ $*"
    } >>"$log"
    timeout "$cmd_timeout" "$@" >"$tmp" 2>&1
    rc=$?
    cat "$tmp" >>"$log"
    echo "----- rc=$rc" >>"$log"
    value=$(grep -oE "${pattern}[[:space:]=]*[0-9.eE+-]+" "$tmp" | tail -1 | grep -oE '[0-9.eE+-]+$')
    rm -f "$tmp"
    if [ "$rc" -ne 0 ] || [ -z "$value" ]; then
        echo failed
    else
        echo "$value"
    fi
}

ratio() { # ratio A B -> A/B to 2 decimals, or `failed`
    case "$1$2" in *failed*) echo failed; return ;; esac
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "failed"; else printf "%.2f\n", a / b }'
}

emit() { echo "$1" | tee -a "$table"; }

emit_row() { # emit_row LABEL SHAPE OURS PYTORCH RATIO
    emit "| $1 | $2 | $3 | $4 | $5 |"
}

secs() { # format seconds
    [ "$1" = failed ] && { echo failed; return; }
    awk -v s="$1" 'BEGIN { printf "%.4g\n", s }'
}

median() { # median VALUE... -> the median (mean of the middle two), `failed` if any failed
    case " $* " in *" failed "*) echo failed; return ;; esac
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio_cell() { # ratio_cell RATIO... -> the one ratio, or `median (min-max)` of several
    [ $# -eq 1 ] && { echo "$1"; return; }
    local m
    m=$(median "$@")
    [ "$m" = failed ] && { echo failed; return; }
    printf '%s\n' "$@" | sort -g | awk -v m="$m" '{ v[NR] = $1 } END {
        printf "%.2f (%.2f-%.2f)\n", m, v[1], v[NR] }'
}

time_row() { # time_row LABEL SHAPE -- OURS_ARGS... -- PY_ARGS...
    local label=$1 shape=$2
    shift 3
    local ours_args=() py_args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do ours_args+=("$1"); shift; done
    shift
    py_args=("$@")
    local o p i tag="" widths=() os=() ps=() rs=()
    [ -n "$row_width" ] && widths=(--width "$row_width")
    for ((i = 1; i <= pairs; i++)); do
        [ "$pairs" -gt 1 ] && tag=" (pair $i of $pairs)"
        o=$(run "ours: $label $shape$tag" median_s "$bin" bench "${ours_args[@]}" "${ours_common[@]}" "${widths[@]}")
        p=$(run "pytorch: $label $shape$tag" median_s "$python" "$here/pytorch_bench.py" "${py_args[@]}" "${py_common[@]}" "${widths[@]}")
        os+=("$o")
        ps+=("$p")
        rs+=("$(ratio "$o" "$p")")
    done
    emit_row "$label" "$shape" "$(secs "$(median "${os[@]}")")" "$(secs "$(median "${ps[@]}")")" "$(ratio_cell "${rs[@]}")"
}

model_row() { # model_row MODE ARCH FRAMES SIZE
    local mode=$1 arch=$2 frames=$3 size=$4
    selected models "$mode" "$arch" "${frames}x${size}" || return 0
    time_row "$mode $arch" "b$batch ${frames}x${size}²" \
        -- "$mode" --arch "$arch" --frames "$frames" --size "$size" --batch "$batch" \
        -- --mode "$mode" --arch "$arch" --frames "$frames" --size "$size" --batch "$batch"
}

ssl_row() { # ssl_row TEACHER
    local teacher=$1
    selected ssl "ssl-$teacher" || return 0
    time_row "ssl $teacher $ssl_arch" "$ssl_batch video(s) x 10 clips 16x112²" \
        -- ssl --teacher "$teacher" --arch "$ssl_arch" --frames 16 --size 112 --batch "$ssl_batch" \
        -- --mode "ssl-$teacher" --arch "$ssl_arch" --frames 16 --size 112 --batch "$ssl_batch"
}

student_row() {
    selected student || return 0
    time_row "student $ssl_arch" "$student_batch+$student_batch 8x112²" \
        -- student --arch "$ssl_arch" --frames 8 --size 112 --batch "$student_batch" \
        -- --mode student --arch "$ssl_arch" --frames 8 --size 112 --batch "$student_batch"
}

# The width-8 rows (train, ssl of both teachers, student), 16x32², r3d18.
small_rows() {
    local saved=$row_width teacher
    row_width=8
    if selected w8 train-w8; then
        time_row "train r3d18 w8" "b80 16x32²" \
            -- train --arch r3d18 --frames 16 --size 32 --batch 80 \
            -- --mode train --arch r3d18 --frames 16 --size 32 --batch 80
    fi
    for teacher in invariant distinctive; do
        selected w8 ssl-w8 || continue
        time_row "ssl $teacher r3d18 w8" "16 videos x 10 clips 16x32²" \
            -- ssl --teacher "$teacher" --arch r3d18 --frames 16 --size 32 --batch 16 \
            -- --mode "ssl-$teacher" --arch r3d18 --frames 16 --size 32 --batch 16
    done
    if selected w8 student-w8; then
        time_row "student r3d18 w8" "40+40 16x32²" \
            -- student --arch r3d18 --frames 16 --size 32 --batch 40 \
            -- --mode student --arch r3d18 --frames 16 --size 32 --batch 40
    fi
    row_width=$saved
}

videos_ready=""
ensure_videos() {
    if [ -z "$videos_ready" ]; then
        if ls "$videos/ucf"/*.avi >/dev/null 2>&1 && ls "$videos/k400"/*.mp4 >/dev/null 2>&1; then
            videos_ready=yes
        else
            echo "ratio_table: making bench videos in $videos" >&2
            if bash "$here/make_bench_videos.sh" "$videos" "$video_count" >>"$log" 2>&1; then
                videos_ready=yes
            else
                echo "make_bench_videos.sh failed" >>"$log"
                videos_ready=no
            fi
        fi
    fi
    [ "$videos_ready" = yes ]
}

data_row() { # data_row SAMPLER FAMILY(ucf|k400)
    local sampler=$1 family=$2
    selected data "data-$sampler" "$family" || return 0
    local label="data $sampler $family" shape="$workers workers, $data_batches batches"
    local o=failed p=failed
    if ensure_videos; then
        o=$(run "ours: $label" clips_per_s "$bin" bench data "$videos/$family" \
            --sampler "$sampler" --workers "$workers" --batches "$data_batches")
        p=$(run "python: $label" 'clips/s' "$python" "$here/bench_data.py" "$videos/$family" \
            "$sampler" "$workers" "$data_batches" --backend "$data_backend")
    fi
    local oc=failed pc=failed
    [ "$o" != failed ] && oc="$o clips/s"
    [ "$p" != failed ] && pc="$p clips/s"
    # ours' time / PyTorch's time = PyTorch's clips/s / ours' clips/s.
    emit_row "$label" "$shape" "$oc" "$pc" "$(ratio "$p" "$o")"
}

{
    echo "ratio_table.sh $stamp"
    echo "bin: $bin"
    echo "repo: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "ours' conv: ${conv:-auto}"
    echo "device: $device (pytorch: $py_device), threads: $threads, nproc: $cpus, iters: $iters, warmup: $warmup, pairs: $pairs"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')"
    "$python" -c 'import torch; print("torch", torch.__version__)' 2>&1
} | tee -a "$log" | sed 's/^/<!-- /; s/$/ -->/' | tee -a "$table"
emit ""
emit "| row | shape | ours_s | pytorch_s | ratio (ours/pytorch) |"
emit "|---|---|---|---|---|"

if [ "$quick" = 1 ]; then
    model_row forward r3d18 8 112
    model_row train r3d18 8 112
else
    for arch in r3d18 r2plus1d18 slow_r50; do
        for shape in "8 112" "16 112" "8 224"; do
            for mode in forward train; do
                # shellcheck disable=SC2086
                model_row "$mode" "$arch" $shape
            done
        done
    done
fi
ssl_row invariant
ssl_row distinctive
student_row
small_rows
if [ "$quick" = 0 ]; then
    data_row ssl ucf
    data_row ssl k400
    data_row train ucf
fi
emit ""
emit "ratio = ours / PyTorch time (below 1: ours faster); data rows: cells are clips/s (higher is better), ratio = PyTorch clips/s / ours clips/s, same direction."
echo "raw log: $log" >&2
echo "table:   $table" >&2
