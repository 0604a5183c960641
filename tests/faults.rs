//! Faults and hostile input against the real binary: each finding of the
//! hardening review kept as a test of what must hold afterwards. A fault
//! that working code never produces (a panic in a camera's thread) is
//! injected through `EDGECLIP_FAULT`, which only a debug build obeys
//! (`src/util/fault.rs`); the tests run the debug build. A broker killed
//! and restarted mid-run is kept where the queue it tests lives:
//! `mqtt::events_published_while_mosquitto_is_killed_arrive_in_order_after_it_restarts`
//! and `daemon::events_survive_a_broker_restart_in_order`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::{
    broker_at, config, events, last_json, looping_source, wait_offline, Daemon, AVAILABILITY_TOPIC, EVENTS_TOPIC,
    STATS_TOPIC,
};
use crate::support::mosquitto::{Mosquitto, MosquittoOptions};
use crate::support::process::{edgeclip_command, SpawnWatched};
use crate::support::subscriber::{Subscriber, SubscriberOptions};
use crate::support::timing::patience;

/// A panic on a camera's thread stops the daemon with a failure that
/// systemd sees (it restarts a unit that exits non-zero), after publishing
/// `offline`; before, the daemon went on publishing `online` and
/// `"running": true` for a camera that inferred nothing, and exited 0.
#[test]
fn a_panic_in_a_camera_thread_exits_non_zero_after_publishing_offline() {
    for site in ["inference", "capture"] {
        let broker = Mosquitto::start(MosquittoOptions::default());
        let sub = Subscriber::connect(broker.port(), &format!("panic-{site}"), &["edgeclip/#"]);
        let fault = format!("panic:{site}");
        let mut daemon = Daemon::start_with_env(
            &config(&broker_at(broker.port()), &looping_source(10), ""),
            &[("EDGECLIP_FAULT", fault.as_str())],
        );
        let status = daemon.wait_exit(patience(Duration::from_secs(60)));
        let log = daemon.stderr_text();
        assert_eq!(status.code(), Some(1), "{site}: {status}; log:\n{log}");
        assert!(
            log.contains(&format!("fault injected at '{site}'"))
                && log.contains("stopped so that the service manager restarts edgeclip"),
            "{site}: {log}"
        );
        let all = wait_offline(&sub, patience(Duration::from_secs(5)));
        assert!(all.iter().any(|m| m.topic == AVAILABILITY_TOPIC && m.payload == b"online"), "{site}");
    }
}

/// Values that passed `check-config` and then panicked the daemon are
/// refused with the key, the value and the range.
#[test]
fn rates_that_no_clock_can_hold_are_refused_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    for (source, max_fps, expected) in [
        (
            looping_source(10),
            "max_fps = 1e-300",
            "key 'cameras.demo.max_fps': 1e-300 is out of range; accepted: 0 (no limit) or 0.001 to 1000",
        ),
        (
            format!("file:{}?fps=1e-20", crate::support::demo::clip().display()),
            "max_fps = 0",
            "fps '1e-20' is out of range; accepted: 0.001 or more",
        ),
    ] {
        let text = config("broker = \"mqtt://127.0.0.1:1\"", &source, "")
            .replace("@DIR@", dir.path().to_str().unwrap())
            .replace("max_fps = 0\n", &format!("{max_fps}\n"));
        std::fs::copy(crate::support::paths::demo_model_dir().join("labels.txt"), dir.path().join("labels.txt"))
            .unwrap();
        let path = dir.path().join("edgeclip.toml");
        std::fs::write(&path, text).unwrap();
        let out = edgeclip_command().arg("check-config").arg(&path).output_watched().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{max_fps} {source}: {stderr}");
    }
}

/// The last stats message's `mqtt` object.
fn last_mqtt_stats(sub: &Subscriber) -> Value {
    last_json(&sub.all(), STATS_TOPIC)["mqtt"].clone()
}

/// One publish larger than the client takes (Mosquitto's own limit is
/// 256 MB) to a command topic, at QoS 1 by someone on the broker: the
/// client reads it through, drops and counts it, and keeps its connection;
/// the next command on the same connection is obeyed, so the stream is
/// still in step. Before, the subscription was QoS 1 in a persistent
/// session and rumqttc ended the connection, so the broker sent it again
/// after every reconnect, for ever, and across restarts of the daemon: no
/// event was delivered until the broker's session was cleared.
#[test]
fn an_oversized_command_is_dropped_without_losing_the_connection() {
    const ENABLED_TOPIC: &str = "edgeclip/test/demo/enabled";
    let broker = Mosquitto::start(MosquittoOptions::default());
    // Not the command topic: the 10 MB would reach this subscriber too.
    let sub = Subscriber::connect(broker.port(), "oversized-sub", &[EVENTS_TOPIC, STATS_TOPIC, ENABLED_TOPIC]);
    let config = config(&broker_at(broker.port()), &looping_source(20), "");
    let mut daemon = Daemon::start(&config);
    sub.wait_for(patience(Duration::from_secs(60)), "an event", |m| !events(m, EVENTS_TOPIC).is_empty());

    let big = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(big.path(), vec![b'a'; 10 * 1024 * 1024]).unwrap();
    let publish = |qos: &str, topic: &str, payload: &[&std::ffi::OsStr]| {
        let out = Command::new("mosquitto_pub")
            .args(["-p", &broker.port().to_string(), "-q", qos, "-t", topic])
            .args(payload)
            .output_watched()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    publish("1", "edgeclip/test/demo/labels/set", &["-f".as_ref(), big.path().as_os_str()]);
    daemon.wait_stderr(patience(Duration::from_secs(10)), "dropped a message of 10485");

    // Events go on over the same connection.
    let before = events(&sub.all(), EVENTS_TOPIC).len();
    sub.wait_for(patience(Duration::from_secs(30)), "events after the oversized command", |m| {
        events(m, EVENTS_TOPIC).len() > before + 1
    });
    publish("1", "edgeclip/test/demo/enabled/set", &["-m".as_ref(), "OFF".as_ref()]);
    sub.wait_for(patience(Duration::from_secs(10)), "the camera disabled by the next command", |m| {
        m.iter().any(|r| r.topic == ENABLED_TOPIC && r.payload == b"OFF")
    });
    let n = sub.all().len();
    sub.wait_for(patience(Duration::from_secs(30)), "stats after the commands", |m| {
        m[n..].iter().any(|r| r.topic == STATS_TOPIC)
    });
    let mqtt = last_mqtt_stats(&sub);
    assert_eq!((mqtt["connected"].as_bool(), mqtt["reconnects"].as_u64()), (Some(true), Some(0)), "{mqtt}");
    assert_eq!((mqtt["commands_refused"].as_u64(), mqtt["commands_accepted"].as_u64()), (Some(1), Some(1)), "{mqtt}");
    let log = daemon.stderr_text();
    assert!(!log.contains("disconnected from the MQTT broker"), "{log}");
    assert!(daemon.stop().success());

    // A restarted daemon resumes its session and gets nothing again.
    let n = sub.all().len();
    let mut daemon = Daemon::start(&config);
    sub.wait_for(patience(Duration::from_secs(60)), "stats of the restarted daemon", |m| {
        m[n..].iter().filter(|r| r.topic == STATS_TOPIC).count() >= 5
    });
    let mqtt = last_mqtt_stats(&sub);
    assert_eq!((mqtt["reconnects"].as_u64(), mqtt["commands_refused"].as_u64()), (Some(0), Some(0)), "{mqtt}");
    assert!(daemon.stop().success());
}

/// Untrusted text in a command reaches the log escaped and cut: a newline
/// cannot forge a line, 7 MB do not make a 7 MB line, and a flood of bad
/// commands is counted in full but logged a few times per 10 s.
#[test]
fn bad_commands_are_logged_escaped_cut_and_rate_limited_and_all_counted() {
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "untrusted-sub", &["edgeclip/#"]);
    let mut daemon = Daemon::start(&config(&broker_at(broker.port()), &looping_source(5), ""));
    sub.wait_for(patience(Duration::from_secs(60)), "the enabled state", |m| {
        m.iter().any(|r| r.topic == "edgeclip/test/demo/enabled")
    });
    sub.publish("edgeclip/test/demo/enabled/set", b"maybe\nERROR forged line", false);
    sub.publish("edgeclip/test/demo/enabled/set", &vec![b'x'; 7 * 1024 * 1024], false);
    for _ in 0..40 {
        sub.publish("edgeclip/test/nosuch/enabled/set", b"ON", false);
    }
    sub.wait_for(patience(Duration::from_secs(20)), "42 refused commands in the stats", |m| {
        m.iter()
            .rev()
            .find(|r| r.topic == STATS_TOPIC)
            .is_some_and(|r| serde_json::from_slice::<Value>(&r.payload).unwrap()["mqtt"]["commands_refused"] == 42)
    });
    let log = daemon.stderr_text();
    assert!(log.contains(r"'maybe\nERROR forged line' is not a switch value"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("ERROR forged")), "{log}");
    assert!(log.contains(&format!("{}… (7340032 bytes in all)' is not a switch value", "x".repeat(120))), "{log}");
    assert!(log.lines().all(|l| l.len() < 4200), "a log line of {} bytes", log.lines().map(str::len).max().unwrap());
    let refusals = log.lines().filter(|l| l.contains("refused: no camera named 'nosuch'")).count();
    assert_eq!(refusals, 3, "5 lines per 10 s, two of them for the switch values:\n{log}");

    // 10,000 labels (58 KB) by command: refused before anything is embedded
    // (it took 4 min of 1.5 cores and made 10,000 Home Assistant entities).
    let many: String = (0..10_000).map(|i| format!("l{i}\n")).collect();
    let started = std::time::Instant::now();
    sub.publish("edgeclip/test/demo/labels/set", many.as_bytes(), false);
    daemon.wait_stderr(patience(Duration::from_secs(10)), "10000 labels; a camera takes at most 256");
    assert!(started.elapsed() < patience(Duration::from_secs(5)), "{:?}", started.elapsed());
    assert!(daemon.stop().success());
}

/// Under systemd (`Type=notify`, `WatchdogSec=`) the daemon says when it is
/// ready and feeds the watchdog while its cameras work; a camera whose
/// inference thread hangs starves the watchdog, so systemd restarts the
/// daemon, instead of a healthy face with a dead camera behind it.
#[test]
fn a_hung_camera_starves_the_systemd_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let broker = Mosquitto::start(MosquittoOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let daemon = Daemon::start_with_env(
        &config(&broker_at(broker.port()), &looping_source(10), ""),
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            // Fed every 0.5 s while healthy.
            ("WATCHDOG_USEC", "1000000"),
            ("EDGECLIP_FAULT", "hang:inference,stalled-after-ms:3000"),
        ],
    );
    let mut received: Vec<(std::time::Instant, String)> = Vec::new();
    let deadline = std::time::Instant::now() + patience(Duration::from_secs(60));
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline && !received.iter().any(|(_, m)| m.contains("stalled")) {
        if let Ok(n) = socket.recv(&mut buf) {
            received.push((std::time::Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
    let messages: Vec<&str> = received.iter().map(|(_, m)| m.as_str()).collect();
    assert!(messages[0].starts_with("READY=1\nSTATUS=running 1 camera(s)"), "{messages:?}");
    let fed = messages.iter().filter(|m| **m == "WATCHDOG=1").count();
    // About 3 s of feeding at 2 a second before the stall is noticed.
    assert!(fed >= 3, "{messages:?}");
    assert_eq!(messages.last(), Some(&"STATUS=camera 'demo' stalled"), "{messages:?}");
    // From then on nothing feeds it.
    let after = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < after {
        if let Ok(n) = socket.recv(&mut buf) {
            panic!("after the stall: {:?}", String::from_utf8_lossy(&buf[..n]));
        }
    }
    let log = daemon.stderr_text();
    assert!(log.contains("no longer feeding the systemd watchdog"), "{log}");
}

/// `boards/mosquitto.acl`, as the README's Security section sets it
/// up: edgeclip publishes and reads its commands, Home Assistant may send
/// them, any other user may only watch.
#[test]
fn the_example_acl_lets_home_assistant_steer_and_others_only_watch() {
    let users = ["edgeclip", "homeassistant", "guest"].map(|u| (u.to_string(), format!("{u}-password")));
    let acl = crate::support::paths::repo().join("boards/mosquitto.acl");
    let broker = Mosquitto::start(MosquittoOptions {
        users: users.to_vec(),
        extra: vec![format!("acl_file {}", acl.display())],
        ..Default::default()
    });
    let login = |name: &str, filters: &[&str]| {
        let mut options = SubscriberOptions::new(broker.port(), &format!("acl-{name}"), filters);
        options.credentials = Some((name.to_string(), format!("{name}-password")));
        Subscriber::start(options)
    };
    let guest = login("guest", &["edgeclip/#"]);
    let home_assistant = login("homeassistant", &["edgeclip/#", "homeassistant/#"]);
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "edgeclip-password\n").unwrap();
    let broker_keys =
        format!("{}\nusername = \"edgeclip\"\npassword_file = \"{}\"", broker_at(broker.port()), password.display());
    let mut daemon = Daemon::start(&config(&broker_keys, &looping_source(5), ""));
    let enabled = "edgeclip/test/demo/enabled";
    for sub in [&guest, &home_assistant] {
        sub.wait_for(patience(Duration::from_secs(60)), "the enabled state", |m| {
            m.iter().any(|r| r.topic == enabled && r.payload == b"ON")
        });
    }
    home_assistant.wait_for(patience(Duration::from_secs(10)), "discovery", |m| {
        m.iter().any(|r| r.topic.starts_with("homeassistant/binary_sensor/"))
    });

    // The guest's command never reaches edgeclip (Mosquitto drops it).
    guest.publish("edgeclip/test/demo/enabled/set", b"OFF", false);
    std::thread::sleep(Duration::from_secs(3));
    let mqtt = last_mqtt_stats(&guest);
    assert_eq!((mqtt["commands_accepted"].as_u64(), mqtt["commands_refused"].as_u64()), (Some(0), Some(0)), "{mqtt}");
    assert!(!guest.all().iter().any(|r| r.topic == enabled && r.payload == b"OFF"));
    // Home Assistant's does.
    home_assistant.publish("edgeclip/test/demo/enabled/set", b"OFF", false);
    guest.wait_for(patience(Duration::from_secs(10)), "enabled OFF", |m| {
        m.iter().any(|r| r.topic == enabled && r.payload == b"OFF")
    });
    // And the guest cannot publish in edgeclip's name either.
    guest.publish(enabled, b"ON", true);
    std::thread::sleep(Duration::from_secs(1));
    let last_enabled = home_assistant.all().iter().rev().find(|r| r.topic == enabled).map(|r| r.payload.clone());
    assert_eq!(last_enabled.as_deref(), Some(&b"OFF"[..]));
    assert!(daemon.stop().success());
    assert!(broker.log().contains("Denied PUBLISH from acl-guest"), "{}", broker.log());
}

/// CPU time (user and system) the process has used so far, from
/// `/proc/PID/stat` (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// A looped recording whose every frame is undecodable: counted as corrupt,
/// and after ten in a row the inference thread slows down instead of
/// keeping two cores busy for nothing.
#[test]
fn a_looped_recording_of_garbage_does_not_spin() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.mjpeg");
    // Frames the MJPEG reader takes (their segments are well formed) and
    // the decoder refuses: a clip frame that says it is 0 pixels wide.
    let mut frame = crate::support::demo::clip_frames().swap_remove(0);
    let sof = frame.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline frame");
    frame[sof + 7..sof + 9].copy_from_slice(&[0, 0]);
    std::fs::write(&garbage, frame.repeat(20)).unwrap();
    let broker = Mosquitto::start(MosquittoOptions::default());
    let sub = Subscriber::connect(broker.port(), "garbage-sub", &[STATS_TOPIC]);
    let daemon = Daemon::start(&config(&broker_at(broker.port()), &format!("file:{}?loop", garbage.display()), ""));
    let corrupt = |m: &[crate::support::subscriber::Received]| {
        m.iter().rev().find(|r| r.topic == STATS_TOPIC).map_or(0, |r| {
            serde_json::from_slice::<Value>(&r.payload).unwrap()["cameras"]["demo"]["frames"]["corrupt"]
                .as_u64()
                .unwrap()
        })
    };
    sub.wait_for(patience(Duration::from_secs(60)), "corrupt frames", |m| corrupt(m) >= 10);
    let (cpu0, corrupt0) = (cpu_time(daemon.pid()), corrupt(&sub.all()));
    std::thread::sleep(Duration::from_secs(4));
    let (cpu, more) = (cpu_time(daemon.pid()) - cpu0, corrupt(&sub.all()) - corrupt0);
    eprintln!("4 s of a looped garbage recording: {cpu:?} of CPU, {more} more corrupt frames");
    assert!(cpu < Duration::from_millis(400), "{cpu:?} of CPU in 4 s");
    assert!((1..20).contains(&more), "{more} corrupt frames in 4 s");
    assert!(daemon.stderr_text().contains("skipped frame"), "{}", daemon.stderr_text());
}

/// The CRC of a PNG chunk (its type and data).
fn png_crc(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Files from outside that used to be taken, hang or give an unclear
/// answer: each is refused, at once, with what was wrong.
#[test]
fn images_clips_and_files_from_outside_are_refused_with_what_was_wrong() {
    use crate::support::paths::demo_model_dir;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let run = |args: &[&std::ffi::OsStr]| {
        let out = edgeclip_command().args(args).output_watched().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let model = demo_model_dir();
    let classify =
        |file: &std::path::Path| run(&["classify".as_ref(), "--model".as_ref(), model.as_os_str(), file.as_os_str()]);

    // classify decodes a JPEG as the daemon does: half a frame is refused,
    // and a header claiming 65535x65535 names the cap.
    let frame = crate::support::demo::clip_frames().swap_remove(0);
    std::fs::write(path("half.jpg"), &frame[..frame.len() / 2]).unwrap();
    let (code, out) = classify(&path("half.jpg"));
    assert!(code == Some(1) && out.contains("ends without an end-of-image marker"), "{out}");
    let mut huge = frame.clone();
    let sof = huge.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline frame");
    huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    std::fs::write(path("huge.jpg"), huge).unwrap();
    let (code, out) = classify(&path("huge.jpg"));
    assert!(code == Some(1) && out.contains("is 65535x65535, larger than 4096 pixels on a side"), "{out}");

    // An MJPEG file with no frame is a failure, not an empty success.
    std::fs::write(path("empty.mjpeg"), b"").unwrap();
    std::fs::write(path("noise.mjpeg"), b"no JPEG in here").unwrap();
    for clip in ["empty.mjpeg", "noise.mjpeg"] {
        let (code, out) = classify(&path(clip));
        assert!(code == Some(1) && out.contains("holds no JPEG frame"), "{clip}: {out}");
        let source = format!("file:{}", path(clip).display());
        let (code, out) =
            run(&["capture".as_ref(), "--source".as_ref(), source.as_ref(), "--out".as_ref(), path("out").as_os_str()]);
        assert_eq!(code, Some(1), "{clip}: {out}");
    }

    // A folder source with an 11000x11000 PNG: refused from its header,
    // before 360 MB of pixels are taken.
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &[0u8; 3],
        1,
        1,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    png[16..24].copy_from_slice(&[0, 0, 0x2A, 0xF8, 0, 0, 0x2A, 0xF8]);
    let crc = png_crc(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::create_dir(path("folder")).unwrap();
    std::fs::write(path("folder/big.png"), &png).unwrap();
    let source = format!("file:{}", path("folder").display());
    let (code, out) =
        run(&["capture".as_ref(), "--source".as_ref(), source.as_ref(), "--out".as_ref(), path("out").as_os_str()]);
    assert!(code == Some(1) && out.contains("larger than the largest image accepted"), "{out}");
    assert!(out.contains("every frame was corrupt"), "{out}");

    // A FIFO in place of the image encoder is named at once, not read for ever.
    let bundle = crate::support::paths::copy_dir_to_temp(&model);
    std::fs::remove_file(bundle.path().join("image.onnx")).unwrap();
    let fifo = std::ffi::CString::new(bundle.path().join("image.onnx").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let started = std::time::Instant::now();
    let (code, out) =
        run(&["classify".as_ref(), "--model".as_ref(), bundle.path().as_os_str(), path("half.jpg").as_os_str()]);
    assert!(code == Some(1) && out.contains("not a regular file"), "{out}");
    assert!(started.elapsed() < patience(Duration::from_secs(10)));
}

/// Configurations that used to pass `check-config`: a 10 MB node name, a
/// file of random bytes (now with its position), a model or labels file
/// that is not there; and a password file any user can read is warned about.
#[test]
fn check_config_refuses_what_the_daemon_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let labels = crate::support::paths::demo_model_dir().join("labels.txt");
    let write = |name: &str, text: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let check = |path: &std::path::Path| {
        let out = edgeclip_command().arg("check-config").arg(path).output_watched().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let camera = format!("[cameras.demo]\nsource = \"v4l2:/dev/video0\"\nlabels = \"{}\"\n", labels.display());
    let model = format!("[model]\npath = \"{}\"\n", crate::support::paths::demo_model_dir().display());

    let long = write("long.toml", format!("node = \"{}\"\n{model}{camera}", "n".repeat(10 << 20)).as_bytes());
    let (code, out) = check(&long);
    assert!(
        code == Some(1) && out.contains("key 'node': is 10485760 characters long; a name has at most 64"),
        "{}",
        &out[..out.len().min(300)]
    );
    assert!(out.len() < 1000, "the error quotes the name: {} bytes", out.len());

    let mut random = b"node = \"x\"\n# a comment\n".to_vec();
    random.extend_from_slice(&[0xC3, 0x28, 0xFF, 0x00, 0x9F]);
    let (code, out) = check(&write("random.toml", &random));
    assert!(code == Some(1) && out.contains("random.toml:3: byte 23 is not UTF-8 text"), "{out}");

    let no_model = write("no-model.toml", format!("[model]\npath = \"/nonexistent/bundle\"\n{camera}").as_bytes());
    let (code, out) = check(&no_model);
    assert!(code == Some(1) && out.contains("model.path '/nonexistent/bundle'"), "{out}");
    let no_labels = write(
        "no-labels.toml",
        format!("{model}{}", camera.replace(labels.to_str().unwrap(), "/nonexistent/labels.txt")).as_bytes(),
    );
    let (code, out) = check(&no_labels);
    assert!(code == Some(1) && out.contains("/nonexistent/labels.txt"), "{out}");

    let password = write("password", b"secret\n");
    std::fs::set_permissions(&password, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let with_password = write(
        "password.toml",
        format!("{model}[mqtt]\nusername = \"edgeclip\"\npassword_file = \"{}\"\n{camera}", password.display())
            .as_bytes(),
    );
    let (code, out) = check(&with_password);
    assert!(code == Some(0) && out.contains("can be read by every user of this machine (mode 644)"), "{out}");
    assert!(!out.contains("secret"), "{out}");
    // A device named by mistake is refused, not read for ever.
    let zero = write(
        "zero.toml",
        format!("{model}[mqtt]\nusername = \"edgeclip\"\npassword_file = \"/dev/zero\"\n{camera}").as_bytes(),
    );
    let (code, out) = check(&zero);
    assert!(code == Some(1) && out.contains("cannot read '/dev/zero': not a regular file"), "{out}");
}

/// The daemon on the demo clip with its embedded broker on a free loopback
/// port, whose one user is `login` (`name:password`); its `users_file` is
/// written to `dir`.
#[cfg(feature = "embedded-broker")]
fn with_embedded_broker(dir: &std::path::Path, login: &str) -> (Daemon, u16) {
    let port = crate::support::mosquitto::free_port();
    let users = dir.join("users");
    std::fs::write(&users, format!("{login}\n")).unwrap();
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let broker_keys =
        format!("broker = \"embedded\"\nlisten = \"127.0.0.1:{port}\"\nusers_file = \"{}\"", users.display());
    (Daemon::start(&config(&broker_keys, &looping_source(5), "")), port)
}

/// The embedded broker with `mqtt.users_file`: a stranger with a made-up
/// login is refused, a listed user gets what the daemon publishes (the
/// daemon logs in under its own random login); without the file a listen
/// address beyond loopback is a configuration error (tests/config.rs).
#[test]
#[cfg(feature = "embedded-broker")]
fn the_embedded_broker_with_users_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, port) = with_embedded_broker(dir.path(), "homeassistant:ha-password");
    let sub = |user: &str, password: &str| {
        Command::new("mosquitto_sub")
            .args(["-p", &port.to_string(), "-u", user, "-P", password, "-t", "edgeclip/test/demo/enabled"])
            .args(["-C", "1", "-W", "5"])
            .output_watched()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + patience(Duration::from_secs(60));
    let allowed = loop {
        let out = sub("homeassistant", "ha-password");
        if out.status.success() || std::time::Instant::now() >= deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
    assert_eq!(String::from_utf8_lossy(&allowed.stdout).trim(), "ON");
    for (user, password) in [("homeassistant", "wrong"), ("stranger", "ha-password")] {
        let refused = sub(user, password);
        assert!(!refused.status.success() && refused.stdout.is_empty(), "{user}/{password} got in");
    }
    let log = daemon.stderr_text();
    assert!(log.contains("connected to the MQTT broker at the embedded broker"), "{log}");
    assert!(!log.contains("ha-password"), "{log}");
}

/// Resident memory of a process in bytes, from `/proc/PID/status`.
#[cfg(feature = "embedded-broker")]
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// A listed user of the embedded broker leaves 40 retained messages of
/// 6 MiB on topics of their own: the broker keeps them up to its 32 MiB
/// limit and logs the rest instead of holding them (before, 40 of 7 MB took
/// the daemon from 187 to 459 MB, near all of a Pi Zero 2 W), and the
/// daemon's own retained states are still there for the next subscriber.
#[test]
#[cfg(feature = "embedded-broker")]
fn retained_messages_cannot_fill_the_embedded_brokers_memory() {
    const MESSAGES: usize = 40;
    const SIZE: usize = 6 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let (daemon, port) = with_embedded_broker(dir.path(), "someone:their-password");
    let mosquitto = |tool: &str, args: &[&std::ffi::OsStr]| {
        Command::new(tool)
            .args(["-p", &port.to_string(), "-u", "someone", "-P", "their-password"])
            .args(args)
            .output_watched()
            .unwrap()
    };
    let enabled = || {
        let out = mosquitto(
            "mosquitto_sub",
            &[
                "-t".as_ref(),
                "edgeclip/test/demo/enabled".as_ref(),
                "-C".as_ref(),
                "1".as_ref(),
                "-W".as_ref(),
                "5".as_ref(),
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let deadline = std::time::Instant::now() + patience(Duration::from_secs(60));
    while enabled() != "ON" {
        assert!(std::time::Instant::now() < deadline, "the daemon's retained state never appeared");
        std::thread::sleep(Duration::from_millis(500));
    }
    let before = rss_bytes(daemon.pid());

    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'r'; SIZE]).unwrap();
    for i in 0..MESSAGES {
        let topic = format!("flood/{i}");
        let out = mosquitto(
            "mosquitto_pub",
            &[
                "-r".as_ref(),
                "-q".as_ref(),
                "1".as_ref(),
                "-t".as_ref(),
                topic.as_ref(),
                "-f".as_ref(),
                big.as_os_str(),
            ],
        );
        assert!(out.status.success(), "publish {i}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // What a late subscriber to the flood gets: the retained ones kept.
    let out =
        mosquitto("mosquitto_sub", &["-t".as_ref(), "flood/#".as_ref(), "-W".as_ref(), "3".as_ref(), "-N".as_ref()]);
    let kept = out.stdout.len() / SIZE;
    let grown = rss_bytes(daemon.pid()).saturating_sub(before);
    let log = daemon.stderr_text();
    eprintln!("{kept} of {MESSAGES} retained messages kept; the daemon grew by {} kB", grown / 1024);

    assert_eq!(kept, 32 * 1024 * 1024 / (SIZE + 32), "{} bytes of retained flood came back", out.stdout.len());
    assert!(log.contains("not keeping a retained message of 6291"), "{log}");
    // The kept 32 MiB, and rumqttd's read buffers that the allocator keeps
    // (up to 70 MiB more with the machine busy); all 40 would be 240 MiB.
    assert!(grown < 128 * 1024 * 1024, "the daemon grew by {} MiB", grown / (1024 * 1024));
    assert_eq!(enabled(), "ON");
}
