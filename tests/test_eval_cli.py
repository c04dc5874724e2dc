"""bin/eval and bin/eval_chips end to end on a tiny MNIST model and real MNIST test images."""
import json
import os
import signal
import subprocess
import sys
import time

from absl import flags
import pytest

from tests.helpers import evaluate_in_process
from tests.helpers import ok
from tests.helpers import PNG_MAGIC
from tests.helpers import REPO
from tests.helpers import run_binary
from tests.helpers import TEST_LIMIT
from tfbet import checks
from tfbet import chips
from tfbet import data as data_lib
from tfbet import evaluation
from tfbet import memory
from tfbet.cli import chip_flags
from tfbet.cli import eval as eval_binary
from tfbet.cli import eval_chips
from tfbet.cli import model_flags
from tfbet.cli import reporting
from tfbet.compat import keras


def test_rates_are_read_in_percent():
  assert eval_binary.parse_rates(["0.01", "0.1", "0.5", "1"]) == [1e-4, 1e-3, 5e-3, 1e-2]
  for bad in (["100"], ["-1"], ["x"], [], ["1", "1.0"]):
    with pytest.raises(ValueError):
      eval_binary.parse_rates(bad)


def test_offsets_flag_is_a_count_or_an_explicit_list():
  assert eval_chips.parse_offsets(["4"]) == ("count", 4)
  assert eval_chips.parse_offsets(["0", "1024"]) == ("explicit", [0, 1024])
  for bad in (["0"], ["0", "3"], ["8", "8"], ["a"]):
    with pytest.raises(ValueError):
      eval_chips.parse_offsets(bad)
  assert eval_chips.evenly_spaced_offsets(2048 * 128, 4) == [0, 65536, 131072, 196608]
  assert eval_chips.evenly_spaced_offsets(100, 3) == [0, 32, 64]  # byte aligned


@pytest.mark.parametrize("flag, value, limit", [
    ("num_chips", 10**12, checks.MAX_CHIPS), ("num_chips", 10**8, checks.MAX_CHIPS),
    ("num_shards", 10**12, checks.MAX_SHARDS), ("batch_size", 2**40, checks.MAX_BATCH_SIZE)])
def test_eval_count_flags_beyond_their_limit_are_refused_naming_it(flag, value, limit):
  flag_values = flags.FlagValues()
  eval_binary.define_flags(flag_values)
  with pytest.raises(flags.IllegalFlagValueError,
                     match=rf"--{flag}={value}: .*in the range \[1, {limit}\]"):
    flag_values(["bin/eval", f"--{flag}={value}"])


def test_lists_of_rates_voltages_and_offsets_beyond_their_limit_are_refused_naming_it():
  too_many = [str(i + 1) for i in range(checks.MAX_CONDITIONS + 1)]
  with pytest.raises(ValueError, match=f"rates must have at most {checks.MAX_CONDITIONS} items"):
    eval_binary.parse_rates([str(0.01 * i) for i in range(checks.MAX_CONDITIONS + 1)])
  with pytest.raises(ValueError, match=f"voltages must have at most {checks.MAX_CONDITIONS}"):
    eval_chips.parse_voltages(too_many)
  with pytest.raises(ValueError, match=f"offsets must have at most {checks.MAX_OFFSETS} items"):
    eval_chips.parse_offsets([str(8 * i) for i in range(checks.MAX_OFFSETS + 1)])
  with pytest.raises(ValueError, match=rf"number of offsets and must be in \[1, "
                                       rf"{checks.MAX_OFFSETS}\], got 100000000"):
    eval_chips.parse_offsets(["100000000"])


def test_bin_eval_refuses_a_trillion_chips_at_once(tmp_path):
  # It hung building the seed list; 10**8 chips ended in a MemoryError (issue 23).
  started = time.perf_counter()
  process = run_binary("eval", f"--run_dir={tmp_path}", "--num_chips=1000000000000")
  assert process.returncode != 0
  assert f"--num_chips=1000000000000: 1000000000000 is not an integer in the range " \
      f"[1, {checks.MAX_CHIPS}]" in process.stderr, process.stderr[-2000:]
  assert time.perf_counter() - started < 60


def test_duplicate_voltages_and_offsets_that_alias_one_placement_are_refused():
  assert eval_chips.parse_voltages(["0.8", "0.9"]) == [0.8, 0.9]
  for bad, message in ((["0.8", "0.80"], "distinct"), (["nan"], "finite"), (["inf"], "finite"),
                       (["-1"], "> 0")):
    with pytest.raises(ValueError, match=message):
      eval_chips.parse_voltages(bad)
  chip = chips.simulate_profiled_chip(8, 64, [0.82], seed=0, name="small")  # 512 bit cells
  for offsets in ([0, 512], [8, 2**70]):  # 512 is the placement of 0 again
    with pytest.raises(ValueError, match=r"'small': offset \d+ is outside its 512 bit cells; "
                                         r"offsets wrap around.*\[0, 512\)"):
      evaluation.make_plan([chip], None, eval_chips.chip_offsets(("explicit", offsets)))
  plan, _ = evaluation.make_plan([chip], None, eval_chips.chip_offsets(("explicit", [0, 504])))
  assert plan["chips"][0]["offsets"] == [0, 504]


def test_the_prop1_column_caps_a_vacuous_bound_and_says_so():
  results = evaluation.Results(
      model={"digest": "d", "name": "m"}, n=20, data_digest="x", clean_errors=1,
      condition_kind="rate", chips={"random_1000": {"kind": "random", "seed": 1000}},
      errors={("random_1000", 0.01, 0): 2})
  row = results.summary()[0]
  assert row.vacuous and row.bound == 1.0 and row.mean + row.excess > 1
  table = reporting.rates_table(results)
  assert table.splitlines()[2].split()[6] == "100*" and "the bound is vacuous" in table


def test_run_dir_without_a_model_is_rejected(tmp_path):
  (tmp_path / "operative_config.gin").write_text("")
  with pytest.raises(ValueError, match="model.h5"):
    model_flags.load_model_and_data(run_dir=str(tmp_path))
  with pytest.raises(ValueError, match="exactly one"):
    model_flags.load_model_and_data(run_dir=str(tmp_path), model_path="m.h5")


def test_eval_shards_merge_into_the_unsharded_counts(run_dir, tmp_path):
  common = ["--rates=0.5,5", "--num_chips=4", f"--test_limit={TEST_LIMIT}", "--num_shards=2"]
  shard0 = ok(run_binary("eval", f"--run_dir={run_dir}", *common, "--shard_index=0",
                    "--batch_size=32", f"--output={tmp_path / 's0.json'}",
                    f"--plot={tmp_path / 's0.png'}"))
  # The second shard names the model and the data explicitly instead of the run directory, and
  # runs at another batch size: the same test set, so the shards merge.
  shard1 = ok(run_binary("eval", f"--model={run_dir / 'model.h5'}", "--gin_file=data/mnist.gin",
                    "--gin_param=load_data.train_limit = 1024",
                    "--gin_param=load_data.batch_size = 64", *common, "--shard_index=1",
                    "--batch_size=50", f"--output={tmp_path / 's1.json'}"))
  assert "[1/2] random_1000 RErr p=0.5%:" in shard0 and "[2/2] random_1002" in shard0
  assert "[1/2] random_1001" in shard1
  assert "Prop.1 %" in shard0 and "energy %" in shard0
  assert "parameters (100.00 %) in faulty memory" in shard0
  merged_out = ok(run_binary("eval", "--merge", tmp_path / "s0.json", tmp_path / "s1.json",
                        f"--output={tmp_path / 'all.json'}", f"--plot={tmp_path / 'all.png'}"))

  merged = evaluation.Results.from_json(str(tmp_path / "all.json"))
  assert merged.chip_names == [f"random_{s}" for s in chips.default_chip_seeds(4)]
  reference = evaluate_in_process(run_dir, [chips.RandomChip(s) for s in chips.default_chip_seeds(4)],
                          [0.005, 0.05])
  assert merged.same_counts(reference)
  assert merged.n == TEST_LIMIT
  assert merged.clean_error < 0.5  # a trained model on real digits
  assert merged.summary()[-1].mean > merged.clean_error  # 5 % bit errors hurt
  for row in merged.summary():
    line = (f"{100 * row.condition:8.4g}     4 {100 * row.mean:8.2f} {100 * row.std:7.2f} "
            f"{100 * row.min:7.2f} {100 * row.max:7.2f}")
    assert line in merged_out
  with open(tmp_path / "all.csv") as f:
    assert len(f.read().splitlines()) == 1 + 1 + 4 * 2  # header, clean, chips x rates
  for png in ("s0.png", "all.png"):
    assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC
  assert json.loads((tmp_path / "s0.json").read_text())["metadata"]["shard_index"] == 0

  # One shard alone is not the evaluation: refused, unless a partial merge is asked for.
  alone = run_binary("eval", "--merge", tmp_path / "s0.json", f"--output={tmp_path / 'half.json'}")
  assert alone.returncode != 0 and "shard(s) [1] of 2 are missing" in alone.stderr
  assert not (tmp_path / "half.json").exists()
  half = run_binary("eval", "--merge", tmp_path / "s0.json", "--allow_partial",
              f"--output={tmp_path / 'half.json'}")
  assert half.returncode == 0, half.stderr
  assert half.stdout.startswith("PARTIAL RESULT: 4 of 8 planned counts are missing")
  assert "WARNING: partial merge" in half.stderr
  assert "missing" in json.loads((tmp_path / "half.json").read_text())["metadata"]["partial"]


def test_a_killed_eval_resumes_with_the_same_command_to_identical_counts(run_dir, tmp_path):
  output = tmp_path / "eval.json"
  command = [sys.executable, os.path.join(REPO, "bin", "eval"), f"--run_dir={run_dir}",
             "--rates=0.5,5", "--num_chips=4", f"--test_limit={TEST_LIMIT}", f"--output={output}"]
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
  try:
    for line in process.stdout:
      if line.startswith("[2/4]"):
        process.send_signal(signal.SIGKILL)  # No chance to clean up, like a lost machine.
        break
  finally:
    process.kill()
    process.wait()
  assert not output.exists()
  partial = evaluation.Results.from_json(str(tmp_path / "eval.partial.json"))
  done = set(partial.chips) - {key[0] for key in partial.missing()}
  assert {"random_1000", "random_1001"} <= done and len(done) < 4

  again = run_binary("eval", *command[2:])
  assert again.returncode == 0, again.stderr
  assert f"resuming from {tmp_path / 'eval.partial.json'}: {len(done)} chip(s) done" in again.stdout
  assert "[1/4]" not in again.stdout and "[4/4] random_1003" in again.stdout
  reference = evaluate_in_process(run_dir, [chips.RandomChip(s) for s in chips.default_chip_seeds(4)],
                          [0.005, 0.05])
  assert evaluation.Results.from_json(str(output)).same_counts(reference)
  assert not (tmp_path / "eval.partial.json").exists()  # Done: nothing left to resume.


def test_an_unwritable_output_fails_before_any_work(run_dir, tmp_path):
  (tmp_path / "a_file").write_text("")
  for flag in (f"--output={tmp_path / 'a_file' / 'r.json'}", f"--plot={tmp_path}"):
    process = run_binary("eval", f"--run_dir={run_dir}", "--num_chips=2", flag)
    assert process.returncode != 0
    assert "cannot write output" in process.stderr or "is a directory" in process.stderr
    assert "evaluating" not in process.stdout


def test_a_shard_index_that_selects_no_chips_is_a_usage_error(tmp_path):
  # Refused before the run directory is even read.
  process = run_binary("eval", f"--run_dir={tmp_path}", "--num_chips=2", "--num_shards=3",
                 "--shard_index=2", f"--output={tmp_path / 'empty.json'}")
  assert process.returncode != 0
  assert "--shard_index=2 selects no chips" in process.stderr
  assert not (tmp_path / "empty.json").exists()


def test_eval_rejects_rates_out_of_range(run_dir):
  process = run_binary("eval", f"--run_dir={run_dir}", "--rates=0.1,150")
  assert process.returncode != 0
  assert "[0, 100)" in process.stderr


def test_eval_chips_reports_rates_and_rerr_per_chip_and_voltage(run_dir, tmp_path):
  uniform = chips.simulate_profiled_chip(32, 128, [0.81, 0.84], seed=1, name="sim_uniform")
  columns = chips.simulate_profiled_chip(32, 128, [0.80, 0.83], pattern="columns",
                                         fraction_0to1=0.8, seed=2, name="sim_columns")
  paths = [uniform.save(str(tmp_path / "u.npz")), columns.save(str(tmp_path / "c.npz"))]
  output = ok(run_binary("eval_chips", f"--run_dir={run_dir}", f"--chip_files={','.join(paths)}",
                    "--offsets=2", "--seed=3", f"--test_limit={TEST_LIMIT}",
                    f"--output={tmp_path / 'chips.json'}", f"--plot={tmp_path / 'chips.png'}"))
  results = evaluation.Results.from_json(str(tmp_path / "chips.json"))
  assert results.condition_kind == "voltage"
  assert results.faulty_share == 1.0 and "parameters (100.00 %) in faulty memory" in output
  assert len(results.errors) == 2 * 2 * 2  # chips x voltages x offsets
  assert results.offsets("sim_uniform", 0.81) == [0, 32 * 128 // 2]
  for chip in (uniform, columns):
    for voltage in chip.conditions:
      rates = chip.rates(voltage)
      assert (f"{chip.name:>12} {voltage:7.3f} {100 * rates['p']:7.3f} "
              f"{100 * rates['p_0t1']:7.3f} {100 * rates['p_1t0']:7.3f}") in output
      assert f"{100 * results.rerr(chip.name, voltage):7.2f}" in output
  reference = evaluate_in_process(run_dir, [uniform.with_seed(3), columns.with_seed(3)], None,
                          offsets=lambda chip: [0, chip.num_cells // 2])
  assert results.same_counts(reference)
  assert (tmp_path / "chips.png").read_bytes()[:8] == PNG_MAGIC
  assert (tmp_path / "chips.csv").read_text().startswith("chip,voltage,offset,errors,n,rerr\n")


def test_eval_chips_rejects_a_voltage_missing_from_a_chip_file(tmp_path):
  chip = chips.simulate_profiled_chip(8, 64, [0.82], seed=0, name="one_voltage")
  path = chip.save(str(tmp_path / "one.npz"))
  with pytest.raises(ValueError, match="not profiled"):
    chip_flags.load_chips([path], voltages=[0.9])
  with pytest.raises(ValueError, match="distinct chip names"):
    chip_flags.load_chips([path, path])


@pytest.fixture(scope="module")
def float_model_path(tmp_path_factory):
  """A float (not quantized) Keras model file, as a user would bring one."""
  keras.utils.set_random_seed(1)
  inputs = keras.Input((28, 28, 1))
  x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
  x = keras.layers.BatchNormalization()(x)
  outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
  path = str(tmp_path_factory.mktemp("float") / "float_model.h5")
  keras.Model(inputs, outputs, name="users_float").save(path)
  return path


def test_eval_quantizes_a_float_model_after_training_like_the_python_call(float_model_path,
                                                                          tmp_path):
  common = [f"--model={float_model_path}", "--gin_file=data/mnist.gin", "--test_limit=100",
            "--rates=1,5", "--num_chips=2"]
  output = ok(run_binary("eval", *common, "--scheme=rquant", "--precision=8", "--nowhiten",
                    f"--output={tmp_path / 'ptq.json'}"))
  results = evaluation.Results.from_json(str(tmp_path / "ptq.json"))
  assert results.model["scheme"]["precision"] == 8 and results.model["name"] == "users_float"
  # Conv 3*3*4+4, BN 4+4 (+8 moving statistics outside faulty memory), Dense 13*13*4*10+10.
  assert results.model["coverage"]["faulty_parameters"] == 40 + 8 + 6770
  assert "6818 of 6826 parameters (99.88 %) in faulty memory" in output
  assert results.metadata["whiten"] is False
  data = data_lib.load_data(name="mnist", test_limit=100, whiten=False)
  reference = evaluation.evaluate_float_model(
      float_model_path, data.test_dataset(), [chips.RandomChip(s) for s in
                                              chips.default_chip_seeds(2)],
      [0.01, 0.05], scheme="rquant", precision=8, progress=None)
  assert results.same_counts(reference)


@pytest.mark.parametrize("flags,message", [
    ([], "is a float model: pass --scheme=rquant"),
    # (the message itself: a usage error no longer prints the flags' help after it)
    (["--scheme=rquant"], "say how the float model expects its inputs: --whiten"),
])
def test_eval_of_a_float_model_says_which_flag_is_missing(float_model_path, flags, message):
  process = run_binary("eval", f"--model={float_model_path}", "--gin_file=data/mnist.gin",
                 "--test_limit=10", *flags)
  assert process.returncode != 0 and message in process.stderr


def test_precision_without_scheme_is_refused_instead_of_evaluating_the_models_own_bits(
    run_dir, tmp_path):
  process = run_binary("eval", f"--run_dir={run_dir}", "--precision=4", "--num_chips=1",
                       "--rates=1", f"--output={tmp_path / 'r.json'}")
  assert process.returncode != 0
  assert ("--precision=4 only goes with --scheme (post-training quantization of a float "
          "--model); model 'tiny' is already quantized at 8 bits") in process.stderr
  assert "evaluating" not in process.stdout and not (tmp_path / "r.json").exists()


def test_precision_sets_the_bits_of_the_scheme_and_defaults_to_eight(float_model_path):
  model = keras.models.load_model(float_model_path)
  for precision, bits in ((None, 8), (4, 4)):
    quantized = model_flags.model_for_evaluation(model, "rquant", precision, whiten=False)
    assert memory.layout(quantized).precision == bits
    codes, _ = memory.memory_contents(quantized)
    assert codes.max() < 2 ** bits and codes.max() >= 2 ** (bits - 1)  # the bits are used
  with pytest.raises(ValueError, match="--precision=4 only goes with --scheme.* at 4 bits"):
    model_flags.model_for_evaluation(quantized, None, 4)


FULL_DISK_MODULE = '''
"""A test double (imported with --gin_module): the disk is full once the first chip's counts are
written, as a real full disk would make the partial file's next write fail."""
import errno
import os

from tfbet import evaluation

_write = evaluation.Results.to_json
_paths = []


def _to_json(self, path):
  _paths.append(path)
  if len(_paths) > 1:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
  return _write(self, path)


evaluation.Results.to_json = _to_json
'''


def test_a_full_disk_during_eval_ends_in_one_line_and_the_same_command_resumes(run_dir,
                                                                              tmp_path):
  (tmp_path / "full_disk.py").write_text(FULL_DISK_MODULE)
  output, partial = tmp_path / "eval.json", tmp_path / "eval.partial.json"
  command = [f"--run_dir={run_dir}", "--rates=0.5,5", "--num_chips=3",
             f"--test_limit={TEST_LIMIT}", f"--output={output}"]
  full = run_binary("eval", *command, f"--gin_module={tmp_path / 'full_disk.py'}")
  assert full.returncode == 1 and "Traceback" not in full.stderr
  assert full.stderr.strip().splitlines()[-1] == (
      f"cannot write {partial}: No space left on device. Once there is space (or permission), "
      f"the counts of the chips done so far are kept in {partial}, and the same command "
      "resumes from them.")
  assert not output.exists() and not os.path.exists(eval_binary.lock_path(str(output)))
  again = ok(run_binary("eval", *command))
  assert f"resuming from {partial}: 1 chip(s) done" in again
  reference = evaluate_in_process(run_dir, [chips.RandomChip(s) for s in
                                            chips.default_chip_seeds(3)], [0.005, 0.05])
  assert evaluation.Results.from_json(str(output)).same_counts(reference)


def test_a_second_eval_on_the_same_output_is_refused_naming_the_first(run_dir, tmp_path):
  output = tmp_path / "eval.json"
  command = [f"--run_dir={run_dir}", "--rates=0.5,5", "--num_chips=5000",
             f"--test_limit={TEST_LIMIT}", f"--output={output}"]
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  # Its progress lines fill the pipe nobody reads after the first: it stays at work, holding
  # the lock, however fast the chips go.
  first = subprocess.Popen([sys.executable, os.path.join(REPO, "bin", "eval"), *command],
                           cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
  try:
    for line in first.stdout:
      if line.startswith("[1/5000]"):
        break
    second = run_binary("eval", *command)
    assert first.poll() is None, "the first evaluation must still run"
  finally:
    first.kill()
    first.wait()
  assert second.returncode != 0
  assert (f"output is in use: lock file '{tmp_path / 'eval.lock'}' is held by process "
          f"{first.pid} on host") in second.stderr
  assert "evaluating" not in second.stdout and "[1/5000]" not in second.stdout
