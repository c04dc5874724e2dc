"""Seconds per epoch of RANDBET fit with and without the RErr monitor (tfbet.callbacks), as a ratio.

The same model (two trainers built alike), the same training batches and the same evaluation
set, epochs measured round-robin in one process. The monitor's cost per epoch is one pass of
the evaluation set for the clean error plus one per chip and rate, so it grows with
chips x rates x eval_examples and shrinks, relative to training, with train_examples.

  python benchmarks/bench_callback.py [--train_examples 4096] [--eval_examples 1000] \
      [--chips 5] [--rates 0.01] [--repeats 3]
"""
import argparse

import common  # first: sets TF_USE_LEGACY_KERAS before TensorFlow loads
import numpy as np
import tensorflow as tf
import tfbet
from tfbet import callbacks


def make_trainer(width):
  model = tfbet.models.get_model("simplenet", variant="mnist", width=width, seed=0,
                                 kernel_constraint=tfbet.WeightClip(0.1))
  qmodel = tfbet.quantize_model(model, tfbet.get_scheme("rquant", 8))
  trainer = tfbet.BitErrorTrainer(qmodel, method="randbet", rate=0.01, loss_threshold=1e9)
  trainer.compile(optimizer=tfbet.training.paper_optimizer(total_steps=10_000))
  return trainer, tfbet.memory.layout(qmodel).num_weights


def mnist_like(n, seed):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, 28, 28, 1)).astype(np.float32),
          rng.integers(0, 10, size=n).astype(np.int64))


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--width", type=float, default=0.25, help="SimpleNet width multiplier")
  parser.add_argument("--batch", type=int, default=128, help="training batch size")
  parser.add_argument("--train_examples", type=int, default=4096, help="training set size")
  parser.add_argument("--eval_examples", type=int, default=1000, help="monitor's examples")
  parser.add_argument("--chips", type=int, default=5, help="monitor's chips (seeds 1000, ...)")
  parser.add_argument("--rates", type=float, nargs="+", default=[0.01],
                      help="monitor's rates (fractions)")
  parser.add_argument("--repeats", type=int, default=3, help="timed epochs per trainer")
  args = parser.parse_args()

  train = tf.data.Dataset.from_tensor_slices(mnist_like(args.train_examples, 0)).batch(args.batch)
  plain, weights = make_trainer(args.width)
  monitored, _ = make_trainer(args.width)
  monitor = callbacks.RErrMonitor(mnist_like(args.eval_examples, 1), rates=args.rates,
                                  chips=args.chips)
  epochs = {"plain": 0, "monitored": 0}

  def epoch(name, trainer, callback_list):
    def fit_one_epoch():  # epochs counted on, so the monitor keeps each epoch's time
      trainer.fit(train, initial_epoch=epochs[name], epochs=epochs[name] + 1, verbose=0,
                  callbacks=callback_list)
      epochs[name] += 1
    return fit_one_epoch

  times, cpu = common.interleaved_medians({
      "plain": epoch("plain", plain, []),
      "monitored": epoch("monitored", monitored, [monitor]),
  }, repeats=args.repeats, warmup=1, cpu=True)
  print(f"SimpleNet-MNIST width {args.width} ({weights:,} quantized weights), RANDBET, "
        f"{args.train_examples} training examples in batches of {args.batch}; monitor: "
        f"{args.chips} chips x {len(args.rates)} rate(s) + clean on {args.eval_examples} "
        f"examples; median of {args.repeats} epochs; wall (CPU time of all threads)")
  print(f"  {'fit epoch':<26} {times['plain']:8.2f} s  ({cpu['plain']:8.2f} s)")
  print(f"  {'fit epoch + RErrMonitor':<26} {times['monitored']:8.2f} s  "
        f"({cpu['monitored']:8.2f} s)")
  print(f"  {'ratio':<26} {times['monitored'] / times['plain']:8.2f}    "
        f"({cpu['monitored'] / cpu['plain']:8.2f})")
  timed = [monitor.seconds[e] for e in sorted(monitor.seconds)[1:]]  # after the warm-up epoch
  print(f"  monitor's own evaluation: median {sorted(timed)[len(timed) // 2]:.2f} s per epoch "
        f"(first epoch, reading the set and tracing: {monitor.seconds[1]:.2f} s)")


if __name__ == "__main__":
  main()
