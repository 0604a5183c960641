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
/// `EMULATED_PATIENCE` times longer under an emulator. The bounds the issues
/// set (a labels edit within 2 s, exit within 5 s of SIGTERM) are held
/// natively; under qemu they only catch a hang.
pub fn patience(natively: std::time::Duration) -> std::time::Duration {
    if emulated() {
        natively * EMULATED_PATIENCE
    } else {
        natively
    }
}
