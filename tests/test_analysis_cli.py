"""The analysis binaries end to end on the tiny MNIST run (conftest.run_dir), checked in-process.

One run of each binary with few chips and test examples; the numbers they print are compared
with the library functions called directly.
"""
import importlib
import json

from absl import flags
import numpy as np
import pytest

from tests.helpers import DATA
from tests.helpers import evaluate_in_process
from tests.helpers import ok
from tests.helpers import PNG_MAGIC
from tests.helpers import run_binary
from tests.helpers import TEST_LIMIT
from tfbet import budget
from tfbet import checks
from tfbet import chips
from tfbet import data as data_lib
from tfbet import evaluation
from tfbet import memory
from tfbet import sensitivity
from tfbet.cli import launch
from tfbet.cli import training_job
from tfbet.cli import weight_noise


def _model_and_images(run_dir):  # pylint: disable=redefined-outer-name
  data = data_lib.load_data(**dict(DATA, test_limit=TEST_LIMIT))
  model = training_job.load_model(str(run_dir / "model.h5"))
  return model, data


def test_bisect_rate_writes_the_measured_rates_in_eval_format(run_dir, tmp_path):  # noqa: F811
  output = tmp_path / "bisect.json"
  text = ok(run_binary("bisect_rate", f"--run_dir={run_dir}", f"--test_limit={TEST_LIMIT}",
                  "--budget=5", "--low=0.1", "--high=40", "--steps=2", "--num_chips=2",
                  f"--output={output}"))
  assert "highest measured p keeping mean RErr - Err <= 5 points" in text
  results = evaluation.Results.from_json(str(output))
  answer = results.metadata["bisection"]
  assert len(results.conditions) == 4 and answer["low"] in results.conditions
  reference = evaluate_in_process(run_dir, [chips.RandomChip(1000), chips.RandomChip(1001)],
                          [answer["low"], answer["high"]])
  stats = dict(budget.rate_statistics(reference))
  assert stats[answer["low"]] - reference.clean_error <= 0.05 + 1e-9
  assert stats[answer["high"]] - reference.clean_error > 0.05
  assert reference.errors == {k: v for k, v in results.errors.items()
                              if k[1] in (answer["low"], answer["high"])}


def test_bisect_rate_refines_bin_evals_rates_counted_from_a_reference_error(run_dir, tmp_path):  # noqa: F811
  grid = tmp_path / "eval.json"
  ok(run_binary("eval", f"--run_dir={run_dir}", f"--test_limit={TEST_LIMIT}", "--num_chips=2",
                "--rates=0.1,1,5,20,40", f"--output={grid}"))
  measured = evaluation.Results.from_json(str(grid))
  reference = measured.clean_error - 0.01  # a model 1 point better than this one
  output = tmp_path / "headline.json"
  text = ok(run_binary("bisect_rate", f"--run_dir={run_dir}", f"--test_limit={TEST_LIMIT}",
                       "--budget=3", f"--reference_error={100 * reference}", f"--measured={grid}",
                       "--steps=2", "--num_chips=2", f"--output={output}"))
  assert f"RErr - {100 * reference:.4g} % (the reference Err) <= 3 points" in text
  assert text.count("(measured before)") >= 1
  results = evaluation.Results.from_json(str(output))
  answer = results.metadata["bisection"]
  assert answer["reference_error"] == pytest.approx(reference)
  stats = dict(budget.rate_statistics(results))
  if answer["how"] == "bisection":  # RErr may exceed the reference by 3 points, i.e. Err by 2
    assert stats[answer["low"]] - measured.clean_error <= 0.02 + 1e-9
    assert stats[answer["high"]] - measured.clean_error > 0.02
    assert len(results.conditions) == 5 + 2
  else:
    assert answer["how"] == "at least" and answer["low"] == 0.4
  for key, errors in measured.errors.items():  # bin/eval's counts, carried over as they were
    assert results.errors[key] == errors
  text = ok(run_binary("bisect_rate", f"--run_dir={run_dir}", f"--test_limit={TEST_LIMIT}",
                       "--budget=0", "--reference_error=0", f"--measured={grid}", "--num_chips=2"))
  if measured.clean_errors:
    assert "no rate keeps mean RErr - 0 % (the reference Err) <= 0 points" in text


def test_sensitivity_binary_counts_match_the_library(run_dir, tmp_path):  # noqa: F811
  output = tmp_path / "s.json"
  ok(run_binary("sensitivity", f"--run_dir={run_dir}", f"--test_limit={TEST_LIMIT}", "--rate=5",
           "--num_chips=2", f"--output={output}", f"--plot={tmp_path / 's.png'}"))
  record = json.loads(output.read_text())
  assert (tmp_path / "s.png").read_bytes()[:8] == PNG_MAGIC
  full = evaluation.Results.from_dict(record["full"])
  reference = evaluate_in_process(run_dir, [chips.RandomChip(1000), chips.RandomChip(1001)], [0.05])
  assert full.errors == reference.errors
  assert sum(g["num_weights"] for g in record["groups"]) == full.model["num_weights"]
  model, _ = _model_and_images(run_dir)
  expected = sensitivity.groups(model, memory.layout(model), "layer")
  assert [(g["name"], g["num_weights"]) for g in record["groups"]] == [
      (g.name, g.num_weights) for g in expected]
  assert len(expected) == 3  # Two convolutions and the classifier.


def test_weight_noise_and_diagnose_binaries(run_dir, tmp_path):  # noqa: F811
  bit_errors = tmp_path / "eval.json"
  evaluate_in_process(run_dir, [chips.RandomChip(1000)], [0.01, 0.05]).to_json(str(bit_errors))
  output = tmp_path / "noise.json"
  ok(run_binary("weight_noise", f"--run_dir={run_dir}", f"--test_limit={TEST_LIMIT}",
           "--magnitudes=0,5", "--num_samples=2", f"--bit_errors={bit_errors}",
           f"--output={output}", f"--plot={tmp_path / 'noise.png'}"))
  record = json.loads(output.read_text())
  zero = [e["errors"] for e in record["entries"] if e["magnitude"] == 0]
  assert zero == [record["clean_errors"]] * 2
  assert (tmp_path / "noise.png").read_bytes()[:8] == PNG_MAGIC
  output = tmp_path / "diagnose.json"
  ok(run_binary("diagnose", f"--run_dir={run_dir}", f"--test_limit={TEST_LIMIT}", "--rate=5",
           f"--output={output}", f"--plot={tmp_path / 'diagnose.png'}"))
  record = json.loads(output.read_text())
  reference = evaluate_in_process(run_dir, [chips.RandomChip(1000)], [0.05])
  assert record["confidence"]["perturbed"]["error"] == pytest.approx(
      reference.rerr("random_1000", 0.05))
  assert record["confidence"]["clean"]["error"] == pytest.approx(reference.clean_error)
  assert len(record["bit_positions"]) == 8
  assert (tmp_path / "diagnose.png").read_bytes()[:8] == PNG_MAGIC


def test_chip_map_binary_reads_a_memory_image(run_dir, tmp_path):  # noqa: F811
  model, _ = _model_and_images(run_dir)
  image_path = str(tmp_path / "memory.npz")
  memory.export_image(model, image_path)
  chip = chips.simulate_profiled_chip(64, 128, [0.85, 0.9], pattern="columns", seed=1)
  chip_path = chip.save(str(tmp_path / "chip.npz"))
  output = tmp_path / "map.json"
  ok(run_binary("chip_map", f"--chip_file={chip_path}", "--voltage=0.85", "--offset=64",
           f"--memory_image={image_path}", f"--output={output}",
           f"--plot={tmp_path / 'map.png'}"))
  record = json.loads(output.read_text())
  assert np.asarray(record["per_tensor"]).shape == (len(memory.layout(model).slots), 8)
  assert (tmp_path / "map.png").read_bytes()[:8] == PNG_MAGIC
  missing = run_binary("chip_map", f"--chip_file={chip_path}", "--voltage=0.5",
                 f"--memory_image={image_path}")
  assert missing.returncode != 0 and "not profiled" in missing.stderr


@pytest.mark.parametrize("binary, flag", [
    ("sensitivity", "num_chips"), ("bisect_rate", "num_chips"), ("weight_noise", "num_samples"),
    ("weight_noise", "batch_size")])
def test_count_flags_of_the_analysis_binaries_are_bounded_naming_the_limit(binary, flag):
  flag_values = flags.FlagValues()
  importlib.import_module(launch.BINARIES[binary]).define_flags(flag_values)
  limit = checks.MAX_BATCH_SIZE if flag == "batch_size" else checks.MAX_CHIPS
  with pytest.raises(flags.IllegalFlagValueError,
                     match=rf"--{flag}=10000000000: .*in the range \[1, {limit}\]"):
    flag_values([f"bin/{binary}", f"--{flag}=10000000000"])


def test_lists_of_magnitudes_and_offsets_of_the_analysis_binaries_are_bounded():
  with pytest.raises(ValueError, match=f"magnitudes must have at most {checks.MAX_CONDITIONS}"):
    weight_noise.parse_magnitudes([str(i) for i in range(checks.MAX_CONDITIONS + 1)])
  process = run_binary("sensitivity", "--model=missing.h5",
                       "--offsets=" + ",".join(["0"] * (checks.MAX_OFFSETS + 1)))
  assert f"--offsets must have at most {checks.MAX_OFFSETS} items, got " \
      f"{checks.MAX_OFFSETS + 1}" in process.stderr, process.stderr[-2000:]


@pytest.mark.parametrize("binary", ["bisect_rate", "sensitivity", "weight_noise", "diagnose"])
def test_the_analysis_binaries_refuse_precision_without_scheme_like_bin_eval(run_dir, binary):  # noqa: F811
  process = run_binary(binary, f"--run_dir={run_dir}", f"--test_limit={TEST_LIMIT}",
                       "--precision=4")
  assert process.returncode != 0 and "Traceback" not in process.stderr
  assert ("--precision=4 only goes with --scheme (post-training quantization of a float "
          "--model); model 'tiny' is already quantized at 8 bits") in process.stderr


def test_the_analysis_binaries_apply_the_thread_budget_before_loading_the_model(run_dir):  # noqa: F811
  process = run_binary("diagnose", f"--run_dir={run_dir}", "--worker_threads=0")
  assert process.returncode != 0 and "Traceback" not in process.stderr
  assert "--worker_threads: worker_threads must be in [1, 1024], got 0" in process.stderr
