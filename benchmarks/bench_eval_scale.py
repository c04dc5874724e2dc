#!/usr/bin/env python3
"""Chips per second of one evaluation in-process and on Beam's DirectRunner with 1, 2, ... workers.

The same chips (random chips at one rate), model (narrow MNIST SimpleNet, RQUANT 8 bit; untrained
weights are fine for timing, saved once to a temporary .h5 that every worker loads) and MNIST
test images. Each run is timed end to end, as a user waits for it: in-process = load model and
test set + evaluate every chip; Beam = start the pipeline and its worker processes, each loads
model and test set once, evaluate, merge. Ratios are chips/s of the run over chips/s
in-process; a run only counts if its counts equal the in-process counts.

Worker processes pay a fixed start-up (Python, TensorFlow, model, tracing); the more chips, the
less it weighs. On a machine with fewer free cores than workers the workers only share them.

Usage: python benchmarks/bench_eval_scale.py [--num_chips=40] [--workers=1,2] [--test_limit=1000]
Needs apache-beam (pip install tfbet[beam]).
"""
import argparse
import functools
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfbet import beam_evaluation  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import chips  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import data as data_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import evaluation  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import models  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import quantize_configs  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet.cli import train_lib  # noqa: E402  pylint: disable=g-import-not-at-top


def load(model_path, test_limit, batch_size):
  """What every worker (and the in-process run) loads: the model and the MNIST test set."""
  data = data_lib.load_data(name="mnist", test_limit=test_limit, test_batch_size=batch_size)
  return train_lib.load_model(model_path), data.test_dataset()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_chips", type=int, default=40)
  parser.add_argument("--workers", default="1,2", help="DirectRunner worker counts, e.g. 1,2,4")
  parser.add_argument("--rate", type=float, default=1.0, help="bit error rate p in percent")
  parser.add_argument("--test_limit", type=int, default=1000, help="MNIST test examples")
  parser.add_argument("--batch_size", type=int, default=250)
  parser.add_argument("--width", type=float, default=0.25, help="SimpleNet channel multiplier")
  args = parser.parse_args()
  workers = [int(w) for w in args.workers.split(",")]
  if args.num_chips < 1 or any(w < 1 for w in workers):
    parser.error("--num_chips and every --workers value must be >= 1")
  if not 0 <= args.rate < 100:
    parser.error(f"--rate is in percent and must be in [0, 100), got {args.rate}")
  rate = args.rate / 100.0

  folder = tempfile.mkdtemp(prefix="bench_eval_scale_")
  try:
    data = data_lib.load_data(name="mnist", test_limit=args.test_limit)
    model = models.get_model("simplenet", variant="mnist", width=args.width,
                             channels_per_group=4, num_classes=data.num_classes,
                             input_shape=data.input_shape, seed=0)
    model_path = os.path.join(folder, "model.h5")
    with quantize_configs.quantize_scope():
      quantize_configs.quantize_model(model, "rquant").save(model_path)
    loader = functools.partial(load, model_path, args.test_limit, args.batch_size)
    chip_list = [chips.RandomChip(s) for s in chips.default_chip_seeds(args.num_chips)]

    start = time.perf_counter()
    reference = evaluation.evaluate(*loader(), chip_list, [rate], progress=None)
    runs = [("in-process", time.perf_counter() - start, True)]
    for count in workers:
      options = beam_evaluation.pipeline_options(
          "DirectRunner", ["--direct_running_mode=multi_processing",
                           f"--direct_num_workers={count}"])
      start = time.perf_counter()
      results = beam_evaluation.evaluate(loader, chip_list, [rate], options=options)
      runs.append((f"DirectRunner, {count} worker{'s' * (count > 1)}",
                   time.perf_counter() - start, results.same_counts(reference)))
  finally:
    shutil.rmtree(folder, ignore_errors=True)

  print(f"{args.num_chips} random chips at p = {args.rate:g} %, n = {reference.n} MNIST test "
        f"images, SimpleNet width {args.width}; wall time end to end (loading included)")
  base = args.num_chips / runs[0][1]
  print(f"{'run':<26} {'seconds':>8} {'chips/s':>8} {'ratio':>6}  counts = in-process")
  for name, seconds, same in runs:
    rate_s = args.num_chips / seconds
    print(f"{name:<26} {seconds:8.2f} {rate_s:8.2f} {rate_s / base:6.2f}  {same}")
  print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} "
        "cores (workers share the cores other processes leave free)")
  if not all(same for _, _, same in runs):
    sys.exit("a Beam run's counts differ from the in-process counts")


if __name__ == "__main__":
  main()
