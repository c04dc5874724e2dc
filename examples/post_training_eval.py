"""Post-training evaluation: how does a saved float Keras model fare on chips with bit errors?

Quantizes a float model (no retraining) with a scheme of your choice and measures its robust
test error (RErr) on random chips. Without --model it first trains and saves a small float CNN
on MNIST, standing in for your own file. The same in one shell command:
`bin/eval --model=F --scheme=rquant --precision=8 --nowhiten --gin_file=data/mnist.gin`.
Run `python examples/post_training_eval.py --help`; `--tiny` is a smoke test for CI.
"""
import os
import tempfile

from absl import app
from absl import flags

import tfbet  # first: tfbet needs tf-keras (Keras 2) and sets TF_USE_LEGACY_KERAS=1
from tfbet.compat import keras

flags.DEFINE_string("model", None, "A float Keras model file (HDF5 .h5, read as data: Lambda layers are refused) that "
                    "takes MNIST digits 28x28x1 in [0, 1]; default: train one first.")
flags.DEFINE_boolean("tiny", False, "A few batches and chips only (a smoke test for CI).")
flags.DEFINE_enum("scheme", "rquant", ["global", "normal", "asymmetric", "unsigned", "rquant"],
                  "Quantization preset.")
flags.DEFINE_integer("precision", 8, "Bits per weight.", lower_bound=1, upper_bound=8)
flags.DEFINE_list("rates", ["0.1", "1"], "Bit error rates in percent.")
flags.DEFINE_integer("num_chips", 5, "Random chips (2 with --tiny).", lower_bound=1)
FLAGS = flags.FLAGS


def train_float_model(data, path, epochs):
  """A small float CNN, trained as anyone would, saved to ``path``."""
  keras.utils.set_random_seed(0)
  inputs = keras.Input(data.input_shape)
  x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
  x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
  outputs = keras.layers.Dense(data.num_classes)(keras.layers.Flatten()(x))
  model = keras.Model(inputs, outputs, name="float_cnn")
  model.compile(keras.optimizers.Adam(3e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  for epoch in range(epochs):
    model.fit(data.train_dataset(epoch), verbose=2)
  model.save(path)
  return path


def main(argv):
  del argv
  tiny = FLAGS.tiny
  # The inputs the model expects, chosen explicitly: pixels in [0, 1], no whitening.
  data = tfbet.data.load_data(name="mnist", whiten=False, batch_size=128,
                              train_limit=512 if tiny else 10000, test_limit=200 if tiny else 2000)
  path = FLAGS.model or train_float_model(
      data, os.path.join(tempfile.mkdtemp(), "float_cnn.h5"), epochs=1 if tiny else 3)

  chip_list = [tfbet.chips.RandomChip(seed)
               for seed in tfbet.chips.default_chip_seeds(2 if tiny else FLAGS.num_chips)]
  results = tfbet.evaluate_float_model(
      path, data.test_dataset(), chip_list, [float(r) / 100 for r in FLAGS.rates],
      scheme=FLAGS.scheme, precision=FLAGS.precision, progress=None)

  print(tfbet.evaluation.describe_model(results.model))
  print(f"{FLAGS.scheme} {FLAGS.precision} bit, clean Err {100 * results.clean_error:.2f} %")
  for row in results.summary():
    print(f"p = {100 * row.condition:g} %: RErr {100 * row.mean:.2f} % "
          f"(+- {100 * row.std:.2f}, {row.num_chips} chips)")


if __name__ == "__main__":
  app.run(main)
