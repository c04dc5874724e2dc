"""Training-step time of a QAT model (RQUANT, m = 8, bit error masks) vs the float model.

Same MNIST SimpleNet (Tab. 6; --width scales it), same batch, same optimizer, one process,
measured round-robin. Target: ratio <= 1.1.

  python benchmarks/bench_quantization.py [--width 1.0] [--batch 32] [--repeats 5]
"""
import argparse

import common  # first: sets TF_USE_LEGACY_KERAS before TensorFlow loads
import tfbet
from tfbet.compat import keras


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--width", type=float, default=1.0, help="SimpleNet width multiplier")
  parser.add_argument("--batch", type=int, default=32, help="batch size")
  parser.add_argument("--repeats", type=int, default=5, help="timed steps per model")
  args = parser.parse_args()

  x, y = common.random_mnist_batch(args.batch)
  float_model = tfbet.models.get_model("simplenet", variant="mnist", width=args.width, seed=0)
  qat_model = tfbet.quantize_model(float_model, tfbet.get_scheme("rquant", 8))
  loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  for model in (float_model, qat_model):
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=loss)
  times, cpu = common.interleaved_medians({
      "float": lambda: float_model.train_on_batch(x, y),
      "qat": lambda: qat_model.train_on_batch(x, y),
  }, repeats=args.repeats, cpu=True)
  print(f"SimpleNet-MNIST width {args.width} ({float_model.count_params():,} weights), "
        f"batch {args.batch}, median of {args.repeats} steps; wall (CPU time of all threads)")
  print(f"  float step      {times['float'] * 1e3:9.1f} ms  ({cpu['float'] * 1e3:9.1f} ms)")
  print(f"  QAT RQUANT m=8  {times['qat'] * 1e3:9.1f} ms  ({cpu['qat'] * 1e3:9.1f} ms)")
  print(f"  ratio QAT/float {times['qat'] / times['float']:9.2f}     "
        f"({cpu['qat'] / cpu['float']:9.2f})      (target <= 1.1)")


if __name__ == "__main__":
  main()
