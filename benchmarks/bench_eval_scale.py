#!/usr/bin/env python3
"""Chips per second of one evaluation in-process and on Beam's DirectRunner, thread budgets fixed.

One run measures, on the same model (narrow MNIST SimpleNet, RQUANT 8 bit; untrained weights are
fine for timing, saved once to a temporary .h5 that every process loads), the same random chips
and the same MNIST test images:

* in-process with 1 thread and with every core (each in a fresh process: TensorFlow fixes its
  threads when it runs its first op; ``tfbet.threads``);
* the DirectRunner with 1 worker x 1 thread and 2 workers x 1 thread (``--workers`` and
  ``--worker_threads`` change them).

Each run is timed end to end, as a user waits for it (process or pipeline start, every worker
loading model and test set, tracing, all chips, merge); a run only counts if its counts equal the
in-process counts. The start-up of one worker (Python, TensorFlow and tfbet imports, model and
test set, tracing, clean count) is measured on its own, in a fresh process with 1 thread, and
so is the time per chip after it, in wall and CPU seconds (the CPU seconds of each step are the
profile that holds on a loaded machine). The Beam workers' log lines are kept out of the output.

Usage: python benchmarks/bench_eval_scale.py [--num_chips=40] [--test_limit=10000]
    [--workers=1,2] [--worker_threads=1]
Needs apache-beam (pip install tfbet[beam]).
"""
import argparse
import contextlib
import functools
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfbet import threads  # noqa: E402  pylint: disable=g-import-not-at-top

# Lines of the workers' stderr that are notices, not problems (TensorFlow's loading notices,
# Beam's INFO lines and its note about a missing semi-persistent directory).
NOISE = re.compile(r"^([IW]\d{4} |WARNING: All log messages before absl|To enable the following "
                   r"instructions|E\d{4} .*cuInit|INFO:|.*semi_persistent_directory"
                   r"|.*apitools not found)")


def load(model_path, test_limit, batch_size):
  """What every worker (and the in-process run) loads: the model and the MNIST test set."""
  from tfbet import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top
  data = data_lib.load_data(name="mnist", test_limit=test_limit, test_batch_size=batch_size)
  return training_job.load_model(model_path), data.test_dataset()


def in_process(loader, num_threads, seeds, rate):
  """Runs in a fresh process: (start-up s, evaluation s, result dict, CPU seconds of each step)
  with ``num_threads``. CPU seconds hardly depend on what else the machine runs."""
  started = time.perf_counter()
  cpu = {"python start": time.process_time()}
  threads.limit(num_threads)  # imports TensorFlow
  cpu["import TensorFlow"] = time.process_time()
  from tfbet import chips  # pylint: disable=g-import-not-at-top
  from tfbet import evaluation  # pylint: disable=g-import-not-at-top
  from tfbet.cli import training_job  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  cpu["import tfbet"] = time.process_time()
  model, dataset = loader()
  evaluator = evaluation.Evaluator(model, dataset)
  cpu["load model and test set"] = time.process_time()
  evaluator.clean_errors()  # traces the forward pass, as a worker's setup does
  cpu["trace + clean count"] = time.process_time()
  ready = time.perf_counter()
  results = evaluator.run([chips.RandomChip(s) for s in seeds], [rate], progress=None)
  cpu["all chips"] = time.process_time()
  steps = list(cpu.items())
  spent = {name: now - before for (_, before), (name, now) in zip(steps, steps[1:])}
  spent["python start"] = cpu["python start"]
  return ready - started, time.perf_counter() - ready, results.to_dict(), spent


@contextlib.contextmanager
def quiet_stderr(kept):
  """Sends file descriptor 2 (this process's and its children's) to a file; afterwards appends
  the lines that are not notices to ``kept``."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      text = captured.read().decode("utf-8", errors="replace")
      kept.extend(line for line in text.splitlines() if line.strip() and not NOISE.match(line))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_chips", type=int, default=40)
  parser.add_argument("--workers", default="1,2", help="DirectRunner worker counts, e.g. 1,2,4")
  parser.add_argument("--worker_threads", type=int, default=1,
                      help="TensorFlow threads per DirectRunner worker")
  parser.add_argument("--rate", type=float, default=1.0, help="bit error rate p in percent")
  parser.add_argument("--test_limit", type=int, default=10000, help="MNIST test examples")
  parser.add_argument("--batch_size", type=int, default=1000)
  parser.add_argument("--width", type=float, default=0.25, help="SimpleNet channel multiplier")
  args = parser.parse_args()
  workers = [int(w) for w in args.workers.split(",")]
  if args.num_chips < 1 or any(w < 1 for w in workers) or args.worker_threads < 1:
    parser.error("--num_chips, --worker_threads and every --workers value must be >= 1")
  if not 0 <= args.rate < 100:
    parser.error(f"--rate is in percent and must be in [0, 100), got {args.rate}")
  rate = args.rate / 100.0
  cores = threads.available_cores()

  from tfbet.cli import launch  # pylint: disable=g-import-not-at-top
  launch.import_tensorflow_quietly()
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  from tfbet import beam_evaluation  # pylint: disable=g-import-not-at-top
  from tfbet import chips  # pylint: disable=g-import-not-at-top
  from tfbet import evaluation  # pylint: disable=g-import-not-at-top
  from tfbet import models  # pylint: disable=g-import-not-at-top
  from tfbet import quantize_configs  # pylint: disable=g-import-not-at-top

  load_before = os.getloadavg()
  folder = tempfile.mkdtemp(prefix="bench_eval_scale_")
  kept = []
  try:
    model = models.get_model("simplenet", variant="mnist", width=args.width,
                             channels_per_group=4, num_classes=10, input_shape=(28, 28, 1),
                             seed=0)
    model_path = os.path.join(folder, "model.h5")
    with quantize_configs.quantize_scope():
      quantize_configs.quantize_model(model, "rquant").save(model_path)
    loader = functools.partial(load, model_path, args.test_limit, args.batch_size)
    seeds = list(chips.default_chip_seeds(args.num_chips))
    chip_list = [chips.RandomChip(s) for s in seeds]
    runs = []  # (name, seconds, counts equal to the first run's)
    spawn = multiprocessing.get_context("spawn")
    with quiet_stderr(kept):
      for num_threads in (1, cores):
        with spawn.Pool(1) as pool:
          start = time.perf_counter()
          _, evaluating, record, spent = pool.apply(in_process,
                                                    (loader, num_threads, seeds, rate))
          seconds = time.perf_counter() - start
        results = evaluation.Results.from_dict(record)
        if num_threads == 1:
          reference, startup_one, per_chip, cpu_one = (results, seconds - evaluating,
                                                       evaluating, spent)
        runs.append((f"in-process, {num_threads} thread{'s' * (num_threads > 1)}", seconds,
                     results.same_counts(reference)))
      for count in workers:
        options = beam_evaluation.pipeline_options(
            "DirectRunner", ["--direct_running_mode=multi_processing",
                             f"--direct_num_workers={count}",
                             "--default_sdk_harness_log_level=WARNING"])
        start = time.perf_counter()
        results = beam_evaluation.evaluate(loader, chip_list, [rate], options=options,
                                           worker_threads=args.worker_threads)
        runs.append((f"DirectRunner, {count} worker{'s' * (count > 1)} x "
                     f"{args.worker_threads} thread{'s' * (args.worker_threads > 1)}",
                     time.perf_counter() - start, results.same_counts(reference)))
  finally:
    shutil.rmtree(folder, ignore_errors=True)
  load_after = os.getloadavg()

  print(f"{args.num_chips} random chips at p = {args.rate:g} %, n = {reference.n} MNIST test "
        f"images (batches of {args.batch_size}), SimpleNet width {args.width}; wall time end "
        "to end")
  print(f"one worker's start-up (fresh process, 1 thread: imports, model and test set, tracing, "
        f"clean count): {startup_one:.1f} s, then {per_chip / args.num_chips:.2f} s per chip")
  chip_cpu = cpu_one.pop("all chips") / args.num_chips
  startup_cpu = sum(cpu_one.values())
  share = startup_cpu / (startup_cpu + chip_cpu * args.num_chips / 2)
  print(f"  CPU seconds: start-up {startup_cpu:.1f} ("
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu_one.items())
        + f"), then {chip_cpu:.2f} per chip; so start-up is {100 * share:.0f} % of the CPU of "
        "each of 2 workers")
  base, all_cores = args.num_chips / runs[0][1], args.num_chips / runs[1][1]
  print(f"{'run':<34} {'seconds':>8} {'chips/s':>8} {'vs 1 thread':>12} {'vs all cores':>13}"
        "  counts = in-process")
  for name, seconds, same in runs:
    speed = args.num_chips / seconds
    print(f"{name:<34} {seconds:8.1f} {speed:8.3f} {speed / base:12.2f} {speed / all_cores:13.2f}"
          f"  {same}")
  print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)}, on {cores} cores")
  for line in kept:
    print(f"stderr: {line}")
  if not all(same for _, _, same in runs):
    sys.exit("a run's counts differ from the in-process counts")


if __name__ == "__main__":
  main()
