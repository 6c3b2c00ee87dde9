#!/usr/bin/env bash
# Installs the Debian packages the window tests need (Xvfb, Mesa, xdotool, ImageMagick) when missing.
set -euo pipefail
need=()
command -v Xvfb >/dev/null || need+=(xvfb xauth)
command -v xdotool >/dev/null || need+=(xdotool)
command -v import >/dev/null && import -version >/dev/null 2>&1 || need+=(imagemagick)
[ -e /usr/lib/x86_64-linux-gnu/dri/swrast_dri.so ] || [ -e /usr/lib/aarch64-linux-gnu/dri/swrast_dri.so ] \
  || ls /usr/lib/*/dri/*swrast* >/dev/null 2>&1 || need+=(libgl1 libglx-mesa0 libgl1-mesa-dri)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  "${need[@]}" libgl1 libglx-mesa0 libgl1-mesa-dri x11-utils >/dev/null
