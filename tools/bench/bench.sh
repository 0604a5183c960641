#!/usr/bin/env bash
# The inference benchmark: edgeclip (tract) against onnxruntime on the same
# bundles, in one run, reported as ratios.
#
#   tools/bench/bench.sh [ITERS] [BUNDLE...]     default ITERS: 20 timed runs per row
#
# For each bundle (default: the demo model, the ViT-B/32-shaped fp32 and int8
# bundles, MobileCLIP2-S0 and TinyCLIP-8M int8, made by make_bench_bundles.sh
# when missing) and for 1 and 2 threads, times in edgeclip and onnxruntime:
# the image encoder, the text encoder (one prompt, tokenizer included) and the
# whole path of a 640x480 camera frame (JPEG decode, preprocessing, encoder,
# matching; the frames of models/tiny-shapes/demo.mjpeg). On a CPU with
# AVX-512 it also times edgeclip with AVX-512 turned off in tract
# (TRACT_CPU_ISA), the path of AVX2-only CPUs such as the Intel N100, against
# the same onnxruntime numbers. Raw JSON lines go to target/bench-results.jsonl,
# the table to stdout. The machine is shared and noisy: compare ratios within
# one run, not milliseconds across runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

iters=${1:-20}
shift || true
bundles=target/bench-bundles
results=target/bench-results.jsonl
frames=models/tiny-shapes/demo.mjpeg
if (($# > 0)); then
    models=("$@")
else
    tools/bench/make_bench_bundles.sh "$bundles"
    models=(models/tiny-shapes "$bundles"/vit-b-32-fp32 "$bundles"/vit-b-32-text-int8
        "$bundles"/mobileclip2-s0-int8 "$bundles"/tinyclip-8m-int8)
fi
PY=$(tools/python/venv.sh)
cargo build --release --locked --quiet
bin=target/release/edgeclip

# AVX-512 turned off in tract: the kernels an AVX2-only x86 CPU gets.
avx2_only="-avx512f,-avx512vnni,-avx512fp16"
has_avx512=$(grep -qw avx512f /proc/cpuinfo && echo 1 || echo 0)

cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "CPU: $cpu ($(nproc) cores); int8 kernels: $("$bin" info --model models/tiny-shapes | sed -n 's/^  kernels *//p' | grep -o '[a-z0-9_]*_i32_[0-9x_a-z]*' | sort -u | tr '\n' ' ')"
if ((has_avx512)); then
    echo "AVX2 path (TRACT_CPU_ISA=$avx2_only): $(TRACT_CPU_ISA=$avx2_only "$bin" info --model models/tiny-shapes | sed -n 's/^  kernels *//p' | grep -o '[a-z0-9_]*_i32_[0-9x_a-z]*' | sort -u | tr '\n' ' ')"
fi
echo

: > "$results"
for model in "${models[@]}"; do
    for threads in 1 2; do
        for stage in image-encoder text-encoder frame-640x480; do
            if [[ $stage == text-encoder ]] && ! grep -q '^\[text\]' "$model/model.toml"; then
                continue
            fi
            "$PY" tools/bench/bench_onnxruntime.py --bundle "$model" --stage "$stage" --frames "$frames" \
                --threads "$threads" --iters "$iters" >> "$results"
        done
        "$bin" bench --model "$model" --threads "$threads" --iters "$iters" --frames "$frames" >> "$results"
        if ((has_avx512)); then
            TRACT_CPU_ISA=$avx2_only "$bin" bench --model "$model" --threads "$threads" --iters "$iters" \
                --frames "$frames" | sed 's/"runtime":"edgeclip"/"runtime":"edgeclip-avx2"/' >> "$results"
        fi
    done
done

"$PY" - "$results" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def find(**kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
avx2 = any(r["runtime"] == "edgeclip-avx2" for r in rows)
head = f"{'bundle':24} {'stage':14} {'thr':>3} {'edgeclip ms':>11} {'onnxrt ms':>9} {'ratio':>6}"
if avx2:
    head += f" {'avx2 ms':>8} {'ratio':>6}"
print(head)
for r in rows:
    if r["runtime"] != "onnxruntime":
        continue
    name = r["bundle"]
    e = [x for x in rows if x["runtime"] == "edgeclip" and x["stage"] == r["stage"]
         and x["threads"] == r["threads"] and x["bundle"].rstrip("/").endswith(name)]
    if not e:
        continue
    line = (f"{name + ' ' + r['precision'].replace('-dynamic', ''):24} {r['stage']:14} {r['threads']:>3} "
            f"{e[0]['median_ms']:11.2f} {r['median_ms']:9.2f} {e[0]['median_ms'] / r['median_ms']:6.2f}")
    if avx2:
        a = [x for x in rows if x["runtime"] == "edgeclip-avx2" and x["stage"] == r["stage"]
             and x["threads"] == r["threads"] and x["bundle"].rstrip("/").endswith(name)]
        if a:
            line += f" {a[0]['median_ms']:8.2f} {a[0]['median_ms'] / r['median_ms']:6.2f}"
    print(line)
print()
print("ratio: edgeclip median / onnxruntime median, same bundle, stage and threads; below 1 is faster.")
if avx2:
    print("avx2: edgeclip with AVX-512 off in tract (what an AVX2-only CPU runs), against the same onnxruntime.")
PYEOF
