#!/usr/bin/env python3
"""The kernel rig's host side: boots edgeclip's static aarch64 binary on a
real arm64 Linux kernel under qemu-system-aarch64 and judges what it did
against the kernel's own camera (vivid) and GPIO (PL061) drivers.

  tools/kernel_rig/rig.py --binary target/aarch64-unknown-linux-musl/release/edgeclip

run.sh installs what this needs, builds the binary and calls it. Steps:

1. Fetch Debian's arm64 kernel (the one `linux-image-arm64` points at) and
   static busybox with apt-get, through lists of its own (the machine's apt
   configuration is not touched), cached under ~/.cache/edgeclip/kernel-rig.
2. Build an initramfs: busybox, the modules vivid, virtio networking and 9p
   need (their dependencies read from each module's .modinfo), edgeclip,
   the demo model, guest/init, and this run's configuration.
3. Start a Mosquitto on the host with a password (the guest reaches it at
   10.0.2.2 through qemu's user networking) and a subscriber that records
   everything under edgeclip/.
4. Boot `virt` with a Cortex-A72 and a folder shared over 9p; guest/init
   runs edgeclip's commands and the daemon, and writes their output there.
5. Judge each check (`judge`; README.md has the table), print one line per
   check and the times, and write them to OUT/summary.txt. Exit status 0
   only if all passed. --judge-again judges the last run's output again.

Only the standard library: judging a capture uses ffmpeg (the independent
converter) for the raw buffers and PNGs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RIG = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeclip" / "kernel-rig"

# The model files the daemon loads (the clip and truth stay out: 4 MB of
# initramfs for nothing).
MODEL_FILES = ["model.toml", "image.onnx", "text.onnx", "labels.emb", "labels.txt"]

# Modules to load, by name; each one's dependencies come first. vivid is the
# camera; virtio_pci, virtio_net and 9p are the network and the shared folder.
WANTED_MODULES = ["virtio_pci", "virtio_net", "9pnet_virtio", "9p", "vivid"]

# The whole guest run may take this long: it boots in about 4 s under
# emulation here and finishes in about a minute; 20 minutes means a hang.
GUEST_TIMEOUT_S = 20 * 60

# vivid's default test pattern is a 75 % colour bar: eight bars, left to
# right, at 75 % of full scale (191 of 255 in sRGB). The capture check reads
# the middle of each bar, below the text vivid draws at the top.
BARS = [
    ("white", (191, 191, 191)),
    ("yellow", (191, 191, 0)),
    ("cyan", (0, 191, 191)),
    ("green", (0, 191, 0)),
    ("magenta", (191, 0, 191)),
    ("red", (191, 0, 0)),
    ("blue", (0, 0, 191)),
    ("black", (0, 0, 0)),
]
# Largest difference of a bar's middle pixel from its nominal colour: YUV's
# limited range and 8-bit rounding move a bar by a few levels at most.
BAR_TOLERANCE = 8

# edgeclip's RGB of a raw frame against ffmpeg's: swscale with nearest
# chroma, exact rounding and its full-chroma path (tests/data/frames'
# settings), BT.601 limited range for YUV, full range for GREY. That path is
# exact to one level; measured here: 0 on every byte.
SWS_FLAGS = "neighbor+accurate_rnd+full_chroma_int"
MEAN_TOLERANCE = 0.05
MAX_TOLERANCE = 1

# ffmpeg's name of each format edgeclip captures raw.
FFMPEG_FORMATS = {"YUYV": "yuyv422", "NV12": "nv12", "RGB3": "rgb24", "GREY": "gray"}


def log(message: str) -> None:
    print(f"rig: {message}", flush=True)


# --- 1. Packages ------------------------------------------------------------


def apt_options(cache: Path) -> list[str]:
    """apt-get options that fetch arm64 packages with lists of our own."""
    return [
        "-o", "APT::Architecture=arm64",
        "-o", "APT::Architectures::=arm64",
        "-o", f"Dir::State::Lists={cache / 'lists'}",
        "-o", f"Dir::Cache={cache / 'apt'}",
        "-o", "Dir::State::status=/dev/null",
        "-o", "Debug::NoLocking=1",
        # As root, download as root into our cache: apt's _apt user cannot
        # write there and would only warn.
        *(["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip


def fetch_packages(refresh: bool) -> tuple[Path, Path, str]:
    """The kernel's and busybox's extracted trees, and the kernel release."""
    cache = CACHE / "apt"
    for d in [cache / "lists" / "partial", cache / "apt" / "archives" / "partial", CACHE / "debs"]:
        d.mkdir(parents=True, exist_ok=True)
    options = apt_options(cache)
    lists = list((cache / "lists").glob("*Packages*"))
    if refresh or not lists:
        log("fetching Debian's arm64 package lists")
        subprocess.run(["apt-get", "-q", *options, "update"], check=True, stdout=subprocess.DEVNULL)
    depends = subprocess.run(
        ["apt-cache", *options, "depends", "linux-image-arm64"], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"Depends: (linux-image-[0-9][^\s]*-arm64)\b", depends)
    if not match:
        sys.exit(f"rig: cannot tell which kernel linux-image-arm64 depends on:\n{depends}")
    kernel_package = match.group(1)
    release = kernel_package.removeprefix("linux-image-")
    trees = {}
    for package in [kernel_package, "busybox-static"]:
        debs = sorted((CACHE / "debs").glob(f"{package}_*_arm64.deb"))
        if not debs or refresh:
            log(f"downloading {package}")
            subprocess.run(["apt-get", "-q", *options, "download", f"{package}:arm64"], check=True, cwd=CACHE / "debs")
            debs = sorted((CACHE / "debs").glob(f"{package}_*_arm64.deb"))
        deb = debs[-1]
        tree = CACHE / "trees" / deb.stem
        if not tree.exists():
            log(f"extracting {deb.name}")
            partial = tree.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
            partial.rename(tree)
        trees[package] = tree
    return trees[kernel_package], trees["busybox-static"], release


# --- 2. The initramfs -------------------------------------------------------


def module_index(moddir: Path) -> dict[str, Path]:
    """Every module of the kernel by its name ('-' and '_' are the same)."""
    return {p.name.removesuffix(".ko").replace("-", "_"): p for p in moddir.rglob("*.ko")}


def module_depends(path: Path) -> list[str]:
    """The modules `path` needs, from the `depends=` of its .modinfo."""
    match = re.search(rb"\x00depends=([^\x00]*)\x00", path.read_bytes())
    if not match or not match.group(1):
        return []
    return [name.replace("-", "_") for name in match.group(1).decode().split(",")]


def load_order(moddir: Path, wanted: list[str]) -> list[Path]:
    """`wanted` and everything they depend on, each after its dependencies."""
    index = module_index(moddir)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            sys.exit(f"rig: the kernel has no module '{name}' (built in, or renamed?)")
        for dependency in module_depends(index[name]):
            visit(dependency)
        order.append(index[name])

    for name in wanted:
        visit(name.replace("-", "_"))
    return order


class Cpio:
    """A newc cpio archive, the format the kernel unpacks as an initramfs."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.inode = 1

    def _entry(self, name: str, mode: int, body: bytes = b"") -> None:
        name_bytes = name.encode() + b"\x00"
        fields = [self.inode, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name_bytes), 0]
        self.inode += 1
        self.data += b"070701" + b"".join(b"%08X" % f for f in fields) + name_bytes
        self.data += b"\x00" * (-len(self.data) % 4) + body
        self.data += b"\x00" * (-len(self.data) % 4)

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, body: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, body)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.data)


def build_initramfs(
    path: Path, binary: Path, busybox: Path, modules: list[Path], moddir: Path, etc: dict[str, bytes]
) -> None:
    archive = Cpio()
    for d in ["bin", "sbin", "usr", "usr/bin", "etc", "etc/rig", "lib", "lib/modules", "model", "proc", "sys",
              "dev", "tmp", "out", "run"]:  # fmt: skip
        archive.directory(d)
    archive.file("init", (RIG / "guest" / "init").read_bytes(), 0o755)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    archive.file("bin/edgeclip", binary.read_bytes(), 0o755)
    for name in MODEL_FILES:
        archive.file(f"model/{name}", (REPO / "models" / "tiny-shapes" / name).read_bytes())
    listed = []
    for module in modules:
        relative = module.relative_to(moddir).as_posix()
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            directory = "lib/modules/" + "/".join(parts[:depth])
            if directory not in listed:
                archive.directory(directory)
                listed.append(directory)
        archive.file(f"lib/modules/{relative}", module.read_bytes())
    etc["modules"] = "".join(f"{m.relative_to(moddir).as_posix()}\n" for m in modules).encode()
    for name, body in etc.items():
        # The password file is the daemon's alone, as it should be on a board.
        archive.file(f"etc/rig/{name}", body, 0o600 if "password" in name else 0o644)
    path.write_bytes(archive.finish())


def guest_files(port: int, password: str) -> dict[str, bytes]:
    """/etc/rig: the daemon's configuration, a second one for the busy line,
    the labels and the MQTT password."""
    config = f"""node = "rig"
[model]
path = "/model"
threads = 2
cache_dir = "/tmp/cache"
[mqtt]
broker = "mqtt://10.0.2.2:{port}"
username = "rig"
password_file = "/etc/rig/mqtt.password"
# Stats often enough to see frames flow again within seconds of a replug.
stats_interval_s = 2
scores_interval_s = 1
[store]
enabled = false
[logging]
print_events = true
[cameras.vivid]
source = "v4l2:/dev/video0?size=640x480"
labels = "/etc/rig/labels.txt"
# The emulated Cortex-A72 infers about 0.4 frames a second; 2 is no limit.
max_fps = 2
# vivid's colour bar stands still: without the gate every frame is inferred.
[cameras.vivid.motion]
enabled = false
[cameras.vivid.detector]
start_frames = 2
end_frames = 2
min_duration_s = 0
[[cameras.vivid.outputs]]
chip = "/dev/gpiochip0"
line = 0
labels = ["*"]
"""
    # The same line, for a second daemon that must be refused it.
    busy = config.replace('node = "rig"', 'node = "rig-busy"')
    # A label that holds every frame of the colour bar: "bars" with the
    # lowest threshold, so that its event starts on the first frames and
    # lasts; the background label only competes.
    labels = "bars @0.01: vertical coloured bars\n!empty: an empty scene\n"
    return {
        "edgeclip.toml": config.encode(),
        "busy.toml": busy.encode(),
        "labels.txt": labels.encode(),
        "mqtt.password": f"{password}\n".encode(),
    }


# --- 3. Mosquitto -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mosquitto(work: Path, port: int, password: str) -> tuple[subprocess.Popen, subprocess.Popen]:
    passwords = work / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "rig", password], check=True)
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
        f"persistence false\nlog_dest stderr\n"
    )
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=open(work / "mosquitto.log", "w")
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    subscriber = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", "rig", "-P", password, "-t", "edgeclip/#",
         "-v", "-F", "%I %t %p"],  # fmt: skip
        stdout=open(work / "mqtt.log", "w"),
        stderr=subprocess.STDOUT,
    )
    return broker, subscriber


# --- 4. The guest -------------------------------------------------------------


def boot(kernel: Path, initramfs: Path, out: Path, console: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Runs the guest to its end; returns the seconds since the start at
    each RIG mark, and the wall-clock time of each."""
    # A Pi 4's core (Cortex-A72), two of them (this machine has two cores to
    # emulate with) and 1 GB. `romfile=`: no network boot ROM, which would
    # need the ipxe-qemu package. panic=-1: a kernel panic ends qemu
    # (-no-reboot) instead of hanging until the timeout.
    command = [
        "qemu-system-aarch64",
        "-machine", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
        "-nographic", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initramfs),
        "-append", "console=ttyAMA0 rdinit=/init panic=-1 loglevel=4",
        "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=",
        "-fsdev", f"local,id=out,path={out},security_model=none",
        "-device", "virtio-9p-pci,fsdev=out,mount_tag=out",
    ]  # fmt: skip
    log("booting: " + " ".join(command))
    started = time.monotonic()
    marks: dict[str, float] = {}
    wall: dict[str, float] = {}
    with open(console, "w") as log_file:
        guest = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace",
        )  # fmt: skip
        timer = threading.Timer(GUEST_TIMEOUT_S, guest.kill)
        timer.start()
        assert guest.stdout is not None
        for line in guest.stdout:
            line = line.rstrip("\r\n")
            log_file.write(line + "\n")
            log_file.flush()
            if line.startswith("RIG "):
                elapsed = time.monotonic() - started
                mark = line.split(" ", 2)[2]
                marks.setdefault(mark, elapsed)
                wall.setdefault(mark, time.time())
                log(f"{elapsed:6.1f} s  {mark}")
        timer.cancel()
        if guest.wait() != 0:
            log(f"qemu exited with status {guest.returncode}; the console's end:")
            print("".join(read(console).splitlines(keepends=True)[-15:]), flush=True)
    marks["exit"] = time.monotonic() - started
    return marks, wall


# --- 5. Judging ---------------------------------------------------------------


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.results.append((name, passed, detail))
        log(f"{'ok  ' if passed else 'FAIL'} {name}: {detail}")

    def all_passed(self) -> bool:
        return bool(self.results) and all(passed for _, passed, _ in self.results)


def read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def status(out: Path, step: str) -> str:
    return read(out / f"{step}.rc").strip() or "(did not run)"


def rgb_of(path: Path, extra: list[str], width: int, height: int) -> bytes:
    """An image (or raw frame, with `extra` input options) as RGB bytes, by ffmpeg."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", *extra, "-i", str(path), "-sws_flags", SWS_FLAGS, "-f", "rawvideo", "-pix_fmt",
         "rgb24", "-"],  # fmt: skip
        check=True,
        capture_output=True,
    )
    expected = width * height * 3
    if len(result.stdout) < expected:
        raise ValueError(f"ffmpeg gave {len(result.stdout)} bytes for {path.name}, expected {expected}")
    return result.stdout[:expected]


def unpad(raw: bytes, fourcc: str, width: int, height: int, stride: int) -> bytes:
    """A raw frame's rows without the driver's padding (ffmpeg reads packed rows)."""
    row = {"YUYV": width * 2, "NV12": width, "RGB3": width * 3, "GREY": width}[fourcc]
    rows = height + (height + 1) // 2 if fourcc == "NV12" else height
    if stride == row:
        return raw[: row * rows]
    return b"".join(raw[r * stride : r * stride + row] for r in range(rows))


def judge_capture(checks: Checks, out: Path, fourcc: str) -> None:
    name = f"capture {fourcc}"
    step = f"capture-{fourcc}"
    folder = out / step
    printed = read(out / f"{step}.stdout")
    if status(out, step) != "0":
        checks.check(name, False, f"exit {status(out, step)}: {read(out / f'{step}.stderr')[-400:]}")
        return
    raws = sorted(folder.glob("frame-*.raw"))
    if not raws:
        checks.check(name, False, f"no raw frame written: {printed[-300:]}")
        return
    raw_path = raws[-1]
    match = re.fullmatch(r"frame-(\d+)-(\w+)-(\d+)x(\d+)-(\d+)\.raw", raw_path.name)
    if not match or match.group(2) != fourcc:
        checks.check(name, False, f"the driver delivered {raw_path.name}, not {fourcc}")
        return
    index, width, height, stride = match.group(1), int(match.group(3)), int(match.group(4)), int(match.group(5))
    packed = out / f"{raw_path.stem}.packed"
    packed.write_bytes(unpad(raw_path.read_bytes(), fourcc, width, height, stride))
    reference = rgb_of(
        packed, ["-f", "rawvideo", "-pix_fmt", FFMPEG_FORMATS[fourcc], "-s", f"{width}x{height}"], width, height
    )
    ours = rgb_of(folder / f"frame-{index}.png", [], width, height)
    differences = [abs(a - b) for a, b in zip(ours, reference)]
    mean = sum(differences) / len(differences)
    worst = max(differences)
    # The colour bar, read from edgeclip's RGB at two thirds of the height.
    y = height * 2 // 3
    bars = []
    for i, (bar, nominal) in enumerate(BARS):
        x = (2 * i + 1) * width // 16
        pixel = ours[(y * width + x) * 3 : (y * width + x) * 3 + 3]
        if fourcc == "GREY":
            # vivid's GREY is the bar's luma (Rec. 709 weights), full range.
            luma = round(0.2126 * nominal[0] + 0.7152 * nominal[1] + 0.0722 * nominal[2])
            nominal = (luma, luma, luma)
        bars.append((bar, tuple(pixel), nominal))
    off = [(bar, got, want) for bar, got, want in bars if max(abs(g - w) for g, w in zip(got, want)) > BAR_TOLERANCE]
    passed = mean <= MEAN_TOLERANCE and worst <= MAX_TOLERANCE and not off
    detail = (
        f"{width}x{height} stride {stride}: edgeclip's RGB against ffmpeg's of the same raw buffer, "
        f"mean {mean:.3f} (<= {MEAN_TOLERANCE}), max {worst} (<= {MAX_TOLERANCE}); "
        + ("colour bars within " + str(BAR_TOLERANCE) if not off else f"bars off: {off}")
    )
    checks.check(name, passed, detail)


def mqtt_messages(path: Path) -> list[tuple[float, str, str]]:
    """(arrival time, topic, payload) of each text message the subscriber recorded."""
    messages = []
    for line in read(path).splitlines():
        parts = line.split(" ", 2)
        try:
            arrived = datetime.datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%S%z").timestamp()
        except ValueError:
            continue  # the rest of a binary payload (a snapshot JPEG) that held a newline
        if len(parts) == 3:
            messages.append((arrived, parts[1], parts[2]))
    return messages


def judge(out: Path, work: Path, marks: dict[str, float], wall: dict[str, float], password: str) -> Checks:
    checks = Checks()
    checks.check("boot", "booted" in marks and "done" in marks, f"marks: {', '.join(marks)}")
    failed_marks = [m for m in marks if m.startswith("FAILED")]
    checks.check("guest steps", not failed_marks, "; ".join(failed_marks) or "every module loaded, every step ran")

    devices = read(out / "devices.stdout")
    offered = [f for f in FFMPEG_FORMATS if re.search(rf"^  {f} ", devices, re.M)]
    # vivid's output and metadata nodes are named, not listed as cameras.
    others = re.search(r"^not capture devices .*/dev/video1.*$", devices, re.M)
    checks.check(
        "devices",
        status(out, "devices") == "0"
        and "driver  vivid" in devices
        and len(offered) == len(FFMPEG_FORMATS)
        and bool(others),
        f"vivid listed with {', '.join(offered)} of {', '.join(FFMPEG_FORMATS)}; "
        f"{len(re.findall(r'^  [A-Z0-9]{3,4} ', devices, re.M))} formats in all; "
        f"{others.group(0) if others else 'its output and metadata nodes not named as such'}",
    )
    for fourcc in FFMPEG_FORMATS:
        judge_capture(checks, out, fourcc)

    stdout = read(out / "daemon.stdout")
    stderr = read(out / "daemon.stderr")
    messages = mqtt_messages(work / "mqtt.log")
    starts = [line for line in stdout.splitlines() if " start bars " in line]
    checks.check("daemon event", bool(starts), starts[0] if starts else f"no start; stderr: {stderr[-400:]}")
    states = [p for _, t, p in messages if t == "edgeclip/rig/vivid/bars/state"]
    stats = [(at, json.loads(p)) for at, t, p in messages if t == "edgeclip/rig/stats"]
    online = [p for _, t, p in messages if t == "edgeclip/rig/availability"]
    events = [json.loads(p) for _, t, p in messages if t == "edgeclip/rig/vivid/events"]
    started_events = [e for e in events if e.get("type") == "start" and e.get("label") == "bars"]
    checks.check(
        "mqtt",
        "online" in online and "ON" in states and bool(started_events) and bool(stats),
        f"availability {online}, bars state {states}, {len(started_events)} start events of {len(events)}, "
        f"{len(stats)} stats messages, {len(messages)} messages in all",
    )

    gpio_event = read(out / "gpio-event.txt")
    gpio_after = read(out / "gpio-after.txt")
    held = re.search(r"^ gpio-\d+\s+\(\s*\|edgeclip\s*\) out (hi|lo)", gpio_event, re.M)
    released = "edgeclip" not in gpio_after
    checks.check(
        "gpio output",
        bool(held) and held.group(1) == "hi" and released,
        f"during the event: {held.group(0).strip() if held else 'line 0 not held by edgeclip'}; "
        f"after the daemon stopped: {'released' if released else 'still held'}",
    )
    busy = read(out / "busy.stderr")
    checks.check(
        "gpio busy",
        status(out, "busy") not in ("0", "(did not run)") and "is in use by 'edgeclip'" in busy,
        f"second daemon exit {status(out, 'busy')}: {busy.strip().splitlines()[-1] if busy.strip() else '(nothing)'}",
    )

    lost = [line for line in stderr.splitlines() if "disappeared" in line]
    streams = [line for line in stderr.splitlines() if ": YUYV 640x480" in line]
    counters = [s["cameras"]["vivid"]["frames"] for _, s in stats]
    errors = max((c["source_errors"] for c in counters), default=0)
    # Frames captured after the device came back: the captured count grows
    # between the stats messages that arrived after the guest saw the
    # stream again (arrival times are whole seconds, hence the margin).
    reopened_at = wall.get("reopened", float("inf")) + 1
    after = [s["cameras"]["vivid"]["frames"]["captured"] for at, s in stats if at >= reopened_at]
    grew = after[-1] - after[0] if len(after) >= 2 else 0
    checks.check(
        "unplug",
        bool(lost) and errors >= 2 and len(streams) >= 2 and grew >= 2,
        f"{lost[0].split(': ', 2)[-1].strip() if lost else 'no disappearance logged'}; "
        f"{errors} source errors while unbound (reopening with backoff); {len(streams)} streams started; "
        f"{grew} frames captured after the rebind",
    )

    checks.check(
        "daemon exit",
        status(out, "daemon") == "0",
        f"exit {status(out, 'daemon')} after SIGTERM",
    )
    everything = stdout + stderr + read(work / "console.log")
    checks.check("no password", password not in everything, "the MQTT password is in no output")
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, help="the static aarch64 edgeclip")
    parser.add_argument("--out", type=Path, default=REPO / "target" / "kernel-rig", help="results folder")
    parser.add_argument("--refresh", action="store_true", help="fetch the package lists and packages again")
    parser.add_argument("--judge-again", action="store_true", help="judge the last run in --out again, without booting")
    args = parser.parse_args()
    if not args.binary and not args.judge_again:
        parser.error("--binary is needed to boot (or --judge-again to judge the last run)")

    work = args.out.resolve()
    share = work / "share"
    started = time.monotonic()
    if args.judge_again:
        saved = json.loads((work / "marks.json").read_text())
        marks, wall, release = saved["marks"], saved["wall"], saved["release"]
        password = (work / "password").read_text()
    else:
        shutil.rmtree(work, ignore_errors=True)
        share.mkdir(parents=True)
        kernel_tree, busybox_tree, release = fetch_packages(args.refresh)
        moddir = kernel_tree / "lib" / "modules" / release
        modules = load_order(moddir, WANTED_MODULES)
        log(f"kernel {release}; modules: {', '.join(m.name for m in modules)}")
        port, password = free_port(), secrets.token_hex(12)
        # Kept for --judge-again, which looks for it in the output.
        (work / "password").write_text(password)
        initramfs = work / "initramfs.cpio"
        build_initramfs(
            initramfs, args.binary, busybox_tree / "bin" / "busybox", modules, moddir, guest_files(port, password)
        )
        log(f"initramfs {initramfs.stat().st_size / 1e6:.1f} MB, ready after {time.monotonic() - started:.0f} s")
        broker, subscriber = start_mosquitto(work, port, password)
        try:
            marks, wall = boot(kernel_tree / "boot" / f"vmlinuz-{release}", initramfs, share, work / "console.log")
        finally:
            time.sleep(1)
            subscriber.terminate()
            broker.terminate()
        (work / "marks.json").write_text(json.dumps({"marks": marks, "wall": wall, "release": release}))
    checks = judge(share, work, marks, wall, password)
    lines = [f"{'ok  ' if passed else 'FAIL'} {name}: {detail}" for name, passed, detail in checks.results]
    boot_s = marks.get("booted", float("nan"))
    lines.append(
        f"kernel {release}, qemu-system-aarch64 virt Cortex-A72: booted in {boot_s:.1f} s, "
        f"guest done in {marks.get('done', float('nan')):.1f} s, "
        + ("judged again" if args.judge_again else f"whole rig {time.monotonic() - started:.0f} s")
    )
    (work / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    passed = checks.all_passed()
    print(f"rig: {'all checks passed' if passed else 'FAILED'} (results in {work})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
