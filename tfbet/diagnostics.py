"""Why robust models survive bit errors (Sec. 4.2, Fig. 6, Fig. 10, Tab. 2): three measures.

* Confidence: the softmax confidence (largest probability) and the logits of every test example,
  clean and with a chip's bit errors. Robust models keep confident, correct predictions; label
  smoothing, which caps confidence, hurts robustness (Tab. 2).
* Redundancy of the weights: the share of weights whose magnitude is near the largest of their
  tensor (``|w| >= threshold * max |w|``). Clipping makes the network spread its function over
  many weights near ``+-w_max`` (Fig. 6), so that one wrong weight matters less.
* Effect of a flipped bit by position: flip bit ``b`` in a random share of the weights and
  measure the relative change of the logits, ``||z' - z|| / ||z||``, and the share of changed
  predictions. High bits change a weight by half the range; a redundant network absorbs that.

All measures read the model through its memory layout; masks are cleared afterwards.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from tfbet import memory


def logits(model, images, batch_size=500):
  """Logits [N, classes] (numpy) of ``model`` on ``images`` with the masks loaded now."""
  images = np.asarray(images, np.float32)
  parts = [model(images[i:i + batch_size], training=False).numpy()
           for i in range(0, len(images), batch_size)]
  return np.concatenate(parts).astype(np.float64)


def confidences(values):
  """Softmax confidence (largest probability) per row of ``values`` (logits), numerically stable."""
  values = np.asarray(values, np.float64)
  shifted = values - values.max(axis=1, keepdims=True)
  probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
  return probabilities.max(axis=1)


@dataclasses.dataclass
class ConfidenceReport:
  """Clean and perturbed logits of the same test examples."""
  labels: np.ndarray
  clean_logits: np.ndarray
  perturbed_logits: np.ndarray  # with the chip's errors
  chip: str
  condition: float

  def summary(self):
    """{"clean"/"perturbed": {"error", "mean_confidence", "mean_confidence_correct", ...}}."""
    out = {}
    for name, values in (("clean", self.clean_logits), ("perturbed", self.perturbed_logits)):
      confidence = confidences(values)
      correct = values.argmax(axis=1) == self.labels
      out[name] = {
          "error": float(1 - correct.mean()),
          "mean_confidence": float(confidence.mean()),
          "mean_confidence_correct": float(confidence[correct].mean()) if correct.any() else None,
          "mean_confidence_wrong": (float(confidence[~correct].mean()) if (~correct).any()
                                    else None),
          "mean_max_logit": float(values.max(axis=1).mean()),
      }
    return out


def confidence_report(model, images, labels, chip, condition, offset=0):
  """Logits of ``model`` on ``images`` clean and with ``chip`` at ``condition`` loaded."""
  mem = memory.layout(model)
  memory.clear_masks(mem)
  clean = logits(model, images)
  try:
    memory.load_chip(mem, chip, condition, offset=offset)
    perturbed = logits(model, images)
  finally:
    memory.clear_masks(mem)
  return ConfidenceReport(labels=np.asarray(labels), clean_logits=clean,
                          perturbed_logits=perturbed, chip=chip.name, condition=float(condition))


@dataclasses.dataclass(frozen=True)
class Redundancy:
  """Share of weights with ``|w| >= threshold * max |w|`` of their tensor."""
  threshold: float
  overall: float  # over all quantized weights
  per_tensor: tuple  # ((tensor name, share, num weights), ...) in memory order
  magnitudes: np.ndarray  # |w| / max |w| of its tensor, all weights (for histograms)


def weight_redundancy(model, threshold=0.9):
  """The share of float weights near the largest magnitude of their tensor (see module doc)."""
  if not 0 < threshold <= 1:
    raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
  mem = memory.layout(model)
  per_tensor, relative = [], []
  for slot in mem.slots:
    w = np.abs(slot.variable.numpy().astype(np.float64)).reshape(-1)
    top = w.max() if w.size else 0.0
    scaled = w / top if top > 0 else np.zeros_like(w)
    relative.append(scaled)
    per_tensor.append((slot.name, float(np.mean(scaled >= threshold)) if top > 0 else 0.0,
                       int(w.size)))
  magnitudes = np.concatenate(relative) if relative else np.zeros([0])
  overall = float(np.mean(magnitudes >= threshold)) if magnitudes.size else 0.0
  return Redundancy(threshold=float(threshold), overall=overall, per_tensor=tuple(per_tensor),
                    magnitudes=magnitudes)


@dataclasses.dataclass(frozen=True)
class BitEffect:
  """Effect of flipping bit ``bit`` in ``num_flipped`` weights."""
  bit: int
  num_flipped: int
  relative_logit_change: float  # mean over examples of ||z' - z||_2 / ||z||_2
  changed_predictions: float  # share of examples whose prediction changed


def bit_position_effects(model, images, share=0.01, seed=0):
  """Per bit position b < m: flip bit b in a random ``share`` of all weights (the same weights
  for every b, drawn with ``seed``) and measure the change of the logits."""
  if not 0 < share <= 1:
    raise ValueError(f"share must be in (0, 1], got {share!r}")
  mem = memory.layout(model)
  rng = np.random.default_rng(seed)
  count = max(1, int(round(share * mem.num_weights)))
  chosen = rng.choice(mem.num_weights, size=count, replace=False)
  memory.clear_masks(mem)
  clean = logits(model, images)
  norms = np.maximum(np.linalg.norm(clean, axis=1), 1e-12)
  effects = []
  try:
    for bit in range(mem.precision):
      flip = np.zeros(mem.num_weights, np.uint8)
      flip[chosen] = np.uint8(1 << bit)
      memory.load_masks(mem, flip)
      changed = logits(model, images)
      effects.append(BitEffect(
          bit=bit, num_flipped=count,
          relative_logit_change=float(np.mean(np.linalg.norm(changed - clean, axis=1) / norms)),
          changed_predictions=float(np.mean(changed.argmax(1) != clean.argmax(1)))))
  finally:
    memory.clear_masks(mem)
  return effects


def dataset_arrays(dataset):
  """(images, labels) numpy arrays of a dataset of (images, labels) batches."""
  images, labels = [], []
  for batch_images, batch_labels in dataset:
    images.append(np.asarray(batch_images, np.float32))
    labels.append(np.asarray(tf.cast(batch_labels, tf.int64)))
  return np.concatenate(images), np.concatenate(labels)
