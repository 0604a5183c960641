#!/usr/bin/env bash
# Make the benchmark bundles (random weights, seed 0) into OUTDIR:
#
#   tools/bench/make_bench_bundles.sh [OUTDIR]     default OUTDIR: target/bench-bundles
#
# - vit-b-32-fp32, vit-b-32-int8 (no text encoder) and vit-b-32-text-int8: the shapes of OpenAI
#   ViT-B/32 (`--random vit-b-32`) in fp32 and int8 (dynamic, MatMulInteger) (~350, ~95, ~160 MB);
# - mobileclip2-s0-fp32, mobileclip2-s0-int8: open_clip's MobileCLIP2-S0 architecture with a random
#   init (`--open-clip MobileCLIP2-S0 --pretrained ''`, FastViT image tower, 256 px), with text encoder;
# - tinyclip-8m-fp32, tinyclip-8m-int8: the shapes of TinyCLIP-ViT-8M-16-Text-3M
#   (`--random tinyclip-8m`, ViT 256 wide, 10 layers, patch 16), with text encoder.
#
# A bundle already there (with its model.toml) is kept; delete it to remake it. Takes from half a
# minute to two minutes per bundle.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

out=${1:-target/bench-bundles}
PY=$(tools/python/venv.sh)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

mkdir -p "$out"
# name : export options (besides --seed 0 --name NAME --out DIR). vit-b-32-text-int8 ships the text
# encoder (int8 MatMuls and token table), for timing label embedding on the board
# (tools/bench/bench_embed_labels.sh); so do the MobileCLIP2 and TinyCLIP ones.
# `--pretrained=` is the empty tag: open_clip's random init.
specs=(
    "vit-b-32-fp32:--random vit-b-32 --no-text --precision fp32"
    "vit-b-32-int8:--random vit-b-32 --no-text --precision int8"
    "vit-b-32-text-int8:--random vit-b-32 --precision int8"
    "mobileclip2-s0-fp32:--open-clip MobileCLIP2-S0 --pretrained= --precision fp32"
    "mobileclip2-s0-int8:--open-clip MobileCLIP2-S0 --pretrained= --precision int8"
    "tinyclip-8m-fp32:--random tinyclip-8m --precision fp32"
    "tinyclip-8m-int8:--random tinyclip-8m --precision int8"
)
dirs=()
for spec in "${specs[@]}"; do
    name=${spec%%:*}
    read -r -a options <<< "${spec#*:}"
    dir=$out/$name
    dirs+=("$dir")
    if [[ -f "$dir/model.toml" ]]; then
        echo "make_bench_bundles.sh: $dir exists, kept" >&2
        continue
    fi
    rm -rf "$dir.partial"
    start=$(date +%s)
    "$PY" tools/model/export_clip.py "${options[@]}" --seed 0 --threads 1 --name "$name" --out "$dir.partial"
    mv "$dir.partial" "$dir"
    echo "make_bench_bundles.sh: $dir made in $(( $(date +%s) - start )) s" >&2
done
du -sh "${dirs[@]}" >&2
