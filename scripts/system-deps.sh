#!/usr/bin/env bash
# Install the system packages the build and tests need, when they are missing.
# Debian/Ubuntu: FFmpeg development libraries (video-rs), libclang (bindgen), the ffmpeg CLI
# (test videos), pkg-config, and Mesa's software Vulkan driver (wgpu tests on a CPU).
set -euo pipefail

PACKAGES=(
  pkg-config
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev
  libclang1-14 libclang-common-14-dev
  ffmpeg
  mesa-vulkan-drivers libvulkan1
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "system-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
