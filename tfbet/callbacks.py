"""RErr while training: a Keras callback that evaluates fixed chips every N epochs.

``RErrMonitor`` measures the robust test error (RErr, Sec. 5) of the model being fit on a few
fixed random chips at chosen bit error rates, on a fixed evaluation set, and writes it into the
epoch's ``logs``. So RErr appears next to the clean error in the ``History``, in TensorBoard and
in ``bin/train``'s ``result.json``, and ``ModelCheckpoint(monitor="rerr_p0.01", mode="min",
save_best_only=True)`` keeps the most robust checkpoint.

The numbers are those of ``bin/eval``: the monitor runs ``tfbet.evaluation.Evaluator`` (the
evaluator ``bin/eval`` runs in-process), built once on the first evaluation (the set is read
into memory once, the forward pass traced once) and told before every later evaluation that the
weights changed (``Evaluator.reread_model``). Same chips, rates and examples give the same error
counts as ``bin/eval`` on the model saved at that epoch; the monitor keeps them
(``RErrMonitor.results``). Chips load their masks deterministically from their seeds, so the
same seeds give identical numbers, and the masks are all zero again afterwards (the training
step loads its own errors), so the monitor does not change training.

Units (docs/design.md §6): rates are fractions (1 % is 0.01) and so are the logged values,
like Keras' ``error``: ``rerr_p<rate>`` is the mean RErr over the chips in [0, 1], with the rate
written as Python writes the float (``rerr_p0.01`` for p = 1 %, see :func:`rerr_key`), and
``rerr_clean`` the clean error of the quantized model on the same examples.

In epochs where the monitor does not run (``every_n_epochs`` > 1) its keys are absent from the
logs: Keras' ``History`` then lists only the epochs measured, TensorBoard draws no point and
``ModelCheckpoint`` skips the epoch with a warning.

Cost: each evaluation runs the set once clean and once per chip and rate, (chips x rates + 1) x
examples forward passes; a RANDBET epoch costs about 6 per training example (two forward and
backward passes). ``benchmarks/bench_callback.py`` measures both (figures in the README).

Order matters: Keras hands one ``logs`` dict from callback to callback in list order, so put the
monitor *before* ``TensorBoard``, ``ModelCheckpoint``, ``EarlyStopping`` and anything else that
reads its keys (``History`` always comes last; the progress bar first, so it never shows them;
the monitor logs one INFO line of its own).
"""
import numbers
import time

from absl import logging
import numpy as np
import tensorflow as tf

from tfbet import checks
from tfbet import chip_models
from tfbet import evaluation
from tfbet import quantize_configs
from tfbet import training
from tfbet.compat import keras

# Batch size of evaluation sets given as arrays.
DEFAULT_BATCH_SIZE = 256
# At most this many chips: the monitor runs inside training, every chip costs a pass of the set.
MAX_CHIPS = 1000
CLEAN_KEY = "rerr_clean"


def rerr_key(rate):
  """The logs key of the mean RErr at bit error rate ``rate`` (a fraction): ``rerr_p0.01``.

  The rate as Python writes the float (its shortest exact form), so distinct rates always get
  distinct keys.
  """
  return f"rerr_p{float(rate)!r}"


def _chip_list(chips):
  """Random chips from a count (bin/eval's default seeds 1000, 1001, ...), seeds or chips."""
  if isinstance(chips, numbers.Integral) and not isinstance(chips, bool):
    count = checks.integer(chips, "chips", minimum=1, maximum=MAX_CHIPS)
    return [chip_models.RandomChip(seed) for seed in chip_models.default_chip_seeds(count)]
  if isinstance(chips, (str, bytes)) or not isinstance(chips, (list, tuple)):
    raise checks.ArgumentTypeError(
        f"chips must be a number of chips, or a list of chip seeds or random chips, got {chips!r}")
  if not 1 <= len(chips) <= MAX_CHIPS:
    raise ValueError(f"chips must list 1 to {MAX_CHIPS} chips, got {len(chips)}")
  chip_list = []
  for index, chip in enumerate(chips):
    if isinstance(chip, chip_models.Chip):
      if chip.conditions is not None:
        raise ValueError(f"chips[{index}] ({chip.name}) is a profiled chip, measured at its "
                         "voltages, not at rates; the monitor takes random chips")
      chip_list.append(chip)
    elif isinstance(chip, numbers.Integral) and not isinstance(chip, bool):
      chip_list.append(chip_models.RandomChip(checks.seed(chip, f"chips[{index}]")))
    else:
      raise checks.ArgumentTypeError(
          f"chips[{index}] must be a chip seed or a random chip, got {chip!r}")
  names = [chip.name for chip in chip_list]
  if len(set(names)) != len(names):
    raise ValueError(f"chips must be distinct, got {names}")
  return chip_list


def _rate_list(rates, allow_high_rate):
  if isinstance(rates, (str, bytes)) or not isinstance(rates, (list, tuple)) or not rates:
    raise checks.ArgumentTypeError(
        f"rates must be a non-empty list of bit error rates (fractions, 1 % is 0.01), got "
        f"{rates!r}")
  values = [checks.rate(rate, f"rates[{index}]", allow_high_rate)
            for index, rate in enumerate(rates)]
  if len(set(values)) != len(values):
    raise ValueError(f"rates must be distinct, got {values}")
  return values


def _check_arrays(data):
  """(images float32, labels int64) of ``data = (x, y)``, class indices only."""
  if len(data) != 2:
    raise ValueError(f"data must be (images, labels) or a tf.data.Dataset, got a sequence of "
                     f"{len(data)} items")
  images, labels = np.asarray(data[0]), np.asarray(data[1])
  if labels.ndim != 1 or labels.dtype.kind not in "iu":
    raise ValueError(f"data labels must be integer class indices of shape [n] (for one-hot "
                     f"labels pass np.argmax(y, axis=-1)), got dtype {labels.dtype} and shape "
                     f"{labels.shape}")
  num_images = images.shape[0] if images.ndim else 0
  if num_images != labels.shape[0] or not labels.size:
    raise ValueError(f"data must hold n >= 1 images and n labels, got {num_images} images and "
                     f"{labels.shape[0]} labels")
  return images.astype(np.float32), labels.astype(np.int64)


class RErrMonitor(keras.callbacks.Callback):
  """Logs the mean RErr over fixed chips at each rate every ``every_n_epochs`` epochs.

  Works in the ``fit`` of a model made by ``tfbet.quantize_model`` or of a
  ``tfbet.BitErrorTrainer`` around one. See the module docstring for the keys, units and the
  order among callbacks.

  Args:
    data: the evaluation set: ``(images, labels)`` arrays (labels are class indices), or a
      ``tf.data.Dataset`` of ``(images, labels)`` batches (e.g. ``DataSplits.test_dataset()``),
      read once, on the first evaluation.
    rates: bit error rates p as fractions, distinct; above 0.5 only with ``allow_high_rate``.
    chips: how many of ``bin/eval``'s default random chips (seeds 1000, 1001, ...), in
      [1, 1000]; or a list of chip seeds (``RandomChip(seed)``) or random chips
      (``RandomChip``, ``AsymmetricRandomChip``).
    every_n_epochs: evaluate after epochs n, 2n, 3n, ... (counted from 1, as Keras prints them).
    max_examples: evaluate on the first ``max_examples`` examples of ``data`` only (None: all).
    batch_size: the batch size for array data (default 256); a dataset keeps its own batches.
    allow_high_rate: accept rates above 0.5 (refused by default as likely percents).

  Attributes:
    results: {epoch (from 1): ``tfbet.results.Results``}: the counts of every evaluation.
    seconds: {epoch (from 1): seconds the evaluation took}.
  """

  def __init__(self, data=None, *, rates=(0.01,), chips=5, every_n_epochs=1, max_examples=None,
               batch_size=None, allow_high_rate=False):
    super().__init__()
    if data is None:
      raise ValueError("RErrMonitor needs data (the evaluation set); bin/train passes its test "
                       "set: bind train.rerr_monitor = @RErrMonitor, without parentheses")
    self.allow_high_rate = checks.boolean(allow_high_rate, "allow_high_rate")
    self.rates = _rate_list(rates, self.allow_high_rate)
    self.chips = _chip_list(chips)
    self.every_n_epochs = checks.count(every_n_epochs, "every_n_epochs", minimum=1)
    self.max_examples = (None if max_examples is None
                         else checks.count(max_examples, "max_examples", minimum=1))
    if isinstance(data, tf.data.Dataset):
      if batch_size is not None:
        raise ValueError("batch_size applies to array data; a tf.data.Dataset is evaluated in "
                         "its own batches (batch it as you want it)")
      self._dataset, self._arrays = data, None
    elif isinstance(data, (tuple, list)):
      self._dataset, self._arrays = None, _check_arrays(data)
      self.batch_size = checks.count(DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
                                     "batch_size", minimum=1)
    else:
      raise checks.ArgumentTypeError(f"data must be (images, labels) arrays or a "
                                     f"tf.data.Dataset of (images, labels) batches, got "
                                     f"{type(data).__name__}")
    self.results, self.seconds = {}, {}
    self._evaluator = None

  def keys(self):
    """The logs keys the monitor writes: one per rate, then the clean error."""
    return [rerr_key(rate) for rate in self.rates] + [CLEAN_KEY]

  def _batches(self):
    """The evaluation set as a list of (images, labels) batches, cut at ``max_examples``."""
    limit = self.max_examples
    if self._arrays is not None:
      images, labels = (array[:limit] for array in self._arrays)
      return [(images[i:i + self.batch_size], labels[i:i + self.batch_size])
              for i in range(0, len(labels), self.batch_size)]
    batches, n = [], 0
    for batch in self._dataset:
      if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("data (a tf.data.Dataset) must yield (images, labels) batches")
      images, labels = batch
      if limit is not None:
        images, labels = images[:limit - n], labels[:limit - n]
      batches.append((images, labels))
      n += int(tf.shape(labels)[0])
      if limit is not None and n >= limit:
        break
    return batches

  def _quantized_model(self):
    if isinstance(self.model, training.BitErrorTrainer):
      return self.model.model
    if quantize_configs.is_quantized(self.model):
      return self.model
    raise TypeError(f"RErrMonitor measures models made by tfbet.quantize_model (or a "
                    f"BitErrorTrainer around one); model {self.model.name!r} is not quantized")

  def evaluate(self):
    """The ``Results`` of the chips at the rates for the model's weights as they are now."""
    model = self._quantized_model()
    if self._evaluator is None or self._evaluator.model is not model:
      self._evaluator = evaluation.Evaluator(model, self._batches())
    else:
      self._evaluator.reread_model()
    return self._evaluator.run(self.chips, self.rates, progress=None,
                               allow_high_rate=self.allow_high_rate,
                               metadata={"tool": "RErrMonitor"})

  def on_epoch_end(self, epoch, logs=None):
    if (epoch + 1) % self.every_n_epochs:
      return
    started = time.perf_counter()
    results = self.evaluate()
    self.results[epoch + 1] = results
    self.seconds[epoch + 1] = time.perf_counter() - started
    means = {row.condition: row.mean for row in results.summary()}
    values = {rerr_key(rate): means[rate] for rate in self.rates}
    values[CLEAN_KEY] = results.clean_error
    if logs is not None:
      logs.update(values)
    logging.info("epoch %d: RErr %s over %d chips, clean %.2f %% on %d examples (%.1f s)",
                 epoch + 1, ", ".join(f"p={100 * rate:g}%: {100 * means[rate]:.2f}%"
                                      for rate in self.rates),
                 len(self.chips), 100 * results.clean_error, results.n, self.seconds[epoch + 1])
