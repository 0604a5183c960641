#!/usr/bin/env bash
# Create or update the tools' virtualenv tools/.venv from tools/python/requirements.txt and print
# the path of its python. Quick when already up to date: the venv records the sha256 of the
# requirements file it was built from (tools/.venv/.requirements.sha256) and pip only runs when
# that changes.
# The venv sits in tools/, not here: every Python folder of tools/ (model, testdata, bench,
# demo_model) runs in it.
#
#   PY=$(tools/python/venv.sh) && "$PY" tools/model/export_clip.py --help
#
# Environment: PYTHON (interpreter to create the venv with, default python3; needs >= 3.11).
# Everything pip prints goes to stderr; stdout is only the python path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv="$(dirname "$here")/.venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
python=${PYTHON:-python3}

want=$( (sha256sum "$req"; "$python" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -d' ' -f1)
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$venv/bin/python"
    exit 0
fi

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "venv.sh: $python is $("$python" --version 2>&1); the tools need Python >= 3.11 (tomllib)" >&2
    exit 1
fi
if [[ ! -x "$venv/bin/python" ]]; then
    echo "venv.sh: creating $venv" >&2
    "$python" -m venv "$venv" >&2
fi
echo "venv.sh: installing $req into $venv (torch pulls ~6 GB of CUDA wheels the first time)" >&2
rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
