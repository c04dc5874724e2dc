#!/usr/bin/env bash
# Checks, without a GPU, that the CUDA kernel (custom_ops/*.cu.cc) compiles and links: installs a
# CUDA toolchain from PyPI into a throwaway folder, builds the op library with TFBET_BUILD_CUDA=1
# outside the checkout (tfbet/_tfbet_ops*.so is left alone), then checks that
#   * the library has the GPU functors and a device image (.nv_fatbin) and needs no libcudart
#     (the CUDA runtime comes from libtensorflow_framework.so.2),
#   * the device code has no fused multiply-add (the uniforms must equal the CPU's bit for bit),
#   * it loads and passes tests/test_ops.py on the CPU (the GPU tests skip without a GPU).
# Running the kernel, and comparing its masks with the CPU's, needs a GPU:
# `python -m pytest tests/test_ops.py -k gpu` there.  Not part of .ci/run (CI has no GPU).
#
# PyPI's Linux CUDA 12 nvcc wheels (nvidia-cuda-nvcc-cu12) hold ptxas but no nvcc; the first
# pip-installable nvcc is CUDA 13 (nvidia-cuda-nvcc), a newer major than TensorFlow's CUDA 12,
# which is enough to compile and link but not what a GPU build should use (setup.py warns).
# Usage: bash scripts/check_cuda_build.sh   (PYTHON: the interpreter with TensorFlow;
#   CUDA_PACKAGES: the pip requirements of the toolchain; TFBET_NVCC_FLAGS: the GPU target)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
CUDA_PACKAGES=${CUDA_PACKAGES:-nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 \
nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85}
export TFBET_NVCC_FLAGS=${TFBET_NVCC_FLAGS:--gencode arch=compute_90,code=sm_90}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# shellcheck disable=SC2086  # CUDA_PACKAGES is a list of requirements
"$PYTHON" -m pip install --quiet --target "$WORK/cuda" $CUDA_PACKAGES
NVCC=$(find "$WORK/cuda/nvidia" -path '*/bin/nvcc' -type f | head -n 1)
[[ -n "$NVCC" ]] || { echo "no bin/nvcc in $CUDA_PACKAGES" >&2; exit 1; }
PATH="$(dirname "$NVCC"):$PATH"
export PATH
nvcc --version | tail -n 2

TFBET_BUILD_CUDA=1 "$PYTHON" setup.py build_ext --build-lib "$WORK/lib" \
    --build-temp "$WORK/temp" > "$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; exit 1; }
grep '^warning: nvcc' "$WORK/build.log" || true
LIBRARY=$(ls "$WORK"/lib/tfbet/_tfbet_ops*.so)
[[ -f "$WORK/temp/bit_errors_kernels.cu.cc.o" ]] || { echo "nvcc was not run" >&2; exit 1; }

fail() { echo "FAIL: $*" >&2; exit 1; }
DYNAMIC=$(readelf -d "$LIBRARY")
SECTIONS=$(readelf -S "$LIBRARY")
SYMBOLS=$(nm -C "$LIBRARY")
grep -q 'NEEDED.*libcudart' <<< "$DYNAMIC" && fail "the library needs a libcudart"
grep -q '\.nv_fatbin' <<< "$SECTIONS" || fail "no device image (.nv_fatbin)"
for functor in RandomFlipMaskFunctor AsymmetricMasksFunctor ApplyBitErrorsFunctor; do
  grep -qF "${functor}<Eigen::GpuDevice>::operator()" <<< "$SYMBOLS" \
      || fail "no ${functor}<GpuDevice>"
done
echo "linked: GPU functors and .nv_fatbin present, no libcudart needed"

# The device code as PTX, with setup.py's nvcc flags: every double operation explicitly rounded.
TF_FLAGS=$("$PYTHON" -c \
    "import tensorflow as tf; print(' '.join(tf.sysconfig.get_compile_flags()))" 2> /dev/null)
# shellcheck disable=SC2086  # TF_FLAGS is a list of flags
nvcc -ptx custom_ops/bit_errors_kernels.cu.cc -o "$WORK/kernels.ptx" -DGOOGLE_CUDA=1 -x cu \
    --expt-relaxed-constexpr --fmad=false $TF_FLAGS -arch=compute_90 > /dev/null 2>&1
grep -qE '^\s*(fma|mad)\.[a-z.]*f64' "$WORK/kernels.ptx" && fail "fused multiply-add in the PTX"
grep -oE '^\s*(add|sub|mul|div|sqrt)\.[a-z]+\.f64' "$WORK/kernels.ptx" | sort | uniq -c
echo "PTX: no fused multiply-add"

TFBET_OPS_LIBRARY="$LIBRARY" "$PYTHON" -m pytest -q tests/test_ops.py -rs | tail -n 4
