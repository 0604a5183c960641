#!/usr/bin/env bash
# Regenerate ALL committed test data under tests/data/ (deterministic for the pinned versions of
# tools/python/requirements.txt): the sample images, the tiny test bundles (fp32, int8 =
# int8-dynamic and qop = int8-qoperator, same random weights, no text encoder), the
# unsupported-operator bundle, the golden files, the golden camera frames (tests/data/frames) and the
# example-image renders (tests/data/examples).
#
#   tools/testdata/make_test_data.sh           rewrite tests/data/{images,bundles,golden,frames,examples}
#   tools/testdata/make_test_data.sh --check   regenerate into a temp dir and compare with tests/data
#                                              (model cards, README.md, are not compared: they name
#                                              paths)
#
# Input kept by hand: tests/data/labels.txt (the test bundles' labels).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

check=0
if [[ "${1:-}" == "--check" ]]; then check=1; fi

PY=$(tools/python/venv.sh)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONHASHSEED=0 TOKENIZERS_PARALLELISM=false

src=tests/data
if (( check )); then
    data=$(mktemp -d)
    trap 'rm -rf "$data"' EXIT
    cp "$src/labels.txt" "$data/labels.txt"
else
    data=$src
fi

"$PY" tools/testdata/make_test_images.py --out "$data/images"
rm -rf "$data/bundles/tiny-fp32" "$data/bundles/tiny-int8" "$data/bundles/tiny-qop" "$data/bundles/unsupported-op" \
    "$data/bundles/tiny-text"
# bundle name:precision. int8-qoperator calibrates (MinMax) on the committed sample images plus seeded
# random tensors, so it is deterministic too.
for spec in tiny-fp32:fp32 tiny-int8:int8 tiny-qop:int8-qoperator; do
    "$PY" tools/model/export_clip.py --random tiny --seed 0 --no-text --precision "${spec#*:}" \
        --labels "$data/labels.txt" --out "$data/bundles/${spec%%:*}"
done
# The same weights with a text encoder: fp32 MatMuls, int8 token table (1.9 MB instead of 6.3 MB).
"$PY" tools/model/export_clip.py --random tiny --seed 0 --precision fp32 --text-precision fp32 --token-table int8 \
    --labels "$data/labels.txt" --out "$data/bundles/tiny-text"
"$PY" tools/testdata/make_unsupported_op_bundle.py --labels-from "$data/bundles/tiny-fp32" \
    --out "$data/bundles/unsupported-op"
rm -rf "$data/golden"
"$PY" tools/testdata/make_golden.py --images "$data/images" --labels "$data/labels.txt" \
    --bundles "$data/bundles/tiny-fp32" "$data/bundles/tiny-int8" \
    --embeds-only-bundles "$data/bundles/tiny-qop" --out "$data/golden"
"$PY" tools/testdata/make_tokenizer_golden.py --out "$data/golden/tokenizer.json"
"$PY" tools/testdata/make_text_golden.py --bundles "$data/bundles/tiny-text" models/tiny-shapes \
    --out "$data/golden/text_embeds.json"
rm -rf "$data/frames"
"$PY" tools/testdata/make_frame_golden.py --out "$data/frames"
rm -rf "$data/examples"
"$PY" tools/testdata/make_example_images.py --out "$data/examples"

if (( check )); then
    # Every part is compared (no short cut), so one run lists every difference.
    same=1
    diff -r -x README.md "$src/images" "$data/images" || same=0
    diff -r -x README.md "$src/bundles" "$data/bundles" || same=0
    diff -r "$src/golden" "$data/golden" || same=0
    diff -r "$src/frames" "$data/frames" || same=0
    diff -r "$src/examples" "$data/examples" || same=0
    if (( same )); then
        echo "make_test_data.sh --check: tests/data is up to date"
    else
        echo "make_test_data.sh --check: tests/data differs from what the tools make (see above)" >&2
        exit 1
    fi
else
    echo "tests/data regenerated:" >&2
    (cd "$data" && find images bundles golden frames examples -type f | sort | xargs du -b | awk '{s+=$1; print} END {print s, "bytes in all"}') >&2
fi
