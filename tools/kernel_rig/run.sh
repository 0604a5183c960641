#!/usr/bin/env bash
# The kernel rig (tools/kernel_rig/README.md): edgeclip's static aarch64
# release binary against a real arm64 Linux kernel's camera and GPIO
# drivers, under qemu-system-aarch64. Installs what it needs on a fresh
# Debian 12 machine, builds the binary, and runs rig.py, whose last line
# says whether every check passed (exit status 0) or not. Arguments go to
# rig.py (--refresh fetches the kernel again; --out DIR, default
# target/kernel-rig).
set -euo pipefail
cd "$(dirname "$0")/../.."

APT_PACKAGES=(
    # qemu-system-aarch64, which boots the kernel on its `virt` machine.
    qemu-system-arm
    # The host's broker the guest's daemon publishes to, and the subscriber
    # that records what it published.
    mosquitto mosquitto-clients
    # The independent converter of the raw frames the guest captured.
    ffmpeg
    # rig.py (standard library only).
    python3
    # The cross build of the static binary (tools/packaging/cross_build.sh).
    gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libclang-dev
)
tools/ci/apt_install.sh "${APT_PACKAGES[@]}"
rustup target add aarch64-unknown-linux-musl

tools/packaging/cross_build.sh aarch64-unknown-linux-musl
binary=${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-musl/release/edgeclip
exec python3 tools/kernel_rig/rig.py --binary "$binary" "$@"
