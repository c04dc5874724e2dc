"""Test set-up: tf-keras for tfmot (before TensorFlow loads) and quiet logs.

GPUs stay visible: the tests that compare the GPU kernels with the CPU ones bit for bit
(tests/test_ops.py) run wherever a GPU and a CUDA build of the ops are present and skip otherwise.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
