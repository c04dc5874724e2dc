"""Robustness to random L-infinity weight perturbations, relative to each tensor's range (Fig. 9).

Bit errors change few weights by a lot; L-infinity noise changes every weight by a little. A
model that is robust to both has not just learned to survive one error model. Here every
quantized tensor ``w`` receives i.i.d. uniform noise in ``[-eps * r, eps * r]``, where ``r`` is
the width of the tensor's quantization range under the model's scheme (``max w - min w`` for
asymmetric schemes, ``2 * max |w|`` for symmetric ones, see ``tfbet.quantization.tensor_range``)
and ``eps`` is the relative magnitude (0.01 = "1 % of the weight range"). The noise is added to
the float weights, which are then quantized as in deployment (masks all zero; a per-tensor
range is that of the perturbed tensor, at most ``eps * r`` wider on each side), and the weights
are restored bit for bit afterwards. Noise of sample ``s`` on tensor ``t`` is drawn from
``numpy.random.default_rng([s, t])``: same seed, same perturbation.

Results are error counts per (sample, magnitude), like ``tfbet.evaluation``, in their own JSON
format (``FORMAT``) so that they can never be mistaken for bit error rates.
"""
import contextlib
import dataclasses
import json
import os
import time

import numpy as np

from tfbet import checks
from tfbet import memory
from tfbet import quantization

FORMAT = "tfbet-weight-noise/1"


def _check_magnitude(magnitude):
  return checks.real(magnitude, "magnitude (relative to each tensor's range; 0.01 = 1 %)",
                     minimum=0.0)


def tensor_widths(layout):
  """Width ``q_max - q_min`` of each quantized tensor's own range, in memory order."""
  widths = []
  for slot in layout.slots:
    q_min, q_max = quantization.tensor_range(slot.variable, layout.scheme)
    widths.append(float(q_max) - float(q_min))
  return widths


@contextlib.contextmanager
def perturbed(layout, magnitude, seed):
  """Within the block, every quantized tensor carries the noise of (``magnitude``, ``seed``)."""
  magnitude = _check_magnitude(magnitude)
  originals = [slot.variable.numpy() for slot in layout.slots]
  widths = tensor_widths(layout)
  try:
    for index, (slot, original, width) in enumerate(zip(layout.slots, originals, widths)):
      rng = np.random.default_rng([seed, index])
      noise = rng.uniform(-1.0, 1.0, size=original.shape) * (magnitude * width)
      slot.variable.assign((original + noise).astype(original.dtype))
    memory.update_global_range(layout)
    yield layout
  finally:
    for slot, original in zip(layout.slots, originals):
      slot.variable.assign(original)
    memory.update_global_range(layout)


@dataclasses.dataclass(frozen=True)
class NoiseSummary:
  """RErr over noise samples at one relative magnitude (fractions)."""
  magnitude: float
  num_samples: int
  mean: float
  std: float  # population standard deviation (ddof = 0)
  min: float
  max: float


@dataclasses.dataclass
class NoiseResults:
  """Misclassified test examples per (sample seed, magnitude), and the clean count."""
  model: dict
  n: int
  data_digest: str
  clean_errors: int
  errors: dict  # {(seed, magnitude): errors}

  @property
  def clean_error(self):
    return self.clean_errors / self.n

  def summary(self):
    rows = []
    for magnitude in sorted({m for _, m in self.errors}):
      values = np.array([e / self.n for (s, m), e in sorted(self.errors.items())
                         if m == magnitude])
      rows.append(NoiseSummary(magnitude=magnitude, num_samples=len(values),
                               mean=float(values.mean()), std=float(values.std()),
                               min=float(values.min()), max=float(values.max())))
    return rows

  def to_dict(self):
    return {"format": FORMAT, "model": self.model,
            "data": {"n": self.n, "digest": self.data_digest}, "clean_errors": self.clean_errors,
            "entries": [{"seed": s, "magnitude": m, "errors": e}
                        for (s, m), e in sorted(self.errors.items())]}

  @classmethod
  def from_dict(cls, record, source="<dict>"):
    """The ``to_dict`` of NoiseResults, read as data: ValueError naming ``source`` and the
    field unless every count lies in [0, n] and each (seed, magnitude) appears once."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
      raise ValueError(f"{source}: not a bin/weight_noise result (format {FORMAT!r})")
    try:
      n = checks.integer(record["data"]["n"], "data.n", minimum=1, maximum=checks.MAX_COUNT)
      results = cls(model=dict(record["model"]), n=n, data_digest=str(record["data"]["digest"]),
                    clean_errors=checks.count(record["clean_errors"], "clean_errors", maximum=n),
                    errors={})
      entries = checks.bounded_list(record["entries"], "entries",
                                    checks.MAX_CHIPS * checks.MAX_CONDITIONS)
      for index, entry in enumerate(entries):
        key = (checks.seed(entry["seed"], f"entries[{index}].seed"),
               _check_magnitude(entry["magnitude"]))
        if key in results.errors:
          raise ValueError(f"entries[{index}]: (seed, magnitude) {key} is repeated")
        results.errors[key] = checks.count(entry["errors"], f"entries[{index}].errors",
                                           maximum=n)
      if not results.errors:
        raise ValueError("entries must not be empty")
    except (KeyError, TypeError, ValueError, AttributeError) as error:
      raise ValueError(f"{source}: invalid bin/weight_noise result ({error})") from error
    return results

  def to_json(self, path):
    with open(path + ".tmp", "w") as f:
      json.dump(self.to_dict(), f, indent=1)
    os.replace(path + ".tmp", path)
    return path


def weight_noise(evaluator, magnitudes, seeds, progress=None):
  """Counts errors of ``evaluator``'s model under noise of every magnitude and seed.

  Args:
    evaluator: ``evaluation.Evaluator`` of the quantized model on its test set.
    magnitudes: relative magnitudes eps >= 0 (0.01 = 1 % of each tensor's range), distinct.
    seeds: non-negative integer seeds of the noise samples, distinct.
    progress: optional callable(str), one line per magnitude.
  """
  magnitudes = [_check_magnitude(m) for m in checks.bounded_list(
      magnitudes, "magnitudes", checks.MAX_CONDITIONS)]
  seeds = checks.bounded_list(seeds, "seeds", checks.MAX_CHIPS)  # a draw costs what a chip does
  for values, what in ((magnitudes, "magnitudes"), (seeds, "seeds")):
    if not values or len(set(values)) != len(values):
      raise ValueError(f"{what} must be distinct and not empty, got {values}")
  if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
    raise ValueError(f"seeds must be non-negative integers, got {seeds}")
  layout = evaluator.layout
  results = NoiseResults(model=evaluator.describe_model(), n=evaluator.n,
                         data_digest=evaluator.data_digest,
                         clean_errors=evaluator.clean_errors(), errors={})
  started = time.perf_counter()
  for magnitude in magnitudes:
    for seed in seeds:
      with perturbed(layout, magnitude, seed):
        results.errors[(seed, magnitude)] = evaluator.errors()
    if progress is not None:
      row = [r for r in results.summary() if r.magnitude == magnitude][0]
      progress(f"relative magnitude {100 * magnitude:g} %: RErr {100 * row.mean:.2f} % "
               f"({time.perf_counter() - started:.1f} s elapsed)")
  return results
