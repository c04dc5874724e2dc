"""A run directory is read as data: its gin config never imports foreign code, its model never runs."""
import os
import re
import subprocess
import sys

import pytest

from tfbet.cli import gin_utils
from tfbet.cli import run_dir
from tfbet.compat import keras

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(tmp_path, content, name="operative_config.gin"):
  path = tmp_path / name
  if isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content)
  return str(path)


def test_an_operative_config_of_bindings_passes(tmp_path):
  path = _write(tmp_path, "train.epochs = 3\nload_data.name = 'mnist'\n"
                          "get_model.name = 'simplenet'\nimport tfbet.models\n")
  assert run_dir.check_gin_file(path, trusted=False) == path


def test_references_to_the_parts_of_a_training_job_and_macros_pass(tmp_path):
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top,unused-import
  path = _write(tmp_path, """\
train.weight_constraint = @WeightClip()
WeightClip.w_max = %W_MAX
W_MAX = 0.1
BitErrorTrainer.pattern = @pattern_chip()
train.model_fn = @tfbet.models.get_model
load_data.augmentation = @scoped/Augmentation()
get_model.name = 'simplenet'
""")
  assert run_dir.check_gin_file(path, trusted=False) == path


# The attack of issue 23: a reference is a call when its holder runs, so a run directory's
# config could start a training job that writes where the file says.
ATTACKS = {
    "scoped train": ("load_data.data_dir = @evil/train()", "`@evil/train()` in `load_data.data_dir`"),
    "unscoped train": ("load_data.data_dir = @train()", "`@train()` in `load_data.data_dir`"),
    "load_data as a value": ("get_model.name = @load_data()", "`@load_data()` in `get_model.name`"),
    "in a macro": ("X = @evil/train()", "`@evil/train()` in `X`"),
    "in a list": ("load_data.x = [1, {'a': @train}]", "`@train` in `load_data.x`"),
    "model_fn called": ("train.model_fn = @train()", "`@train()` in `train.model_fn`"),
    "model_fn tfbet job": ("train.model_fn = @load_data", "`@load_data` in `train.model_fn`"),
    "unregistered": ("scope/get_scheme.name = @os.system()", "`@os.system()` in `scope/get_scheme.name`"),
}


@pytest.mark.parametrize("line, reference", ATTACKS.values(), ids=ATTACKS.keys())
def test_references_to_anything_but_the_parts_of_a_training_job_are_refused_naming_the_line(
    tmp_path, line, reference):
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top,unused-import
  path = _write(tmp_path, f"load_data.name = 'mnist'\n{line}\nevil/train.epochs = 1\n")
  with pytest.raises(ValueError, match=re.escape(f"{path!r} line 2: refusing the reference "
                                                 f"{reference}")):
    run_dir.check_gin_file(path, trusted=False)
  run_dir.check_gin_file(path, trusted=True)  # The user's own files are not restricted.


def test_a_reference_in_a_binding_block_is_refused_naming_its_line(tmp_path):
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top,unused-import
  path = _write(tmp_path, "load_data:\n  name = 'mnist'\n  data_dir = @train()\n")
  with pytest.raises(ValueError, match="line 3: refusing the reference `@train\\(\\)` in "
                                       "`load_data.data_dir`"):
    run_dir.check_gin_file(path, trusted=False)


def test_a_users_model_builder_may_be_recorded_as_train_model_fn_but_not_called(tmp_path):
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top,unused-import
  module = tmp_path / "users_models_of_test_run_dir.py"
  module.write_text("import gin\n\n@gin.configurable\ndef users_builder(num_classes, "
                    "input_shape):\n  raise AssertionError('never called')\n")
  gin_utils.import_modules([str(module)])  # as bin/eval --gin_module=... does
  assert run_dir.check_gin_file(_write(tmp_path, "train.model_fn = @users_builder\n"),
                                trusted=False)
  for line in ("train.model_fn = @users_builder()", "load_data.data_dir = @users_builder"):
    with pytest.raises(ValueError, match="refusing the reference `@users_builder"):
      run_dir.check_gin_file(_write(tmp_path, line + "\n"), trusted=False)


def _eval(*args):
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, os.path.join(REPO, "bin", args[0]), *args[1:]],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_bin_eval_and_eval_chips_refuse_a_run_directory_whose_model_runs_code(tmp_path):
  marker = tmp_path / "marker"
  touch = eval(f"lambda x: __import__('pathlib').Path({str(marker)!r}).touch() or x")  # noqa
  inputs = keras.Input((4,))
  keras.Model(inputs, keras.layers.Lambda(touch, name="payload")(inputs)).save(
      str(tmp_path / "model.h5"))
  marker.unlink()  # Building the model in this process ran the payload once.
  (tmp_path / "operative_config.gin").write_text("load_data.name = 'mnist'\n")
  process = _eval("eval", f"--run_dir={tmp_path}", "--num_chips=1", "--rates=1")
  assert process.returncode != 0
  assert "model.h5" in process.stderr and "'payload'" in process.stderr, process.stderr
  process = _eval("eval_chips", f"--model={tmp_path / 'model.h5'}",
                  "--gin_param=load_data.name = 'mnist'", "--chip_files=missing.npz")
  assert process.returncode != 0
  assert not marker.exists()


def test_bin_eval_refuses_a_run_directory_whose_config_imports_a_module(tmp_path):
  (tmp_path / "model.h5").write_bytes(b"")
  (tmp_path / "operative_config.gin").write_text("import antigravity\n")
  process = _eval("eval", f"--run_dir={tmp_path}", "--num_chips=1", "--rates=1")
  assert process.returncode != 0
  assert "refusing `import antigravity`" in process.stderr, process.stderr


# Every binary that reads a run directory, with the flags that take it to loading the data.
READERS = {
    "eval": ["--num_chips=1", "--rates=1"],
    "eval_chips": ["--chip_files={chip}"],
    "sensitivity": ["--num_chips=1"],
    "diagnose": [],
    "weight_noise": ["--num_samples=1", "--magnitudes=1"],
    "bisect_rate": ["--num_chips=1", "--steps=1"],
}


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "unscoped"])
@pytest.mark.parametrize("binary", READERS)
def test_no_binary_runs_a_training_job_referenced_by_a_run_directorys_config(
    run_dir, tmp_path, binary, scoped):  # pylint: disable=redefined-outer-name
  from tfbet import chips  # pylint: disable=g-import-not-at-top
  evil = tmp_path / "evil_run"
  evil.mkdir()
  (evil / "model.h5").write_bytes((run_dir / "model.h5").read_bytes())
  marker = tmp_path / "marker"
  scope = "evil/" if scoped else ""
  reference = f"@{scope}train()"
  # Unchecked, the scoped form made the binaries create the marker directory and start training
  # there; the unscoped one recursed to a RecursionError.
  (evil / "operative_config.gin").write_text(
      "load_data.name = 'mnist'\nload_data.test_limit = 8\n"
      f"load_data.data_dir = {reference}\n"
      f"{scope}train.output_dir = {str(marker)!r}\n{scope}train.epochs = 1\n"
      "evil/load_data.data_dir = None\nBitErrorTrainer.method = 'clean'\n")
  chip = chips.simulate_profiled_chip(8, 64, [0.82], seed=0, name="tiny").save(
      str(tmp_path / "chip.npz"))
  process = _eval(binary, f"--run_dir={evil}",
                  *(arg.format(chip=chip) for arg in READERS[binary]))
  assert process.returncode != 0
  assert f"line 3: refusing the reference `{reference}` in `load_data.data_dir`" in \
      process.stderr, process.stderr[-3000:]
  assert not marker.exists()
