//! What the integration tests share: where the test data is, starting
//! processes (under qemu too), a real Mosquitto, the one recording MQTT
//! subscriber, and the `edgeclip run` harness. Test modules use it as
//! `crate::support::<module>::...`.
//!
//! - [`paths`]: `repo`, `demo_model_dir`, `data_dir`, `bundle_dir`,
//!   `golden_dir`, `copy_dir_to_temp`.
//! - [`golden`]: `golden_images`, `read_f32`, `cosine`, `max_abs_diff`.
//! - [`allocations`]: `count_allocations` (the binary's counting allocator).
//! - [`process`]: `edgeclip_command` (the binary under test, under
//!   `EDGECLIP_TEST_RUNNER` when set), `test_runner`, `command_under_runner`,
//!   `installed`, and the [`process::SpawnWatched`] trait (`spawn_watched`,
//!   `output_watched`: spawn and output with a watchdog for forks that
//!   deadlock in qemu-user). Start every child process with these.
//! - [`timing`]: `emulated`, `patience` (a timeout stretched under an
//!   emulator), `wait_until` (poll with a deadline).
//! - [`mosquitto`]: `Mosquitto::start(MosquittoOptions)` on a free port,
//!   with `port`, `dir`, `log`, `freeze`, `kill`, `stop`, `restart`;
//!   `TlsListener`, `free_port`.
//! - [`subscriber`]: `Subscriber::connect(port, client_id, filters)` or
//!   `Subscriber::start(SubscriberOptions)` (credentials, TLS); the record
//!   so far: `all`, `wait_for(timeout, what, |messages| done)`; the stream:
//!   `next`, `receive`, `wait_for_payload`, `drain`; and `publish`,
//!   `connects`. `Received { topic, payload, retain }`. `retained` (what a
//!   new subscriber gets).
//! - [`demo`]: the demo clip and its truth: `clip`, `clip_frames`,
//!   `truth_visits` (`Visit`), `expected_events`, `positive_labels`,
//!   `check_against_truth`, and the detector's `START_FRAMES`, `END_FRAMES`,
//!   `SLACK`.
//! - [`daemon`]: `config(broker, source, extra)` for the camera `demo` of
//!   node `test`, with `broker_at(port)`, `replay_source()`,
//!   `looping_source(fps)`; `Daemon::start(&config)` with `labels_file`,
//!   `stdout_lines`, `stderr_text`, `running`, `signal`, `wait_exit`, `stop`
//!   (SIGTERM and wait), `wait_stderr`, `wait_printed`; readers of what a
//!   subscriber recorded from it: `events`, `last_json`, `last_values`,
//!   `has_message`, `wait_offline`, `printed_event`; topics
//!   `AVAILABILITY_TOPIC`, `STATS_TOPIC`, `EVENTS_TOPIC`.
//! - [`rtsp`]: `h264_clip(width, height)` (the demo clip as H.264, Matroska
//!   and Annex B, made once by ffmpeg), `ffmpeg_nv12` (the reference
//!   decode), and `RtspServer::start(clip, path, login)` (gst-rtsp-server on
//!   a free port) with `url`, `kill`, `restart`.
//! - [`http`]: `request(port, method, target, headers, body)`, a small
//!   HTTP/1.1 client (`Response` with `status`, `header`, `text`, `json`).
//! - [`browser`]: `Browser::start(width, height)`, headless Chromium through
//!   chromedriver: `goto`, `run` (a script in the page), `wait_for`,
//!   `screenshot`.
//! - [`proxy`]: `SubPathProxy::start(prefix, port)`, a reverse proxy that
//!   mounts a server at a sub-path, as nginx would.

pub mod allocations;
pub mod browser;
pub mod daemon;
pub mod demo;
pub mod golden;
pub mod http;
pub mod mosquitto;
pub mod paths;
pub mod process;
pub mod proxy;
pub mod rtsp;
pub mod subscriber;
pub mod timing;
