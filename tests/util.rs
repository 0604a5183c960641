//! Shared helpers: paths to the committed test data and golden-file readers.

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The repository's root (the package's manifest folder).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled demo model, `models/tiny-shapes`.
pub fn demo_model_dir() -> PathBuf {
    repo().join("models/tiny-shapes")
}

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn bundle_dir(name: &str) -> PathBuf {
    data_dir().join("bundles").join(name)
}

pub fn golden_dir() -> PathBuf {
    data_dir().join("golden")
}

/// The PNG sample images that have golden files, by stem.
pub fn golden_images() -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("manifest.json")).unwrap()).unwrap();
    let mut stems: Vec<String> = manifest["files"]
        .as_array()
        .expect("manifest.json has a 'files' array")
        .iter()
        .filter_map(|f| f["file"].as_str()?.strip_suffix(".pixel_values.f32").map(str::to_string))
        .collect();
    stems.sort();
    assert!(stems.len() >= 4, "expected at least 4 golden images, found {stems:?}");
    stems
}

/// Reads a raw little-endian f32 golden file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read golden file {}: {e}", path.display()));
    assert_eq!(bytes.len() % 4, 0, "{} is not a whole number of f32", path.display());
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    (dot / (na * nb)) as f32
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Copies a directory (flat) into a fresh temporary directory.
pub fn copy_dir_to_temp(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// Counts heap allocations made by this thread while `f` runs (the test
/// binary's global allocator counts per thread, so parallel tests do not
/// disturb each other).
pub fn count_allocations(f: impl FnOnce()) -> u64 {
    let before = counting::allocations();
    f();
    counting::allocations() - before
}

mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    pub fn allocations() -> u64 {
        ALLOCATIONS.with(|c| c.get())
    }

    struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;
}

/// Whether the suite runs under an emulator (qemu-user, see
/// [`edgeclip_command`]).
pub fn emulated() -> bool {
    test_runner().is_some()
}

/// How much longer than natively the tests wait under an emulator. qemu-user
/// runs our NEON inference about 70 times slower than this machine runs its
/// AVX code (the tiny model's image encoder: 1.2 s a frame instead of
/// 18 ms), and the plain logic (MQTT, signals, files) several times slower.
const EMULATED_PATIENCE: u32 = 20;

/// A timeout, or a bound on how long something may take: as given natively,
/// `EMULATED_PATIENCE` times longer under an emulator. The bounds the
/// daemon promises (a labels edit within 2 s, exit within 5 s of SIGTERM)
/// are held natively; under qemu they only catch a hang.
pub fn patience(natively: std::time::Duration) -> std::time::Duration {
    if emulated() {
        natively * EMULATED_PATIENCE
    } else {
        natively
    }
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
    fn spawn_watched(&mut self) -> std::io::Result<std::process::Child>;
    fn output_watched(&mut self) -> std::io::Result<std::process::Output>;
}

/// A fork exec's in milliseconds, even under qemu on a loaded machine.
const STUCK_FORK_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// How many times a command is started again after a stuck fork.
const STUCK_FORK_RETRIES: usize = 3;

impl SpawnWatched for Command {
    fn spawn_watched(&mut self) -> std::io::Result<std::process::Child> {
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

    fn output_watched(&mut self) -> std::io::Result<std::process::Output> {
        if !emulated() {
            return self.output();
        }
        // As `output` does by default.
        self.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        self.spawn_watched()?.wait_with_output()
    }
}

/// The watchdog's record of the children it killed (started once).
fn stuck_fork_watchdog() -> &'static std::sync::Mutex<std::collections::HashSet<u32>> {
    use std::collections::{HashMap, HashSet};
    use std::sync::{Mutex, OnceLock};
    use std::time::Instant;
    static KILLED: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();
    static STARTED: OnceLock<()> = OnceLock::new();
    let killed = KILLED.get_or_init(|| Mutex::new(HashSet::new()));
    STARTED.get_or_init(|| {
        std::thread::spawn(|| {
            let me = std::process::id().to_string();
            // A fork that has not exec'ed runs this binary with these
            // arguments, after the emulator's own words.
            let own: Vec<String> = std::env::args().collect();
            let mut first_seen: HashMap<u32, Instant> = HashMap::new();
            loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                let mut stuck_now = HashMap::new();
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
                    let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
                    // "pid (comm) state ppid ...": the fields after the last ')'.
                    let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
                    if ppid != Some(me.as_str()) {
                        continue;
                    }
                    let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
                    let words: Vec<String> =
                        cmdline.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
                    if words.len() > own.len() && words.ends_with(&own) {
                        stuck_now.insert(pid, first_seen.get(&pid).copied().unwrap_or_else(Instant::now));
                    }
                }
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
