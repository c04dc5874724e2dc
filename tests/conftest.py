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


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, real_mnist):  # pylint: disable=unused-argument
  """A bin/train-like output directory: model.h5 and operative_config.gin.

  The model (two strided convolutions, one dense layer, RQUANT 8 bit) is trained in-process for
  three quick epochs on 1024 MNIST images (tests.helpers.DATA), far faster than bin/train. One
  per session: the eval and the analysis binaries' tests share it.
  """
  from tests import helpers  # pylint: disable=g-import-not-at-top
  from tfbet import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfbet import quantize_configs  # pylint: disable=g-import-not-at-top
  from tfbet.compat import keras  # pylint: disable=g-import-not-at-top
  directory = tmp_path_factory.mktemp("tiny_run")
  data = data_lib.load_data(**helpers.DATA)
  keras.utils.set_random_seed(0)
  inputs = keras.Input(data.input_shape)
  x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
  x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
  x = keras.layers.Flatten()(x)
  outputs = keras.layers.Dense(data.num_classes)(x)
  model = quantize_configs.quantize_model(keras.Model(inputs, outputs, name="tiny"), "rquant")
  model.compile(keras.optimizers.Adam(3e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  for epoch in range(3):
    model.fit(data.train_dataset(epoch), verbose=0)
  with quantize_configs.quantize_scope():
    model.save(str(directory / "model.h5"))
  bindings = "".join(f"load_data.{key} = {value!r}\n" for key, value in helpers.DATA.items())
  (directory / "operative_config.gin").write_text(bindings)
  return directory
