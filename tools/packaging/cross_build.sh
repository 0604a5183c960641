#!/usr/bin/env bash
# Cross-builds the release binary for the boards:
# tools/packaging/cross_build.sh [TARGET...] [-- CARGO ARGS]
# (default: aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf).
# Binaries land in target/TARGET/release/edgeclip (or under $CARGO_TARGET_DIR).
# .cargo/config.toml names each target's linker, C compiler and bindgen
# sysroot; this script checks that the cross gcc is installed and builds the
# targets one after the other. Needs: rustup target add TARGET; apt
# gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf g++-aarch64-linux-gnu
# g++-arm-linux-gnueabihf libc6-dev-armhf-cross libclang-dev. Extra arguments after `--` go to cargo, e.g.
# `-- --no-default-features` for a binary without the embedded broker and TLS.
# Fail on any error, unset variable, or failure inside a pipeline.
set -euo pipefail
# Run from the repository root, whatever the caller's directory.
cd "$(dirname "$0")/../.."

# Targets are the arguments before `--`; the rest are cargo's.
targets=()
# Walk the arguments until `--`.
while (($#)) && [ "$1" != "--" ]; do
    # One target triple.
    targets+=("$1")
    # Next argument.
    shift
done
# Drop the `--` itself, if there was one.
if (($#)); then shift; fi
# Without targets, build both board targets.
if ((${#targets[@]} == 0)); then targets=(aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf); fi

# Build each target in turn (never two cargo builds at once on a small machine).
for target in "${targets[@]}"; do
    # The GNU cross toolchain of this target (.cargo/config.toml uses it).
    case "$target" in
        # 64-bit boards: a static musl binary; Rust brings musl's libc and
        # start files, the GNU cross gcc only links and assembles tract's kernels.
        aarch64-unknown-linux-musl) gnu=aarch64-linux-gnu ;;
        # 32-bit Raspberry Pi OS: glibc, dynamically linked.
        armv7-unknown-linux-gnueabihf) gnu=arm-linux-gnueabihf ;;
        # Anything else is not a board we build for.
        *) echo "cross_build.sh: unknown target '$target' (known: aarch64-unknown-linux-musl, armv7-unknown-linux-gnueabihf)" >&2; exit 2 ;;
    esac
    # The cross gcc must be installed.
    command -v "$gnu-gcc" >/dev/null || { echo "cross_build.sh: '$gnu-gcc' not found: apt-get install gcc-$gnu" >&2; exit 2; }
    # And the cross g++, for the H.264 decoder (OpenH264 is C++).
    command -v "$gnu-g++" >/dev/null || { echo "cross_build.sh: '$gnu-g++' not found: apt-get install g++-$gnu" >&2; exit 2; }
    # Report what is being built.
    echo "== cargo build --release --target $target $*"
    # Start the clock for this target.
    started=$SECONDS
    # The build itself; --locked: the committed Cargo.lock is what was tested.
    cargo build --locked --release --target "$target" "$@"
    # Wall time: a cold cross build is the slow step of a release.
    echo "== $target built in $((SECONDS - started)) s"
done
