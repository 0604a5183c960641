#!/usr/bin/env bash
# The release command: for each board target, cross-builds the release binary
# (tools/packaging/cross_build.sh), strips a copy with the target's own strip,
# prints its size, and packages it (tools/packaging/package.sh) into
# target/release-packages/:
#
#   tools/packaging/release.sh                                both targets
#   tools/packaging/release.sh aarch64-unknown-linux-musl     one of them
#
#   aarch64-unknown-linux-musl     -> arm64: edgeclip-VERSION-arm64.tar.gz, edgeclip_VERSION_arm64.deb
#   armv7-unknown-linux-gnueabihf  -> armhf: edgeclip-VERSION-armhf.tar.gz, edgeclip_VERSION_armhf.deb
#
# Each build takes a long time (20 minutes or more on a 2-core machine); they
# run one after the other. VERSION is Cargo.toml's; extra environment for
# package.sh (SOURCE_DATE_EPOCH, DEBEMAIL) is passed through. Needs what
# tools/packaging/cross_build.sh needs, plus binutils-aarch64-linux-gnu and
# binutils-arm-linux-gnueabihf (the strips; the cross gcc packages pull them
# in) and dpkg-deb.

# Fail on any error, unset variable, or failure inside a pipeline.
set -euo pipefail
# Run from the repository root, whatever the caller's directory.
cd "$(dirname "$0")/../.."

# One line for the person releasing, then exit 1.
die() {
    echo "release.sh: $*" >&2
    exit 1
}

# Targets: the arguments, or both board targets.
targets=("$@")
if ((${#targets[@]} == 0)); then targets=(aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf); fi

# Where the packages land (and, in stripped/, the binaries they hold).
out=target/release-packages
mkdir -p "$out"
# cargo's output folder, as cross_build.sh's cargo uses it.
target_dir=${CARGO_TARGET_DIR:-target}

# Every target is checked before the first long build starts.
for target in "${targets[@]}"; do
    case "$target" in
        aarch64-unknown-linux-musl | armv7-unknown-linux-gnueabihf) ;;
        *) die "unknown target '$target' (known: aarch64-unknown-linux-musl, armv7-unknown-linux-gnueabihf)" ;;
    esac
done

for target in "${targets[@]}"; do
    # The Debian architecture and the cross binutils' prefix of each target.
    case "$target" in
        # 64-bit boards: the static musl binary.
        aarch64-unknown-linux-musl) arch=arm64 gnu=aarch64-linux-gnu ;;
        # 32-bit Raspberry Pi OS: the dynamically linked glibc binary.
        armv7-unknown-linux-gnueabihf) arch=armhf gnu=arm-linux-gnueabihf ;;
    esac
    # The host's strip does not know ARM objects: the cross one must be there.
    command -v "$gnu-strip" >/dev/null || die "'$gnu-strip' not found: apt-get install binutils-$gnu"

    tools/packaging/cross_build.sh "$target"
    built=$target_dir/$target/release/edgeclip
    [ -f "$built" ] || die "cross_build.sh finished but '$built' is missing (CARGO_TARGET_DIR is '$target_dir')"

    # Strip a copy: cargo's own output keeps its symbols for debugging.
    mkdir -p "$out/stripped"
    stripped=$out/stripped/edgeclip-$arch
    "$gnu-strip" -o "$stripped" "$built"
    # The binary size per target: what a board has to download and store.
    size=$(stat -c %s "$stripped")
    echo "== $target ($arch): $(stat -c %s "$built") bytes built, $size bytes stripped ($(awk "BEGIN { printf \"%.1f\", $size / 1048576 }") MiB)"

    tools/packaging/package.sh --binary "$stripped" --arch "$arch" --out "$out"
done
echo "== packages in $out:"
ls -l "$out"
