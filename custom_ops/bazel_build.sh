#!/usr/bin/env bash
# Builds the tfbet op library with Bazel (Debian: `apt-get install bazel-bootstrap`) against the
# pip-installed TensorFlow, offline, and copies it to build/bazel/_tfbet_ops.so (or to $1).
#
# Load it with tf.load_op_library(path), or make tfbet.ops use it:
#   TFBET_OPS_LIBRARY=$PWD/build/bazel/_tfbet_ops.so python -m pytest tests/test_ops.py
# The interpreter that has TensorFlow is $PYTHON_BIN_PATH, else python3 on the PATH.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

PYTHON_BIN_PATH="${PYTHON_BIN_PATH:-$(command -v python3)}"
export PYTHON_BIN_PATH
destination="${1:-build/bazel/_tfbet_ops.so}"

bazel build //:tfbet_ops
mkdir -p "$(dirname "${destination}")"
cp -f "$(bazel info bazel-bin)/custom_ops/_tfbet_ops.so" "${destination}"
chmod u+w "${destination}"
echo "${destination}"
