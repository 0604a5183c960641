#!/usr/bin/env bash
# The inference benchmark: edgeclip (tract) against onnxruntime on the same
# ViT-B/32-shaped bundles, in one run, reported as ratios.
#
#   tools/bench/bench.sh [ITERS]        default ITERS: 20 timed runs per row
#
# Makes the random-weight ViT-B/32 bundles (fp32 and int8) in
# target/bench-bundles if they are not there (tools/bench/make_bench_bundles.sh,
# needs the tools/.venv, about 2 minutes), builds edgeclip in release mode,
# then times, for each bundle: preprocessing of a 640x480 frame; the image
# encoder with and without the constant folding, on 1 and 2 threads; and
# onnxruntime on 1 and 2 threads. Raw JSON lines go to
# target/bench-results.jsonl, the table to stdout. The machine is shared and
# noisy: compare ratios within one run, not absolute numbers across runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

iters=${1:-20}
bundles=target/bench-bundles
results=target/bench-results.jsonl
tools/bench/make_bench_bundles.sh "$bundles"
PY=$(tools/python/venv.sh)
cargo build --release --locked --quiet
bin=target/release/edgeclip

: > "$results"
for precision in fp32 int8; do
    b=$bundles/vit-b-32-$precision
    for threads in 1 2; do
        {
            "$PY" tools/bench/bench_onnxruntime.py --bundle "$b" --threads "$threads" --iters "$iters"
            "$bin" bench --model "$b" --threads "$threads" --iters "$iters"
            "$bin" bench --model "$b" --threads "$threads" --iters "$iters" --no-fold
        } >> "$results"
    done
done

# The folding must not change what the encoder computes: classify the sample
# images with and without it and compare the embeddings.
for precision in fp32 int8; do
    for fold in "" --no-fold; do
        "$bin" classify --json --embedding $fold --model "$bundles/vit-b-32-$precision" \
            tests/data/images/*.png > "target/bench-embeddings-$precision${fold:+-nofold}.jsonl"
    done
done

"$PY" - "$results" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def find(**kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
ort = lambda p, t: find(runtime="onnxruntime", precision=p, threads=t)
pre = [r for r in rows if r.get("stage") == "preprocess-640x480"]
print(f"preprocess 640x480 -> 224x224 NCHW: median {min(r['median_ms'] for r in pre):.2f} ms (best of {len(pre)} runs' medians)")
print()
base = find(runtime="edgeclip", stage="image-encoder", precision="fp32", threads=1, fold=True)["median_ms"]
print(f"{'image encoder (ViT-B/32)':34} {'median ms':>10} {'p90 ms':>8} {'vs ORT same prec/threads':>25} {'vs edgeclip fp32 1t':>20}")
for p in ("fp32", "int8-dynamic"):
    for t in (1, 2):
        o = ort(p, t)
        for fold in (True, False):
            r = find(runtime="edgeclip", stage="image-encoder", precision=p, threads=t, fold=fold)
            name = f"edgeclip {p} {t}t {'folded' if fold else 'unfolded'}"
            print(f"{name:34} {r['median_ms']:10.1f} {r['p90_ms']:8.1f} {r['median_ms']/o['median_ms']:25.2f} {r['median_ms']/base:20.2f}")
        print(f"{'onnxruntime ' + p + ' ' + str(t) + 't':34} {o['median_ms']:10.1f} {o['p90_ms']:8.1f} {1.0:25.2f} {o['median_ms']/base:20.2f}")
print()
for p in ("fp32", "int8"):
    a = [json.loads(l)["embedding"] for l in open(f"target/bench-embeddings-{p}.jsonl")]
    b = [json.loads(l)["embedding"] for l in open(f"target/bench-embeddings-{p}-nofold.jsonl")]
    diff = max(abs(x - y) for ea, eb in zip(a, b) for x, y in zip(ea, eb))
    print(f"folding, {p}: max abs difference of the normalized embeddings over {len(a)} images: {diff:.3g}")
PYEOF
