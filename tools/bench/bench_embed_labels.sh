#!/usr/bin/env bash
# Time and peak memory of `edgeclip embed-labels` for 1 and 100 labels (two prompts each) with a
# ViT-B/32-shaped text encoder (random weights, int8, made on demand by make_bench_bundles.sh), and
# onnxruntime on the same text.onnx and prompts in the same run as the baseline (ratio = edgeclip /
# onnxruntime per prompt).
#
#   tools/bench/bench_embed_labels.sh [THREADS]      (default 1)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

threads=${1:-1}
tools/bench/make_bench_bundles.sh >/dev/null
cargo build --release --locked -q
PY=$(tools/python/venv.sh)
bundle=target/bench-bundles/vit-b-32-text-int8
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

words=(cat dog person car van bicycle parcel door window sofa garden street kitchen bird horse)
for n in 1 100; do
    for ((i = 0; i < n; i++)); do
        w=${words[i % ${#words[@]}]}
        echo "label $i: a photo of a $w number $i; a $w in front of a house, seen from a doorbell camera"
    done > "$work/labels-$n.txt"
    # %e wall seconds, %M peak resident set in KiB
    /usr/bin/time -f "time %e s, peak RSS %M KiB" -o "$work/time-$n" \
        target/release/edgeclip embed-labels --model "$bundle" --threads "$threads" "$work/labels-$n.txt" \
        -o "$work/out-$n.emb" > "$work/out-$n.txt"
    echo "edgeclip, $n labels: $(sed 's/.*embedded with [^ ]* //' "$work/out-$n.txt"); $(cat "$work/time-$n")"
done

ort_line=$("$PY" - "$bundle" "$work/labels-100.txt" "$threads" <<'PYEOF'
import sys, time, resource
sys.path.insert(0, "tools/python")
import bundlelib as bl
import onnxruntime as ort
bundle, labels_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.log_severity_level = 3
t0 = time.perf_counter()
s = ort.InferenceSession(f"{bundle}/text.onnx", so, providers=["CPUExecutionProvider"])
load = time.perf_counter() - t0
prompts = [p for lab in bl.parse_labels(open(labels_path).read()) for p in lab.prompts]
ids = [bl.tokenize(p) for p in prompts]
s.run(None, {"input_ids": ids[0]})
t0 = time.perf_counter()
for x in ids:
    s.run(None, {"input_ids": x})
per = (time.perf_counter() - t0) / len(ids)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"onnxruntime, 100 labels: loading {load*1000:.0f} ms, {per*1000:.1f} ms per prompt; "
      f"peak RSS {rss} KiB (Python included)|{per*1000:.3f}")
PYEOF
)
echo "${ort_line%|*}"
ours=$(sed -E 's/.*embedding ([0-9]+) ms.*/\1/' "$work/out-100.txt")
awk -v ours="$ours" -v ort="${ort_line#*|}" \
    'BEGIN { printf "per prompt: edgeclip %.2f ms, onnxruntime %.2f ms, ratio edgeclip / onnxruntime %.2f\n", ours / 200, ort, ours / 200 / ort }'
