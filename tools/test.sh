#!/usr/bin/env bash
# The test command (README: "Run the tests"). Installs what the suite needs on
# a fresh Debian 12 machine, then:
#
#   gates    rustfmt, clippy with warnings denied (host, and aarch64 with the
#            default features), and rustdoc with warnings denied (broken
#            intra-doc links fail). The build without the embedded broker and
#            TLS is the armv7 run's; a clippy of the host without them would
#            check a second set of dependencies (4 minutes cold) for that alone;
#   host     the whole suite on this machine (x86-64), the web page's
#            browser tests after the rest;
#   aarch64  cross-built for aarch64-unknown-linux-musl (the static binary of
#            the 64-bit boards) and run under qemu-aarch64 as a Raspberry Pi
#            4's Cortex-A72: the unit tests and the integration tests of the
#            code that differs by architecture (tract's kernels and the
#            encoders, preprocessing, pixel conversion and JPEG, the
#            tokenizer, V4L2's kernel structures, H.264 decoding, the
#            binary's commands) and
#            one end-to-end run of the daemon, the static binary against a
#            real Mosquitto;
#   armv7    the same set, but the daemon run, cross-built for
#            armv7-unknown-linux-gnueabihf (32-bit Raspberry Pi OS) with only
#            the `gpio` feature, run under qemu-arm with NEON, plus the GPIO
#            tests.
#
# Everything else (MQTT, the daemon's behaviour, configuration, packaging)
# is the same code on every architecture and runs on the host only: the
# whole suite under qemu-aarch64 ran for 17 minutes, this set for 5.
#
# It prints the number of tests of each run and the wall time of each step.
# CI calls this script (.ci/run) and so should you. EDGECLIP_TEST_TARGETS
# (any of "gates host aarch64 armv7", default all) runs a part; extra
# arguments go to the host run (e.g. a test-name filter).
#
# With CI=true, and no CARGO_TARGET_DIR of the caller's, builds go to a
# target directory outside the clone that the next run on this machine
# reuses ($XDG_CACHE_HOME/edgeclip/ci-target): cargo still rebuilds whatever
# changed, so it only saves time, and a first run builds everything.
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
    # C++ compilers, for OpenH264 (the H.264 decoder) on the host and boards,
    # and nasm for its x86 SIMD (on ARM the cross gcc assembles its NEON).
    g++ g++-aarch64-linux-gnu g++-arm-linux-gnueabihf nasm
    # tests/h264.rs and tests/rtsp.rs: ffmpeg encodes the demo clip to H.264
    # and is the reference decoder; gst-rtsp-server (through Python's GObject
    # bindings, with GStreamer's Matroska demuxer, H.264 and JPEG parsers,
    # JPEG codec and RTP payloaders) is the real RTSP server the tests start.
    ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    # tests/web.rs drives the web page in a real browser: Debian's Chromium,
    # headless, through chromedriver (WebDriver).
    chromium chromium-driver
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

# The Rust standard libraries of the board targets, and the gates' tools (a
# no-op once installed).
rustup target add aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf
rustup component add clippy rustfmt

if [ "${CI:-}" = true ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/edgeclip/ci-target"
fi

targets=${EDGECLIP_TEST_TARGETS:-gates host aarch64 armv7}
started=$SECONDS
summary=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs one command (its arguments), showing its output, and adds a line with
# its time to the summary.
run_step() {
    local name=$1 part_started=$SECONDS
    shift
    echo "== $name: $*"
    "$@"
    summary+=("$(printf '%-44s ok, %d s' "$name" $((SECONDS - part_started)))")
}

# Runs one `cargo test` (its arguments), showing its output, and adds a line
# with its test counts (summed over the test binaries) and time to the summary.
run_suite() {
    local name=$1 part_started=$SECONDS
    shift
    echo "== $name: cargo test $*"
    # --locked: the committed Cargo.lock is what was tested.
    cargo test --locked "$@" 2>&1 | tee "$log"
    summary+=("$(printf '%-44s %s, %d s' "$name" "$(count_tests "$log")" $((SECONDS - part_started)))")
}

# "N passed, M ignored" from the "test result:" lines of a cargo test log.
count_tests() {
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i - 1); if ($(i) ~ /^ignored/) g += $(i - 1) } }
         END { printf "%d passed, %d ignored", p, g }' "$1"
}

# The integration tests (tests/main.rs modules) whose code differs between
# architectures: tract's kernels and the encoders against onnxruntime's
# outputs, the constant folding, preprocessing and pixel conversion against
# Pillow (SIMD paths), JPEG decoding, the tokenizer and label embeddings
# files (byte order), V4L2's kernel structures (their layout differs on
# 32-bit ARM), H.264 decoding against ffmpeg (OpenH264's NEON assembly), and
# the binary's commands end to end.
ARCH_TESTS=(encoder:: kernels:: fold:: text_encoder:: preprocess:: convert:: tokenize:: labels_emb:: matcher:: v4l2:: h264:: cli::)

for target in $targets; do
    case "$target" in
        gates)
            run_step "rustfmt" cargo fmt --all -- --check
            run_step "clippy (host)" cargo clippy --locked --all-targets -- -D warnings
            run_step "clippy (aarch64)" \
                cargo clippy --locked --all-targets --target aarch64-unknown-linux-musl -- -D warnings
            run_step "rustdoc" env RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
            ;;
        host)
            if (($#)); then
                run_suite "host (x86-64)" --all-targets "$@"
            else
                # The browser tests apart: Chromium and two daemons at the
                # clip's pace take both cores, and the tests that run the
                # daemon at a camera's pace (RTSP, the demo clip) then miss
                # frames and end events late.
                run_suite "host (x86-64)" --all-targets -- --skip web::the_
                run_suite "host web page (headless Chromium)" --test main -- web::the_
            fi
            ;;
        aarch64)
            # The static musl binary runs the demo clip through the daemon
            # against a real Mosquitto: threads, sockets and name lookup of
            # the binary that ships. (Two runs of one build: a filter would
            # also filter the unit tests.)
            run_suite "aarch64 unit (qemu, Cortex-A72)" --target aarch64-unknown-linux-musl --lib
            run_suite "aarch64 integration (qemu, Cortex-A72)" --target aarch64-unknown-linux-musl --test main -- \
                "${ARCH_TESTS[@]}" daemon::the_demo_clip_gives_its_ground_truth_over_mosquitto
            ;;
        armv7)
            # One build with only `gpio` (the armhf package has it): the
            # crate builds without the embedded broker and TLS, and the GPIO
            # tests run on a 32-bit target, but for the two that run the demo
            # clip through a camera.
            armv7_build=(--no-default-features --features gpio --target armv7-unknown-linux-gnueabihf)
            run_suite "armv7 unit (qemu, Cortex-A7)" "${armv7_build[@]}" --lib
            run_suite "armv7 integration (qemu, Cortex-A7)" "${armv7_build[@]}" --test main -- \
                "${ARCH_TESTS[@]}" gpio:: --skip gpio::pipeline::
            ;;
        *)
            echo "tools/test.sh: unknown part '$target' in EDGECLIP_TEST_TARGETS (accepted: gates host aarch64 armv7)" >&2
            exit 2
            ;;
    esac
done

echo
echo "== tools/test.sh summary"
printf '%s\n' "${summary[@]}"
echo "all passed in $((SECONDS - started)) s"
