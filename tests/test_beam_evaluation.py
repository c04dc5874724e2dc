"""The Beam evaluation gives the in-process counts, with 2 worker processes and after a retry."""
import functools
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags
import pytest

beam = pytest.importorskip("apache_beam")

from tfbet import beam_evaluation  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import chips  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import data as data_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import evaluation  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import quantize_configs  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet.cli import eval_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet.cli import training_job  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet.compat import keras  # noqa: E402  pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = dict(name="mnist", train_limit=64, test_limit=100, batch_size=64)
TEST_LIMIT = 100
RATES = (0.001, 0.01)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, real_mnist):  # pylint: disable=unused-argument
  """A bin/train-like directory (model.h5, operative_config.gin) of an untrained tiny model.

  Equal counts need no accuracy, so the quantized model keeps its seeded initial weights.
  """
  directory = tmp_path_factory.mktemp("beam_run")
  data = data_lib.load_data(**DATA)
  keras.utils.set_random_seed(0)
  inputs = keras.Input(data.input_shape)
  x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
  x = keras.layers.Flatten()(x)
  outputs = keras.layers.Dense(data.num_classes)(x)
  model = quantize_configs.quantize_model(keras.Model(inputs, outputs, name="tiny"), "rquant")
  with quantize_configs.quantize_scope():
    model.save(str(directory / "model.h5"))
  bindings = "".join(f"load_data.{key} = {value!r}\n" for key, value in DATA.items())
  (directory / "operative_config.gin").write_text(bindings)
  return directory


def _run_bin(binary, *args):
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.run([sys.executable, os.path.join(REPO, "bin", binary), *map(str, args)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert process.returncode == 0, process.stdout + process.stderr
  return process.stdout


def load_tiny(model_path):
  """Worker loader: the tiny run's model and its first TEST_LIMIT MNIST test images."""
  data = data_lib.load_data(**dict(DATA, test_limit=TEST_LIMIT))
  return training_job.load_model(model_path), data.test_dataset()


def _in_process(model_path, chip_list, conditions, offsets=(0,)):
  model, dataset = load_tiny(model_path)
  return evaluation.evaluate(model, dataset, chip_list, conditions, offsets=offsets,
                             progress=None)


def _two_processes():
  return beam_evaluation.pipeline_options(
      "DirectRunner", ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])


class FailOnceChip(chips.RandomChip):
  """A random chip whose first attempt fails (a marker file records it), like a dying worker."""

  def __init__(self, seed, marker):
    super().__init__(seed)
    self.marker = marker

  def masks(self, num_bytes, precision, condition, offset=0):
    with open(self.marker, "a", encoding="utf-8") as f:
      f.write(f"{condition}\n")
    if not os.path.exists(self.marker + ".failed"):
      open(self.marker + ".failed", "w", encoding="utf-8").close()
      raise RuntimeError("injected worker failure")
    return super().masks(num_bytes, precision, condition, offset)


class FailingChip(chips.RandomChip):
  """A random chip whose evaluation always fails."""

  def masks(self, num_bytes, precision, condition, offset=0):
    raise RuntimeError("injected chip failure")


class PidChip(chips.RandomChip):
  """A random chip that writes the id of the process evaluating it to ``marker``."""

  def __init__(self, seed, marker):
    super().__init__(seed)
    self.marker = marker

  def masks(self, num_bytes, precision, condition, offset=0):
    with open(self.marker, "a", encoding="utf-8") as f:
      f.write(f"{os.getpid()}\n")
    return super().masks(num_bytes, precision, condition, offset)


class SlowChip(chips.RandomChip):
  """A random chip that takes a while to load, so a test can act while workers evaluate."""

  def masks(self, num_bytes, precision, condition, offset=0):
    time.sleep(0.5)
    return super().masks(num_bytes, precision, condition, offset)


def test_two_worker_processes_count_random_and_asymmetric_chips_like_in_process(run_dir):
  model_path = str(run_dir / "model.h5")
  chip_list = [chips.RandomChip(1000), chips.RandomChip(1001),
               chips.AsymmetricRandomChip(1002, 0.25), chips.AsymmetricRandomChip(1003, 0.75)]
  expected = _in_process(model_path, chip_list, RATES)
  results = beam_evaluation.evaluate(functools.partial(load_tiny, model_path), chip_list, RATES,
                                     options=_two_processes(), metadata={"run": "beam"})
  assert results.same_counts(expected)
  assert len(results.errors) == len(chip_list) * len(RATES)
  # By default the two processes share the cores: each ran TensorFlow with half of them.
  assert results.metadata["worker_threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
  assert results.metadata["run"] == "beam" and results.metadata["workers"] in (1, 2)
  # The counts are not trivial: bit errors at 1 % change the error of some chip.
  assert any(e != expected.clean_errors for e in expected.errors.values())


def test_two_worker_processes_count_profiled_chips_at_every_offset_like_in_process(run_dir):
  model_path = str(run_dir / "model.h5")
  chip_list = [chips.simulate_profiled_chip(32, 128, [0.81, 0.84], seed=1, name="uniform"),
               chips.simulate_profiled_chip(32, 128, [0.80, 0.83], pattern="columns", seed=2,
                                            name="columns")]
  offsets = (0, 1024, 2048)
  expected = _in_process(model_path, chip_list, None, offsets)
  results = beam_evaluation.evaluate(functools.partial(load_tiny, model_path), chip_list,
                                     offsets=offsets, options=_two_processes())
  assert results.same_counts(expected)
  assert results.condition_kind == "voltage"
  assert len(results.errors) == 2 * 2 * len(offsets)


def test_a_failed_work_item_is_retried_by_the_runner_without_double_counting(run_dir, tmp_path):
  model_path = str(run_dir / "model.h5")
  marker = str(tmp_path / "attempts")
  chip_list = [chips.RandomChip(1000), FailOnceChip(1001, marker), chips.RandomChip(1002)]
  expected = _in_process(model_path, [chips.RandomChip(s) for s in (1000, 1001, 1002)], RATES)
  # The BundleBasedDirectRunner retries a failed bundle (up to 4 attempts) and drops the output
  # of the failed attempt, as cluster runners do.
  options = beam_evaluation.pipeline_options("BundleBasedDirectRunner")
  results = beam_evaluation.evaluate(functools.partial(load_tiny, model_path), chip_list, RATES,
                                     options=options)
  with open(marker, encoding="utf-8") as f:
    attempts = f.read().split()
  assert len(attempts) == 1 + len(RATES)  # The failed attempt, then both rates in the retry.
  assert results.same_counts(expected)


def _in_memory():
  """Beam's FnApiRunner in this process: like the multi-process DirectRunner, it does not retry."""
  return beam_evaluation.pipeline_options(
      "DirectRunner", ["--direct_running_mode=in_memory", "--direct_num_workers=1"])


def test_a_failing_chip_ends_the_run_naming_it_and_the_counts_of_the_others_resume(run_dir):
  model_path = str(run_dir / "model.h5")
  load = functools.partial(load_tiny, model_path)
  seeds = (1000, 1001, 1002)
  expected = _in_process(model_path, [chips.RandomChip(s) for s in seeds], RATES)
  with pytest.raises(beam_evaluation.IncompleteRun) as failed:
    beam_evaluation.evaluate(
        load, [chips.RandomChip(1000), FailingChip(1001), chips.RandomChip(1002)], RATES,
        options=_in_memory(), retries=1, checkpoint_seconds=0)
  message, missing = str(failed.value), failed.value.missing
  # The chips after the failing one in its bundle are missing too (the order is the runner's).
  assert "random_1001" in missing and len(missing) < 3
  assert "injected chip failure" in message and "so did 1 retry" in message
  assert f"{len(missing)} of 3 chips have no counts ({', '.join(missing)})" in message
  partial = failed.value.partial
  assert partial.missing() == [(name, r, 0) for name in missing for r in RATES]
  assert partial.errors == {k: v for k, v in expected.errors.items() if k[0] not in missing}
  # Resumed, only the missing chips are evaluated: the chips taken over would fail if they were.
  results = beam_evaluation.evaluate(
      load, [chips.RandomChip(s) if f"random_{s}" in missing else FailingChip(s) for s in seeds],
      RATES, options=_in_memory(), resume=partial, retries=0)
  assert results.same_counts(expected)


def test_a_failed_pipeline_is_rerun_for_the_chips_still_missing(run_dir, tmp_path):
  model_path = str(run_dir / "model.h5")
  marker = str(tmp_path / "attempts")
  chip_list = [chips.RandomChip(1000), FailOnceChip(1001, marker), chips.RandomChip(1002)]
  expected = _in_process(model_path, [chips.RandomChip(s) for s in (1000, 1001, 1002)], RATES)
  results = beam_evaluation.evaluate(functools.partial(load_tiny, model_path), chip_list, RATES,
                                     options=_in_memory(), retries=1, checkpoint_seconds=0)
  with open(marker, encoding="utf-8") as f:
    attempts = f.read().split()
  assert len(attempts) == 1 + len(RATES)  # The failed attempt, then both rates in the rerun.
  assert results.same_counts(expected)


def test_a_pipeline_that_fails_after_every_chip_was_kept_gives_the_whole_result(run_dir,
                                                                                monkeypatch):
  model_path = str(run_dir / "model.h5")
  chip_list = [chips.RandomChip(1000), chips.RandomChip(1001)]
  expected = _in_process(model_path, chip_list, RATES)

  def fail_to_write(record, path):
    raise OSError(f"injected: cannot write {path}")

  monkeypatch.setattr(beam_evaluation, "_write_result", fail_to_write)
  results = beam_evaluation.evaluate(functools.partial(load_tiny, model_path), chip_list, RATES,
                                     options=_in_memory(), retries=0, checkpoint_seconds=0)
  assert results.same_counts(expected)


def test_resuming_refuses_the_counts_of_another_plan(run_dir):
  model_path = str(run_dir / "model.h5")
  other = _in_process(model_path, [chips.RandomChip(7)], RATES)
  with pytest.raises(ValueError, match="cannot resume: .* another plan"):
    beam_evaluation.evaluate(functools.partial(load_tiny, model_path), [chips.RandomChip(1000)],
                             RATES, options=_in_memory(), resume=other)


def _worker_processes():
  """Process ids of the Beam SDK workers started below this process (through a shell)."""
  parents = {}
  commands = {}
  for entry in os.listdir("/proc"):
    try:
      with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
        parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
      with open(f"/proc/{entry}/cmdline", "rb") as f:
        commands[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError, IndexError):
      continue

  def below_me(pid):
    while pid > 1:
      pid = parents.get(pid, 0)
      if pid == os.getpid():
        return True
    return False

  return [pid for pid, command in commands.items()
          if "sdk_worker_main" in command and not command.startswith("/bin/sh")
          and below_me(pid)]


@pytest.mark.slow
def test_a_killed_worker_process_is_replaced_and_the_counts_stay_exact(run_dir, tmp_path,
                                                                      monkeypatch):
  model_path = str(run_dir / "model.h5")
  seeds = range(1000, 1012)
  expected = _in_process(model_path, [chips.RandomChip(s) for s in seeds], RATES)
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the workers keep their parts
  killed = []

  def kill_a_worker_once_counts_are_kept():
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
      time.sleep(0.2)
      workers = _worker_processes()
      if glob.glob(str(tmp_path / "tfbet_beam_eval_*" / "parts_0" / "*.json")) and workers:
        os.kill(workers[0], signal.SIGKILL)
        killed.append(workers[0])
        return

  killer = threading.Thread(target=kill_a_worker_once_counts_are_kept, daemon=True)
  killer.start()
  results = beam_evaluation.evaluate(
      functools.partial(load_tiny, model_path), [SlowChip(s) for s in seeds], RATES,
      options=_two_processes(), retries=1, checkpoint_seconds=0)
  killer.join()
  assert killed  # The run lost a worker, and its rerun measured what was missing.
  assert results.same_counts(expected)


def test_the_portable_runner_against_a_local_job_service_counts_like_in_process(run_dir,
                                                                                tmp_path):
  # The cluster path: Job API (gRPC on localhost), Fn API, SDK workers in processes of their own
  # (Beam's Python subprocess environment; no Java, no Docker, no network).
  from apache_beam.runners.portability import (  # pylint: disable=g-import-not-at-top
      local_job_service)
  model_path = str(run_dir / "model.h5")
  marker = str(tmp_path / "pids")
  seeds = (1000, 1001, 1002)
  expected = _in_process(model_path, [chips.RandomChip(s) for s in seeds], RATES)
  job_service = local_job_service.LocalJobServicer()
  port = job_service.start_grpc_server(0)
  try:
    options = beam_evaluation.pipeline_options("PortableRunner", [
        f"--job_endpoint=localhost:{port}",
        "--environment_type=beam:env:harness_subprocess_python:v1",
        f"--environment_config={sys.executable} -m apache_beam.runners.worker.sdk_worker_main",
        f"--temp_location={tmp_path / 'shared'}"])
    results = beam_evaluation.evaluate(functools.partial(load_tiny, model_path),
                                       [PidChip(s, marker) for s in seeds], RATES,
                                       options=options)
  finally:
    job_service.stop()
  with open(marker, encoding="utf-8") as f:
    pids = set(f.read().split())
  assert pids and str(os.getpid()) not in pids  # evaluated in worker processes
  assert results.same_counts(expected)
  assert results.metadata["workers"] == len(pids)
  assert not os.listdir(tmp_path / "shared")  # nothing left behind in the shared folder


def _plan_and_part(seed, clean_errors=1):
  chip = chips.RandomChip(seed)
  plan, _ = evaluation.make_plan([chips.RandomChip(1), chips.RandomChip(2)], [0.01])
  part = evaluation.Results(model={"digest": "m"}, n=10, data_digest="d",
                            clean_errors=clean_errors, condition_kind="rate",
                            chips={chip.name: chip.describe()})
  part.add(chip.name, 0.01, 0, 3)
  return plan, part


def test_merging_refuses_a_work_item_counted_twice():
  plan, part = _plan_and_part(1)
  combine = beam_evaluation.MergeResults(plan)
  first = combine.add_input(combine.create_accumulator(), part.to_dict())
  second = combine.add_input(combine.create_accumulator(), part.to_dict())
  with pytest.raises(ValueError, match="duplicate entry for chip 'random_1'"):
    combine.merge_accumulators([first, second])


def test_merging_refuses_workers_that_disagree_on_the_clean_count():
  plan, first = _plan_and_part(1, clean_errors=1)
  _, second = _plan_and_part(2, clean_errors=2)
  combine = beam_evaluation.MergeResults(plan)
  accumulator = combine.add_input(combine.create_accumulator(), first.to_dict())
  with pytest.raises(ValueError, match="clean_errors 2, another has 1"):
    combine.add_input(accumulator, second.to_dict())


def test_the_merge_keeps_counts_not_parts_and_gives_the_plans_result():
  plan, first = _plan_and_part(1)
  _, second = _plan_and_part(2)
  combine = beam_evaluation.MergeResults(plan)
  accumulator = combine.merge_accumulators(
      [combine.add_input(combine.create_accumulator(), first.to_dict()),
       combine.add_input(combine.create_accumulator(), second.to_dict())])
  # The accumulator holds one integer per (chip, condition, offset), no result dicts.
  assert accumulator.errors == {("random_1", 0.01, 0): 3, ("random_2", 0.01, 0): 3}
  merged = evaluation.Results.from_dict(combine.extract_output(accumulator))
  assert merged.missing() == [] and merged.errors == accumulator.errors
  assert merged.clean_errors == 1 and merged.n == 10 and merged.data_digest == "d"


def test_unknown_runners_and_pipeline_options_are_refused():
  with pytest.raises(ValueError, match="unknown Beam pipeline options"):
    beam_evaluation.pipeline_options("DirectRunner", ["--direct_num_wrokers=2"])
  with pytest.raises(ValueError, match="runner once"):
    beam_evaluation.pipeline_options("DirectRunner", ["--runner=FlinkRunner"])
  with pytest.raises(ValueError, match="Unexpected pipeline runner: DirectRuner"):
    beam_evaluation.pipeline_options("DirectRuner")


def test_a_cluster_runner_without_a_shared_temp_location_is_refused():
  options = beam_evaluation.pipeline_options("FlinkRunner")
  with pytest.raises(ValueError, match="temp_location"):
    beam_evaluation.evaluate(lambda: None, [chips.RandomChip(0)], RATES, options=options)


def test_bin_eval_on_the_direct_runner_writes_the_in_process_json_and_csv(run_dir, tmp_path):
  common = [f"--run_dir={run_dir}", "--rates=0.5,5", "--num_chips=3",
            f"--test_limit={TEST_LIMIT}", "--worker_threads=1"]
  _run_bin("eval", *common, f"--output={tmp_path / 'local.json'}")
  output = _run_bin(
      "eval", *common, "--runner=DirectRunner", "--beam_options=--direct_num_workers=2",
      f"--output={tmp_path / 'beam.json'}", f"--plot={tmp_path / 'beam.png'}")
  assert "on Beam's DirectRunner" in output and "Prop.1 %" in output
  local, beam_run = (json.loads((tmp_path / name).read_text()) for name in
                     ("local.json", "beam.json"))
  assert local["metadata"]["worker_threads"] == beam_run["metadata"]["worker_threads"] == 1
  assert local["metadata"].pop("workers") == 1 and beam_run["metadata"].pop("workers") in (1, 2)
  assert local == beam_run
  assert (tmp_path / "beam.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
  assert (tmp_path / "beam.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bin_eval_chips_on_a_beam_runner_counts_like_in_process(run_dir, tmp_path):
  chip = chips.simulate_profiled_chip(32, 128, [0.81, 0.84], seed=1, name="sim_uniform")
  path = chip.save(str(tmp_path / "u.npz"))
  # The in-memory runner evaluates in the bin's own process: its worker parses gin again.
  _run_bin(
      "eval_chips", f"--run_dir={run_dir}", f"--chip_files={path}", "--offsets=2", "--seed=3",
      f"--test_limit={TEST_LIMIT}", "--runner=BundleBasedDirectRunner",
      f"--output={tmp_path / 'chips.json'}")
  results = evaluation.Results.from_json(str(tmp_path / "chips.json"))
  model, dataset = load_tiny(str(run_dir / "model.h5"))
  reference = evaluation.evaluate(model, dataset, [chip.with_seed(3)], None,
                                  offsets=[0, chip.num_cells // 2], progress=None)
  assert results.same_counts(reference)


def test_bin_eval_keeps_the_counts_of_a_failed_beam_run_where_the_same_command_resumes(
    tmp_path):
  plan, part = _plan_and_part(1)
  partial = evaluation.Results(model=part.model, n=part.n, data_digest=part.data_digest,
                               clean_errors=part.clean_errors, condition_kind="rate",
                               errors=part.errors, plan=plan,
                               chips={entry["name"]: entry["chip"] for entry in plan["chips"]})
  error = beam_evaluation.IncompleteRun(
      "the Beam pipeline failed (Channel closed prematurely.): 1 of 2 chips have no counts "
      "(random_2); the others' counts are kept in the error's partial results (pass them as "
      "resume)", partial, ["random_2"])
  output = str(tmp_path / "r.json")
  message = eval_lib.incomplete_run_message(error, output)
  assert message == (
      "the Beam pipeline failed (Channel closed prematurely.): 1 of 2 chips have no counts "
      f"(random_2); the counts of the other 1 chips are kept in {tmp_path / 'r.partial.json'}: "
      "run the same command again to evaluate only the missing ones")
  kept = evaluation.Results.from_json(str(tmp_path / "r.partial.json"))
  assert kept.errors == {("random_1", 0.01, 0): 3}
  assert kept.missing() == [("random_2", 0.01, 0)]
  assert "are lost without --output" in eval_lib.incomplete_run_message(error, None)


def _eval_flags(*args):
  flag_values = flags.FlagValues()
  eval_lib.define_flags(flag_values)
  flag_values(["eval", *args])
  return flag_values


def test_bin_eval_refuses_beam_options_without_a_beam_runner_and_unknown_ones():
  with pytest.raises(app.UsageError, match="--beam_options needs a Beam --runner"):
    eval_lib.evaluate_chips(_eval_flags("--beam_options=--direct_num_workers=2"), None, None,
                            [chips.RandomChip(0)], RATES, (0,), None, {})
  with pytest.raises(app.UsageError, match="unknown Beam pipeline options"):
    eval_lib.evaluate_chips(_eval_flags("--runner=DirectRunner", "--beam_options=--typo=1"),
                            None, None, [chips.RandomChip(0)], RATES, (0,), None, {})
