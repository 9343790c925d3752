#!/usr/bin/env bash
# Makes benchmark videos that resemble the two dataset families the loader must serve:
#   ucf/  UCF101-like:  320x240, 25 fps, MPEG-4 Part 2 (XviD tag) in AVI, 150-250 frames,
#                       keyframe every 12 frames (xvid's default GOP is short), no B-frames.
#   k400/ Kinetics-like: 340x256, 30 fps, H.264 (High, 3 B-frames) in MP4, 250 frames,
#                       keyframe every 250 frames (one GOP per clip, as in typical K400 downloads).
# Content is ffmpeg's testsrc2 pattern plus temporal noise, so the bitrate (and therefore the
# decode cost) is closer to camera footage than a static pattern would be.
#
# Usage: benches/make_bench_videos.sh OUT_DIR [COUNT]   (COUNT videos of each kind, default 16)
set -euo pipefail

out=${1:?usage: $0 OUT_DIR [COUNT]}
count=${2:-16}
mkdir -p "$out/ucf" "$out/k400"

for i in $(seq 0 $((count - 1))); do
    # 150..246 frames, spread deterministically over the set.
    ucf_frames=$((150 + (i * 37) % 97))
    ffmpeg -nostdin -loglevel error -y \
        -f lavfi -i "testsrc2=size=320x240:rate=25,noise=alls=12:allf=t" \
        -frames:v "$ucf_frames" -c:v mpeg4 -vtag XVID -q:v 5 -g 12 -bf 0 \
        -pix_fmt yuv420p "$out/ucf/v_bench_g$(printf %02d "$i").avi"
    ffmpeg -nostdin -loglevel error -y \
        -f lavfi -i "testsrc2=size=340x256:rate=30,noise=alls=12:allf=t" \
        -frames:v 250 -c:v libx264 -preset fast -crf 23 -bf 3 -g 250 -keyint_min 250 \
        -sc_threshold 0 -pix_fmt yuv420p "$out/k400/bench_$(printf %02d "$i")_000000_000010.mp4"
done
echo "wrote $count UCF-like .avi to $out/ucf and $count Kinetics-like .mp4 to $out/k400"
