//! GPIO: outputs and the input gate against embedded-hal-mock pins, whose
//! expectations are the exact sequence of levels (and `done()` checks that
//! nothing expected was left out); the input gate inside a real camera
//! pipeline on the demo clip, where it decides which frames are inferred;
//! and the character-device errors this machine can produce (it has no GPIO
//! chip): a missing chip, a device that is not one, no permission.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
use embedded_hal_mock::eh1::MockError;

use edgeclip::gpio::input::{InputGate, InputState};
use edgeclip::gpio::output::EventOutput;
use edgeclip::gpio::{Chip, InputConfig, LabelFilter, Line, LineSpec, OutputConfig, OutputMode};
use edgeclip::pipeline::detect::{EndReason, Event, EventKind};

use crate::support::paths::demo_model_dir;
use crate::support::timing::patience;

fn event(kind: EventKind, label: &str) -> Event {
    Event {
        zone: None,
        kind,
        label: label.to_string(),
        score: 0.9,
        peak: 0.9,
        start_frame: 0,
        started: SystemTime::UNIX_EPOCH,
        frame: 0,
        duration: Duration::ZERO,
        reason: (kind == EventKind::End).then_some(EndReason::Gone),
    }
}

fn start(label: &str) -> Event {
    event(EventKind::Start, label)
}

fn end(label: &str) -> Event {
    event(EventKind::End, label)
}

fn simulated_line() -> LineSpec {
    LineSpec { chip: Chip::Simulated("/nowhere".into()), line: Line::Offset(17) }
}

fn output_config(labels: &[&str], mode: OutputMode, active_low: bool) -> OutputConfig {
    OutputConfig {
        line: simulated_line(),
        labels: LabelFilter::Only(labels.iter().map(|l| l.to_string()).collect()),
        mode,
        active_low,
    }
}

const LEVEL: OutputMode = OutputMode::Level { off_delay: Duration::ZERO };

fn set(level: State) -> Transaction {
    Transaction::set(level)
}

/// An output made from `expected` transitions; the mock's clone is kept to
/// check them.
fn output(config: OutputConfig, expected: &[Transaction]) -> (EventOutput<Mock>, Mock) {
    let pin = Mock::new(expected);
    let check = pin.clone();
    (EventOutput::new(pin, config, "test output".into()).unwrap(), check)
}

#[test]
fn a_level_output_is_active_while_one_of_its_labels_events_is() {
    use State::{High, Low};
    let (mut out, mut pin) = output(
        output_config(&["person", "dog"], LEVEL, false),
        // Safe level at start; one rise and one fall per stretch of
        // overlapping events; safe level again at shutdown.
        &[set(Low), set(High), set(Low), set(High), set(Low), set(Low)],
    );
    let t = Instant::now();
    out.event(&start("cat"), t); // not followed: no write
    out.event(&start("person"), t); // High
    assert!(out.is_active());
    out.event(&start("dog"), t); // already High: no write
    out.event(&end("person"), t); // the dog's event is still active
    assert!(out.is_active());
    out.event(&end("cat"), t);
    out.event(&end("dog"), t); // Low
    assert!(!out.is_active());
    out.tick(t + Duration::from_secs(5)); // nothing due
    out.event(&start("dog"), t); // High
    out.event(&end("dog"), t); // Low
    out.shutdown(); // Low, written again: the last word is the safe level
    out.event(&start("dog"), t); // after shutdown: ignored
    out.tick(t);
    pin.done();
    assert_eq!(out.errors(), 0);
    drop(out); // already shut down: no further write
}

#[test]
fn active_low_inverts_every_level_including_the_safe_one() {
    use State::{High, Low};
    let (mut out, mut pin) =
        output(output_config(&["person"], LEVEL, true), &[set(High), set(Low), set(High), set(High)]);
    let t = Instant::now();
    out.event(&start("person"), t);
    out.event(&end("person"), t);
    out.shutdown();
    pin.done();
}

#[test]
fn shutdown_during_an_event_returns_the_line_to_its_safe_level() {
    use State::{High, Low};
    let (mut out, mut pin) = output(output_config(&["person"], LEVEL, true), &[set(High), set(Low), set(High)]);
    out.event(&start("person"), Instant::now());
    out.shutdown();
    pin.done();
    // Dropping an output that was not shut down sets the safe level too.
    let (mut out, mut pin) = output(output_config(&["person"], LEVEL, false), &[set(Low), set(High), set(Low)]);
    out.event(&start("person"), Instant::now());
    drop(out);
    pin.done();
}

#[test]
fn a_pulse_output_is_active_for_its_length_and_a_start_during_it_restarts_it() {
    use State::{High, Low};
    let second = Duration::from_secs(1);
    let (mut out, mut pin) = output(
        OutputConfig { labels: LabelFilter::Any, ..output_config(&[], OutputMode::Pulse { length: second }, false) },
        &[set(Low), set(High), set(Low), set(High), set(Low), set(Low)],
    );
    let t0 = Instant::now();
    out.event(&start("van"), t0); // High until t0 + 1 s
    out.event(&end("van"), t0 + second / 10); // an end does not cut a pulse
    out.tick(t0 + second / 2);
    out.event(&start("person"), t0 + second * 8 / 10); // now until t0 + 1.8 s
    out.tick(t0 + second * 15 / 10);
    assert!(out.is_active());
    out.tick(t0 + second * 18 / 10); // Low
    assert!(!out.is_active());
    out.tick(t0 + second * 3);
    out.event(&start("person"), t0 + second * 4); // High until 5 s
    out.tick(t0 + second * 5); // Low
    out.shutdown(); // Low
    pin.done();
}

#[test]
fn an_off_delay_keeps_a_level_output_on_and_a_new_event_in_it_keeps_it_on() {
    use State::{High, Low};
    let delay = Duration::from_secs(30);
    let (mut out, mut pin) = output(
        output_config(&["person"], OutputMode::Level { off_delay: delay }, false),
        &[set(Low), set(High), set(Low), set(Low)],
    );
    let t0 = Instant::now();
    out.event(&start("person"), t0); // High
    out.event(&end("person"), t0 + delay); // stays High until 60 s
    out.tick(t0 + delay * 3 / 2);
    out.event(&start("person"), t0 + delay * 3 / 2); // still High; the delay is off
    out.event(&end("person"), t0 + delay * 2); // until 90 s
    out.tick(t0 + delay * 5 / 2);
    assert!(out.is_active());
    out.tick(t0 + delay * 3); // Low
    assert!(!out.is_active());
    out.shutdown();
    pin.done();
}

#[test]
fn a_failed_write_is_counted_and_retried_at_the_next_tick() {
    use State::{High, Low};
    let broken = MockError::Io(std::io::ErrorKind::Other);
    let (mut out, mut pin) = output(
        output_config(&["person"], LEVEL, false),
        &[set(Low), set(High).with_error(broken.clone()), set(High), set(Low).with_error(broken), set(Low), set(Low)],
    );
    let t = Instant::now();
    out.event(&start("person"), t); // fails
    assert_eq!(out.errors(), 1);
    out.tick(t); // retried: High
    out.tick(t); // nothing to do
    out.event(&end("person"), t); // fails
    out.tick(t); // retried: Low
    out.shutdown();
    pin.done();
    assert_eq!(out.errors(), 2);
}

fn input_config(active_low: bool, hold: Duration) -> InputConfig {
    InputConfig { line: simulated_line(), active_low, hold }
}

#[test]
fn the_input_gate_is_open_while_the_sensor_is_active_and_for_its_hold() {
    use State::{High, Low};
    let hold = Duration::from_secs(10);
    let mut pin = Mock::new(&[
        Transaction::get(Low),
        Transaction::get(High),
        Transaction::get(Low),
        Transaction::get(Low),
        Transaction::get(High).with_error(MockError::Io(std::io::ErrorKind::Other)),
        Transaction::get(Low),
    ]);
    let mut gate = InputGate::new(pin.clone(), &input_config(false, hold), "test input".into());
    let t0 = Instant::now();
    assert_eq!(gate.check(t0), InputState::Idle, "not active since the start");
    assert_eq!(gate.check(t0 + hold), InputState::Active);
    assert_eq!(gate.check(t0 + hold * 19 / 10), InputState::Holding);
    assert_eq!(gate.check(t0 + hold * 2), InputState::Idle, "the hold is over");
    let unreadable = gate.check(t0 + hold * 3);
    assert_eq!(unreadable, InputState::Unreadable);
    assert!(unreadable.open(), "a broken sensor does not blind the camera");
    assert_eq!(gate.errors(), 1);
    assert!(!gate.check(t0 + hold * 4).open());
    pin.done();
}

#[test]
fn an_active_low_input_is_active_when_the_line_is_low() {
    use State::{High, Low};
    let mut pin = Mock::new(&[Transaction::get(High), Transaction::get(Low), Transaction::get(High)]);
    let mut gate = InputGate::new(pin.clone(), &input_config(true, Duration::ZERO), "test input".into());
    let t0 = Instant::now();
    assert_eq!(gate.check(t0), InputState::Idle);
    assert_eq!(gate.check(t0), InputState::Active);
    assert_eq!(gate.check(t0), InputState::Idle, "no hold");
    pin.done();
}

/// The input gate in a camera's pipeline (the demo clip through the demo
/// model: under an emulator, the armv7 run skips these).
mod pipeline {
    use super::*;
    use crate::support::demo::{clip, clip_frames, truth_visits, Visit, END_FRAMES, SLACK, START_FRAMES};

    /// One camera's pipeline, in process, on the demo clip replayed frame by
    /// frame (every frame reaches the inference thread), with an input whose
    /// level for frame `i` is `script[i]`. Returns the events and the frame
    /// counters.
    fn run_gated_camera(script: &[State]) -> (Vec<Event>, edgeclip::daemon::stats::CounterSnapshot) {
        use edgeclip::daemon::camera::{Camera, CameraReport, InferenceSetup};
        use edgeclip::daemon::camera_labels::{CameraLabels, LabelsOrigin};
        use edgeclip::gpio::AnyInputPin;
        use edgeclip::model::encode::{EncoderOptions, ImageEncoder};
        use edgeclip::pipeline::detect::DetectorOptions;
        use edgeclip::pipeline::inference::InferenceOptions;

        let bundle = Arc::new(edgeclip::model::bundle::Bundle::load(demo_model_dir()).unwrap());
        let encoder_options = EncoderOptions { threads: 1, fold_constants: true };
        let encoder = Arc::new(ImageEncoder::load(&bundle, &encoder_options).unwrap());
        let labels_path = demo_model_dir().join("labels.txt");
        let text = std::fs::read_to_string(&labels_path).unwrap();
        let options = edgeclip::labels::resolve::LabelOptions {
            cache_dir: None,
            encoder: encoder_options,
            templates: None,
            ..Default::default()
        };
        let (labels, _) = CameraLabels::load(&bundle, LabelsOrigin::File(labels_path), &text, 0.5, &options).unwrap();

        let expected: Vec<Transaction> = script.iter().map(|s| Transaction::get(*s)).collect();
        let mut pin = Mock::new(&expected);
        let input = InputGate::new(
            AnyInputPin::new(pin.clone()),
            &input_config(false, Duration::ZERO),
            "camera 'demo': input".into(),
        );
        let spec: edgeclip::capture::SourceSpec = format!("file:{}", clip().display()).parse().unwrap();
        let (tx, rx) = mpsc::channel();
        let setup = InferenceSetup {
            bundle,
            encoder,
            options: InferenceOptions {
                detector: DetectorOptions {
                    start_frames: START_FRAMES as u32,
                    end_frames: END_FRAMES as u32,
                    min_duration: Duration::ZERO,
                    ..DetectorOptions::default()
                },
                motion: None,
                max_fps: None,
            },
            input: Some(input),
            live: None,
            zones: vec![edgeclip::config::ZoneConfig {
                name: None,
                rect: edgeclip::pipeline::zone::Rect::WHOLE,
                labels: "labels.txt".into(),
                threshold: 0.5,
            }],
            scores_interval: None,
            keyframes: None,
            out: tx,
        };
        let camera =
            Camera::start("demo", spec.open_lazy().unwrap(), spec.to_string(), true, vec![labels], setup, true)
                .unwrap();
        let mut events = Vec::new();
        loop {
            match rx.recv_timeout(patience(Duration::from_secs(120))).expect("the camera finishes the clip") {
                CameraReport::Events { events: mine, .. } => events.extend(mine),
                CameraReport::Scores(_) => unreachable!("scores_interval is None"),
                CameraReport::Example { .. } => unreachable!("no example was asked for"),
                CameraReport::Keyframe { .. } => unreachable!("keyframes is None"),
                CameraReport::Finished { source_ended, .. } => {
                    assert!(source_ended);
                    break;
                }
            }
        }
        pin.done(); // the line was read exactly once per frame
        (events, camera.shared.counters.snapshot())
    }

    /// The clip's frame count and its visits (label, frames partly in view,
    /// frames wholly in view).
    fn clip_and_visits() -> (usize, Vec<Visit>) {
        (clip_frames().len(), truth_visits())
    }

    #[test]
    fn an_idle_input_skips_frames_so_a_visit_in_them_gives_no_event() {
        let (frames, visits) = clip_and_visits();
        let ((first, (_, first_gone), _), (second, (second_from, _), _)) = (&visits[0], &visits[1]);
        // Idle through the first visit, active from a few frames before the second.
        let active_from = (first_gone + 1).max(second_from.saturating_sub(5)) as usize;
        assert!(active_from < *second_from as usize);
        let script: Vec<State> = (0..frames).map(|i| if i < active_from { State::Low } else { State::High }).collect();
        let (events, counts) = run_gated_camera(&script);

        let labels: Vec<(&str, EventKind)> = events.iter().map(|e| (e.label.as_str(), e.kind)).collect();
        assert!(!labels.iter().any(|(l, _)| l == first), "the first visit was not inferred: {labels:?}");
        let second_events: Vec<EventKind> = labels.iter().filter(|(l, _)| l == second).map(|(_, k)| *k).collect();
        assert_eq!(second_events, [EventKind::Start, EventKind::End], "{labels:?}");
        assert_eq!(counts.input_skipped, active_from as u64);
        assert_eq!(counts.inferred, (frames - active_from) as u64);
        assert_eq!(counts.input_errors, 0);
    }

    #[test]
    fn an_active_event_keeps_frames_inferred_until_it_ends_after_the_input_went_idle() {
        let (frames, visits) = clip_and_visits();
        let (first, (_, first_gone), (wholly_from, wholly_until)) = &visits[0];
        // Active until the first visit's event has surely started (the daemon
        // tests' bound, plus one), then idle while the shape is still in view.
        let idle_from = (wholly_from + START_FRAMES + SLACK) as usize;
        assert!(idle_from < *wholly_until as usize);
        let script: Vec<State> = (0..frames).map(|i| if i < idle_from { State::High } else { State::Low }).collect();
        let (events, counts) = run_gated_camera(&script);

        let kinds: Vec<(&str, EventKind, u64)> = events.iter().map(|e| (e.label.as_str(), e.kind, e.frame)).collect();
        assert_eq!(kinds.len(), 2, "one event, started and ended, nothing after: {kinds:?}");
        assert_eq!((kinds[0].0, kinds[0].1), (first.as_str(), EventKind::Start));
        assert_eq!((kinds[1].0, kinds[1].1), (first.as_str(), EventKind::End));
        assert_eq!(events[1].reason, Some(EndReason::Gone), "it ended because the label left, not the sensor");
        let end_frame = kinds[1].2;
        assert!(
            (wholly_until + 1..=first_gone + END_FRAMES + SLACK).contains(&end_frame),
            "ended at frame {end_frame}; wholly in view until {wholly_until}, partly until {first_gone}"
        );
        // Every frame up to the end was inferred, none after.
        assert_eq!(counts.inferred, end_frame + 1);
        assert_eq!(counts.input_skipped, frames as u64 - end_frame - 1);
    }
}

#[cfg(feature = "gpio")]
mod character_device {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Stdio;

    use edgeclip::gpio::{open_output, Chip, GpioErrorKind, Line, LineSpec};

    use crate::support::process::{command_under_runner, edgeclip_command, test_runner, SpawnWatched};

    /// A chip the daemon's user may not open stops `edgeclip run` before
    /// anything else, with the line, the camera and what to do. Run as
    /// `nobody` when the tests run as root (who may open anything), against
    /// a root-only file: the permission check comes before the device is
    /// looked at.
    #[test]
    fn a_chip_the_user_may_not_open_stops_the_start_and_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let chip = dir.path().join("gpiochip-locked");
        std::fs::write(&chip, "").unwrap();
        std::fs::set_permissions(&chip, std::fs::Permissions::from_mode(0o000)).unwrap();
        let config = dir.path().join("edgeclip.toml");
        std::fs::write(
            &config,
            format!(
                "[cameras.front]\nsource = \"v4l2:/dev/video0\"\nlabels = \"labels.txt\"\n\
                 [[cameras.front.outputs]]\nline = 17\nchip = \"{}\"\nlabels = [\"person\"]\n",
                chip.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let as_root = unsafe { libc::geteuid() } == 0;
        let runner = test_runner();
        let mut command = if as_root {
            let mut words: Vec<String> =
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"].map(String::from).to_vec();
            words.extend(runner.into_iter().flatten());
            // A copy `nobody` may read: the target folder can be under root's
            // home (0700), which an emulator run as `nobody` cannot open.
            let binary = dir.path().join("edgeclip");
            std::fs::copy(env!("CARGO_BIN_EXE_edgeclip"), &binary).unwrap();
            command_under_runner(&binary, Some(&words))
        } else {
            edgeclip_command()
        };
        let out = command.args(["run", "--config"]).arg(&config).stdin(Stdio::null()).output_watched().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let uid = if as_root { 65534 } else { unsafe { libc::geteuid() } };
        let expected = format!(
            "error: camera 'front': outputs[0] (line 17 of {chip}): cannot open GPIO chip '{chip}': permission \
             denied for uid {uid}; the user running edgeclip needs read and write access to /dev/gpiochip*: add it \
             to the 'gpio' group (`sudo usermod -aG gpio edgeclip`, then restart the service) or install the udev \
             rule in the GPIO section of /usr/share/doc/edgeclip/boards/README.md",
            chip = chip.display()
        );
        assert!(stderr.lines().any(|l| l == expected), "expected:\n{expected}\ngot:\n{stderr}");
    }

    fn open(chip: &str) -> edgeclip::gpio::GpioError {
        let spec = LineSpec { chip: Chip::Device(chip.into()), line: Line::Offset(17) };
        open_output(&spec, false).err().expect("no such chip here")
    }

    #[test]
    fn a_missing_chip_is_named_with_the_chips_there_are() {
        let e = open("/dev/gpiochip97");
        assert_eq!(e.kind, GpioErrorKind::NoChip, "{e}");
        assert!(e.message.starts_with("GPIO chip '/dev/gpiochip97' does not exist; GPIO chips here: "), "{e}");
        if edgeclip::gpio::linux::chip_paths().is_empty() {
            assert!(
                e.message
                    .ends_with("none: this machine has no GPIO chip (in a container, pass the device with --device)"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_device_that_is_not_a_chip_is_refused() {
        let e = open("/dev/null");
        assert_eq!(e.kind, GpioErrorKind::NotAChip, "{e}");
        assert!(e.message.starts_with("'/dev/null' is not a GPIO chip ("), "{e}");
    }

    #[test]
    fn a_line_by_name_on_no_chip_says_how_to_list_them() {
        let spec = LineSpec { chip: Chip::AnyWithName, line: Line::Name("GPIO17".into()) };
        if !edgeclip::gpio::linux::chip_paths().is_empty() {
            return; // a machine with GPIO may well have a GPIO17
        }
        let e = open_output(&spec, false).err().unwrap();
        assert_eq!(e.kind, GpioErrorKind::NoSuchLine, "{e}");
        assert!(e.message.starts_with("no GPIO chip has a line named 'GPIO17' (GPIO chips here: none"), "{e}");
    }
}
