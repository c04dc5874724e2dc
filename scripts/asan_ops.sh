#!/usr/bin/env bash
# Builds the op library with AddressSanitizer + UndefinedBehaviorSanitizer and runs the op tests
# (tests/test_ops.py and the op fuzzing of tests/test_fuzz.py) against it.
#
#   bash scripts/asan_ops.sh            # uses .venv/bin/python, or $PYTHON
#
# The sanitized library goes to build/asan/_tfbet_ops.so and is loaded through
# TFBET_OPS_LIBRARY. Python itself is not instrumented, so libasan is preloaded; leak checking
# is off (the interpreter and TensorFlow keep allocations until exit) and UBSan stops at the
# first report, so any sanitizer finding fails the run. Exit status: that of pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
CXX=${CXX:-g++}
out=build/asan/_tfbet_ops.so
mkdir -p "$(dirname "$out")"

read -r -a compile_flags < <(TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" -c \
  "import tensorflow as tf; print(' '.join(tf.sysconfig.get_compile_flags()))")
read -r -a link_flags < <(TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" -c \
  "import tensorflow as tf; print(' '.join(tf.sysconfig.get_link_flags()))")
# GCC turns off -fdelete-null-pointer-checks for the null / nonnull-attribute checks, which makes
# Abseil's constexpr "function pointer == nullptr" tests in TensorFlow's headers fail to compile;
# those three checks are left out (AddressSanitizer still reports a null dereference).
sanitize=(-fsanitize=address,undefined
          -fno-sanitize=null,nonnull-attribute,returns-nonnull-attribute
          -fno-sanitize-recover=undefined -fno-omit-frame-pointer)

# The flags of setup.py, at -O1 with debug info so reports have line numbers.
"$CXX" -shared -fPIC -O1 -g "${sanitize[@]}" -ffp-contract=off -fno-math-errno \
  -Wno-sign-compare "${compile_flags[@]}" custom_ops/bit_errors_ops.cc \
  custom_ops/bit_errors_kernels.cc -o "$out" "${link_flags[@]}" "${sanitize[@]}"
echo "built $out"

libasan=$("$CXX" -print-file-name=libasan.so)
libubsan=$("$CXX" -print-file-name=libubsan.so)
if [ ! -e "$libasan" ] || [ ! -e "$libubsan" ]; then  # -print-file-name echoes unknown names
  echo "ERROR: $CXX has no sanitizer runtimes (libasan.so, libubsan.so) to preload" >&2
  exit 2
fi
export LD_PRELOAD="$libasan:$libubsan${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export TFBET_OPS_LIBRARY="$PWD/$out"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_ops.py
if "$PYTHON" -c "import hypothesis" 2>/dev/null; then
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_fuzz.py -k "mask or bit_errors or ops_reject"
else
  echo "WARNING: hypothesis is not installed; the op fuzzing was not run"
fi
