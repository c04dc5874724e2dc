"""Plain helpers several test modules share (fixtures live in conftest.py).

A tiny CNN and its inputs for the quantization, memory and training tests; the tiny MNIST run's
data settings and the way the end-to-end tests start the binaries in bin/.
"""
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The data of the tiny run (conftest.run_dir); the run's operative config repeats these bindings.
DATA = dict(name="mnist", train_limit=1024, test_limit=150, batch_size=64)
TEST_LIMIT = 120  # bin/eval --test_limit overrides the run's 150.
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_cnn(kernel_constraint=None, normalization="group", seed=1):
  """Conv, group or batch norm, ReLU, depthwise conv, pooling, dense on 8x8x1 inputs."""
  from tfbet import layers  # pylint: disable=g-import-not-at-top
  from tfbet.compat import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((8, 8, 1))
  x = keras.layers.Conv2D(4, 3, padding="same", kernel_constraint=kernel_constraint,
                          bias_constraint=kernel_constraint, name="conv")(inputs)
  if normalization == "group":
    x = layers.GroupNormalization(groups=2, gamma_constraint=kernel_constraint,
                                  beta_constraint=kernel_constraint, name="norm")(x)
  else:
    x = layers.BatchNormalization(gamma_constraint=kernel_constraint,
                                  beta_constraint=kernel_constraint, name="norm")(x)
  x = keras.layers.ReLU()(x)
  x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(3, kernel_constraint=kernel_constraint,
                               bias_constraint=kernel_constraint, name="dense")(x)
  return keras.Model(inputs, outputs)


def cnn_inputs(seed=0, n=4):
  """``n`` standard normal 8x8x1 images for small_cnn."""
  return np.random.default_rng(seed).normal(size=(n, 8, 8, 1)).astype(np.float32)


def run_binary(binary, *args):
  """Runs bin/<binary> with ``args`` in a subprocess; returns the CompletedProcess."""
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
             # this checkout's tfbet, not one installed elsewhere (bin/ puts bin/ on sys.path)
             PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
  return subprocess.run([sys.executable, os.path.join(REPO, "bin", binary), *map(str, args)],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def ok(process):
  """The stdout of a finished binary, after asserting that it succeeded (else its output)."""
  assert process.returncode == 0, process.stdout + process.stderr
  return process.stdout


def evaluate_in_process(run_dir, chip_list, conditions, offsets=(0,)):
  """bin/eval's evaluation of the tiny run without the binaries (data rebuilt as in training)."""
  from tfbet import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfbet import evaluation  # pylint: disable=g-import-not-at-top
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top
  data = data_lib.load_data(**dict(DATA, test_limit=TEST_LIMIT))
  model = training_job.load_model(str(run_dir / "model.h5"))
  return evaluation.evaluate(model, data.test_dataset(), chip_list, conditions,
                             offsets=offsets, progress=None)


def capture_figures(monkeypatch):
  """A list that receives every matplotlib figure tfbet saves (still written to its path)."""
  from tfbet import files  # pylint: disable=g-import-not-at-top
  figures, save = [], files.save_figure

  def save_and_keep(figure, path):
    figures.append(figure)
    return save(figure, path)

  monkeypatch.setattr(files, "save_figure", save_and_keep)
  return figures


def footer(figure):
  """The footer (figure-level x label) of a saved figure, its lines unwrapped (plots.add_footer
  wraps them to the figure's width, indenting continuations by two spaces)."""
  label = figure._supxlabel  # pylint: disable=protected-access
  return "" if label is None else label.get_text().replace("\n  ", " ")


SCHEME_8BIT = {"precision": 8, "per_tensor": True, "asymmetric": True, "unsigned": True,
               "rounding": True, "int_conversion": "truncate"}


def model_info(name, faulty=90, parameters=100):
  """A result's ``model`` field with an 8-bit RQUANT-like scheme and its coverage."""
  return {"name": name, "digest": name, "num_weights": faulty, "scheme": dict(SCHEME_8BIT),
          "coverage": {"faulty_parameters": faulty, "trainable_parameters": parameters,
                       "parameters": parameters, "faulty_share": faulty / parameters}}
