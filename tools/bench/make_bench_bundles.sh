#!/usr/bin/env bash
# Make the ViT-B/32-shaped benchmark bundles (random weights, OpenAI ViT-B/32 configuration) in fp32
# and int8 (dynamic, MatMulInteger) without a text encoder, and int8 with one, into OUTDIR:
#
#   tools/bench/make_bench_bundles.sh [OUTDIR]     default OUTDIR: target/bench-bundles
#
# gives OUTDIR/vit-b-32-fp32, OUTDIR/vit-b-32-int8 and OUTDIR/vit-b-32-text-int8 (~350, ~95, ~160 MB). A bundle already there
# (with its model.toml) is kept; delete it to remake it. Takes about a minute or two per bundle.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

out=${1:-target/bench-bundles}
PY=$(tools/python/venv.sh)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

mkdir -p "$out"
# name suffix : export options. text-int8 also ships the text encoder (int8 MatMuls and token table),
# for timing label embedding on the board (tools/bench/bench_embed_labels.sh).
for spec in "fp32:--no-text --precision fp32" "int8:--no-text --precision int8" "text-int8:--precision int8"; do
    name=vit-b-32-${spec%%:*}
    read -r -a options <<< "${spec#*:}"
    dir=$out/$name
    if [[ -f "$dir/model.toml" ]]; then
        echo "make_bench_bundles.sh: $dir exists, kept" >&2
        continue
    fi
    rm -rf "$dir.partial"
    start=$(date +%s)
    "$PY" tools/model/export_clip.py --random vit-b-32 --seed 0 "${options[@]}" --name "$name" --out "$dir.partial"
    mv "$dir.partial" "$dir"
    echo "make_bench_bundles.sh: $dir made in $(( $(date +%s) - start )) s" >&2
done
du -sh "$out"/vit-b-32-* >&2
