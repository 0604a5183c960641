#!/usr/bin/env bash
# Packages an already-built edgeclip binary for the boards: a tarball with
# boards/install.sh, and a .deb. tools/packaging/release.sh builds, strips and
# calls this for each board target; call it yourself to package a binary you
# built.
#
#   tools/packaging/package.sh --binary PATH --arch arm64|armhf --out DIR [--version V]
#                              [--maintainer 'Name <email>'] [--any-binary] [--fast]
#
# makes, in DIR:
#   edgeclip-VERSION-ARCH.tar.gz   edgeclip-VERSION-ARCH/ with bin/edgeclip,
#                                  models/tiny-shapes/, edgeclip.toml (the default
#                                  config), labels.txt, edgeclip.service, install.sh,
#                                  boards/BOARD.toml and BOARD.md, README.md
#   edgeclip_VERSION_ARCH.deb      the same files at their installed paths, with
#                                  maintainer scripts that create the user
#                                  `edgeclip` and enable the service
#
# VERSION defaults to Cargo.toml's. The binary must be an ELF for ARCH (arm64:
# the static aarch64 musl build; armhf: the armv7 glibc build); --any-binary
# skips that check, for tests that package the host's binary, and --fast
# compresses quickly (gzip -1 for both files), for tests too. The .deb is built
# with plain dpkg-deb --build --root-owner-group rather than cargo-deb: the
# maintainer scripts are hand-written anyway, and cargo-deb would be one more
# tool to build and pin. Needs: dpkg-deb, tar, gzip (and readelf, from binutils,
# to list an armhf binary's libraries; skipped with a warning without it).

# Fail on any error, unset variable, or failure inside a pipeline.
set -euo pipefail
# Packaged files are readable by all unless a mode says otherwise (dpkg-deb
# also refuses a DEBIAN folder that is not 0755).
umask 022
# Run from the repository root, whatever the caller's directory.
cd "$(dirname "$0")/../.."

# One line for the person packaging, then exit 1.
die() {
    echo "package.sh: $*" >&2
    exit 1
}

binary=
arch=
out=
version=
maintainer=
check_binary=1
# Release compression: gzip -9 for the tarball, xz for the .deb.
gzip_level=-9
deb_compression=(-Zxz)
# Options.
while (($#)); do
    case "$1" in
        --binary) (($# >= 2)) || die "--binary needs a path"; binary=$2; shift ;;
        --arch) (($# >= 2)) || die "--arch needs arm64 or armhf"; arch=$2; shift ;;
        --out) (($# >= 2)) || die "--out needs a folder"; out=$2; shift ;;
        --version) (($# >= 2)) || die "--version needs a version"; version=$2; shift ;;
        --maintainer) (($# >= 2)) || die "--maintainer needs 'Name <email>'"; maintainer=$2; shift ;;
        # Package whatever binary is given (tests package the host's).
        --any-binary) check_binary=0 ;;
        # Quick compression, same contents (tests).
        --fast) gzip_level=-1 deb_compression=(-Zgzip -z1) ;;
        -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (accepted: --binary PATH, --arch arm64|armhf, --out DIR, --version V, --maintainer 'Name <email>', --any-binary, --fast)" ;;
    esac
    shift
done
[ -n "$binary" ] || die "--binary PATH is required (e.g. target/aarch64-unknown-linux-musl/release/edgeclip)"
[ -f "$binary" ] || die "--binary '$binary' does not exist; build it first (tools/packaging/cross_build.sh TARGET, or tools/packaging/release.sh for everything)"
[ -n "$out" ] || die "--out DIR is required (e.g. target/release-packages)"

# Per architecture: the ELF machine the binary must be, and what the .deb
# depends on besides adduser (for the postinst's user creation).
case "$arch" in
    # The static musl binary needs nothing from the board.
    arm64) elf_machine=183 extra_depends= ;;
    # The armv7 binary links the board's glibc dynamically (.cargo/config.toml
    # says why); built against Debian 12's glibc 2.36, it needs Raspberry Pi OS
    # Bookworm or later. Rust's gnu targets also link libgcc_s for unwinding,
    # and the H.264 decoder (OpenH264, C++) links libstdc++, which every
    # Raspberry Pi OS image has.
    armhf) elf_machine=40 extra_depends=", libc6 (>= 2.36), libgcc-s1, libstdc++6" ;;
    "") die "--arch is required: arm64 (64-bit OSes: Raspberry Pi OS 64-bit, Ubuntu, Jetson L4T) or armhf (32-bit Raspberry Pi OS)" ;;
    *) die "--arch '$arch' is not a board architecture; accepted: arm64, armhf" ;;
esac

# The version: Cargo.toml's [package] version unless given.
if [ -z "$version" ]; then
    version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
    [ -n "$version" ] || die "no version = \"...\" in Cargo.toml's [package]; pass --version V"
fi
# dpkg's rule for upstream versions (a digit first; letters, digits, . + ~ -).
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "version '$version' is not a Debian version (a digit first, then letters, digits, '.', '+', '~', '-')"

# The Maintainer field: --maintainer, else DEBFULLNAME/DEBEMAIL (Debian's
# convention), else the author of the commit being packaged.
if [ -z "$maintainer" ] && [ -n "${DEBEMAIL:-}" ]; then
    maintainer="${DEBFULLNAME:-edgeclip maintainers} <$DEBEMAIL>"
fi
if [ -z "$maintainer" ]; then
    maintainer=$(git log -1 --format='%an <%ae>' 2>/dev/null || true)
fi
[[ "$maintainer" =~ ^[^\<]+\ \<[^\>]+@[^\>]+\>$ ]] || die "no usable maintainer ('$maintainer'): pass --maintainer 'Name <email>' or set DEBEMAIL"

# The binary must be an ELF for ARCH: byte 18-19 of the header (e_machine,
# little-endian) is 183 for aarch64, 40 for 32-bit ARM.
if ((check_binary)); then
    magic=$(head -c 4 "$binary" | od -An -tx1 | tr -d ' \n')
    [ "$magic" = 7f454c46 ] || die "'$binary' is not an ELF executable"
    machine=$(od -An -tu2 -j18 -N2 "$binary" | tr -d ' ')
    if [ "$machine" != "$elf_machine" ]; then
        case "$machine" in
            183) built_for=aarch64 ;;
            40) built_for="32-bit ARM" ;;
            62) built_for=x86-64 ;;
            *) built_for="ELF machine $machine" ;;
        esac
        die "'$binary' is built for $built_for, not $arch: arm64 takes target/aarch64-unknown-linux-musl/release/edgeclip, armhf target/armv7-unknown-linux-gnueabihf/release/edgeclip (--any-binary packages it anyway)"
    fi
    # What the binary loads at run time must be what the .deb depends on.
    if command -v readelf >/dev/null; then
        needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
        for lib in $needed; do
            case "$arch:$lib" in
                armhf:libc.so.* | armhf:libm.so.* | armhf:libpthread.so.* | armhf:libdl.so.* | armhf:librt.so.* | armhf:ld-linux-armhf.so.*) ;;
                armhf:libgcc_s.so.* | armhf:libstdc++.so.*) ;;
                arm64:*) die "'$binary' loads $lib, but the arm64 package ships the static musl binary (tools/packaging/cross_build.sh aarch64-unknown-linux-musl), which loads nothing" ;;
                *) die "'$binary' loads $lib, for which the .deb has no dependency: add its Debian package to the armhf Depends in tools/packaging/package.sh" ;;
            esac
        done
    else
        echo "package.sh: warning: readelf not found (apt-get install binutils); the binary's libraries are not checked against the Depends" >&2
    fi
fi

# Every part of the package, checked before anything is made.
model_dir=models/tiny-shapes
# The model files the daemon reads, plus its card and demo clip
# (demo.truth.json is for tests only).
model_files=(model.toml image.onnx text.onnx labels.txt labels.emb README.md demo.mjpeg)
boards=(raspberry-pi-4 raspberry-pi-5 raspberry-pi-zero-2w jetson-nano jetson-orin-nano)
for f in "${model_files[@]}"; do
    [ -f "$model_dir/$f" ] || die "model file '$model_dir/$f' is missing (tools/demo_model/make_tiny_shapes.sh makes the bundle)"
done
for board in "${boards[@]}"; do
    [ -f "boards/$board/edgeclip.toml" ] || die "'boards/$board/edgeclip.toml' is missing"
    [ -f "boards/$board/README.md" ] || die "'boards/$board/README.md' is missing"
done
for f in boards/edgeclip.toml boards/labels.txt boards/edgeclip.service boards/install.sh boards/README.md boards/mosquitto.acl README.md docs/mqtt.md; do
    [ -f "$f" ] || die "'$f' is missing"
done
# The default config goes to /etc/edgeclip as it is, so its paths must be the
# installed ones (relative paths would be relative to /etc/edgeclip).
for line in 'path = "/usr/share/edgeclip/models/tiny-shapes"' 'cache_dir = "/var/cache/edgeclip"' 'labels = "/etc/edgeclip/labels.txt"'; do
    grep -qxF "$line" boards/edgeclip.toml || die "boards/edgeclip.toml lacks the line '$line': the packaged default config must name the installed paths"
done

# Dates inside the archives: SOURCE_DATE_EPOCH (the reproducible-builds
# convention), else the packaged commit's time, so that the same commit makes
# the same tarball.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

mkdir -p "$out"
out=$(cd "$out" && pwd)
# Everything is assembled in a temporary folder, removed on any exit.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

# Copies SRC to DEST with MODE, making the folders.
put() {
    install -D -m "$3" "$1" "$2"
}

# --- The tarball ---
name=edgeclip-$version-$arch
tree=$stage/$name
put "$binary" "$tree/bin/edgeclip" 0755
for f in "${model_files[@]}"; do
    put "$model_dir/$f" "$tree/models/tiny-shapes/$f" 0644
done
put boards/edgeclip.toml "$tree/edgeclip.toml" 0644
put boards/labels.txt "$tree/labels.txt" 0644
put boards/edgeclip.service "$tree/edgeclip.service" 0644
put boards/install.sh "$tree/install.sh" 0755
put README.md "$tree/README.md" 0644
# The MQTT topics and payloads, for whoever subscribes from Home Assistant or Node-RED.
put docs/mqtt.md "$tree/docs/mqtt.md" 0644
# Access rules for a Mosquitto shared with Home Assistant (README, "Security").
put boards/mosquitto.acl "$tree/mosquitto.acl" 0644
for board in "${boards[@]}"; do
    put "boards/$board/edgeclip.toml" "$tree/boards/$board.toml" 0644
    put "boards/$board/README.md" "$tree/boards/$board.md" 0644
done
# The boards' common notes (packages, the unit, GPIO wiring and permissions).
put boards/README.md "$tree/boards/README.md" 0644
tarball=$out/$name.tar.gz
# Owned by root, in name order, dated by the commit: the same input makes
# the same bytes; gzip -n leaves out the file name and time.
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name --mtime="@$epoch" -cf - "$name" | gzip "$gzip_level" -n > "$tarball"

# --- The .deb ---
root=$stage/deb
put "$binary" "$root/usr/bin/edgeclip" 0755
for f in "${model_files[@]}"; do
    put "$model_dir/$f" "$root/usr/share/edgeclip/models/tiny-shapes/$f" 0644
done
for board in "${boards[@]}"; do
    put "boards/$board/edgeclip.toml" "$root/usr/share/edgeclip/boards/$board.toml" 0644
    put "boards/$board/README.md" "$root/usr/share/doc/edgeclip/boards/$board.md" 0644
done
put boards/README.md "$root/usr/share/doc/edgeclip/boards/README.md" 0644
put boards/edgeclip.toml "$root/etc/edgeclip/edgeclip.toml" 0644
put boards/labels.txt "$root/etc/edgeclip/labels.txt" 0644
# /lib/systemd/system, not /usr/lib: the path every supported release reads
# (Ubuntu 18.04 on the Jetson Nano included; merged-/usr systems see both).
put boards/edgeclip.service "$root/lib/systemd/system/edgeclip.service" 0644
put README.md "$root/usr/share/doc/edgeclip/README.md" 0644
put docs/mqtt.md "$root/usr/share/doc/edgeclip/mqtt.md" 0644
put boards/mosquitto.acl "$root/usr/share/doc/edgeclip/mosquitto.acl" 0644
mkdir -p "$root/usr/share/doc/edgeclip"
cat > "$root/usr/share/doc/edgeclip/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: edgeclip
Comment: edgeclip is one binary that statically links its Rust dependencies
 (tract, rumqttc, rumqttd, rustls, zune-jpeg with the patch in vendor/, and
 others; Cargo.lock lists them), each under MIT, Apache-2.0 or a compatible
 licence.

Files: *
License: MIT or Apache-2.0

Files: usr/share/edgeclip/models/tiny-shapes/*
Comment: The demo model, trained by this project from nothing on rendered
 scenes (usr/share/edgeclip/models/tiny-shapes/README.md).
License: MIT

License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
EOF
chmod 0644 "$root/usr/share/doc/edgeclip/copyright"

mkdir -p "$root/DEBIAN"
# Installed-Size: KiB, as dpkg counts it (everything but DEBIAN/).
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: edgeclip
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: adduser$extra_depends
Section: video
Priority: optional
Description: zero-shot CLIP detections from a camera, published over MQTT
 edgeclip reads a camera (a USB webcam, the Raspberry Pi camera module, a
 Jetson CSI camera), runs a quantized CLIP image encoder on the CPU and
 compares each frame that moved with text labels from a file ("a cat on the
 sofa", "the garage door is open"). Labels that appear become events on MQTT,
 with snapshots and Home Assistant discovery. Nobody trains anything: a new
 label is a new line of text.
 .
 This package runs it as the service edgeclip.service under its own user,
 with /etc/edgeclip/edgeclip.toml and /etc/edgeclip/labels.txt, and ships the
 small demo model tiny-shapes; a real CLIP is exported on a machine with
 internet (tools/model/export_clip.py in the source).
EOF
# Upgrades keep the user's edits to these (dpkg asks when both changed).
cat > "$root/DEBIAN/conffiles" <<'EOF'
/etc/edgeclip/edgeclip.toml
/etc/edgeclip/labels.txt
EOF

# postinst: the user, then the service. The systemd part is what debhelper's
# dh_installsystemd writes, so enabling follows the admin's choice on upgrade
# (a disabled service stays disabled); without systemd (a chroot, an image
# being built) the service is only marked enabled for the next boot.
cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# edgeclip postinst: creates the system user edgeclip (groups video and, where
# the board has it, gpio), then enables and (re)starts edgeclip.service.
set -e

if [ "$1" = configure ]; then
    # The service's user: no login, its home is its cache (CacheDirectory=).
    if ! getent passwd edgeclip >/dev/null; then
        adduser --system --group --no-create-home --home /var/cache/edgeclip --quiet edgeclip
    fi
    # Cameras are group video; GPIO chips group gpio where it exists (the
    # unit cannot name a group that may be missing: it would not start).
    for group in video gpio; do
        if getent group "$group" >/dev/null; then
            adduser --quiet edgeclip "$group"
        fi
    done
fi

if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
    if command -v deb-systemd-helper >/dev/null; then
        # Removes only a mask that deb-systemd-helper set on removal.
        deb-systemd-helper unmask edgeclip.service >/dev/null || true
        # was-enabled is true on a first install: enable it then; on an
        # upgrade keep whatever the admin chose.
        if deb-systemd-helper --quiet was-enabled edgeclip.service; then
            deb-systemd-helper enable edgeclip.service >/dev/null || true
        else
            deb-systemd-helper update-state edgeclip.service >/dev/null || true
        fi
    fi
    # Only where systemd runs (not in a chroot or an image build).
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if ! command -v deb-systemd-helper >/dev/null; then
            systemctl enable edgeclip.service >/dev/null 2>&1 || true
        fi
        # An upgrade ($2 is the old version) restarts onto the new binary.
        if [ -n "$2" ]; then action=restart; else action=start; fi
        if command -v deb-systemd-invoke >/dev/null; then
            deb-systemd-invoke "$action" edgeclip.service || echo "edgeclip: the service did not $action; see: journalctl -u edgeclip -n 50" >&2
        else
            systemctl "$action" edgeclip.service || echo "edgeclip: the service did not $action; see: journalctl -u edgeclip -n 50" >&2
        fi
    fi
fi

exit 0
EOF
# prerm: stop the service before its files go (an upgrade restarts it in
# postinst instead).
cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# edgeclip prerm: stops edgeclip.service when the package is removed.
set -e

if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    if command -v deb-systemd-invoke >/dev/null; then
        deb-systemd-invoke stop edgeclip.service >/dev/null || true
    else
        systemctl stop edgeclip.service >/dev/null 2>&1 || true
    fi
fi

exit 0
EOF
# postrm: on purge, everything the package made at run time goes too.
cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# edgeclip postrm: forgets the unit on removal; on purge also removes the
# user edgeclip, its cache /var/cache/edgeclip and /etc/edgeclip.
set -e

if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null; then
    # Keeps a reinstall from re-enabling a service the admin had disabled.
    deb-systemd-helper mask edgeclip.service >/dev/null || true
fi

if [ "$1" = purge ]; then
    if command -v deb-systemd-helper >/dev/null; then
        deb-systemd-helper purge edgeclip.service >/dev/null || true
        deb-systemd-helper unmask edgeclip.service >/dev/null || true
    fi
    # The label-embedding cache and anything the admin added next to the
    # config (an MQTT password file, certificates): purge means all of it.
    rm -rf /var/cache/edgeclip /etc/edgeclip
    if getent passwd edgeclip >/dev/null; then
        if command -v deluser >/dev/null; then
            deluser --quiet --system edgeclip >/dev/null || true
        else
            userdel edgeclip >/dev/null 2>&1 || true
        fi
    fi
    if getent group edgeclip >/dev/null; then
        if command -v delgroup >/dev/null; then
            delgroup --quiet --system --only-if-empty edgeclip >/dev/null || true
        else
            groupdel edgeclip >/dev/null 2>&1 || true
        fi
    fi
fi

exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"
# Every maintainer script must at least parse.
for script in postinst prerm postrm; do
    sh -n "$root/DEBIAN/$script" || die "DEBIAN/$script does not parse (a bug in tools/packaging/package.sh)"
done
# Files dated like the tarball's, for the same reason.
find "$root" -exec touch -h -d "@$epoch" {} +

deb=$out/edgeclip_${version}_${arch}.deb
# --root-owner-group: every file root:root without fakeroot. -Zxz, not the
# default: Ubuntu 18.04's dpkg (Jetson Nano) cannot read zstd, which newer
# dpkg-deb may pick.
SOURCE_DATE_EPOCH=$epoch dpkg-deb --build --root-owner-group "${deb_compression[@]}" "$root" "$deb" >/dev/null

echo "$tarball ($(du -h "$tarball" | cut -f1))"
echo "$deb ($(du -h "$deb" | cut -f1))"
