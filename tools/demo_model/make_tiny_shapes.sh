#!/usr/bin/env bash
# Makes models/tiny-shapes from nothing: trains the demo CLIP, exports the bundle, renders the demo
# clip and the committed accuracy test set, and measures accuracy with `edgeclip eval` for the
# model card. Every step is seeded; see tools/demo_model/NOTES.md for what each choice is for.
#
#   tools/demo_model/make_tiny_shapes.sh            # everything (about 80 min on 2 cores)
#   tools/demo_model/make_tiny_shapes.sh --from export   # keep the trained checkpoints
#
# Steps, and where their output goes (work files under target/demo-model/release, ignored):
#   train1   stage 1, 1500 steps x 64 scenes, curriculum from one big shape to cluttered scenes
#   train2   stage 2 from stage 1, 1500 steps x 64, half of each batch in "shape-hard" groups
#            (one colour, different shapes), so that colour alone cannot match captions
#   export   models/tiny-shapes (int8 image and text encoders) and an fp32 twin for comparison
#   data     models/tiny-shapes/demo.mjpeg + demo.truth.json, tests/data/shapes (208 images)
#   measure  `edgeclip eval` on 1024 fresh images (seed 1000) -> the model card's accuracy table
set -euo pipefail
cd "$(dirname "$0")/../.."

P=tools/.venv/bin/python
W=target/demo-model/release
OUT=models/tiny-shapes
FROM=train1
if [[ "${1:-}" == "--from" ]]; then FROM="$2"; fi
[[ -x "$P" ]] || { echo "no $P: run tools/python/venv.sh first" >&2; exit 1; }
mkdir -p "$W"
export OMP_WAIT_POLICY=PASSIVE  # libgomp spin-waiting collapses throughput when anything else runs

steps=(train1 train2 export data measure)
run=0
for s in "${steps[@]}"; do [[ "$s" == "$FROM" ]] && run=1; done
[[ $run == 1 ]] || { echo "--from must be one of: ${steps[*]}" >&2; exit 2; }

# The model: open_clip CLIP, ModifiedResNet image tower (width 16, one bottleneck per stage),
# text transformer width 64 x 3 layers, embedding 128: 4.71 M parameters.
MODEL=(--vision-width 16 --vision-layers 1 1 1 1 --text-width 64 --text-heads 4 --text-layers 3
       --embed-dim 128 --batch 64 --threads 2 --workers 1 --save-every 250)

step() { [[ "$FROM" == "$1" ]] && started=1; [[ "${started:-0}" == 1 ]]; }

if step train1; then
  echo "== stage 1 ($(date -u +%H:%M))"
  $P tools/demo_model/train.py --out "$W/stage1" --seed 0 --steps 1500 --lr 1e-3 --warmup 100 \
    --curriculum 0.3 --hard-groups 0 "${MODEL[@]}" 2>&1 | tee "$W/stage1.log"
fi
if step train2; then
  echo "== stage 2 ($(date -u +%H:%M))"
  $P tools/demo_model/train.py --init "$W/stage1" --out "$W/stage2" --seed 1 --steps 1500 --lr 5e-4 \
    --warmup 50 --curriculum 0 --hard-groups 4 "${MODEL[@]}" 2>&1 | tee "$W/stage2.log"
fi
if step export; then
  echo "== export ($(date -u +%H:%M))"
  $P tools/demo_model/card.py training --stage1 "$W/stage1" --stage2 "$W/stage2" > "$W/card-training.md"
  common=(--open-clip "local-dir:$W/stage2" --pretrained '' --labels tools/demo_model/labels.txt
          --licence MIT --name tiny-shapes --card-extra "$W/card-training.md"
          --source "tiny-shapes: trained from scratch on rendered scenes by tools/demo_model (no pretrained weights)")
  $P tools/model/export_clip.py "${common[@]}" --precision int8 --text-precision int8 --out "$OUT" --force
  $P tools/model/export_clip.py "${common[@]}" --precision fp32 --text-precision fp32 --out "$W/bundle-fp32" --force
fi
if step data; then
  echo "== data ($(date -u +%H:%M))"
  $P tools/demo_model/render.py demo-clip --out "$OUT/demo.mjpeg" --seed 7
  rm -rf tests/data/shapes
  $P tools/demo_model/render.py eval-set --out tests/data/shapes --per-label 13 --seed 2000 --format jpg
fi
if step measure; then
  echo "== measure ($(date -u +%H:%M))"
  cargo build --release --locked
  rm -rf "$W/eval"
  $P tools/demo_model/render.py eval-set --out "$W/eval" --per-label 64 --seed 1000
  $P tools/demo_model/measure.py --edgeclip target/release/edgeclip --data "$W/eval" \
    --bundle "int8=$OUT" --bundle "fp32=$W/bundle-fp32" --json "$W/measure.json"
  $P tools/demo_model/measure.py --edgeclip target/release/edgeclip --data tests/data/shapes \
    --bundle "int8=$OUT" --json "$W/measure-test-set.json"
  $P tools/demo_model/card.py accuracy --card "$OUT/README.md" --measure "$W/measure.json" \
    --test-set "$W/measure-test-set.json" --truth "$OUT/demo.truth.json" --edgeclip target/release/edgeclip
  echo "model card: $OUT/README.md"
fi
du -b "$OUT"/* | sort -n
du -sb "$OUT"
