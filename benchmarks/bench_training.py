"""Step time of RANDBET vs CLIPPING (same model, batch and trainer), as a ratio.

Alg. 1 does two forward/backward passes, so 2 is the floor; the paper's implementation took
about 3x (App. G.4). Target: <= 1.9.

  python benchmarks/bench_training.py [--width 0.25] [--batch 128] [--repeats 10]
"""
import argparse

import common  # first: sets TF_USE_LEGACY_KERAS before TensorFlow loads
import tfbet


def make_trainer(method, width, rate):
  model = tfbet.models.get_model("simplenet", variant="mnist", width=width, seed=0,
                                 kernel_constraint=tfbet.WeightClip(0.1))
  qmodel = tfbet.quantize_model(model, tfbet.get_scheme("rquant", 8))
  trainer = tfbet.BitErrorTrainer(qmodel, method=method, rate=rate, loss_threshold=1e9)
  trainer.compile(optimizer=tfbet.training.paper_optimizer(total_steps=10_000))
  return trainer, tfbet.memory.layout(qmodel).num_weights


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--width", type=float, default=0.25, help="SimpleNet width multiplier")
  parser.add_argument("--batch", type=int, default=128, help="batch size")
  parser.add_argument("--rate", type=float, default=0.01, help="RANDBET bit error rate")
  parser.add_argument("--repeats", type=int, default=10, help="timed steps per trainer")
  args = parser.parse_args()

  x, y = common.random_mnist_batch(args.batch)
  clipping, weights = make_trainer("clean", args.width, 0.0)
  randbet, _ = make_trainer("randbet", args.width, args.rate)
  times, cpu = common.interleaved_medians({
      "clipping": lambda: clipping.train_on_batch(x, y),
      "randbet": lambda: randbet.train_on_batch(x, y),
  }, repeats=args.repeats, cpu=True)
  print(f"SimpleNet-MNIST width {args.width} ({weights:,} quantized weights), batch {args.batch}, "
        f"p = {args.rate}, median of {args.repeats} steps; wall (CPU time of all threads)")
  for name, label in (("clipping", "CLIPPING"), ("randbet", "RANDBET")):
    print(f"  {label + ' step':<20} {times[name] * 1e3:9.1f} ms  ({cpu[name] * 1e3:9.1f} ms)")
  print(f"  ratio RANDBET/CLIP   {times['randbet'] / times['clipping']:9.2f}     "
        f"({cpu['randbet'] / cpu['clipping']:9.2f})      (target <= 1.9)")


if __name__ == "__main__":
  main()
