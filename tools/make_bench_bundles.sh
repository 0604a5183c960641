#!/usr/bin/env bash
# Make the ViT-B/32-shaped benchmark bundles (random weights, OpenAI ViT-B/32 configuration,
# no text encoder) in fp32 and int8 (dynamic, MatMulInteger) into OUTDIR:
#
#   tools/make_bench_bundles.sh [OUTDIR]     default OUTDIR: target/bench-bundles
#
# gives OUTDIR/vit-b-32-fp32 and OUTDIR/vit-b-32-int8 (~350 MB and ~95 MB). A bundle already there
# (with its model.toml) is kept; delete it to remake it. Takes about a minute or two per bundle.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${1:-target/bench-bundles}
PY=$(tools/venv.sh)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

mkdir -p "$out"
for precision in fp32 int8; do
    name=vit-b-32-$precision
    dir=$out/$name
    if [[ -f "$dir/model.toml" ]]; then
        echo "make_bench_bundles.sh: $dir exists, kept" >&2
        continue
    fi
    rm -rf "$dir.partial"
    start=$(date +%s)
    "$PY" tools/export_clip.py --random vit-b-32 --seed 0 --no-text --precision "$precision" \
        --name "$name" --out "$dir.partial"
    mv "$dir.partial" "$dir"
    echo "make_bench_bundles.sh: $dir made in $(( $(date +%s) - start )) s" >&2
done
du -sh "$out"/vit-b-32-* >&2
