#!/usr/bin/env bash
# Sets up tfbet in ./.venv: pinned dependencies, then the package with its compiled op.
# Needs Python >= 3.10 with venv and a C++17 compiler (g++ or clang++) for the op.
# Prints one line per step; pip's own output stays quiet except for errors.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
step() { echo "[setup $(date +%H:%M:%S)] $*"; }
if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
step "upgrading pip"
python -m pip install --quiet --upgrade pip
step "installing the pinned dependencies of requirements-dev.txt (TensorFlow among them: a few minutes on a fresh machine)"
python -m pip install --quiet -r requirements-dev.txt
# --no-build-isolation: compile the op against the TensorFlow just installed (no second copy).
step "building tfbet and compiling its bit error op (C++17) against that TensorFlow"
python -m pip install --quiet --no-build-isolation -e .
step "checking that tfbet and its op load"
TF_USE_LEGACY_KERAS=1 python -c "import tfbet, tfbet.ops; print('tfbet', tfbet.__version__, 'op library:', tfbet.ops.LIBRARY_PATH)"
step "done"
