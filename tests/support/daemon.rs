//! `edgeclip run` as the end-to-end tests start it: a configuration on the
//! demo model for one camera, `demo`, of the node `test` against a broker;
//! the running daemon with its stdout lines and stderr collected; and
//! readers for what it published, as a [`Subscriber`] recorded it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::demo::{clip, END_FRAMES, START_FRAMES};
use super::paths::demo_model_dir;
use super::process::{edgeclip_command, SpawnWatched};
use super::subscriber::{Received, Subscriber};
use super::timing::patience;

/// Where the daemon of [`config`] says whether it is online.
pub const AVAILABILITY_TOPIC: &str = "edgeclip/test/availability";
/// Where it publishes its stats (every second).
pub const STATS_TOPIC: &str = "edgeclip/test/stats";
/// Where it publishes the camera's events.
pub const EVENTS_TOPIC: &str = "edgeclip/test/demo/events";

/// How long a SIGTERM'ed daemon may take to exit (natively) before
/// [`Daemon::stop`] calls it a hang.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the waits look again.
const POLL_PERIOD: Duration = Duration::from_millis(50);

/// A configuration on the demo model and labels (a copy in the daemon's
/// folder), with its store in that folder too, for the camera `demo`
/// reading `source`; `broker` is the
/// `[mqtt]` table's connection keys (e.g. [`broker_at`]), `extra` is
/// appended (more tables, or keys of the last one).
pub fn config(broker: &str, source: &str, extra: &str) -> String {
    format!(
        r#"node = "test"
[model]
path = "{model}"
threads = 1
cache_dir = "@DIR@/cache"
[mqtt]
{broker}
stats_interval_s = 1
commands = true
[store]
path = "@DIR@/history.db"
[logging]
print_events = true
[cameras.demo]
source = "{source}"
labels = "@DIR@/labels.txt"
max_fps = 0
[cameras.demo.detector]
start_frames = {START_FRAMES}
end_frames = {END_FRAMES}
min_duration_s = 0
{extra}
"#,
        model = demo_model_dir().display(),
    )
}

/// The `[mqtt]` key for a broker on 127.0.0.1:`port` (a [`super::mosquitto::Mosquitto`]).
pub fn broker_at(port: u16) -> String {
    format!("broker = \"mqtt://127.0.0.1:{port}\"")
}

/// A source that replays the clip once, as fast as it is inferred.
pub fn replay_source() -> String {
    format!("file:{}", clip().display())
}

/// A clip source that loops at the camera's pace, `fps`.
pub fn looping_source(fps: u32) -> String {
    format!("file:{}?fps={fps}&loop", clip().display())
}

/// A running `edgeclip run`, its stdout lines and stderr collected. Killed
/// when dropped.
pub struct Daemon {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

/// Collects `stream`'s lines into `into`, on a thread of its own.
fn collect(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            into.lock().unwrap().push(line);
        }
    });
}

impl Daemon {
    /// Writes `config` (with `@DIR@` replaced by a fresh folder, where a
    /// copy of the demo labels waits as `labels.txt`) and starts the daemon.
    pub fn start(config: &str) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    /// As [`Daemon::start`], with these environment variables set (e.g.
    /// `EDGECLIP_FAULT`, which a debug build obeys).
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(demo_model_dir().join("labels.txt"), dir.path().join("labels.txt")).unwrap();
        let config = config.replace("@DIR@", dir.path().to_str().unwrap());
        let path = dir.path().join("edgeclip.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = edgeclip_command()
            .args(["run", "--config"])
            .arg(&path)
            .env("EDGECLIP_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn_watched()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), Arc::clone(&stdout));
        collect(child.stderr.take().unwrap(), Arc::clone(&stderr));
        Daemon { child, stdout, stderr, dir }
    }

    /// The camera's labels file (a copy of the demo labels), to edit.
    pub fn labels_file(&self) -> PathBuf {
        self.dir.path().join("labels.txt")
    }

    /// What it printed so far, a line each (one per event, with
    /// `print_events`; see [`printed_event`]).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Its log so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has not exited yet.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends it `signal` (`libc::SIGTERM`, `libc::SIGHUP`, ...).
    pub fn signal(&self, signal: i32) {
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits until it exits; kills it and panics, with its log, after
    /// `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("edgeclip did not exit within {timeout:?}; stderr:\n{}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and its exit status (a panic if it takes [`patience`] with
    /// 10 s).
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(patience(STOP_TIMEOUT))
    }

    /// Waits until its log holds `needle`; panics, with the log, after
    /// `timeout`.
    pub fn wait_stderr(&self, timeout: Duration, needle: &str) {
        let deadline = Instant::now() + timeout;
        while !self.stderr_text().contains(needle) {
            assert!(Instant::now() < deadline, "no '{needle}' in stderr within {timeout:?}:\n{}", self.stderr_text());
            std::thread::sleep(POLL_PERIOD);
        }
    }

    /// Waits until it has printed `lines` lines; panics with `what` and its
    /// log after `timeout`.
    pub fn wait_printed(&self, lines: usize, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        while self.stdout.lock().unwrap().len() < lines {
            assert!(Instant::now() < deadline, "{what}: {}", self.stderr_text());
            std::thread::sleep(POLL_PERIOD);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An event line the daemon printed ("TIME CAMERA TYPE LABEL ..."): its type
/// and label.
pub fn printed_event(line: &str) -> (String, String) {
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[2].to_string(), fields[3].to_string())
}

/// Whether `messages` hold `payload` on `topic`.
pub fn has_message(messages: &[Received], topic: &str, payload: &[u8]) -> bool {
    messages.iter().any(|m| m.topic == topic && m.payload == payload)
}

/// Waits until the daemon of [`config`] has said it is offline (it exited)
/// and returns everything `sub` received.
pub fn wait_offline(sub: &Subscriber, timeout: Duration) -> Vec<Received> {
    sub.wait_for(timeout, "offline", |m| has_message(m, AVAILABILITY_TOPIC, b"offline"))
}

/// The JSON events on `topic`, in arrival order.
pub fn events(messages: &[Received], topic: &str) -> Vec<Value> {
    messages.iter().filter(|m| m.topic == topic).map(|m| serde_json::from_slice(&m.payload).unwrap()).collect()
}

/// The last JSON message on `topic` (e.g. [`STATS_TOPIC`]); panics if there
/// is none.
pub fn last_json(messages: &[Received], topic: &str) -> Value {
    let last = messages.iter().rfind(|m| m.topic == topic).unwrap_or_else(|| panic!("nothing on '{topic}'"));
    serde_json::from_slice(&last.payload).unwrap()
}

/// The last payload on each topic.
pub fn last_values(messages: &[Received]) -> BTreeMap<String, Vec<u8>> {
    messages.iter().map(|m| (m.topic.clone(), m.payload.clone())).collect()
}
