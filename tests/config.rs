//! The daemon's configuration file: the documented default parses and states
//! the built-in defaults, every kind of mistake has its own file in
//! `tests/data/invalid-configs/` whose last line is the exact message a user
//! sees (`FILE` and `DIR` stand for its path and folder), and values land
//! where the daemon reads them.

use std::path::Path;
use std::time::Duration;

use edgeclip::capture::SourceSpec;
use edgeclip::config::{Broker, Config, DEFAULT_CONFIG};

use crate::support::paths::data_dir;
use crate::support::process::{edgeclip_command, SpawnWatched};

#[test]
fn every_invalid_config_gives_its_message() {
    let dir = data_dir().join("invalid-configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no '# expect: ' line", path.display()))
            .replace("FILE", &path.display().to_string())
            .replace("DIR", &dir.display().to_string());
        let error = Config::parse(&path, &text).expect_err(&path.display().to_string());
        assert_eq!(error.to_string(), expected, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} invalid configs");
}

/// The smallest useful configuration: one camera, everything else default.
const MINIMAL: &str = r#"
[cameras.front]
source = "v4l2:/dev/video0"
labels = "/etc/edgeclip/labels.txt"
"#;

#[test]
fn the_documented_default_states_the_built_in_defaults() {
    let path = Path::new("/etc/edgeclip/edgeclip.toml");
    let documented = Config::parse(path, DEFAULT_CONFIG).unwrap();
    let built_in = Config::parse(path, MINIMAL).unwrap();
    assert_eq!(documented, built_in);
    assert_eq!(documented.mqtt.broker, Broker::External { host: "localhost".into(), port: 1883, tls: false });
    assert_eq!(documented.mqtt.client_id, "edgeclip-edgeclip");
    assert_eq!(documented.cameras[0].max_fps, Some(2.0));
    assert!(documented.cameras[0].motion.is_some());
}

#[test]
fn values_land_where_the_daemon_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "s3cret\nignored second line\n").unwrap();
    std::fs::write(dir.path().join("ca.crt"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let text = r#"
node = "garage"
[model]
path = "models/tiny-shapes"
threads = 4
[mqtt]
broker = "mqtts://[::1]"
username = "edgeclip"
password_file = "password"
ca_file = "ca.crt"
offline_queue = 5
[detector]
threshold = 0.3
end_frames = 5
[cameras.door]
source = "file:clips/door.mjpeg?fps=5&loop"
labels = "door.txt"
max_fps = 0
[cameras.door.motion]
enabled = false
[cameras.door.detector]
threshold = 0.6
min_duration_s = 0.5
[cameras.yard]
source = "exec:rpicam-vid -t 0 --codec mjpeg -o -"
labels = "/etc/edgeclip/yard.txt"
enabled = false
"#;
    let config = Config::parse(&dir.path().join("edgeclip.toml"), text).unwrap();
    assert_eq!(config.node, "garage");
    assert_eq!(config.model.path, dir.path().join("models/tiny-shapes"));
    assert_eq!(config.model.threads, 4);
    assert_eq!(config.mqtt.broker, Broker::External { host: "::1".into(), port: 8883, tls: true });
    assert_eq!(config.mqtt.password.as_deref(), Some("s3cret"));
    assert_eq!(config.mqtt.ca_file, Some(dir.path().join("ca.crt")));
    assert_eq!(config.mqtt.offline_queue, 5);
    let [door, yard] = &config.cameras[..] else { panic!("{:?}", config.cameras) };
    assert_eq!(door.name, "door");
    let SourceSpec::File(file) = &door.source else { panic!("{:?}", door.source) };
    assert_eq!((file.path.clone(), file.fps, file.looping), (dir.path().join("clips/door.mjpeg"), Some(5.0), true));
    assert_eq!(door.labels, dir.path().join("door.txt"));
    assert_eq!((door.max_fps, door.motion), (None, None));
    // The camera's own key, then [detector]'s, then the default.
    assert_eq!(door.threshold, 0.6);
    assert_eq!(door.detector.end_frames, 5);
    assert_eq!(door.detector.start_frames, 2);
    assert_eq!(door.detector.min_duration, Duration::from_millis(500));
    assert_eq!(yard.threshold, 0.3);
    assert!(!yard.enabled);

    // The embedded broker beyond loopback needs users with passwords.
    let open = format!("[mqtt]\nbroker = \"embedded\"\nlisten = \"0.0.0.0:1884\"\n{MINIMAL}");
    let e = Config::parse(Path::new("/x.toml"), &open).unwrap_err().to_string();
    assert!(
        e.starts_with("/x.toml:3: key 'mqtt.listen': 0.0.0.0:1884 lets other machines use the embedded broker"),
        "{e}"
    );
    std::fs::write(dir.path().join("users"), "# who may connect\nha:s3cret:with:colons\n").unwrap();
    let embedded =
        Config::parse(&dir.path().join("x.toml"), &open.replace("listen =", "users_file = \"users\"\nlisten ="))
            .unwrap();
    assert_eq!(
        embedded.mqtt.broker,
        Broker::Embedded {
            listen: "0.0.0.0:1884".parse().unwrap(),
            users: Some(vec![("ha".into(), "s3cret:with:colons".into())])
        }
    );
    assert!(!embedded.mqtt.commands, "command topics are off unless turned on");
}

#[test]
fn an_rtsp_cameras_password_comes_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("front.password"), "p@ss word\n").unwrap();
    let camera = |source: &str, key: &str| {
        format!("[model]\npath = \"m\"\n[cameras.front]\nsource = \"{source}\"\nlabels = \"l.txt\"\n{key}\n")
    };
    let path = dir.path().join("edgeclip.toml");
    let parse = |text: &str| Config::parse(&path, text);
    let config = parse(&camera("rtsp://admin@cam:554/stream2", "password_file = \"front.password\"")).unwrap();
    let SourceSpec::Rtsp(rtsp) = &config.cameras[0].source else { panic!() };
    assert_eq!((rtsp.user.as_deref(), rtsp.password.as_deref()), (Some("admin"), Some("p@ss word")));
    // Shown redacted wherever the source is printed.
    assert_eq!(config.cameras[0].source.to_string(), "rtsp://admin:***@cam:554/stream2");

    std::env::set_var("EDGECLIP_TEST_FRONT_PASSWORD", "from-env");
    let config = parse(&camera("rtsp://admin@cam/s", "password_env = \"EDGECLIP_TEST_FRONT_PASSWORD\"")).unwrap();
    let SourceSpec::Rtsp(rtsp) = &config.cameras[0].source else { panic!() };
    assert_eq!(rtsp.password.as_deref(), Some("from-env"));

    for (source, key, problem) in [
        (
            "rtsp://cam/s",
            "password_file = \"front.password\"",
            "key 'cameras.front.password_file': needs a user in the URL: rtsp://USER@host/...",
        ),
        (
            "rtsp://a:b@cam/s",
            "password_file = \"front.password\"",
            "key 'cameras.front.password_file': and a password in the URL are both set; keep one",
        ),
        (
            "file:x.mjpeg",
            "password_env = \"EDGECLIP_TEST_FRONT_PASSWORD\"",
            "key 'cameras.front.password_env': is for rtsp:// cameras",
        ),
        (
            "rtsp://a@cam/s",
            "password_env = \"EDGECLIP_TEST_NO_SUCH\"",
            "key 'cameras.front.password_env': the environment variable 'EDGECLIP_TEST_NO_SUCH' is not set",
        ),
    ] {
        let e = parse(&camera(source, key)).unwrap_err().to_string();
        assert!(e.contains(problem), "{source}: {e}");
    }
    // A bad URL's error repeats it without its password.
    let e = parse(&camera("rtsp://a:hunter2@cam/s?transport=sctp", "")).unwrap_err().to_string();
    assert!(e.contains("source 'rtsp://a:***@cam/s?transport=sctp': transport 'sctp' is not tcp or udp"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn print_config_and_check_config() {
    let out = edgeclip_command().arg("print-config").output_watched().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), DEFAULT_CONFIG);
    assert_eq!(
        DEFAULT_CONFIG,
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/edgeclip.toml")).unwrap()
    );

    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/edgeclip.toml");
    let out = edgeclip_command().args(["check-config", "--file-only"]).arg(&good).output_watched().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("  camera    front: v4l2:/dev/video0, labels /etc/edgeclip/labels.txt"), "{stdout}");

    let bad = data_dir().join("invalid-configs/qos-out-of-range.toml");
    let out = edgeclip_command().arg("check-config").arg(&bad).output_watched().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("error: {}:2: key 'mqtt.qos': 3 is out of range; accepted: 0 to 2", bad.display())
    );
}

#[test]
fn gpio_keys_land_where_the_daemon_reads_them() {
    use edgeclip::gpio::{Chip, InputConfig, LabelFilter, Line, LineSpec, OutputConfig, OutputMode};
    let config = Config::parse(
        Path::new("/etc/edgeclip/edgeclip.toml"),
        r#"
[cameras.front]
source = "v4l2:/dev/video0"
labels = "labels.txt"
[[cameras.front.outputs]]
line = 17
labels = ["person", "a delivery van"]
off_delay_s = 30
active_low = true
[[cameras.front.outputs]]
line = "GPIO27"
labels = ["*"]
mode = "pulse"
[[cameras.front.outputs]]
line = 22
chip = "simulated:gpio"
labels = ["person"]
mode = "pulse"
pulse_s = 0.25
[cameras.front.input]
line = "GPIO4"
chip = "gpiochip4"

[cameras.back]
source = "v4l2:/dev/video2"
labels = "labels.txt"
"#,
    )
    .unwrap();
    let front = &config.cameras[0];
    assert_eq!(front.name, "back", "cameras are in name order");
    assert!(front.outputs.is_empty() && front.input.is_none(), "GPIO is off unless configured");
    let front = &config.cameras[1];
    assert_eq!(
        front.outputs,
        [
            OutputConfig {
                // An offset without a chip is on gpiochip0.
                line: LineSpec { chip: Chip::Device("/dev/gpiochip0".into()), line: Line::Offset(17) },
                labels: LabelFilter::Only(vec!["person".into(), "a delivery van".into()]),
                mode: OutputMode::Level { off_delay: Duration::from_secs(30) },
                active_low: true,
            },
            OutputConfig {
                // A name without a chip is looked for on every chip.
                line: LineSpec { chip: Chip::AnyWithName, line: Line::Name("GPIO27".into()) },
                labels: LabelFilter::Any,
                mode: OutputMode::Pulse { length: Duration::from_secs(1) },
                active_low: false,
            },
            OutputConfig {
                // A simulated chip's folder is relative to the file.
                line: LineSpec { chip: Chip::Simulated("/etc/edgeclip/gpio".into()), line: Line::Offset(22) },
                labels: LabelFilter::Only(vec!["person".into()]),
                mode: OutputMode::Pulse { length: Duration::from_millis(250) },
                active_low: false,
            },
        ]
    );
    assert_eq!(
        front.input,
        Some(InputConfig {
            line: LineSpec { chip: Chip::Device("/dev/gpiochip4".into()), line: Line::Name("GPIO4".into()) },
            active_low: false,
            hold: Duration::from_secs(10),
        })
    );
}
