#!/usr/bin/env bash
# The test command (README: "Run the tests"). Installs what the suite needs on
# a fresh Debian 12 machine, then runs it three times:
#
#   host     the whole suite on this machine (x86-64);
#   aarch64  the whole suite again, cross-built for aarch64-unknown-linux-musl
#            (the static binary of the 64-bit boards) and run under
#            qemu-aarch64 as a Raspberry Pi 4's Cortex-A72;
#   armv7    the unit tests, cross-built for armv7-unknown-linux-gnueabihf
#            (32-bit Raspberry Pi OS) without the optional features, then the
#            inference and GPIO tests with the `gpio` feature, run under
#            qemu-arm with NEON.
#
# and prints the number of tests of each and the wall time. CI calls this
# script (.ci/run) and so should you. EDGECLIP_TEST_TARGETS="host" (or any of
# "host aarch64 armv7") runs a part; extra arguments go to the host and
# aarch64 runs (e.g. a test-name filter).
#
# The golden files under tests/data/ are committed, so no Python is needed
# here; tools/testdata/make_test_data.sh regenerates them with the pinned tools/.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite needs (tools/ci/apt_install.sh installs those
# missing).
APT_PACKAGES=(
    # bindgen (v4l2-sys-mit, under the v4l crate) parses the kernel's
    # <linux/videodev2.h> at build time, for every target.
    libclang-dev
    # The MQTT and daemon tests run their own Mosquitto, one per test on a
    # free port, with mosquitto_passwd for the password tests. The package
    # also enables a system service on 127.0.0.1:1883 where systemd runs; the
    # tests never use that port.
    mosquitto
    # mosquitto_sub: a second, independent subscriber in the embedded-broker test.
    mosquitto-clients
    # The cross linkers and C compilers of the board targets (.cargo/config.toml);
    # gcc-aarch64-linux-gnu brings the arm64 kernel and C headers bindgen reads.
    gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf
    # armv7 is a glibc target: its C library to link with, and for qemu-arm to load.
    libc6-dev-armhf-cross
    # qemu-aarch64 and qemu-arm run the cross-built tests (the runners in
    # .cargo/config.toml).
    qemu-user
    # tests/boards.rs: every shell script passes shellcheck, the service unit
    # passes systemd-analyze verify (in the systemd package), and the .deb is
    # read back with dpkg-deb (dpkg, always installed).
    shellcheck systemd
)
tools/ci/apt_install.sh "${APT_PACKAGES[@]}"

# The Rust standard libraries of the board targets (a no-op once installed).
rustup target add aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf

targets=${EDGECLIP_TEST_TARGETS:-host aarch64 armv7}
started=$SECONDS
summary=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs one `cargo test` (its arguments), showing its output, and adds a line
# with its test counts (summed over the test binaries) and time to the summary.
run_suite() {
    local name=$1 part_started=$SECONDS
    shift
    echo "== $name: cargo test $*"
    # --locked: the committed Cargo.lock is what was tested.
    cargo test --locked "$@" 2>&1 | tee "$log"
    summary+=("$(printf '%-38s %s, %d s' "$name" "$(count_tests "$log")" $((SECONDS - part_started)))")
}

# "N passed, M ignored" from the "test result:" lines of a cargo test log.
count_tests() {
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i - 1); if ($(i) ~ /^ignored/) g += $(i - 1) } }
         END { printf "%d passed, %d ignored", p, g }' "$1"
}

for target in $targets; do
    case "$target" in
        host)
            run_suite "host (x86-64)" --all-targets "$@"
            ;;
        aarch64)
            run_suite "aarch64 (qemu, Cortex-A72)" --all-targets --target aarch64-unknown-linux-musl "$@"
            ;;
        armv7)
            # The unit tests without the default features (embedded broker,
            # TLS, GPIO): a smaller build, and proof that the crate builds
            # without them. Then, with `gpio` (the armhf package has it), the
            # integration tests of the image and text paths: the encoders
            # against onnxruntime, the kernels, preprocessing and JPEG against
            # Pillow, the tokenizer and `classify` end to end; and GPIO's, but
            # for the two that run the demo clip through a camera. (The whole
            # suite also runs there, daemon tests included, in about 13
            # minutes: the aarch64 run already covers them, and this command
            # has to stay well inside CI's 90 minutes.)
            run_suite "armv7 unit (qemu, Cortex-A7)" --no-default-features \
                --target armv7-unknown-linux-gnueabihf --lib
            run_suite "armv7 inference, GPIO (qemu, Cortex-A7)" --no-default-features --features gpio \
                --target armv7-unknown-linux-gnueabihf --test main -- \
                encoder:: kernels:: cli:: preprocess:: convert:: fold:: text_encoder:: \
                tokenize:: labels_emb:: gpio:: --skip gpio::pipeline::
            ;;
        *)
            echo "tools/test.sh: unknown target '$target' in EDGECLIP_TEST_TARGETS (accepted: host aarch64 armv7)" >&2
            exit 2
            ;;
    esac
done

echo
echo "== tools/test.sh summary"
printf '%s\n' "${summary[@]}"
echo "all passed in $((SECONDS - started)) s"
