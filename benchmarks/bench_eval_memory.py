#!/usr/bin/env python3
"""Peak memory and chips per second of a Beam evaluation with very many chips.

A tiny model (one strided convolution and a dense layer, RQUANT 8 bit, untrained) on a few MNIST
test images, evaluated on ``--num_chips`` random chips at one rate by the multi-process
DirectRunner. The merge keeps one count per (chip, rate, offset) (``tfbet.beam_evaluation``), so
memory grows with the plan's entries, not with the work items' payloads. Prints the peak
resident memory of the launching process (before and after the pipeline) and of each worker
process (its VmHWM, read from /proc while it runs), and chips/s of the pipeline.

Usage: python benchmarks/bench_eval_memory.py [--num_chips=100000] [--workers=2]
    [--test_limit=16]
Needs apache-beam (pip install tfbet[beam]) and Linux (/proc).
"""
import argparse
import functools
import os
import resource
import shutil
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import bench_eval_scale  # noqa: E402  pylint: disable=g-import-not-at-top


def load(model_path, test_limit):
  """What every worker loads: the tiny model and the first ``test_limit`` MNIST test images."""
  from tfbet import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top
  data = data_lib.load_data(name="mnist", train_limit=1000, test_limit=test_limit,
                            test_batch_size=test_limit)
  return training_job.load_model(model_path), data.test_dataset()


def worker_peaks(peaks, stop):
  """Until ``stop`` is set: {pid: peak resident MiB} of the Beam workers below this process."""
  me = os.getpid()
  while not stop.is_set():
    parents, commands = {}, {}
    for entry in os.listdir("/proc"):
      if not entry.isdigit():
        continue
      try:
        with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
          parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{entry}/cmdline", "rb") as f:
          commands[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
      except (OSError, ValueError, IndexError):
        continue
    for pid, command in commands.items():
      if "sdk_worker_main" not in command or command.startswith("/bin/sh"):
        continue
      ancestor = parents.get(pid, 0)
      while ancestor > 1 and ancestor != me:
        ancestor = parents.get(ancestor, 0)
      if ancestor != me:
        continue
      try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
          for line in f:
            if line.startswith("VmHWM:"):
              peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]) / 1024)
      except OSError:
        pass
    stop.wait(0.5)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_chips", type=int, default=100000)
  parser.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes")
  parser.add_argument("--test_limit", type=int, default=16, help="MNIST test examples")
  parser.add_argument("--rate", type=float, default=1.0, help="bit error rate p in percent")
  args = parser.parse_args()
  if args.num_chips < 1 or args.workers < 1 or args.test_limit < 1:
    parser.error("--num_chips, --workers and --test_limit must be >= 1")
  if not 0 <= args.rate < 100:
    parser.error(f"--rate is in percent and must be in [0, 100), got {args.rate}")

  from tfbet.cli import launch  # pylint: disable=g-import-not-at-top
  launch.import_tensorflow_quietly()
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  from tfbet import beam_evaluation  # pylint: disable=g-import-not-at-top
  from tfbet import chips  # pylint: disable=g-import-not-at-top
  from tfbet import quantize_configs  # pylint: disable=g-import-not-at-top
  from tfbet.compat import keras  # pylint: disable=g-import-not-at-top

  load_before = os.getloadavg()
  folder = tempfile.mkdtemp(prefix="bench_eval_memory_")
  kept, peaks, stop = [], {}, threading.Event()
  try:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model_path = os.path.join(folder, "model.h5")
    with quantize_configs.quantize_scope():
      quantize_configs.quantize_model(keras.Model(inputs, outputs, name="tiny"),
                                      "rquant").save(model_path)
    chip_list = [chips.RandomChip(1000 + i) for i in range(args.num_chips)]
    launcher_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    options = beam_evaluation.pipeline_options(
        "DirectRunner", ["--direct_running_mode=multi_processing",
                         f"--direct_num_workers={args.workers}",
                         "--default_sdk_harness_log_level=WARNING"])
    watcher = threading.Thread(target=worker_peaks, args=(peaks, stop), daemon=True)
    watcher.start()
    with bench_eval_scale.quiet_stderr(kept):
      start = time.perf_counter()
      results = beam_evaluation.evaluate(functools.partial(load, model_path, args.test_limit),
                                         chip_list, [args.rate / 100], options=options)
      seconds = time.perf_counter() - start
    stop.set()
    watcher.join()
    launcher_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  finally:
    stop.set()
    shutil.rmtree(folder, ignore_errors=True)
  load_after = os.getloadavg()
  if len(results.errors) != args.num_chips:
    sys.exit(f"expected {args.num_chips} counts, got {len(results.errors)}")
  print(f"{args.num_chips} random chips at p = {args.rate:g} %, n = {results.n} MNIST test "
        f"images, {results.model['num_weights']} weights; DirectRunner, {args.workers} worker "
        f"processes x {results.metadata['worker_threads']} thread(s)")
  print(f"pipeline: {seconds:.1f} s, {args.num_chips / seconds:.1f} chips/s (start-up included)")
  print(f"peak resident memory of the launching process: {launcher_before:.0f} MiB before the "
        f"pipeline, {launcher_after:.0f} MiB after")
  print("peak resident memory of each worker process: "
        + (", ".join(f"{mib:.0f} MiB" for _, mib in sorted(peaks.items())) or "not seen"))
  print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)}, on {os.cpu_count()} cores")
  for line in kept:
    print(f"stderr: {line}")


if __name__ == "__main__":
  main()
