#!/usr/bin/env bash
# The package works installed, outside the checkout: builds the sdist, a wheel FROM the sdist,
# installs the wheel into a fresh venv in a temporary directory, and runs a tiny tfbet-train and
# tfbet-eval there (gin configs from the wheel, MNIST from $TFBET_DATA_DIR, default
# ../shared/data). Leaves nothing in the checkout. Usage: bash scripts/check_wheel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOUT=$PWD
PYTHON=${PYTHON:-$CHECKOUT/.venv/bin/python}  # has TensorFlow, setuptools, wheel (setup.sh)
DATA_DIR=${TFBET_DATA_DIR:-$(cd "$CHECKOUT/../shared/data" && pwd)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "+ sdist"
# egg_info in $WORK: no tfbet.egg-info (nor build/) in the checkout.
"$PYTHON" setup.py -q egg_info --egg-base "$WORK" sdist --dist-dir "$WORK/dist" \
    > "$WORK/sdist.log" 2>&1 || { cat "$WORK/sdist.log"; exit 1; }
SDIST=$(ls "$WORK"/dist/tfbet-*.tar.gz)
MEMBERS=$(tar -tzf "$SDIST")
for member in requirements.txt custom_ops/bit_errors.h gin/experiments/cpu/tiny.gin \
              docs/design.md examples/robustify_keras_model.py; do
  grep -qx "tfbet-[^/]*/$member" <<< "$MEMBERS" || { echo "sdist lacks $member"; exit 1; }
done

echo "+ wheel from $(basename "$SDIST")"
# --no-build-isolation: compile the op against the TensorFlow of $PYTHON (no second download).
"$PYTHON" -m pip wheel --quiet --no-build-isolation --no-deps "$SDIST" -w "$WORK/wheel"
WHEEL=$(ls "$WORK"/wheel/tfbet-*.whl)

echo "+ fresh venv, pip install $(basename "$WHEEL")"
BASE_PYTHON=$("$PYTHON" -c "import sys; print(sys._base_executable)")
"$BASE_PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet "$WHEEL"

echo "+ tfbet-train and tfbet-eval outside the checkout"
cd "$WORK"
export TFBET_DATA_DIR=$DATA_DIR
unset PYTHONPATH
"$WORK/venv/bin/tfbet-train" --gin_file=experiments/cpu/tiny.gin \
    --gin_param='train.epochs = 1' --output_dir="$WORK/run"
"$WORK/venv/bin/tfbet-eval" --run_dir="$WORK/run" --rates=1 --num_chips=2 --test_limit=64
"$WORK/venv/bin/python" -c "import tfbet.cli.gin_utils as g, tfbet.ops as o; \
print('installed gin configs:', g.gin_dir()); print('installed op library:', o.LIBRARY_PATH)" \
    2>&1 | grep -v "^[IW][0-9]\{4\} \|^WARNING: All log messages before absl\|^To enable the"
echo "check_wheel: OK"
