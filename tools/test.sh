#!/usr/bin/env bash
# The test command (README: "Run the tests"). Installs what the suite needs on
# a fresh Debian 12 machine, then runs the whole suite. CI calls this script
# (.ci/run) and so should you.
#
# The golden files under tests/data/ are committed, so no Python is needed
# here; tools/make_test_data.sh regenerates them with the pinned tools/.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite needs (tools/apt_install.sh installs those
# missing).
# libclang-dev: bindgen (v4l2-sys-mit, under the v4l crate) parses the kernel's
# <linux/videodev2.h> at build time.
# mosquitto: the MQTT and daemon tests (tests/mqtt.rs, tests/daemon.rs) run
# their own Mosquitto, one per
# test on a free port, with mosquitto_passwd for the password tests. The
# package also enables a system service on 127.0.0.1:1883 (where systemd runs);
# the tests never use that port, so whether it runs does not matter.
# mosquitto-clients: mosquitto_sub, a second, independent subscriber in the
# embedded-broker test.
APT_PACKAGES=(libclang-dev mosquitto mosquitto-clients)
tools/apt_install.sh "${APT_PACKAGES[@]}"

# --locked: the committed Cargo.lock is what was tested.
cargo test --locked --all-targets "$@"
