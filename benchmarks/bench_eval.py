#!/usr/bin/env python3
"""Cost of robust evaluation: 10 chips at one rate vs 10 clean passes over the same test set.

Same model (narrow MNIST SimpleNet, RQUANT 8 bit; untrained weights are fine for timing) and the
same MNIST test images. A chip evaluation is ``Evaluator.chip_errors``: load the chip's masks once
(``memory.load_chip``: compute them with the compiled op, assign them to the quantizers) and run
the traced forward pass over the test set. A clean pass runs the same forward pass with the
masks untouched. The target is a ratio <= 1.1, i.e. loading a chip costs at most 10 % of a pass.

Clean passes and chip passes alternate (clean, chip, clean, chip, ...), so drift from other
processes on the machine hits both alike.

Usage: python benchmarks/bench_eval.py [--test_limit=2000] [--width=0.25] [--rate=1]
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfbet import chips  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import data as data_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import evaluation  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import memory  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import models  # noqa: E402  pylint: disable=g-import-not-at-top
from tfbet import quantize_configs  # noqa: E402  pylint: disable=g-import-not-at-top


def _timed(fn):
  start = time.perf_counter()
  value = fn()
  return time.perf_counter() - start, value


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--test_limit", type=int, default=2000, help="MNIST test examples")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--width", type=float, default=0.25, help="SimpleNet channel multiplier")
  parser.add_argument("--num_chips", type=int, default=10)
  parser.add_argument("--rate", type=float, default=1.0, help="bit error rate p in percent")
  args = parser.parse_args()
  if not 0 <= args.rate < 100:
    parser.error(f"--rate is in percent and must be in [0, 100), got {args.rate}")
  rate = args.rate / 100.0

  data = data_lib.load_data(name="mnist", test_limit=args.test_limit,
                            test_batch_size=args.batch_size)
  model = models.get_model("simplenet", variant="mnist", width=args.width, channels_per_group=4,
                           num_classes=data.num_classes, input_shape=data.input_shape, seed=0)
  qmodel = quantize_configs.quantize_model(model, "rquant")
  evaluator = evaluation.Evaluator(qmodel, data.test_dataset())
  layout = evaluator.layout
  trace_seconds, _ = _timed(evaluator.clean_errors)  # traces the forward pass, clears masks
  print(f"model: SimpleNet mnist width {args.width}, {layout.num_weights} quantized weights in "
        f"{len(layout.slots)} tensors; n = {evaluator.n} MNIST test images, batch "
        f"{args.batch_size}; first pass incl. tracing {trace_seconds:.2f} s")

  chip_list = [chips.RandomChip(seed) for seed in chips.default_chip_seeds(args.num_chips)]
  clean_seconds, chip_seconds = [], []
  load_seconds, mask_seconds, assign_seconds = [], [], []
  for chip in chip_list:
    # Clean pass and chip pass alternate, so drift from other processes hits both alike.
    memory.clear_masks(layout)  # not timed: the clean pass loads nothing
    clean_seconds.append(_timed(evaluator.errors)[0])
    chip_seconds.append(_timed(lambda chip=chip: evaluator.chip_errors(chip, rate))[0])
    # The parts of a load, timed again on their own (the same work as inside chip_errors).
    mask_s, masks = _timed(lambda chip=chip: chip.masks(layout.num_weights, layout.precision,
                                                        rate))
    assign_s, _ = _timed(lambda masks=masks: memory.load_masks(layout, *masks))
    load_s, _ = _timed(lambda chip=chip: memory.load_chip(layout, chip, rate))
    mask_seconds.append(mask_s)
    assign_seconds.append(assign_s)
    load_seconds.append(load_s)
  memory.clear_masks(layout)
  assert evaluator.trace_count == 1, evaluator.trace_count

  clean_total, chips_total = sum(clean_seconds), sum(chip_seconds)
  pair_ratios = [c / k for c, k in zip(chip_seconds, clean_seconds)]
  median_pass = statistics.median(clean_seconds)
  print(f"{args.num_chips} clean passes:       {clean_total:7.3f} s (median {median_pass:.3f} s)")
  print(f"{args.num_chips} chips at p = {args.rate:g} %: {chips_total:7.3f} s "
        f"(median {statistics.median(chip_seconds):.3f} s, masks loaded once per chip)")
  print(f"ratio chips / clean:      {chips_total / clean_total:7.3f}   (target <= 1.1; median "
        f"of the {len(pair_ratios)} chip/clean pairs {statistics.median(pair_ratios):.3f})")
  print(f"mask loading per chip:    {1e3 * statistics.median(load_seconds):7.1f} ms median "
        f"(compute masks {1e3 * statistics.median(mask_seconds):.1f} ms + assign to "
        f"{len(layout.slots)} tensors {1e3 * statistics.median(assign_seconds):.1f} ms) = "
        f"{100 * statistics.median(load_seconds) / median_pass:.1f} % of a clean pass")
  print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"on {os.cpu_count()} cores (other processes make single timings noisy)")
  print(f"forward-pass traces: {evaluator.trace_count}")


if __name__ == "__main__":
  main()
