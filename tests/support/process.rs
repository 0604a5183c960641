//! Starting processes from the tests: the edgeclip binary under test (under
//! the qemu runner when the suite is cross-compiled), and any command safe
//! from a qemu-user deadlock ([`SpawnWatched`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::timing::emulated;

/// A `Command` that starts the edgeclip binary under test.
///
/// Under `cargo test --target aarch64-unknown-linux-musl` (or armv7) the test
/// binary itself runs under qemu-user, and so must the edgeclip binary it
/// starts: this machine's kernel cannot execute an ARM file (no
/// binfmt_misc). The runner in .cargo/config.toml says how in
/// `EDGECLIP_TEST_RUNNER` (e.g. `qemu-aarch64 -cpu cortex-a72`); on the host
/// and on a real board it is unset and the binary starts directly.
pub fn edgeclip_command() -> Command {
    command_under_runner(Path::new(env!("CARGO_BIN_EXE_edgeclip")), test_runner().as_deref())
}

/// The words of `EDGECLIP_TEST_RUNNER`, if it is set and not empty.
pub fn test_runner() -> Option<Vec<String>> {
    let runner = std::env::var("EDGECLIP_TEST_RUNNER").ok()?;
    let words: Vec<String> = runner.split_whitespace().map(str::to_string).collect();
    (!words.is_empty()).then_some(words)
}

/// `program` started through `runner` (its words before the program), or
/// directly when there is none.
pub fn command_under_runner(program: &Path, runner: Option<&[String]>) -> Command {
    match runner {
        Some([emulator, args @ ..]) => {
            let mut command = Command::new(emulator);
            command.args(args).arg(program);
            command
        }
        _ => Command::new(program),
    }
}

/// Whether `program` is installed: an executable file of that name in a
/// folder of `PATH` (looked up rather than run, so that nothing is started
/// just to find out).
pub fn installed(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else { return false };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Starting processes from the tests, safe from a qemu-user deadlock.
///
/// Under qemu-user, a fork of this many-threaded test process now and then
/// deadlocks inside the emulator before it can exec (seen once in about
/// eight aarch64 runs: Mosquitto's restart in an MQTT test, after 9 minutes
/// of nothing, with the child on a futex). `Command::spawn` waits for the
/// exec, so the test hangs for good. Under an emulator these methods start
/// a watchdog that kills a child that is still this test binary, with this
/// process's own arguments, after [`STUCK_FORK_AFTER`], and start the
/// command again; natively they are `spawn` and `output`.
pub trait SpawnWatched {
    fn spawn_watched(&mut self) -> std::io::Result<Child>;
    fn output_watched(&mut self) -> std::io::Result<Output>;
}

/// A fork exec's in milliseconds, even under qemu on a loaded machine.
const STUCK_FORK_AFTER: Duration = Duration::from_secs(5);

/// How many times a command is started again after a stuck fork.
const STUCK_FORK_RETRIES: usize = 3;

/// How often the watchdog looks at this process's children.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(500);

impl SpawnWatched for Command {
    fn spawn_watched(&mut self) -> std::io::Result<Child> {
        if !emulated() {
            return self.spawn();
        }
        let killed = stuck_fork_watchdog();
        for _ in 0..STUCK_FORK_RETRIES {
            let mut child = self.spawn()?;
            if !killed.lock().unwrap().contains(&child.id()) {
                return Ok(child);
            }
            eprintln!("starting {self:?} again: its fork deadlocked in qemu-user and was killed");
            let _ = child.wait();
        }
        Err(std::io::Error::other(format!("{self:?}: the fork deadlocked in qemu-user {STUCK_FORK_RETRIES} times")))
    }

    fn output_watched(&mut self) -> std::io::Result<Output> {
        if !emulated() {
            return self.output();
        }
        // As `output` does by default.
        self.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        self.spawn_watched()?.wait_with_output()
    }
}

/// The watchdog's record of the children it killed (started once).
fn stuck_fork_watchdog() -> &'static Mutex<HashSet<u32>> {
    static KILLED: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();
    static STARTED: OnceLock<()> = OnceLock::new();
    let killed = KILLED.get_or_init(|| Mutex::new(HashSet::new()));
    STARTED.get_or_init(|| {
        std::thread::spawn(|| {
            let mut first_seen: HashMap<u32, Instant> = HashMap::new();
            loop {
                std::thread::sleep(WATCHDOG_PERIOD);
                let stuck_now: HashMap<u32, Instant> = unexeced_forks()
                    .into_iter()
                    .map(|pid| (pid, first_seen.get(&pid).copied().unwrap_or_else(Instant::now)))
                    .collect();
                for (pid, since) in &stuck_now {
                    if since.elapsed() >= STUCK_FORK_AFTER {
                        eprintln!("killing child {pid}: a fork of this test binary that has not exec'ed in {STUCK_FORK_AFTER:?} (qemu-user deadlock)");
                        KILLED.get().unwrap().lock().unwrap().insert(*pid);
                        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
                    }
                }
                first_seen = stuck_now;
            }
        });
    });
    killed
}

/// This process's children that still run this binary with these arguments
/// (after the emulator's own words): forks that have not exec'ed.
fn unexeced_forks() -> Vec<u32> {
    let me = std::process::id().to_string();
    let own: Vec<String> = std::env::args().collect();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": the fields after the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid != Some(me.as_str()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        if words.len() > own.len() && words.ends_with(&own) {
            found.push(pid);
        }
    }
    found
}
