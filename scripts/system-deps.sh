#!/usr/bin/env bash
# Debian packages voiceagent uses at run time: espeak-ng (a TTS backend, and the caller voice in tests); and
# the telephony tests' real peers: SIPp (sip-tester) and Kamailio.
# `voiceagent talk` and its tests: PortAudio (libportaudio2, and portaudio19-dev with a C compiler for PyAudio,
# which builds from source on Linux), and a PulseAudio server whose virtual devices stand in for a sound card.
# The browser softphone's tests: Debian's Chromium and Firefox ESR.
set -euo pipefail
packages=()
command -v espeak-ng >/dev/null || packages+=(espeak-ng)
command -v pulseaudio >/dev/null || packages+=(pulseaudio)
command -v pactl >/dev/null || packages+=(pulseaudio-utils)  # pactl, paplay, parec
command -v gcc >/dev/null || packages+=(gcc)
command -v sipp >/dev/null || packages+=(sip-tester)  # SIPp: the real SIP caller of the telephony tests
command -v kamailio >/dev/null || packages+=(kamailio)  # the SIP proxy of the scale-out recipe and its test
command -v chromium >/dev/null || packages+=(chromium)  # the browser the softphone's tests drive (Playwright)
command -v firefox-esr >/dev/null || packages+=(firefox-esr)  # the same tests in Firefox (over Marionette)
for package in libasound2-plugins libportaudio2 portaudio19-dev; do  # libraries: asked of dpkg
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || packages+=("$package")
done
# PyAudio's build needs Python's headers: Debian's python3.11 keeps them in python3.11-dev.
python=$(command -v "${PYTHON:-python3.11}" || true)
if [ "$python" = /usr/bin/python3.11 ] && ! [ -f /usr/include/python3.11/Python.h ]; then
    packages+=(python3.11-dev)
fi
[ ${#packages[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}"
