//! Which matrix-multiply kernels tract chooses for our int8 encoders on each
//! architecture, and that the choice does not change the answer.
//!
//! An int8 encoder is only worth shipping if tract runs it with integer
//! kernels: on aarch64 `arm64simd_mmm_i32_8x8` (SMLAL, every NEON core) or
//! `arm64simd_mmm_i32_8x8_dot` (SDOT, Cortex-A76/A78: Pi 5, Jetson Orin), on
//! armv7 `armv7neon_mmm_i32_8x4`. A wrong choice would not fail any
//! numerical test, only make the board slow, so it is checked by name here.
//!
//! When the suite runs under qemu (`cargo test --target
//! aarch64-unknown-linux-musl`), the test also starts `edgeclip` under
//! several emulated cores, one for each kind of board, and checks that each
//! picks its own kernels and that all give the same labels and embeddings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgeclip::capture::mjpeg::MjpegFrames;
use edgeclip::model::bundle::Bundle;
use edgeclip::model::encode::{EncoderOptions, ImageEncoder};

use crate::support::golden::{cosine, max_abs_diff};
use crate::support::paths::{bundle_dir, demo_model_dir as demo_model};
use crate::support::process::{command_under_runner, test_runner, SpawnWatched};

/// Kernel name → number of plan nodes using it, for a bundle's image encoder.
fn image_kernels(bundle: &Path) -> BTreeMap<String, usize> {
    let bundle = Bundle::load(bundle).unwrap();
    ImageEncoder::load(&bundle, &EncoderOptions::default()).unwrap().report.kernels
}

/// The integer kernels of a report, which must exist: every weight MatMul of
/// our int8 encoders is quantized.
fn integer_kernels(kernels: &BTreeMap<String, usize>) -> Vec<&str> {
    let integer: Vec<&str> = kernels.keys().map(String::as_str).filter(|k| k.contains("_i32_")).collect();
    assert!(!integer.is_empty(), "no integer kernel chosen: {kernels:?}");
    integer
}

/// Whether this aarch64 CPU has the SDOT instruction (FEAT_DotProd), as the
/// kernel's auxiliary vector says; tract asks the same question.
#[cfg(target_arch = "aarch64")]
fn cpu_has_dotprod() -> bool {
    // HWCAP_ASIMDDP, bit 20 of AT_HWCAP on aarch64 Linux (asm/hwcap.h).
    const HWCAP_ASIMDDP: libc::c_ulong = 1 << 20;
    // SAFETY: getauxval reads the process's auxiliary vector; no pointers.
    unsafe { libc::getauxval(libc::AT_HWCAP) & HWCAP_ASIMDDP != 0 }
}

#[test]
fn int8_encoders_use_this_architectures_integer_kernels() {
    for bundle in [bundle_dir("tiny-int8"), demo_model()] {
        let kernels = image_kernels(&bundle);
        eprintln!("{}: {kernels:?}", bundle.display());
        let integer = integer_kernels(&kernels);
        #[cfg(target_arch = "aarch64")]
        {
            assert!(integer.iter().all(|k| k.starts_with("arm64simd_mmm_i32_")), "{kernels:?}");
            // The 8x8 kernel (every MatMul with more than one column) is the
            // SDOT one exactly when the CPU has SDOT.
            let tile = if cpu_has_dotprod() { "arm64simd_mmm_i32_8x8_dot" } else { "arm64simd_mmm_i32_8x8" };
            assert!(kernels.contains_key(tile), "{tile} not chosen (dotprod: {}): {kernels:?}", cpu_has_dotprod());
        }
        #[cfg(target_arch = "arm")]
        {
            assert!(integer.iter().all(|k| k.starts_with("armv7neon_mmm_i32_")), "{kernels:?}");
            assert!(kernels.contains_key("armv7neon_mmm_i32_8x4"), "{kernels:?}");
        }
        #[cfg(target_arch = "x86_64")]
        {
            // AVX2 or AVX-512 (VNNI) integer kernels, never a portable one.
            assert!(integer.iter().all(|k| k.starts_with("avx") || k.starts_with("fma")), "{kernels:?}");
        }
    }
}

/// One emulated board core: qemu's `-cpu` name, the `TRACT_CPU_AARCH64_KIND`
/// that a board with it would report (qemu-user shows the host's
/// /proc/cpuinfo, where tract cannot find an ARM part number), and the int8
/// tile kernel it must get.
struct EmulatedCore {
    qemu_cpu: &'static str,
    tract_kind: &'static str,
    int8_tile: &'static str,
}

const EMULATED_CORES: &[EmulatedCore] = &[
    // Raspberry Pi 3 and Zero 2 W.
    EmulatedCore { qemu_cpu: "cortex-a53", tract_kind: "a53", int8_tile: "arm64simd_mmm_i32_8x8" },
    // Raspberry Pi 4.
    EmulatedCore { qemu_cpu: "cortex-a72", tract_kind: "a72", int8_tile: "arm64simd_mmm_i32_8x8" },
    // Raspberry Pi 5 (Jetson Orin's Cortex-A78AE has SDOT too).
    EmulatedCore { qemu_cpu: "cortex-a76", tract_kind: "generic", int8_tile: "arm64simd_mmm_i32_8x8_dot" },
];

/// Demo-clip frames to classify under each core: one per shape and an
/// empty one (numbers from demo.truth.json).
const FRAMES: &[usize] = &[10, 40, 110, 180, 245, 310, 380];

#[test]
fn each_emulated_board_core_gets_its_kernels_and_the_same_answers() {
    let Some(runner) = test_runner() else {
        eprintln!("skipped: not running under an emulator (EDGECLIP_TEST_RUNNER is unset)");
        return;
    };
    if !runner[0].ends_with("qemu-aarch64") {
        eprintln!("skipped: the emulator is {:?}, not qemu-aarch64", runner[0]);
        return;
    }
    let frames_dir = tempfile::tempdir().unwrap();
    let frames = write_demo_frames(FRAMES, frames_dir.path());

    let mut answers: Vec<(&str, Vec<serde_json::Value>)> = Vec::new();
    for core in EMULATED_CORES {
        let qemu = [runner[0].clone(), "-cpu".to_string(), core.qemu_cpu.to_string()];
        let run = |args: &[&str], extra: &[PathBuf]| {
            let out = command_under_runner(Path::new(env!("CARGO_BIN_EXE_edgeclip")), Some(&qemu))
                .env("TRACT_CPU_AARCH64_KIND", core.tract_kind)
                .args(args)
                .arg("--model")
                .arg(demo_model())
                .args(extra)
                .output_watched()
                .unwrap();
            assert!(out.status.success(), "{}: {}", core.qemu_cpu, String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };

        // `edgeclip info` names the kernels, as a user on the board would see them.
        let info = run(&["info"], &[]);
        let kernels_line = info.lines().find(|l| l.trim_start().starts_with("kernels")).unwrap();
        eprintln!("{}: {kernels_line}", core.qemu_cpu);
        let named: Vec<&str> = kernels_line.split([' ', ',']).collect();
        assert!(named.contains(&core.int8_tile), "{}: {} not in {kernels_line}", core.qemu_cpu, core.int8_tile);
        let other_tile =
            if core.int8_tile.ends_with("_dot") { "arm64simd_mmm_i32_8x8" } else { "arm64simd_mmm_i32_8x8_dot" };
        assert!(!named.contains(&other_tile), "{}: {other_tile} in {kernels_line}", core.qemu_cpu);

        let stdout = run(&["classify", "--json", "--embedding", "--top", "1"], &frames);
        let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), FRAMES.len(), "{stdout}");
        answers.push((core.qemu_cpu, lines));
    }

    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(demo_model().join("demo.truth.json")).unwrap()).unwrap();
    let (first_cpu, first) = &answers[0];
    for (cpu, lines) in &answers {
        for ((line, reference), &frame) in lines.iter().zip(first).zip(FRAMES) {
            let label = line["top"][0]["label"].as_str().unwrap();
            assert_eq!(label, expected_label(&truth, frame), "{cpu}, frame {frame}");
            let embedding = floats(&line["embedding"]);
            let reference = floats(&reference["embedding"]);
            // SMLAL and SDOT both sum the same int8 products exactly in
            // i32, so only the f32 kernels (whose tiles differ between the
            // A53 and the generic kind) can round differently: 1e-4 allows
            // that and nothing more.
            let diff = max_abs_diff(&embedding, &reference);
            eprintln!("{cpu} vs {first_cpu}, frame {frame}: {label}, max abs diff {diff:.2e}");
            assert!(diff <= 1e-4 && cosine(&embedding, &reference) >= 0.99999, "{cpu} vs {first_cpu}, frame {frame}");
        }
    }
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    value.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// Frames `numbers` of the demo clip, written as JPEG files (the camera's own bytes).
fn write_demo_frames(numbers: &[usize], dir: &Path) -> Vec<PathBuf> {
    let clip = std::fs::read(demo_model().join("demo.mjpeg")).unwrap();
    let frames: Vec<&[u8]> = MjpegFrames::new(&clip).map(|f| f.unwrap().jpeg).collect();
    numbers
        .iter()
        .map(|&n| {
            let frame = frames.get(n).unwrap_or_else(|| panic!("the clip has no frame {n}"));
            let path = dir.join(format!("frame-{n:03}.jpg"));
            std::fs::write(&path, frame).unwrap();
            path
        })
        .collect()
}

/// The label demo.truth.json gives frame `n`: the one shape wholly in view,
/// or "empty" (FRAMES has no frame with a shape partly in view).
fn expected_label(truth: &serde_json::Value, n: usize) -> &str {
    let in_view = truth["per_frame"][n].as_array().unwrap_or_else(|| panic!("demo.truth.json has no frame {n}"));
    assert!(truth["per_frame_partial"][n].as_array().unwrap().is_empty(), "frame {n} has a shape partly in view");
    match in_view.as_slice() {
        [] => "empty",
        [label] => label.as_str().unwrap(),
        more => panic!("frame {n} has {} shapes in view", more.len()),
    }
}
