"""Robust test error (RErr) of a quantized model: counted over chips x conditions (x offsets).

RErr is the test error after injecting bit errors into the stored weights (Sec. 5, "Metrics").
For every chip (a seed, or a profiled map), every condition (bit error rate p, or the voltage of a
profiled chip) and every offset (where the weights start on a profiled map, App. C.1) the chip's
masks are loaded once into the model's memory (``tfbet.memory.load_chip``) and the whole test set
is run through one ``tf.function`` that is traced once and reused for every chip.

What is measured is planned by ``tfbet.evaluation_plan``; the counts are ``tfbet.results.Results``
(their file format, merging, statistics); ``tfbet.result_identity`` says which model and test set
they are of. The names of those modules that this one used to hold are still found here.
"""
import collections
import dataclasses
import hashlib
import json
import os
import time

from absl import logging
import numpy as np

from tfbet import checks
from tfbet import evaluation_plan
from tfbet import lazy_modules
from tfbet import result_identity
from tfbet import results as results_lib
# pylint: disable=unused-import  (the names this module held before docs/design.md §2's split)
from tfbet.evaluation_plan import CONDITION_KINDS
from tfbet.evaluation_plan import MAX_VOLTAGE
from tfbet.evaluation_plan import make_plan
from tfbet.evaluation_plan import shard
from tfbet.result_identity import COVERAGE_FIELDS
from tfbet.result_identity import DATA_DIGEST_PREFIX
from tfbet.result_identity import data_difference
from tfbet.result_identity import describe_model
from tfbet.result_identity import digest_of_examples
from tfbet.result_identity import kind_difference
from tfbet.result_identity import model_difference
from tfbet.results import ConditionSummary
from tfbet.results import DEFAULT_DELTA
from tfbet.results import FORMAT
from tfbet.results import MAX_COUNT
from tfbet.results import MAX_RESULT_BYTES
from tfbet.results import Results
from tfbet.results import merge
from tfbet.results import natural_key
from tfbet.results import prop1_excess
# pylint: enable=unused-import

# Reading, merging and comparing result files needs none of these (docs/design.md, §2).
tf = lazy_modules.module("tensorflow")
memory = lazy_modules.module("tfbet.memory")
quantization = lazy_modules.module("tfbet.quantization")
quantize_configs = lazy_modules.module("tfbet.quantize_configs")


@dataclasses.dataclass(frozen=True)
class ChipProgress:
  """Reported after each chip: its counts and the time since the evaluation started."""
  index: int  # 0-based
  total: int
  chip: str
  errors: dict  # {(condition, offset): errors}
  n: int
  elapsed: float  # seconds since the start (clean evaluation included)
  resumed: int = 0  # chips taken over from an earlier, interrupted run (not timed here)
  condition_kind: str = "rate"  # "rate" (p, a fraction) or "voltage"

  def line(self):
    """One line: chip index, name, RErr per condition (mean over offsets), time, time left."""
    by_condition = collections.defaultdict(list)
    for (condition, _), errors in sorted(self.errors.items()):
      by_condition[condition].append(errors / self.n)
    label = ((lambda c: f"p={100 * c:g}%") if self.condition_kind == "rate"
             else (lambda c: f"V={c:g}"))
    rerrs = " ".join(f"{label(c)}:{100 * sum(v) / len(v):.2f}%" for c, v in by_condition.items())
    measured = max(1, self.index + 1 - self.resumed)
    remaining = self.elapsed / measured * (self.total - self.index - 1)
    return (f"[{self.index + 1}/{self.total}] {self.chip} RErr {rerrs} "
            f"({self.elapsed:.1f} s elapsed, ~{remaining:.0f} s left)")


def log_progress(event):
  """Default progress report: ``event.line()`` as one absl INFO line per chip."""
  logging.info("%s", event.line())


def model_digest(mem):
  """sha256 of the clean memory (codes, ranges, scheme): identifies the evaluated weights."""
  codes, ranges = memory.memory_contents(mem)
  digest = hashlib.sha256()
  digest.update(np.ascontiguousarray(codes).tobytes())
  digest.update(np.ascontiguousarray(ranges, dtype=np.float32).tobytes())
  digest.update(json.dumps(mem.scheme.to_dict(), sort_keys=True).encode())
  return digest.hexdigest()


class Evaluator:
  """Counts misclassified test examples of a quantized model under the masks loaded now.

  The test set is read once into memory. The forward pass is one ``tf.function`` with a fixed
  input signature (any batch size), traced on the first call and reused for every chip.
  """

  def __init__(self, model, dataset):
    self.model = model
    self.layout = memory.layout(model)
    num_classes = int(model.output_shape[-1])
    self._batches = []
    images_digest, labels_digest = hashlib.sha256(), hashlib.sha256()
    n = 0
    for batch in dataset:
      if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("dataset must yield (images, labels) batches")
      images = tf.convert_to_tensor(batch[0], dtype=tf.float32)
      labels = tf.constant(checks.class_labels(batch[1], "dataset labels", num_classes, n))
      if labels.shape.rank != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"dataset batches must be images [b, ...] with labels [b], got "
                         f"{images.shape} and {labels.shape}")
      images_digest.update(images.numpy().tobytes())
      labels_digest.update(labels.numpy().tobytes())
      self._batches.append((images, labels))
      n += int(labels.shape[0])
    if n == 0:
      raise ValueError("dataset must hold at least one test example")
    shapes = {tuple(images.shape[1:]) for images, _ in self._batches}
    if len(shapes) != 1:
      raise ValueError(f"all batches must have the same example shape, got {sorted(shapes)}")
    self.n = n
    example_shape = shapes.pop()
    self.data_digest = result_identity.digest_of_examples(example_shape, images_digest,
                                                          labels_digest)

    @tf.function(input_signature=[tf.TensorSpec((None,) + example_shape, tf.float32),
                                  tf.TensorSpec((None,), tf.int64)])
    def wrong_examples(images, labels):
      logits = self.model(images, training=False)
      predictions = tf.argmax(logits, axis=-1, output_type=tf.int64)
      return tf.not_equal(predictions, labels)

    self._wrong_examples = wrong_examples
    self.digest = model_digest(self.layout)

  def reread_model(self):
    """Takes the model's weights as they are now (e.g. after training epochs): refreshes a
    global range and the digest, as a new ``Evaluator`` would, without re-reading the test set
    or tracing the forward pass again (``tfbet.callbacks.RErrMonitor``)."""
    self.digest = model_digest(self.layout)

  @property
  def trace_count(self):
    """How often the forward pass was traced (1 after the first evaluation, and it stays 1)."""
    return self._wrong_examples.experimental_get_tracing_count()

  def describe_model(self):
    return {"name": self.model.name, "digest": self.digest,
            "num_weights": self.layout.num_weights, "scheme": self.layout.scheme.to_dict(),
            "coverage": memory.coverage(self.layout).to_dict()}

  def wrong(self):
    """bool [n]: the test examples misclassified with the masks that are loaded right now."""
    return np.concatenate([self._wrong_examples(images, labels).numpy()
                           for images, labels in self._batches])

  def errors(self):
    """Misclassified test examples with the masks that are loaded right now."""
    return int(self.wrong().sum())

  def clean_wrong(self):
    """bool [n]: the examples the clean quantized model misclassifies (clears all masks)."""
    memory.clear_masks(self.layout)
    return self.wrong()

  def clean_errors(self):
    """Misclassified test examples of the clean quantized model (clears all masks)."""
    return int(self.clean_wrong().sum())

  def chip_wrong(self, chip, condition, offset=0, allow_high_rate=False):
    """Loads ``chip``'s masks at ``condition`` and ``offset`` once: bool [n] misclassified."""
    memory.load_chip(self.layout, chip, condition, offset=offset,
                     allow_high_rate=allow_high_rate)
    return self.wrong()

  def chip_errors(self, chip, condition, offset=0, allow_high_rate=False):
    """Loads ``chip``'s masks at ``condition`` and ``offset`` once, then counts errors."""
    return int(self.chip_wrong(chip, condition, offset, allow_high_rate).sum())

  def run(self, chips, conditions=None, offsets=(0,), progress=log_progress, metadata=None,
          num_shards=1, shard_index=0, resume=None, checkpoint=None, allow_high_rate=False,
          per_example=False):
    """Evaluates every chip of a shard at every condition and offset; returns ``Results``.

    Args:
      chips, conditions, offsets, num_shards, shard_index: the evaluation, see
        ``tfbet.evaluation_plan.make_plan``; only the chips of shard ``shard_index`` are measured.
      progress: callable(ChipProgress) after each chip, or None.
      metadata: JSON-able dict stored with the results.
      resume: Results of an earlier, interrupted run of the same evaluation (same plan, model,
        test set and clean count, else ValueError); its complete chips are taken over.
      checkpoint: callable(Results so far) after each chip, e.g. to save them; with ``resume``
        this makes a long evaluation resumable.
      allow_high_rate: accept rates above 0.5 (refused by default as likely percents).
      per_example: also record which examples each chip misclassifies (see the module
        docstring); a comparison of models then measures its test-set noise.
    """
    plan, work = evaluation_plan.make_plan(chips, conditions, offsets, num_shards, shard_index,
                                           allow_high_rate=allow_high_rate)
    kind = evaluation_plan.condition_kind([chip for chip, _, _ in work])
    started = time.perf_counter()
    clean_wrong = self.clean_wrong()
    results = results_lib.Results(
        model=self.describe_model(), n=self.n, data_digest=self.data_digest,
        clean_errors=int(clean_wrong.sum()), condition_kind=kind,
        chips={chip.name: chip.describe() for chip, _, _ in work}, metadata=metadata, plan=plan,
        clean_wrong=clean_wrong if per_example else None)
    done = set()
    if resume is not None:
      for chip, chip_conditions, chip_offsets in self._check_resume(resume, results, work):
        for condition in chip_conditions:
          for offset in chip_offsets:
            key = (chip.name, condition, offset)
            results.add(*key, resume.errors[key], wrong=resume.wrong.get(key))
        done.add(chip.name)
    try:
      for index, (chip, chip_conditions, chip_offsets) in enumerate(work):
        if chip.name in done:
          continue
        wrong = {}
        for condition in chip_conditions:
          for offset in chip_offsets:
            wrong[(condition, offset)] = self.chip_wrong(chip, condition, offset,
                                                         allow_high_rate)
        counts = {key: int(flags.sum()) for key, flags in wrong.items()}
        for (condition, offset), errors in counts.items():
          results.add(chip.name, condition, offset, errors,
                      wrong=wrong[(condition, offset)] if per_example else None)
        if checkpoint is not None:
          checkpoint(results)
        if progress is not None:
          progress(ChipProgress(index=index, total=len(work), chip=chip.name, errors=counts,
                                n=self.n, elapsed=time.perf_counter() - started,
                                resumed=len(done), condition_kind=kind))
    finally:
      memory.clear_masks(self.layout)
    return results

  @staticmethod
  def _check_resume(resume, results, work):
    """The chips of ``work`` that ``resume`` holds completely; ValueError if it is foreign."""
    difference = result_identity.evaluation_difference(
        resume, results, "the earlier partial result", "this run", same_shard=True)
    if difference:
      raise ValueError(f"cannot resume: {difference}")
    return [item for item in work
            if all((item[0].name, c, o) in resume.errors for c in item[1] for o in item[2])]


def evaluate(model, dataset, chips, conditions=None, offsets=(0,), progress=log_progress,
             metadata=None, num_shards=1, shard_index=0, allow_high_rate=False,
             per_example=False):
  """RErr counts of quantized ``model`` on ``dataset`` for every chip x condition x offset.

  ``dataset`` yields (images, labels) batches (e.g. ``DataSplits.test_dataset()``), labels of an
  integer dtype in [0, number of model outputs) (``checks.class_labels``); see
  ``Evaluator.run`` for the other arguments. The model's masks are all zero afterwards.
  """
  return Evaluator(model, dataset).run(chips, conditions, offsets, progress=progress,
                                       metadata=metadata, num_shards=num_shards,
                                       shard_index=shard_index, allow_high_rate=allow_high_rate,
                                       per_example=per_example)


def evaluate_float_model(model, dataset, chips, conditions=None, *, scheme="rquant",
                         precision=8, exclude=None, offsets=(0,), progress=log_progress,
                         metadata=None, allow_high_rate=False):
  """Post-training quantization: quantizes a float model, then evaluates it on chips.

  ``model`` is a float Keras model or the path of an .h5 or .keras file (read by
  ``tfbet.safe_loading``: data, never code);
  ``scheme`` a preset name (or ``QuantizationScheme``) at ``precision`` bits; ``exclude`` as in
  ``tfbet.quantize_model``. ``dataset`` yields (images, labels) batches exactly as the model
  expects them: nothing is rescaled or whitened here. Returns ``Results`` (see ``evaluate``);
  their ``model["coverage"]`` states the share of parameters in faulty memory.
  """
  if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
    from tfbet import safe_loading  # pylint: disable=g-import-not-at-top  (loads Keras models)
    model = safe_loading.load_model(os.fsdecode(model))
  if quantize_configs.is_quantized(model):
    raise ValueError(f"model {model.name!r} is already quantized; use tfbet.evaluation.evaluate")
  if not isinstance(scheme, quantization.QuantizationScheme):
    scheme = quantization.get_scheme(scheme, precision)
  elif scheme.precision != precision:
    raise ValueError(f"scheme has precision {scheme.precision}, but precision={precision}")
  qmodel = quantize_configs.quantize_model(model, scheme, exclude=exclude)
  metadata = dict(metadata or {}, post_training_quantization=True)
  return evaluate(qmodel, dataset, chips, conditions, offsets=offsets, progress=progress,
                  metadata=metadata, allow_high_rate=allow_high_rate)
