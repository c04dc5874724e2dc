"""Make your own Keras model robust to bit errors: quantize, RandBET with fit, evaluate on chips.

The model is a Keras Applications MobileNetV2 (weights=None) on 32x32 RGB inputs; the data are
MNIST digits padded to 32x32 and repeated over three channels (local files in ../shared/data if
present, else tensorflow-datasets). Run `python examples/robustify_keras_model.py --help`;
`--tiny` trains on a few batches only (for CI).
"""
from absl import app
from absl import flags

import tfbet  # first: tfbet needs tf-keras (Keras 2) and sets TF_USE_LEGACY_KERAS=1
import tensorflow as tf
from tfbet.compat import keras

flags.DEFINE_boolean("tiny", False, "A few batches and chips only (a smoke test for CI).")
flags.DEFINE_integer("epochs", 3, "Training epochs (1 with --tiny).", lower_bound=1)
flags.DEFINE_float("rate", 1.0, "Bit error rate p in percent for RandBET training.",
                   lower_bound=0.0, upper_bound=50.0)
flags.DEFINE_list("eval_rates", ["0.1", "1"], "Bit error rates in percent to evaluate at.")
flags.DEFINE_integer("num_chips", 5, "Random chips to evaluate on (2 with --tiny).",
                     lower_bound=1)
FLAGS = flags.FLAGS


def to_rgb_32(dataset):
  """28x28x1 digits -> 32x32x3, the smallest input MobileNetV2 takes."""
  return dataset.map(lambda x, y: (tf.image.grayscale_to_rgb(tf.image.resize_with_pad(x, 32, 32)),
                                   y))


def main(argv):
  del argv
  tiny = FLAGS.tiny
  epochs = 1 if tiny else FLAGS.epochs
  # Whitening is chosen explicitly: the model is trained and evaluated on the same inputs.
  data = tfbet.data.load_data(name="mnist", batch_size=32 if tiny else 128, whiten=True,
                              train_limit=64 if tiny else None, test_limit=64 if tiny else 2000)

  # 1. Your Keras model: any Sequential/functional model (nested ones too).
  keras.utils.set_random_seed(0)
  model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35,
                                         classes=data.num_classes, classifier_activation=None)

  # 2. Quantize: every trainable parameter goes to (faulty) 8-bit RQUANT memory, or this fails.
  qmodel = tfbet.quantize_model(model, tfbet.get_scheme("rquant", precision=8))
  print(tfbet.memory.coverage(qmodel).describe())

  # 3. RandBET (Alg. 1) through Keras fit: a clean and a perturbed pass, a new chip every step.
  steps = epochs * sum(1 for _ in data.train_dataset(0))
  trainer = tfbet.BitErrorTrainer(qmodel, method="randbet", rate=FLAGS.rate / 100, seed=0)
  # --tiny runs eagerly: tracing the whole step takes longer than its two steps.
  trainer.compile(optimizer=tfbet.training.paper_optimizer(total_steps=steps), run_eagerly=tiny)
  for epoch in range(epochs):  # a new batch order every epoch
    trainer.fit(to_rgb_32(data.train_dataset(epoch)), epochs=epoch + 1, initial_epoch=epoch,
                verbose=2)

  # 4. Robust test error on random chips (fixed seeds) at each bit error rate.
  chip_list = [tfbet.chips.RandomChip(seed)
               for seed in tfbet.chips.default_chip_seeds(2 if tiny else FLAGS.num_chips)]
  rates = [float(r) / 100 for r in FLAGS.eval_rates]
  results = tfbet.evaluation.evaluate(qmodel, to_rgb_32(data.test_dataset()), chip_list, rates,
                                      progress=None)
  print(tfbet.evaluation.describe_model(results.model))
  print(f"clean Err {100 * results.clean_error:.2f} %")
  for row in results.summary():
    print(f"p = {100 * row.condition:g} %: RErr {100 * row.mean:.2f} % "
          f"(+- {100 * row.std:.2f}, {row.num_chips} chips)")


if __name__ == "__main__":
  app.run(main)
