"""bin/train end to end on real MNIST images: train, kill after a checkpoint, resume."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tfbet.cli import gin_utils
from tfbet.cli import training_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [sys.executable, os.path.join(ROOT, "bin", "train"),
         "--gin_file=experiments/cpu/tiny.gin", "--gin_param=train.epochs = 3",
         "--gin_param=train.evaluate_every_epoch = False", "--gin_param=train.verbose = 0"]


def _run(output_dir, extra=()):
  return subprocess.run(TRAIN + [f"--output_dir={output_dir}", *extra], capture_output=True,
                        text=True, timeout=600, check=False)


def _digest(output_dir):
  return training_job.weights_digest(training_job.load_model(os.path.join(output_dir, "model.h5")))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, real_mnist):  # pylint: disable=unused-argument
  output_dir = str(tmp_path_factory.mktemp("uninterrupted"))
  started = time.time()
  result = _run(output_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  return output_dir, time.time() - started


def _kill_after_first_checkpoint(output_dir):
  """Starts the tiny run and kills it (SIGKILL) once its first checkpoint is written."""
  process = subprocess.Popen(TRAIN + [f"--output_dir={output_dir}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  first_checkpoint = os.path.join(output_dir, "checkpoints", "ckpt-1.index")
  deadline = time.time() + 300
  while not os.path.exists(first_checkpoint) and process.poll() is None:
    assert time.time() < deadline, "no checkpoint written"
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()


def test_train_writes_model_memory_image_result_and_operative_config(uninterrupted):
  output_dir, seconds = uninterrupted
  for name in ("model.h5", "memory.npz", "result.json", "operative_config.gin", "checkpoints",
               "tensorboard"):
    assert os.path.exists(os.path.join(output_dir, name)), name
  with open(os.path.join(output_dir, "result.json")) as f:
    result = json.load(f)
  assert 0.0 <= result["test_error"] <= 1.0
  assert len(result["history"]["loss"]) == 3
  # tiny.gin's threshold (100) is below every loss: RANDBET injects from the first step.
  assert result["injection"] == {"method": "randbet", "started": True, "start_step": 0,
                                 "start_epoch": 1, "total_steps": 24,
                                 "threshold": "loss_threshold=100"}
  # What the reproduction report reads of it passes the reader's checks.
  checked = training_job.read_result(os.path.join(output_dir, "result.json"))
  assert checked["num_weights"] == result["num_weights"]
  assert 0 < checked["train_seconds"] <= seconds
  with open(os.path.join(output_dir, "operative_config.gin")) as f:
    config = f.read()
  assert "BitErrorTrainer.method = 'randbet'" in config and "load_data.train_limit = 512" in config
  print(f"bin/train, 3 epochs on 512 MNIST images: {seconds:.1f} s")


def test_killed_and_resumed_run_ends_with_the_same_weights(uninterrupted, tmp_path):
  output_dir = str(tmp_path / "killed")
  _kill_after_first_checkpoint(output_dir)
  assert not os.path.exists(os.path.join(output_dir, "result.json"))
  result = _run(output_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "resumed from" in result.stderr
  assert _digest(output_dir) == _digest(uninterrupted[0])
  # result.json covers the whole run, both sessions.
  resumed, whole = _result(output_dir), _result(uninterrupted[0])
  assert resumed["history"] == whole["history"] and len(whole["history"]["loss"]) == 3
  assert resumed["train_seconds"] > 0


@pytest.mark.slow
def test_a_damaged_progress_record_leaves_the_training_time_and_history_unknown_not_zero(
    tmp_path, real_mnist):  # pylint: disable=unused-argument
  output_dir = str(tmp_path / "damaged")
  _kill_after_first_checkpoint(output_dir)
  with open(os.path.join(output_dir, "checkpoints", "progress.json"), "w") as f:
    f.write('{"history": {"loss": [0.5]}, "seconds_per_epoch": [')
  result = _run(output_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "the history and training time of the run are unknown" in result.stderr
  recorded = _result(output_dir)
  assert recorded["train_seconds"] is None and recorded["history"] is None
  checked = training_job.read_result(os.path.join(output_dir, "result.json"))
  assert checked["train_seconds"] is None and checked["history"] is None


FULL_DISK_MODULE = '''
"""A test double (imported with --gin_module): the disk is full when epoch 2's progress record
is written, right before its checkpoint, as a real full disk would make that write fail."""
import errno
import os

from tfbet import files

_write_text = files.write_text
_progress = []


def _full_disk(path, text):
  if path.endswith("progress.json"):
    _progress.append(path)
    if len(_progress) == 2:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
  return _write_text(path, text)


files.write_text = _full_disk
'''


@pytest.mark.slow
def test_a_full_disk_during_training_ends_in_one_line_and_the_same_command_resumes(
    uninterrupted, tmp_path):
  (tmp_path / "full_disk.py").write_text(FULL_DISK_MODULE)
  output_dir = str(tmp_path / "full")
  full = _run(output_dir, [f"--gin_module={tmp_path / 'full_disk.py'}"])
  assert full.returncode == 1 and "Traceback" not in full.stderr
  progress = os.path.join(output_dir, "checkpoints", "progress.json")
  assert full.stderr.strip().splitlines()[-1] == (
      f"cannot write {progress}: No space left on device. What the run did up to its last "
      "checkpoint is kept: once there is space (or permission), the same command resumes from "
      "there.")
  assert not os.path.exists(os.path.join(output_dir, ".lock"))
  resumed = _run(output_dir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resumed from" in resumed.stderr and "ckpt-1 (epoch 1)" in resumed.stderr
  assert _digest(output_dir) == _digest(uninterrupted[0])


READ_ONLY_MODULE = '''
"""A test double (imported with --gin_module): the file system of OUTPUT is read-only (tests may
run as root, for whom a chmod blocks nothing)."""
import errno
import os

OUTPUT = %r
_open = os.open


def _read_only(path, *args, **kwargs):
  if os.path.abspath(path).startswith(OUTPUT):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
  return _open(path, *args, **kwargs)


os.open = _read_only
'''


def test_a_read_only_output_dir_is_refused_in_one_line_before_any_work(tmp_path):
  output_dir = tmp_path / "read_only"
  output_dir.mkdir()
  (tmp_path / "read_only.py").write_text(READ_ONLY_MODULE % str(output_dir))
  result = _run(str(output_dir), [f"--gin_module={tmp_path / 'read_only.py'}"])
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert (f"cannot write the lock file '{output_dir / '.lock'}' (Read-only file system): "
          "--output_dir must be writable; nothing was done") in result.stderr
  assert os.listdir(output_dir) == []


def _result(output_dir):
  with open(os.path.join(output_dir, "result.json")) as f:
    return json.load(f)


def test_a_run_with_another_config_is_refused_and_restart_starts_over(tmp_path, real_mnist):  # pylint: disable=unused-argument
  output_dir = str(tmp_path / "run")
  assert _run(output_dir, ["--gin_param=train.epochs = 1"]).returncode == 0
  with open(os.path.join(output_dir, "operative_config.gin")) as f:
    operative = f.read()
  refused = _run(output_dir, ["--gin_param=train.epochs = 1",
                               "--gin_param=get_scheme.precision = 4"])
  assert refused.returncode == 1
  assert "different config" in refused.stderr and "+get_scheme.precision = 4" in refused.stderr
  assert "Traceback" not in refused.stderr
  with open(os.path.join(output_dir, "operative_config.gin")) as f:
    assert f.read() == operative  # The saved config still tells the truth.
  restarted = _run(output_dir, ["--gin_param=train.epochs = 1",
                                "--gin_param=get_scheme.precision = 4", "--restart"])
  assert restarted.returncode == 0, restarted.stderr[-3000:]
  assert "resumed from" not in restarted.stderr
  assert _result(output_dir)["scheme"]["precision"] == 4
  assert not os.path.exists(os.path.join(output_dir, ".lock"))


def test_bad_training_values_are_usage_errors_before_any_work(tmp_path):
  result = _run(str(tmp_path / "bad"), ["--gin_param=paper_optimizer.learning_rate = -0.05"])
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert "learning_rate must be a finite number > 0, got -0.05" in result.stderr
  assert "paper_optimizer" in result.stderr
  assert not os.path.exists(tmp_path / "bad" / "checkpoints")


def test_unknown_gin_binding_fails_with_gins_message(tmp_path):
  result = _run(str(tmp_path / "bad"), ["--gin_param=train.not_a_parameter = 1"])
  assert result.returncode != 0
  assert "not_a_parameter" in result.stderr


def test_a_binding_gin_cannot_parse_is_one_line_naming_it(tmp_path):
  result = _run(str(tmp_path / "bad"), ["--gin_param=BitErrorTrainer.rate = nan"])
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert ("cannot parse gin binding 'BitErrorTrainer.rate = nan': Failed to parse token 'nan'. "
          "A value is a Python literal") in result.stderr
  assert not os.path.exists(tmp_path / "bad" / "checkpoints")


@pytest.mark.parametrize("binding, message", [
    ("BitErrorTrainer.rate = inf", "binding 'BitErrorTrainer.rate = inf': Failed to parse token "
     "'inf'"),
    ("BitErrorTrainer.rate = 0.01 0.02", "binding 'BitErrorTrainer.rate = 0.01 0.02': Expected "
     "newline"),
    # gin reads the bindings as one text and cannot say where it ended: all are named.
    ("BitErrorTrainer.rate = (", "binding among \"BitErrorTrainer.method = 'randbet'\", "
     "'BitErrorTrainer.rate = (': EOF in multi-line"),
])
def test_unparsable_bindings_are_value_errors_naming_the_binding(binding, message):
  import gin  # pylint: disable=g-import-not-at-top
  try:
    with pytest.raises(ValueError) as error:
      gin_utils.parse([], ["BitErrorTrainer.method = 'randbet'", binding])
  finally:
    gin.clear_config()
  assert str(error.value).startswith("cannot parse gin " + message)
  assert "\n" not in str(error.value)


def _model_bindings():
  import gin  # pylint: disable=g-import-not-at-top
  lines = gin.config_str().splitlines()
  return tuple(sorted(line for line in lines if line.startswith("get_model.")))


def test_every_shipped_gin_file_parses_and_builds_its_model():
  import gin  # pylint: disable=g-import-not-at-top
  from tfbet import models  # pylint: disable=g-import-not-at-top
  gin_root = gin_utils.gin_dir()
  files = sorted(os.path.relpath(os.path.join(d, f), gin_root)
                 for d, _, fs in os.walk(gin_root) for f in fs if f.endswith(".gin"))
  assert len(files) > 20
  built = {}
  try:
    for path in files:
      gin.clear_config()
      gin_utils.parse([path], finalize=False)
      bindings = _model_bindings()
      if not bindings or bindings in built:
        continue
      num_classes = 100 if "cifar100" in gin.config_str() else 10
      built[bindings] = models.get_model(num_classes=num_classes).count_params()
      assert built[bindings] > 0, path
  finally:
    gin.clear_config()
  assert len(built) >= 6  # SimpleNet MNIST/CIFAR (GN, BN), CPU widths, WRN, ResNets


def readme_user_module():
  """The README's example of a user's model module (so the README shows tested code)."""
  with open(os.path.join(ROOT, "README.md")) as f:
    readme = f.read()
  return re.search(r"```python\n(# my_models.py\n.*?)```", readme, re.S).group(1)


def test_a_users_gin_registered_model_is_trained_by_bin_train_and_evaluated_by_bin_eval(
    tmp_path, real_mnist):  # pylint: disable=unused-argument
  code, configs = tmp_path / "code", tmp_path / "configs"
  code.mkdir()
  configs.mkdir()
  (code / "my_models.py").write_text(readme_user_module())
  (configs / "my_model.gin").write_text("train.model_fn = @my_mlp\nmy_mlp.hidden = 7\n")
  (configs / "my_experiment.gin").write_text(
      "include 'experiments/cpu/tiny.gin'\ninclude 'my_model.gin'\ntrain.epochs = 1\n")
  output_dir = tmp_path / "run"
  # A .py path to import, and a gin file (with an include) found through the search path.
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bin", "train"), f"--gin_module={code}/my_models.py",
       f"--gin_search_path={configs}", "--gin_file=my_experiment.gin",
       "--gin_param=train.verbose = 0", f"--output_dir={output_dir}"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(output_dir / "result.json") as f:
    trained = json.load(f)
  assert trained["num_weights"] == 28 * 28 * 7 + 7 + 7 * 10 + 10  # my_mlp, hidden = 7
  # bin/eval imports the same module by name (here from PYTHONPATH) to read the run's config.
  output = tmp_path / "eval.json"
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bin", "eval"), f"--run_dir={output_dir}",
       "--gin_module=my_models", "--num_chips=1", "--rates=1", "--test_limit=64",
       f"--output={output}"],
      capture_output=True, text=True, timeout=600, check=False,
      env={**os.environ, "PYTHONPATH": os.pathsep.join(
          filter(None, [str(code), os.environ.get("PYTHONPATH")]))})
  assert result.returncode == 0, result.stderr[-3000:]
  assert os.path.exists(output)


def test_missing_user_modules_and_search_paths_fail_naming_them(tmp_path):
  with pytest.raises(ImportError, match="no_such_module"):
    gin_utils.import_modules(["no_such_module_xyz"])
  with pytest.raises(FileNotFoundError, match="missing.py"):
    gin_utils.import_modules([str(tmp_path / "missing.py")])
  with pytest.raises(FileNotFoundError, match="nowhere"):
    gin_utils.parse([], [], search_paths=[str(tmp_path / "nowhere")])


# -- the parts of a training job, configured on themselves -----------------------------------

OLD_RUN_CONFIG = """# Parameters for train:
train.epochs = 2
train.int_conversion = 'floor'
train.learning_rate = 0.02
train.method = 'randbet'
train.precision = 4
train.rate = 0.05
train.scheme = 'unsigned'
train.seed = 3
train.w_max = 0.1
load_data.name = 'mnist'
"""


def test_old_train_bindings_migrate_to_the_parts_that_now_hold_them():
  migrated = gin_utils.migrate_bindings(OLD_RUN_CONFIG.splitlines())
  assert migrated == [
      "# Parameters for train:", "train.epochs = 2", "get_scheme.int_conversion = 'floor'",
      "paper_optimizer.learning_rate = 0.02", "BitErrorTrainer.method = 'randbet'",
      "get_scheme.precision = 4", "BitErrorTrainer.rate = 0.05", "get_scheme.name = 'unsigned'",
      "train.seed = 3", "train.weight_constraint = @WeightClip()", "WeightClip.w_max = 0.1",
      "load_data.name = 'mnist'"]
  assert gin_utils.migrate_bindings(["train.w_max = None"]) == [
      "train.weight_constraint = None", "WeightClip.w_max = None"]


def test_a_migrated_old_config_reads_the_value_that_version_used_as_gin_would():
  # An older tfbet recorded get_scheme's own default and, in the later train section, the
  # precision it really used: the later binding wins, as when gin parses the text.
  old = ("get_scheme.precision = 8\n"
         "# Parameters for train:\n"
         "train.precision = 4\n"
         "train.optimizer_config = {'name': 'sgd',\n"
         "    'momentum': 0.9}\n")
  bindings = gin_utils.config_bindings("\n".join(gin_utils.migrate_bindings(old.splitlines())))
  assert bindings == {"get_scheme.precision": "4",
                      "train.optimizer_config": "{'name': 'sgd', 'momentum': 0.9}"}
  assert gin_utils.config_bindings("import foo\nx.y = 1") is None


def test_a_run_directory_written_with_old_bindings_is_still_read(tmp_path):
  import gin  # pylint: disable=g-import-not-at-top
  config = tmp_path / "operative_config.gin"
  config.write_text(OLD_RUN_CONFIG)
  try:
    gin_utils.parse([], ["load_data.test_limit = 10"], run_config=str(config))
    assert gin.query_parameter("WeightClip.w_max") == 0.1
    assert gin.query_parameter("get_scheme.precision") == 4
    assert gin.query_parameter("BitErrorTrainer.rate") == 0.05
    assert gin.query_parameter("load_data.test_limit") == 10  # later bindings still win
  finally:
    gin.clear_config()


@pytest.mark.parametrize("old,new", [
    ("train.w_max = 0.1", "WeightClip.w_max with train.weight_constraint = @WeightClip()"),
    ("train.rate = 0.01", "BitErrorTrainer.rate"),
    ("train.precision = 4", "get_scheme.precision"),
    ("train.momentum = 0.8", "paper_optimizer.momentum")])
def test_an_old_binding_fails_naming_its_new_form(old, new):
  import gin  # pylint: disable=g-import-not-at-top
  try:
    with pytest.raises(ValueError, match=rf"(?s)doesn't have a parameter named.*{old[:old.index(' ')]}"
                                         rf" was renamed: bind {re.escape(new)}"):
      gin_utils.parse([], [old])
  finally:
    gin.clear_config()


@pytest.mark.parametrize("binding", ["BitErrorTrainer.seed = 3", "BitErrorTrainer.model = None",
                                     "paper_optimizer.total_steps = 10"])
def test_what_the_job_passes_cannot_be_bound(binding):
  import gin  # pylint: disable=g-import-not-at-top
  try:
    with pytest.raises(ValueError, match=binding.split(".")[1].split(" ")[0]):
      gin_utils.parse([], [binding])
  finally:
    gin.clear_config()


@pytest.mark.parametrize("bindings,match", [
    (["train.epochs = 1"], "no training method: bind BitErrorTrainer.method"),
    (["train.epochs = 1", "BitErrorTrainer.method = 'clean'", "WeightClip.w_max = 0.1"],
     r"WeightClip.w_max is bound but WeightClip is not used; add 'train.weight_constraint = "
     r"@WeightClip\(\)'"),
    (["train.epochs = 1", "BitErrorTrainer.method = 'clean'", "pattern_chip.seed = 5"],
     r"pattern_chip.seed is bound but pattern_chip is not used"),
    (["train.epochs = 0", "BitErrorTrainer.method = 'clean'"], "train.epochs must be in"),
    (["train.epochs = 1", "train.seed = 4194304", "BitErrorTrainer.method = 'clean'"],
     r"train.seed must be in \[0, 4194303\].*int64"),
    (["train.epochs = 1", "train.weight_constraint = 0.1", "BitErrorTrainer.method = 'clean'"],
     "train.weight_constraint must be a constraint")])
def test_a_config_that_would_train_something_else_is_refused_before_any_work(
    tmp_path, bindings, match):
  import gin  # pylint: disable=g-import-not-at-top
  try:
    gin_utils.parse([], bindings)
    with pytest.raises(ValueError, match=match):
      training_job.train(str(tmp_path / "run"))
  finally:
    gin.clear_config()
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_each_bound_setting_reaches_its_part():
  import types  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  from tests import helpers  # pylint: disable=g-import-not-at-top
  from tfbet import quantization  # pylint: disable=g-import-not-at-top
  bindings = [
      "get_scheme.name = 'unsigned'", "get_scheme.precision = 4",
      "get_scheme.int_conversion = 'floor'", "WeightClip.w_max = 0.2",
      "BitErrorTrainer.method = 'curricular'", "BitErrorTrainer.rate = 0.05",
      "BitErrorTrainer.loss_threshold = 2.5", "BitErrorTrainer.weight_decay = 1e-3",
      "BitErrorTrainer.label_smoothing = 0.1", "BitErrorTrainer.gradient_combination = 'average'",
      "paper_optimizer.learning_rate = 0.02", "paper_optimizer.momentum = 0.8",
      "paper_optimizer.nesterov = False"]
  try:
    gin_utils.parse([], bindings)
    data = types.SimpleNamespace(num_classes=3, input_shape=(8, 8, 1))
    trainer = training_job.build_trainer(
        data, scheme=quantization.get_scheme(), seed=7, total_steps=10,
        weight_constraint=training_job.WeightClip(),
        model_fn=lambda num_classes, input_shape, kernel_constraint: helpers.small_cnn(
            kernel_constraint))
  finally:
    gin.clear_config()
  assert trainer.layout.scheme == quantization.QuantizationScheme(
      precision=4, rounding=False, int_conversion="floor")
  constrained = [v.constraint for v in trainer.model.trainable_variables if v.constraint]
  assert constrained and all(c.w_max == 0.2 for c in constrained)
  assert (trainer.method, trainer.rate, trainer.loss_threshold, trainer.weight_decay,
          trainer.label_smoothing, trainer.gradient_combination, trainer.seed,
          trainer.curriculum_steps) == ("curricular", 0.05, 2.5, 1e-3, 0.1, "average", 7, 5)
  optimizer = trainer.optimizer
  assert float(optimizer.learning_rate) == pytest.approx(0.02)
  assert float(optimizer.momentum) == pytest.approx(0.8) and optimizer.nesterov is False


@pytest.fixture(scope="module")
def quantized_cnn():
  from tests import helpers  # pylint: disable=g-import-not-at-top
  from tfbet import quantize_configs  # pylint: disable=g-import-not-at-top
  return quantize_configs.quantize_model(helpers.small_cnn(), "rquant")


@pytest.mark.parametrize("binding, message", [
    ("paper_optimizer.learning_rate = -0.05", "learning_rate must be a finite number > 0"),
    ("paper_optimizer.learning_rate = 0.0", "learning_rate must be a finite number > 0"),
    ("paper_optimizer.learning_rate = 1e999", "learning_rate must be a finite number"),
    ("paper_optimizer.learning_rate = '0.1'", "learning_rate must be a real number"),
    ("paper_optimizer.momentum = 1.0", "momentum must be in [0, 1)"),
    ("paper_optimizer.nesterov = 1", "nesterov must be True or False"),
    ("BitErrorTrainer.weight_decay = 1e999", "weight_decay must be a finite number"),
    ("BitErrorTrainer.weight_decay = -1e-4", "weight_decay must be a finite number in [0.0"),
    ("BitErrorTrainer.loss_threshold = -1e999", "loss_threshold must be a finite number"),
    ("BitErrorTrainer.rate = 1.5", "rate must be a finite number in [0.0, 1.0]"),
    ("BitErrorTrainer.label_smoothing = 1.0", "label_smoothing must be in [0, 1)"),
    ("BitErrorTrainer.gradient_combination = 'mean'", "gradient_combination must be one of"),
    ("BitErrorTrainer.method = 'sgd'", "method must be one of"),
    ("WeightClip.w_max = 0.0", "w_max must be a finite number > 0"),
    ("WeightClip.w_max = 1e999", "w_max must be a finite number"),
    ("get_scheme.precision = 9", "precision must be"),
    ("get_scheme.int_conversion = 'round'", "int_conversion must be one of"),
    ("get_scheme.name = 'float'", "unknown quantization preset"),
])
def test_bad_values_of_a_part_are_refused_naming_the_value_and_the_part(binding, message,
                                                                         quantized_cnn):
  import gin  # pylint: disable=g-import-not-at-top
  from tfbet import quantization  # pylint: disable=g-import-not-at-top
  configurable = binding.split(".")[0]
  build = {"paper_optimizer": lambda: training_job.paper_optimizer(10),
           "BitErrorTrainer": lambda: training_job.BitErrorTrainer(quantized_cnn, seed=0),
           "WeightClip": training_job.WeightClip, "get_scheme": quantization.get_scheme}
  try:
    gin_utils.parse([], ["BitErrorTrainer.method = 'randbet'", binding])
    with pytest.raises(ValueError) as error:
      build[configurable]()
  finally:
    gin.clear_config()
  assert message in str(error.value) and f"configurable '{configurable}'" in str(error.value)


class _FakeTrainer:
  method = "randbet"

  def __init__(self, injecting):
    self.injecting = type("Flag", (), {"numpy": lambda _: injecting})()

  def describe_threshold(self):
    return "loss_threshold=1.75"


@pytest.mark.parametrize("shares, injecting, start_step, line", [
    ([0.0, 0.0, 0.0, 0.0], False, None, r"^WARNING: RANDBET never injected bit errors: .*1\.75"),
    ([0.0, 0.0, 0.25, 1.0], True, 22, r"^WARNING: RANDBET injected bit errors from step 23 of 32 "
     r"\(epoch 3\): more than half"),
    ([0.0, 0.5, 1.0, 1.0], True, 12, r"^RANDBET injected bit errors from step 13 of 32 \(epoch 2\)$"),
    ([0.0, 0.5], True, None, r"when it started is unknown"),  # a history of 2 of the 4 epochs
])
def test_when_injection_started_is_recorded_and_a_late_or_missing_start_is_a_warning(
    shares, injecting, start_step, line):
  record = training_job.injection_record(_FakeTrainer(injecting), {"injecting": shares},
                                      steps_per_epoch=8, epochs=4)
  assert record["started"] is injecting and record["start_step"] == start_step
  assert re.search(line, training_job.describe_injection(record))


@pytest.mark.slow
def test_epochs_are_counted_out_of_the_run_and_the_result_line_is_printed_once(tmp_path,
                                                                                real_mnist):
  del real_mnist
  command = TRAIN[:2] + ["--gin_file=experiments/cpu/tiny.gin", "--gin_param=train.epochs = 3",
                         "--gin_param=train.evaluate_every_epoch = False",
                         "--gin_param=load_data.train_limit = 128",
                         "--gin_param=train.verbose = 2", f"--output_dir={tmp_path / 'run'}"]
  env = dict(os.environ, PYTHONPATH=ROOT)  # this checkout's tfbet
  result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                          env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert re.findall(r"^Epoch (\d+/\d+)$", result.stdout, flags=re.MULTILINE) == [
      "1/3", "2/3", "3/3"]
  output = result.stdout + result.stderr
  assert output.count("clean test error") == 1
  assert result.stdout.rstrip().splitlines()[-1].startswith("clean test error: ")
  history = json.loads((tmp_path / "run" / "result.json").read_text())["history"]
  assert all(len(values) == 3 for values in history.values())  # one fit per epoch, all kept
