//! The `edgeclip` binary, run as a real process.

use crate::support::golden::{cosine, golden_images, read_f32};
use crate::support::paths::{bundle_dir, data_dir, golden_dir};
use crate::support::process::{edgeclip_command, SpawnWatched};

#[test]
fn classify_json_embedding_matches_onnxruntime() {
    for (bundle, min_cosine) in [("tiny-fp32", 0.999), ("tiny-int8", 0.995), ("tiny-qop", 0.995)] {
        let stems = golden_images();
        let images: Vec<_> = stems.iter().map(|s| data_dir().join("images").join(format!("{s}.png"))).collect();
        let out = edgeclip_command()
            .args(["classify", "--json", "--embedding", "--top", "3", "--model"])
            .arg(bundle_dir(bundle))
            .args(&images)
            .output_watched()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), stems.len(), "one JSON object per image:\n{stdout}");
        for (line, stem) in lines.iter().zip(&stems) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["image"].as_str().unwrap().ends_with(&format!("{stem}.png")));
            assert_eq!(v["top"].as_array().unwrap().len(), 3);
            let embedding: Vec<f32> =
                v["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            let norm: f32 = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "embedding is not L2-normalized: {norm}");
            // onnxruntime on the PIL-preprocessed image: this covers our
            // preprocessing and tract together.
            let want = read_f32(&golden_dir().join(format!("{stem}.{bundle}.image_embeds.f32")));
            let cos = cosine(&embedding, &want);
            eprintln!("{bundle} {stem}: end-to-end cosine {cos:.6}");
            assert!(cos >= min_cosine, "{bundle} {stem}: cosine {cos}");
        }
    }
}

#[test]
fn classify_text_output_and_jpeg() {
    let out = edgeclip_command()
        .args(["classify", "--top", "2", "--model"])
        .arg(bundle_dir("tiny-int8"))
        .arg(data_dir().join("images/smoke-640x480.jpg"))
        .output_watched()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].contains("smoke-640x480.jpg (640x480,"), "{stdout}");
    assert!(lines[1].contains("% ") && lines[1].contains("cos "), "{stdout}");
}

#[test]
fn errors_are_one_line_and_nonzero() {
    let out = edgeclip_command().args(["classify", "--model", "/nonexistent", "x.png"]).output_watched().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no model bundle at '/nonexistent/model.toml': No such file or directory (os error 2)\n"
    );

    // A missing image among good ones: the good ones print, the run fails.
    let good = data_dir().join("images").join(format!("{}.png", golden_images()[0]));
    let out = edgeclip_command()
        .args(["classify", "--json", "--model"])
        .arg(bundle_dir("tiny-int8"))
        .arg(&good)
        .arg("/nonexistent.png")
        .output_watched()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: cannot open image '/nonexistent.png'"), "{stderr}");
    assert!(stderr.ends_with("error: 1 of 2 images could not be classified\n"), "{stderr}");

    let out = edgeclip_command().args(["classify", "--top", "0", "x.png"]).output_watched().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: --top 0 is out of range: expected 1 to 16\n");
}

#[test]
fn labels_option_selects_and_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir("tiny-int8");
    // The bundle's first label alone, copied from its labels.txt.
    let first = std::fs::read_to_string(bundle.join("labels.txt"))
        .unwrap()
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap()
        .to_string();
    let one = dir.path().join("one.txt");
    std::fs::write(&one, format!("{first}\n")).unwrap();
    let image = data_dir().join("images").join(format!("{}.png", golden_images()[0]));
    let out = edgeclip_command()
        .args(["classify", "--json", "--model"])
        .arg(&bundle)
        .arg("--labels")
        .arg(&one)
        .arg(&image)
        .output_watched()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["top"].as_array().unwrap().len(), 1);
    assert_eq!(v["top"][0]["probability"].as_f64().unwrap(), 1.0);

    let unknown = dir.path().join("unknown.txt");
    std::fs::write(&unknown, "# mine\na purple giraffe\n").unwrap();
    let out = edgeclip_command()
        .args(["classify", "--model"])
        .arg(&bundle)
        .arg("--labels")
        .arg(&unknown)
        .arg(&image)
        .output_watched()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown.txt:2: label 'a purple giraffe' has no precomputed embedding in"), "{stderr}");
}

#[test]
fn info_describes_the_bundle() {
    let out = edgeclip_command().args(["info", "--model"]).arg(bundle_dir("tiny-int8")).output_watched().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    for want in [
        "precision   int8-dynamic",
        "MatMulInteger ",
        "kernels     ",
        "i32",
        "constant chains folded",
        "labels        ",
    ] {
        assert!(stdout.contains(want), "'{want}' missing from:\n{stdout}");
    }
    // Every DynamicQuantizeLinear of the file runs as the vectorized op.
    let ops = stdout.lines().find(|l| l.contains("operators")).unwrap();
    let in_file: usize =
        ops.split("DynamicQuantizeLinear ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    assert!(stdout.contains(&format!("{in_file} dynamic quantizations vectorized")), "{stdout}");
}

#[test]
fn bench_profile_names_the_slowest_nodes() {
    let out = edgeclip_command()
        .args(["bench", "--iters", "2", "--warmup", "1", "--profile", "--frames"])
        .arg(crate::support::paths::demo_model_dir().join("demo.mjpeg"))
        .arg("--model")
        .arg(bundle_dir("tiny-int8"))
        .output_watched()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stages: Vec<String> = stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["stage"].as_str().unwrap().to_string())
        .collect();
    // tiny-int8 has no text encoder: no text-encoder line.
    assert_eq!(stages, ["preprocess-640x480", "image-encoder", "frame-640x480"], "{stdout}");
    // The node lines: time, share, op (with its kernel for a product),
    // shapes and the node's name; the shares of the per-operator lines add
    // up to the whole run.
    let nodes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("# ") && l.contains(" -> ")).collect();
    assert!(!nodes.is_empty() && nodes.len() <= 20, "{stdout}");
    assert!(nodes.iter().any(|l| l.contains("OptMatMul (") && l.contains("_i32_")), "no int8 product:\n{stdout}");
    let shares: f64 = stdout
        .lines()
        .skip_while(|l| !l.starts_with("# per operator"))
        .skip(1)
        .map(|l| l.split('%').next().unwrap().rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!((shares - 100.0).abs() < 1.0, "per-operator shares add up to {shares}:\n{stdout}");
}
