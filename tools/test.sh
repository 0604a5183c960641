#!/usr/bin/env bash
# The test command (README: "Run the tests"). Installs what the suite needs on
# a fresh Debian 12 machine, then runs the whole suite. CI calls this script
# (.ci/run) and so should you.
#
# The golden files under tests/data/ are committed, so no Python is needed
# here; tools/make_test_data.sh regenerates them with the pinned tools/.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite needs. Installed only when missing, so a second
# run costs nothing; as root (CI, a fresh board image) or through sudo.
# libclang-dev: bindgen (v4l2-sys-mit, under the v4l crate) parses the kernel's
# <linux/videodev2.h> at build time.
# mosquitto: the MQTT tests (tests/mqtt.rs) run their own Mosquitto, one per
# test on a free port, with mosquitto_passwd for the password tests. The
# package also enables a system service on 127.0.0.1:1883 (where systemd runs);
# the tests never use that port, so whether it runs does not matter.
# mosquitto-clients: mosquitto_sub, a second, independent subscriber in the
# embedded-broker test.
APT_PACKAGES=(libclang-dev mosquitto mosquitto-clients)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# --locked: the committed Cargo.lock is what was tested.
cargo test --locked --all-targets "$@"
