#!/usr/bin/env bash
# Debian packages voiceagent uses at run time: espeak-ng (a TTS backend, and the caller voice in tests).
set -euo pipefail
packages=()
command -v espeak-ng >/dev/null || packages+=(espeak-ng)
[ ${#packages[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}"
