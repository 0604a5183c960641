#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are not installed yet,
# as root (CI, a fresh board image) or through sudo; a second run costs
# nothing. Used by tools/test.sh and tools/demo.sh, which say why they need
# each package.
set -euo pipefail

missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
