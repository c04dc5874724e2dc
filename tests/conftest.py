"""Test set-up: tf-keras for tfmot (before TensorFlow loads) and quiet logs.

GPUs stay visible: the tests that compare the GPU kernels with the CPU ones bit for bit
(tests/test_ops.py) run wherever a GPU and a CUDA build of the ops are present and skip otherwise.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def real_mnist():
  """The data folder holding real MNIST (IDX files), or skip the test that needs it.

  Real MNIST is found like tfbet finds it ($TFBET_DATA_DIR, else ../shared/data next to the
  repository); tests that train on it skip with this reason on a machine that has no copy.
  """
  from tfbet import data  # pylint: disable=g-import-not-at-top
  folder = data.default_data_dir()
  if not os.path.isfile(os.path.join(folder, "mnist", "train-images-idx3-ubyte.gz")):
    pytest.skip(f"needs real MNIST: no mnist/train-images-idx3-ubyte.gz in {folder} "
                f"(set ${data.DATA_DIR_ENV})")
  return folder
