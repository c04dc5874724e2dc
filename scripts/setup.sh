#!/usr/bin/env bash
# Sets up tfbet in ./.venv: pinned dependencies, then the package with its compiled op.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -r requirements-dev.txt
# --no-build-isolation: compile the op against the TensorFlow just installed (no second copy).
python -m pip install --quiet --no-build-isolation -e .
TF_USE_LEGACY_KERAS=1 python -c "import tfbet, tfbet.ops; print('tfbet', tfbet.__version__, 'op library:', tfbet.ops.LIBRARY_PATH)"
