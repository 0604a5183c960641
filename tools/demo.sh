#!/usr/bin/env bash
# The demo (README: "Quick start"): builds edgeclip and runs the daemon on the
# bundled model, replaying the bundled clip and publishing to a broker inside
# edgeclip on 127.0.0.1:1884 (boards/demo.toml). Each event is printed as one
# line; the clip lasts 42 s, then edgeclip exits. Watch the MQTT side from
# another terminal with:
#
#   mosquitto_sub -h 127.0.0.1 -p 1884 -t 'edgeclip/#' -v
#
# Extra arguments go to `edgeclip run` (none are needed).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build needs (tools/ci/apt_install.sh installs those
# missing). libclang-dev: bindgen (under the v4l crate) parses the
# kernel's <linux/videodev2.h> at build time.
APT_PACKAGES=(libclang-dev)
tools/ci/apt_install.sh "${APT_PACKAGES[@]}"

# --locked: the committed Cargo.lock is what was tested.
exec cargo run --locked --release -- run --config boards/demo.toml "$@"
