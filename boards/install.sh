#!/usr/bin/env bash
# Installs edgeclip on a board from an unpacked release tarball (tools/packaging/package.sh
# makes edgeclip-VERSION-ARCH.tar.gz; install.sh is inside it), or from a source
# checkout with a binary built there. On a Debian-family system the .deb does the
# same job and is the easier way (sudo apt install ./edgeclip_*_arm64.deb); do
# not mix the two.
#
#   tar xzf edgeclip-0.1.0-arm64.tar.gz && cd edgeclip-0.1.0-arm64
#   sudo ./install.sh                    install, enable and (re)start the service
#   sudo ./install.sh --no-start         install and enable, start nothing
#   DESTDIR=/tmp/x ./install.sh          install into /tmp/x instead of / (no root,
#                                        no user, no systemctl): for tests and images
#   boards/install.sh --binary target/release/edgeclip --destdir /tmp/x
#                                        the same from a source checkout
#
# What goes where:
#   /usr/bin/edgeclip                           the binary
#   /usr/share/edgeclip/models/tiny-shapes/     the bundled demo model
#   /usr/share/edgeclip/boards/BOARD.toml       a tuned configuration per board
#   /usr/share/doc/edgeclip/                    README.md, mqtt.md, mosquitto.acl and the board notes
#   /etc/edgeclip/edgeclip.toml, labels.txt     the configuration: installed only
#                                               when absent, never overwritten
#   /etc/systemd/system/edgeclip.service        the unit (--unit-dir to change)
# and, when installing into /, the system user `edgeclip` (in groups video and,
# where it exists, gpio), then systemctl daemon-reload, enable and restart.
# Run it again to upgrade: the binary, model and unit are replaced, the
# configuration is kept.

# `sudo sh install.sh` runs dash on Debian: start again under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# Fail on any error, unset variable, or failure inside a pipeline.
set -euo pipefail
# Installed files are readable by all unless a mode says otherwise.
umask 022

# This script's folder: the unpacked tarball (or boards/ of a checkout).
here=$(cd "$(dirname "$0")" && pwd)
# Where to install: an empty DESTDIR is the running system.
destdir=${DESTDIR:-}
# Whether to run systemctl (daemon-reload, enable, restart).
run_systemctl=1
# Whether to start (or restart) the service after enabling it.
start=1
# /etc/systemd/system: a locally installed unit, as the admin's own; the .deb
# puts its unit in /lib/systemd/system instead.
unit_dir=/etc/systemd/system
# The binary, when installing from a source checkout.
binary=

# One line for the person at the board, then exit 1.
die() {
    echo "install.sh: $*" >&2
    exit 1
}

# The usage text: the paragraph at the top of this file.
usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
}

# Options.
while (($#)); do
    case "$1" in
        # Install into a folder instead of / (same as DESTDIR=DIR).
        --destdir) (($# >= 2)) || die "--destdir needs a folder"; destdir=$2; shift ;;
        --destdir=*) destdir=${1#*=} ;;
        # Do not call systemctl at all.
        --no-systemctl) run_systemctl=0 ;;
        # Enable the service but do not start it.
        --no-start) start=0 ;;
        # Another folder for the unit, e.g. /lib/systemd/system.
        --unit-dir) (($# >= 2)) || die "--unit-dir needs a folder"; unit_dir=$2; shift ;;
        --unit-dir=*) unit_dir=${1#*=} ;;
        # The binary to install, from a source checkout.
        --binary) (($# >= 2)) || die "--binary needs a path"; binary=$2; shift ;;
        --binary=*) binary=${1#*=} ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (accepted: --destdir DIR, --no-systemctl, --no-start, --unit-dir DIR, --binary PATH, --help)" ;;
    esac
    shift
done

# The unit folder is a path on the target system, under DESTDIR.
[[ "$unit_dir" == /* ]] || die "--unit-dir '$unit_dir' must be an absolute path such as /lib/systemd/system"

# The model files the daemon reads, plus its card and demo clip.
model_files=(model.toml image.onnx text.onnx labels.txt labels.emb README.md demo.mjpeg)

# Where each part comes from: the tarball's layout, or a source checkout's.
if [ -d "$here/models" ] && [ -f "$here/edgeclip.toml" ]; then
    # edgeclip-VERSION-ARCH/: bin/, models/, boards/, edgeclip.toml, ...
    layout=tarball
    binary=${binary:-$here/bin/edgeclip}
    model_src=$here/models/tiny-shapes
    config_src=$here/edgeclip.toml
    labels_src=$here/labels.txt
    unit_src=$here/edgeclip.service
    readme_src=$here/README.md
    mqtt_doc_src=$here/docs/mqtt.md
    acl_src=$here/mosquitto.acl
elif [ -f "$here/../Cargo.toml" ] && [ -f "$here/edgeclip.service" ]; then
    # A checkout: this script is boards/install.sh.
    layout=source
    root=$(cd "$here/.." && pwd)
    binary=${binary:-$root/target/release/edgeclip}
    model_src=$root/models/tiny-shapes
    config_src=$here/edgeclip.toml
    labels_src=$here/labels.txt
    unit_src=$here/edgeclip.service
    readme_src=$root/README.md
    mqtt_doc_src=$root/docs/mqtt.md
    acl_src=$here/mosquitto.acl
else
    die "cannot tell what to install from '$here': run the install.sh inside an unpacked edgeclip-VERSION-ARCH.tar.gz (tools/packaging/package.sh makes it), or boards/install.sh of a source checkout"
fi

# Every source file must be there before anything is installed.
if [ ! -f "$binary" ]; then
    if [ "$layout" = source ]; then
        die "no binary at '$binary': build it (cargo build --release, or tools/packaging/cross_build.sh for a board) or pass one with --binary PATH"
    fi
    die "no binary at '$binary': unpack the whole tarball again, or pass one with --binary PATH"
fi
for f in "$config_src" "$labels_src" "$unit_src" "$readme_src" "$mqtt_doc_src" "$acl_src"; do
    [ -f "$f" ] || die "'$f' is missing from the $layout layout under '$here'; unpack the whole tarball again (or restore it in the checkout)"
done
for f in "${model_files[@]}"; do
    [ -f "$model_src/$f" ] || die "model file '$model_src/$f' is missing; unpack the whole tarball again"
done

# Board configurations and notes: BOARD.toml and BOARD.md in the tarball,
# BOARD/edgeclip.toml and BOARD/README.md in a checkout.
board_configs=()
board_notes=()
if [ "$layout" = tarball ]; then
    for f in "$here"/boards/*.toml; do [ -f "$f" ] && board_configs+=("$f"); done
    for f in "$here"/boards/*.md; do [ -f "$f" ] && board_notes+=("$f"); done
else
    for f in "$here"/*/edgeclip.toml; do [ -f "$f" ] && board_configs+=("$f"); done
    for f in "$here"/*/README.md; do [ -f "$f" ] && board_notes+=("$f"); done
    # The boards' common notes, boards/README.md, as the tarball has them.
    [ -f "$here/README.md" ] && board_notes+=("$here/README.md")
fi

# Installing into / needs root and the right binary; a DESTDIR needs neither.
if [ -z "$destdir" ]; then
    [ "$(id -u)" -eq 0 ] || die "installing into / needs root: run 'sudo $0'; or set DESTDIR=/some/folder (or --destdir) to install into a folder without root"
    # The .deb owns the same paths; two installers would fight over them.
    if command -v dpkg-query >/dev/null && [ "$(dpkg-query -W -f='${Status}' edgeclip 2>/dev/null)" = "install ok installed" ]; then
        die "the edgeclip .deb is installed and owns these files: upgrade with the newer .deb (sudo apt install ./edgeclip_*.deb), or remove it first (sudo apt remove edgeclip)"
    fi
    # A binary for another architecture fails here, not in the service.
    "$binary" print-config >/dev/null 2>&1 || die "'$binary' does not run on this machine ($(uname -m)): use the arm64 tarball on 64-bit OSes (aarch64), the armhf one on 32-bit Raspberry Pi OS Bookworm or later (armv7l; 'dpkg --print-architecture' says which)"
else
    # DESTDIR installs touch nothing outside it: no user, no systemctl.
    run_systemctl=0
    # Make the folder if it does not exist yet; an absolute path from here on.
    mkdir -p "$destdir"
    destdir=$(cd "$destdir" && pwd)
fi

# Copies SRC to DEST (a path under DESTDIR) with MODE, making the folders.
put() {
    install -D -m "$3" "$1" "$destdir$2"
    echo "  $2"
}

echo "installing edgeclip into ${destdir:-/}"
put "$binary" /usr/bin/edgeclip 0755
# The model is package data: replaced on upgrade.
for f in "${model_files[@]}"; do
    put "$model_src/$f" "/usr/share/edgeclip/models/tiny-shapes/$f" 0644
done
# Board configurations, to copy over /etc/edgeclip/edgeclip.toml.
for f in "${board_configs[@]}"; do
    if [ "$layout" = tarball ]; then name=$(basename "$f"); else name=$(basename "$(dirname "$f")").toml; fi
    put "$f" "/usr/share/edgeclip/boards/$name" 0644
done
# Documentation: the README, the MQTT reference and each board's notes.
put "$readme_src" /usr/share/doc/edgeclip/README.md 0644
put "$mqtt_doc_src" /usr/share/doc/edgeclip/mqtt.md 0644
put "$acl_src" /usr/share/doc/edgeclip/mosquitto.acl 0644
for f in "${board_notes[@]}"; do
    if [ "$layout" = tarball ] || [ "$f" = "$here/README.md" ]; then
        name=$(basename "$f")
    else
        name=$(basename "$(dirname "$f")").md
    fi
    put "$f" "/usr/share/doc/edgeclip/boards/$name" 0644
done
# The unit is ours: replaced on upgrade (local changes belong in a drop-in,
# `systemctl edit edgeclip`).
put "$unit_src" "$unit_dir/edgeclip.service" 0644

# The configuration is the user's: installed once, never overwritten.
if [ -e "$destdir/etc/edgeclip/edgeclip.toml" ]; then
    echo "  /etc/edgeclip/edgeclip.toml kept as it was (the new default: edgeclip print-config; tuned ones: /usr/share/edgeclip/boards/)"
else
    put "$config_src" /etc/edgeclip/edgeclip.toml 0644
fi
if [ -e "$destdir/etc/edgeclip/labels.txt" ]; then
    echo "  /etc/edgeclip/labels.txt kept as it was"
else
    put "$labels_src" /etc/edgeclip/labels.txt 0644
fi

# The rest changes the running system: only when installing into /.
if [ -n "$destdir" ]; then
    echo "installed into $destdir; no user created and systemctl not run (DESTDIR)"
    exit 0
fi

# The service's own system user, whose home is its cache (GStreamer keeps
# its registry there); no login shell, no home folder made now (systemd's
# CacheDirectory= creates /var/cache/edgeclip).
if ! getent passwd edgeclip >/dev/null; then
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    useradd --system --user-group --no-create-home --home-dir /var/cache/edgeclip --shell "$nologin" edgeclip
    echo "  created the system user edgeclip"
fi
# Cameras are group video; GPIO chips group gpio where the board has it (not
# in the unit's SupplementaryGroups=: a group that does not exist would stop
# the service from starting).
for group in video gpio; do
    if getent group "$group" >/dev/null; then
        usermod -a -G "$group" edgeclip
        echo "  edgeclip is in group $group"
    fi
done

# Without systemd (a chroot, a container) there is nothing to enable.
if ((run_systemctl)) && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable edgeclip.service
    if ((start)); then
        # restart, not start: an upgrade must run the new binary.
        systemctl restart edgeclip.service || die "the service did not start: see 'journalctl -u edgeclip -n 50' and check the config with 'edgeclip check-config /etc/edgeclip/edgeclip.toml'"
        echo "edgeclip is running: journalctl -u edgeclip -f"
    else
        echo "edgeclip is enabled; start it with: sudo systemctl start edgeclip"
    fi
else
    echo "systemctl not run; when systemd runs: sudo systemctl daemon-reload && sudo systemctl enable --now edgeclip"
fi
echo "next: edit /etc/edgeclip/edgeclip.toml (or copy a board's from /usr/share/edgeclip/boards/), then: edgeclip check-config /etc/edgeclip/edgeclip.toml && sudo systemctl restart edgeclip"
