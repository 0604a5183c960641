//! Board packaging (boards/ and tools/packaging/package.sh): every board configuration
//! is valid and tuned as its README says, the systemd unit passes
//! `systemd-analyze verify`, every shell script passes `shellcheck`, the .deb
//! and the tarball that tools/packaging/package.sh makes hold the right files with the
//! right modes and maintainer scripts, and boards/install.sh installs the
//! tree into a DESTDIR without overwriting an existing configuration.
//!
//! systemd-analyze and shellcheck may be missing on a developer's machine:
//! those two tests then print why they checked nothing and pass (tools/test.sh
//! installs both). dpkg-deb, tar and gzip are required.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgeclip::capture::SourceSpec;
use edgeclip::config::Config;

use crate::support::paths::repo;
use crate::support::process::{edgeclip_command, installed, SpawnWatched};

/// The boards with a folder in boards/, in name order.
const BOARDS: [&str; 5] =
    ["jetson-nano", "jetson-orin-nano", "raspberry-pi-4", "raspberry-pi-5", "raspberry-pi-zero-2w"];

/// The files of the bundled model that the packages ship.
const MODEL_FILES: [&str; 7] =
    ["README.md", "demo.mjpeg", "image.onnx", "labels.emb", "labels.txt", "model.toml", "text.onnx"];

/// The files a package holds besides `fixed`, with their modes: the model's
/// under `model_dir`, each board's configuration under `board_configs` and
/// its notes under `board_notes` (the .deb and the tarball place them
/// differently).
fn packaged_files(
    fixed: &[(&str, &'static str)],
    model_dir: &str,
    board_configs: &str,
    board_notes: &str,
) -> Vec<(String, &'static str)> {
    let mut files: Vec<(String, &'static str)> = fixed.iter().map(|&(p, m)| (p.to_string(), m)).collect();
    for f in MODEL_FILES {
        files.push((format!("{model_dir}/{f}"), "-rw-r--r--"));
    }
    for board in BOARDS {
        files.push((format!("{board_configs}/{board}.toml"), "-rw-r--r--"));
        files.push((format!("{board_notes}/{board}.md"), "-rw-r--r--"));
    }
    // The boards' common notes (the GPIO errors point there).
    files.push((format!("{board_notes}/README.md"), "-rw-r--r--"));
    files
}

/// Runs a command to completion; panics with what it printed if it cannot start.
fn run(command: &mut Command) -> Output {
    command.output_watched().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Asserts success and returns stdout; on failure, shows both streams.
fn success(command: &mut Command) -> String {
    let out = run(command);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

#[test]
fn every_board_has_a_valid_tuned_config_and_a_readme() {
    let mut found: Vec<String> = std::fs::read_dir(repo().join("boards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, BOARDS, "boards/ should hold exactly these board folders");

    // Encoder threads: the board's cores minus one for capture and the rest.
    let threads = BTreeMap::from([
        ("jetson-nano", 3),
        ("jetson-orin-nano", 5),
        ("raspberry-pi-4", 3),
        ("raspberry-pi-5", 3),
        ("raspberry-pi-zero-2w", 3),
    ]);
    for board in BOARDS {
        let dir = repo().join("boards").join(board);
        let path = dir.join("edgeclip.toml");

        // What a person at the board runs.
        let stdout = success(edgeclip_command().args(["check-config", "--file-only"]).arg(&path));
        assert!(stdout.starts_with(&format!("{}: ok", path.display())), "{board}: {stdout}");

        let text = std::fs::read_to_string(&path).unwrap();
        let config = Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.model.threads, threads[board], "{board}: model.threads");
        // Absolute installed paths: relative ones would resolve against
        // /usr/share/edgeclip/boards/ or /etc/edgeclip/.
        assert_eq!(config.model.path, Path::new("/usr/share/edgeclip/models/tiny-shapes"), "{board}");
        assert_eq!(config.model.cache_dir, Path::new("/var/cache/edgeclip"), "{board}");
        let [camera] = &config.cameras[..] else { panic!("{board}: one camera expected, {:?}", config.cameras) };
        assert_eq!(camera.labels, Path::new("/etc/edgeclip/labels.txt"), "{board}");
        let SourceSpec::V4l2(v4l2) = &camera.source else { panic!("{board}: {:?}", camera.source) };
        assert!(v4l2.width.is_some() && v4l2.fps.is_some(), "{board}: the camera's size and rate are tuned: {v4l2:?}");
        assert!(camera.max_fps.is_some_and(|f| f > 0.0), "{board}: max_fps {:?}", camera.max_fps);
        assert!(camera.motion.is_some(), "{board}: the motion gate is on");

        // The commented-out camera for the board's own connector (rpicam-vid,
        // nvarguscamerasrc) must be valid too once uncommented.
        let alternative = text
            .lines()
            .find_map(|l| l.strip_prefix("# source = "))
            .unwrap_or_else(|| panic!("{board}: no '# source = \"exec:...\"' alternative"));
        let swapped = text
            .lines()
            .map(|l| if l.starts_with("source = ") { format!("source = {alternative}") } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        let config = Config::parse(&path, &swapped).unwrap_or_else(|e| panic!("{board}, alternative source: {e}"));
        let SourceSpec::Exec(exec) = &config.cameras[0].source else {
            panic!("{board}: {:?}", config.cameras[0].source)
        };
        let program = if board.starts_with("raspberry") { "rpicam-vid " } else { "gst-launch-1.0 " };
        assert!(exec.command.starts_with(program), "{board}: {}", exec.command);
        // The command runs under /bin/sh -c: it must at least parse there.
        success(Command::new("sh").arg("-n").arg("-c").arg(&exec.command));

        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        for needed in
            ["estimate", "apt install ./edgeclip_", "install.sh", "export_clip.py", "/usr/share/edgeclip/boards/"]
        {
            assert!(readme.contains(needed), "{board}/README.md does not mention '{needed}'");
        }
    }
}

#[test]
fn the_unit_is_hardened_and_passes_systemd_analyze_verify() {
    let unit_path = repo().join("boards/edgeclip.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();

    for directive in [
        "User=edgeclip",
        "Group=edgeclip",
        "ExecStart=/usr/bin/edgeclip run --config /etc/edgeclip/edgeclip.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CacheDirectory=edgeclip",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
        "DeviceAllow=char-gpiochip rw",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.lines().any(|l| l == directive), "the unit lacks '{directive}'");
    }
    // A group a board lacks would keep the unit from starting: the
    // installers add the user to video/gpio instead.
    assert!(
        !unit.lines().any(|l| l.trim_start().starts_with("SupplementaryGroups=")),
        "the unit must not name supplementary groups"
    );
    // Every directive has its comment just above it.
    let lines: Vec<&str> = unit.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.is_empty() && !line.starts_with('#') && !line.starts_with('[') {
            assert!(lines[i - 1].starts_with('#'), "line {}: '{line}' has no comment above it", i + 1);
        }
    }

    if !installed("systemd-analyze") {
        eprintln!("skipped systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    // verify also checks that ExecStart's program exists and is executable.
    // Where edgeclip is not installed, a copy of the unit names the binary
    // under test instead; nothing else in it changes.
    let temp = tempfile::tempdir().unwrap();
    let checked = if Path::new("/usr/bin/edgeclip").is_file() {
        unit_path.clone()
    } else {
        let copy = temp.path().join("edgeclip.service");
        let replaced =
            unit.replace("ExecStart=/usr/bin/edgeclip ", &format!("ExecStart={} ", env!("CARGO_BIN_EXE_edgeclip")));
        assert_ne!(replaced, unit);
        std::fs::write(&copy, replaced).unwrap();
        copy
    };
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&checked));
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "systemd-analyze verify {}:\n{printed}", checked.display());
    // Warnings (an unknown or misspelled key) do not fail verify: any line
    // about our unit does.
    let ours: Vec<&str> = printed.lines().filter(|l| l.contains("edgeclip.service")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify warns about the unit:\n{}", ours.join("\n"));

    // The sandbox's score: 1.7 ("OK") with systemd 252; the limits and the
    // watchdog must not loosen it (0 is the tightest, 10 no sandbox at all).
    let out = run(Command::new("systemd-analyze").args(["security", "--offline=yes", "--no-pager"]).arg(&checked));
    let printed = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = printed
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for edgeclip.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{printed}{}", String::from_utf8_lossy(&out.stderr)));
    assert!(exposure <= 1.9, "systemd-analyze security: exposure {exposure}, above 1.9");
}

#[test]
fn shell_scripts_pass_shellcheck() {
    fn scripts(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // tools/.venv and the like are not ours.
                continue;
            }
            if path.is_dir() {
                scripts(&path, found);
            } else if name.ends_with(".sh") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    scripts(&repo().join("tools"), &mut found);
    scripts(&repo().join("boards"), &mut found);
    found.sort();
    for script in [
        "boards/install.sh",
        "tools/packaging/package.sh",
        "tools/packaging/release.sh",
        "tools/packaging/cross_build.sh",
    ] {
        assert!(found.contains(&repo().join(script)), "{script} not found among {found:?}");
    }
    // Each starts with what it does: a shebang, then a comment.
    for script in &found {
        let text = std::fs::read_to_string(script).unwrap();
        let mut lines = text.lines();
        assert!(lines.next().is_some_and(|l| l.starts_with("#!")), "{}: no #! line", script.display());
        assert!(
            lines.next().is_some_and(|l| l.starts_with("# ")),
            "{}: no comment saying what it does",
            script.display()
        );
        assert_eq!(mode(script) & 0o111, 0o111, "{} is not executable", script.display());
    }

    if !installed("shellcheck") {
        eprintln!(
            "skipped shellcheck of {} scripts: shellcheck is not installed (apt-get install shellcheck)",
            found.len()
        );
        return;
    }
    success(Command::new("shellcheck").args(&found));
}

/// What tools/packaging/package.sh made.
struct Packaged {
    _dir: tempfile::TempDir,
    deb: PathBuf,
    tarball: PathBuf,
    /// The binary as packaged (stripped when a strip knows it).
    binary: PathBuf,
}

/// Runs tools/packaging/package.sh on the binary under test (arm64, whatever this
/// machine is: --any-binary), with quick compression.
fn package() -> Packaged {
    let dir = tempfile::tempdir().unwrap();
    // A debug build's symbols are most of its size: package a stripped copy
    // when one of the strips here knows the binary's architecture (the host's
    // strip does not know ARM files, under qemu).
    let binary = dir.path().join("edgeclip");
    let original = Path::new(env!("CARGO_BIN_EXE_edgeclip"));
    let stripped = ["strip", "aarch64-linux-gnu-strip", "arm-linux-gnueabihf-strip"].iter().any(|strip| {
        Command::new(strip).arg("-o").arg(&binary).arg(original).output_watched().is_ok_and(|o| o.status.success())
    });
    if !stripped {
        std::fs::copy(original, &binary).unwrap();
    }
    let out = dir.path().join("out");
    let stdout = success(
        Command::new("bash")
            .arg(repo().join("tools/packaging/package.sh"))
            .arg("--binary")
            .arg(&binary)
            .args(["--arch", "arm64", "--any-binary", "--fast"])
            .args(["--maintainer", "edgeclip tests <tests@edgeclip.invalid>"])
            .arg("--out")
            .arg(&out),
    );
    let version = env!("CARGO_PKG_VERSION");
    let deb = out.join(format!("edgeclip_{version}_arm64.deb"));
    let tarball = out.join(format!("edgeclip-{version}-arm64.tar.gz"));
    assert!(
        deb.is_file() && tarball.is_file(),
        "package.sh made no {} or {}:\n{stdout}",
        deb.display(),
        tarball.display()
    );
    Packaged { _dir: dir, deb, tarball, binary }
}

/// `dpkg-deb --contents`: path (without the leading "."), mode string and owner.
fn deb_contents(deb: &Path) -> BTreeMap<String, (String, String)> {
    success(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // drwxr-xr-x root/root 0 2026-11-28 05:08 ./usr/bin/
            let path = fields[5].trim_start_matches('.').trim_end_matches('/').to_string();
            (path, (fields[0].to_string(), fields[1].to_string()))
        })
        .collect()
}

#[test]
fn package_makes_a_deb_with_the_files_and_maintainer_scripts() {
    let packaged = package();
    let deb = &packaged.deb;

    // The control file.
    let info = success(Command::new("dpkg-deb").arg("--info").arg(deb));
    for part in ["control", "conffiles", "postinst", "prerm", "postrm"] {
        assert!(info.lines().any(|l| l.split_whitespace().any(|w| w == part)), "no {part} in:\n{info}");
    }
    let field = |name: &str| {
        let value = success(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name));
        value.trim().to_string()
    };
    assert_eq!(field("Package"), "edgeclip");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(field("Architecture"), "arm64");
    assert_eq!(field("Maintainer"), "edgeclip tests <tests@edgeclip.invalid>");
    // The static arm64 binary needs nothing from the board; adduser makes the user.
    assert_eq!(field("Depends"), "adduser");
    assert_eq!(field("Section"), "video");
    assert_eq!(field("Priority"), "optional");
    assert!(field("Description").starts_with("zero-shot CLIP detections"), "{info}");
    assert!(field("Installed-Size").parse::<u64>().is_ok_and(|kib| kib > 1000), "{info}");

    // The files, their modes and owners.
    let contents = deb_contents(deb);
    let expected = packaged_files(
        &[
            ("/usr/bin/edgeclip", "-rwxr-xr-x"),
            ("/etc/edgeclip/edgeclip.toml", "-rw-r--r--"),
            ("/etc/edgeclip/labels.txt", "-rw-r--r--"),
            ("/lib/systemd/system/edgeclip.service", "-rw-r--r--"),
            ("/usr/share/doc/edgeclip/copyright", "-rw-r--r--"),
            ("/usr/share/doc/edgeclip/README.md", "-rw-r--r--"),
            ("/usr/share/doc/edgeclip/mqtt.md", "-rw-r--r--"),
            ("/usr/share/doc/edgeclip/mosquitto.acl", "-rw-r--r--"),
        ],
        "/usr/share/edgeclip/models/tiny-shapes",
        "/usr/share/edgeclip/boards",
        "/usr/share/doc/edgeclip/boards",
    );
    for (path, mode) in &expected {
        let (actual, owner) = contents.get(path).unwrap_or_else(|| panic!("{path} is not in the .deb: {contents:#?}"));
        assert_eq!((actual.as_str(), owner.as_str()), (*mode, "root/root"), "{path}");
    }
    let files = contents.iter().filter(|(_, (m, _))| !m.starts_with('d')).count();
    assert_eq!(files, expected.len(), "unexpected files in the .deb: {contents:#?}");
    assert!(contents.values().all(|(_, owner)| owner == "root/root"), "{contents:#?}");

    // The maintainer scripts and conffiles.
    let control = tempfile::tempdir().unwrap();
    success(Command::new("dpkg-deb").arg("--control").arg(deb).arg(control.path()));
    let read = |name: &str| std::fs::read_to_string(control.path().join(name)).unwrap();
    assert_eq!(read("conffiles"), "/etc/edgeclip/edgeclip.toml\n/etc/edgeclip/labels.txt\n");
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.path().join(script);
        assert_eq!(mode(&path), 0o755, "{script}");
        assert!(read(script).starts_with("#!/bin/sh\n"), "{script}");
        success(Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = read("postinst");
    for needed in [
        "adduser --system --group --no-create-home --home /var/cache/edgeclip --quiet edgeclip",
        "adduser --quiet edgeclip \"$group\"",
        "for group in video gpio",
        "deb-systemd-helper enable edgeclip.service",
        "systemctl --system daemon-reload",
        "deb-systemd-invoke \"$action\" edgeclip.service",
        // No systemd in a chroot: nothing is started there.
        "if [ -d /run/systemd/system ]",
    ] {
        assert!(postinst.contains(needed), "postinst lacks '{needed}':\n{postinst}");
    }
    assert!(read("prerm").contains("stop edgeclip.service"), "{}", read("prerm"));
    let postrm = read("postrm");
    for needed in ["purge", "rm -rf /var/cache/edgeclip /etc/edgeclip", "deluser --quiet --system edgeclip"] {
        assert!(postrm.contains(needed), "postrm lacks '{needed}':\n{postrm}");
    }

    // The files are the repository's, and the packaged config is valid.
    let root = tempfile::tempdir().unwrap();
    success(Command::new("dpkg-deb").arg("--extract").arg(deb).arg(root.path()));
    for (packaged, source) in [
        ("lib/systemd/system/edgeclip.service", "boards/edgeclip.service"),
        ("etc/edgeclip/edgeclip.toml", "boards/edgeclip.toml"),
        ("etc/edgeclip/labels.txt", "boards/labels.txt"),
        ("usr/share/edgeclip/boards/raspberry-pi-4.toml", "boards/raspberry-pi-4/edgeclip.toml"),
        ("usr/share/doc/edgeclip/boards/README.md", "boards/README.md"),
        ("usr/share/edgeclip/models/tiny-shapes/model.toml", "models/tiny-shapes/model.toml"),
    ] {
        assert_eq!(
            std::fs::read(root.path().join(packaged)).unwrap(),
            std::fs::read(repo().join(source)).unwrap(),
            "{packaged} differs from {source}"
        );
    }
    assert_eq!(std::fs::read(root.path().join("usr/bin/edgeclip")).unwrap(), std::fs::read(&packaged.binary).unwrap());
    success(
        edgeclip_command().args(["check-config", "--file-only"]).arg(root.path().join("etc/edgeclip/edgeclip.toml")),
    );
}

#[test]
fn package_makes_a_tarball_that_install_sh_installs_into_a_destdir() {
    let packaged = package();
    let version = env!("CARGO_PKG_VERSION");
    let top = format!("edgeclip-{version}-arm64");

    // The tarball's files and modes.
    let listing = success(Command::new("tar").arg("-tvzf").arg(&packaged.tarball));
    let entries: BTreeMap<String, String> = listing
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[5].trim_end_matches('/').to_string(), fields[0].to_string())
        })
        .collect();
    let expected = packaged_files(
        &[
            ("bin/edgeclip", "-rwxr-xr-x"),
            ("install.sh", "-rwxr-xr-x"),
            ("edgeclip.toml", "-rw-r--r--"),
            ("labels.txt", "-rw-r--r--"),
            ("edgeclip.service", "-rw-r--r--"),
            ("README.md", "-rw-r--r--"),
            ("docs/mqtt.md", "-rw-r--r--"),
            ("mosquitto.acl", "-rw-r--r--"),
        ],
        "models/tiny-shapes",
        "boards",
        "boards",
    );
    for (path, mode) in &expected {
        let full = format!("{top}/{path}");
        assert_eq!(entries.get(&full).map(String::as_str), Some(*mode), "{full} in:\n{listing}");
    }
    let files = entries.values().filter(|m| !m.starts_with('d')).count();
    assert_eq!(files, expected.len(), "unexpected files in the tarball:\n{listing}");

    // Unpacked, its install.sh installs into a DESTDIR, without root.
    let work = tempfile::tempdir().unwrap();
    success(Command::new("tar").arg("-xzf").arg(&packaged.tarball).arg("-C").arg(work.path()));
    let install = work.path().join(&top).join("install.sh");
    let dest = work.path().join("root");
    let first = success(Command::new(&install).arg("--no-systemctl").env("DESTDIR", &dest));
    assert!(first.contains("no user created and systemctl not run"), "{first}");

    let mut installed: Vec<(String, u32)> = vec![
        ("usr/bin/edgeclip".into(), 0o755),
        ("etc/edgeclip/edgeclip.toml".into(), 0o644),
        ("etc/edgeclip/labels.txt".into(), 0o644),
        ("etc/systemd/system/edgeclip.service".into(), 0o644),
        ("usr/share/doc/edgeclip/README.md".into(), 0o644),
        ("usr/share/doc/edgeclip/mqtt.md".into(), 0o644),
        ("usr/share/doc/edgeclip/mosquitto.acl".into(), 0o644),
    ];
    for f in MODEL_FILES {
        installed.push((format!("usr/share/edgeclip/models/tiny-shapes/{f}"), 0o644));
    }
    for board in BOARDS {
        installed.push((format!("usr/share/edgeclip/boards/{board}.toml"), 0o644));
        installed.push((format!("usr/share/doc/edgeclip/boards/{board}.md"), 0o644));
    }
    installed.push(("usr/share/doc/edgeclip/boards/README.md".into(), 0o644));
    for (path, expected_mode) in &installed {
        assert_eq!(mode(&dest.join(path)), *expected_mode, "{path}");
    }
    let mut expected_tree: Vec<String> = installed.iter().map(|(p, _)| p.clone()).collect();
    expected_tree.sort();
    assert_eq!(tree(&dest), expected_tree, "installed tree");
    assert_eq!(
        std::fs::read(dest.join("etc/edgeclip/edgeclip.toml")).unwrap(),
        std::fs::read(repo().join("boards/edgeclip.toml")).unwrap()
    );
    assert_eq!(std::fs::read(dest.join("usr/bin/edgeclip")).unwrap(), std::fs::read(&packaged.binary).unwrap());

    // A second run (an upgrade) replaces the program and keeps the
    // configuration the user edited.
    let config = dest.join("etc/edgeclip/edgeclip.toml");
    let labels = dest.join("etc/edgeclip/labels.txt");
    std::fs::write(&config, "# edited on the board\n").unwrap();
    std::fs::write(&labels, "cat\n").unwrap();
    std::fs::write(dest.join("usr/bin/edgeclip"), "old").unwrap();
    let second = success(Command::new(&install).arg("--destdir").arg(&dest).env_remove("DESTDIR"));
    assert!(second.contains("/etc/edgeclip/edgeclip.toml kept"), "{second}");
    assert!(second.contains("/etc/edgeclip/labels.txt kept"), "{second}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# edited on the board\n");
    assert_eq!(std::fs::read_to_string(&labels).unwrap(), "cat\n");
    assert_eq!(std::fs::read(dest.join("usr/bin/edgeclip")).unwrap(), std::fs::read(&packaged.binary).unwrap());

    // From a source checkout, boards/install.sh installs the same tree.
    let from_source = work.path().join("from-source");
    success(
        Command::new(repo().join("boards/install.sh"))
            .arg("--binary")
            .arg(&packaged.binary)
            .arg("--destdir")
            .arg(&from_source)
            .env_remove("DESTDIR"),
    );
    assert_eq!(tree(&from_source), tree(&dest));

    // Into / it needs root, and says so (only checkable when not root:
    // as root it would really install).
    let uid = success(Command::new("id").arg("-u"));
    if uid.trim() == "0" {
        eprintln!("skipped the not-root refusal of install.sh: the tests run as root");
    } else {
        let out = run(Command::new(&install).env_remove("DESTDIR"));
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("needs root") && stderr.contains("DESTDIR"), "{stderr}");
    }
}

/// Every file under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}
