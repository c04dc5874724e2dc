"""Paired comparison of two models' robustness, with each source of noise measured.

"Model A is more robust than model B at rate p" is decided on the *difference* of their RErr (or
of their drop RErr - Err, which separates robustness from clean accuracy). Both models meet the
same chips and the same test examples, so the difference is paired, and three sources of noise
are measured separately:

* **chips**: the difference per chip d_c (A and B on chip c, averaged over their seeds); its
  standard error over the C chips is std(d_c) / sqrt(C);
* **test set**: the difference per test example d_i (the share of chips on which A misclassifies
  example i minus B's, averaged over seeds; needs per-example results, ``bin/eval
  --per_example``); its standard error over the n examples is std(d_i) / sqrt(n), what a
  bootstrap over test examples converges to;
* **training seeds**: with the same seeds for A and B, the spread of the per-seed differences
  (the chips and test set are shared, so it is training noise alone): std(D_s) / sqrt(S); with
  other seed sets, each model's spread of its mean RErr over its seeds. A model trained once has
  no measured seed spread: a ``seed_std`` measured on other models may stand in for it (stated
  in the result), else the verdict says the seed variance is not measured.

The total standard error is the root of the sum of the three variances, and the difference is
*resolved* when it exceeds twice that (about 95 % for a normal difference; optimistic with few
seeds). The verdict names the largest source of noise, which is what more chips, a larger test
set or more seeds would shrink.
"""
import dataclasses
import math

import numpy as np

from tfbet import result_identity
from tfbet import results as results_lib

METRICS = ("rerr", "drop")
SOURCES = ("chips", "test set", "seeds")


@dataclasses.dataclass(frozen=True)
class Comparison:
  """The paired difference mean(A) - mean(B) of a metric at one condition, with its noise."""
  condition: float
  metric: str
  mean_a: float
  mean_b: float
  num_chips: int
  n: int
  seeds_a: int
  seeds_b: int
  se_chips: float  # None with a single chip
  se_test: float  # None without per-example results
  se_seeds: float  # None when a model was trained once and no seed_std stands in
  seed_std_assumed: bool = False  # se_seeds uses a seed_std measured on other models

  @property
  def difference(self):
    return self.mean_a - self.mean_b

  def components(self):
    """{source: standard error} of the sources that were measured."""
    values = dict(zip(SOURCES, (self.se_chips, self.se_test, self.se_seeds)))
    return {source: value for source, value in values.items() if value is not None}

  @property
  def se_total(self):
    return math.sqrt(sum(v * v for v in self.components().values()))

  @property
  def margin(self):
    """Twice the total standard error: differences beyond it are resolved."""
    return 2.0 * self.se_total

  @property
  def limited_by(self):
    """The source of noise with the largest standard error."""
    components = self.components()
    return max(components, key=components.get)

  def unmeasured(self):
    """The sources of noise this comparison could not measure."""
    return [source for source, value in zip(SOURCES, (self.se_chips, self.se_test,
                                                      self.se_seeds)) if value is None]

  @property
  def verdict(self):
    """'holds' (A lower), 'reversed' (B lower) or 'not resolved', for "A is more robust"."""
    if self.difference < -self.margin:
      return "holds"
    if self.difference > self.margin:
      return "reversed"
    return "not resolved"


def _seed_results(results_list, what):
  results_list = list(results_list)
  if not results_list:
    raise ValueError(f"{what} must hold the Results of at least one seed")
  for index, results in enumerate(results_list):
    if not isinstance(results, results_lib.Results):
      raise TypeError(f"{what}[{index}] must be evaluation.Results, got "
                      f"{type(results).__name__}")
  return results_list


def _check_same_test_set(all_results, condition):
  first = all_results[0]
  for index, results in enumerate(all_results[1:], start=1):
    difference = result_identity.data_difference(results, first, f"result {index}", "result 0")
    if difference:
      raise ValueError(f"the models were evaluated on different test sets ({difference}); a "
                       "paired comparison needs the same examples")
  chip_sets = [set(name for name in r.chip_names if r.offsets(name, condition))
               for r in all_results]
  if not chip_sets[0] or any(chips != chip_sets[0] for chips in chip_sets):
    raise ValueError(f"the models were not evaluated on the same chips at condition "
                     f"{condition:g} ({[len(c) for c in chip_sets]} chips); a paired comparison "
                     "needs the same chips")
  return sorted(chip_sets[0], key=results_lib.natural_key)


def _per_chip(results, condition, chips, metric):
  values = np.array([results.rerr(name, condition) for name in chips])
  return values - results.clean_error if metric == "drop" else values


def _per_example(results, condition, chips, metric):
  """Share of chips (and offsets) misclassifying each example [n], minus clean for 'drop'."""
  share = results.wrong_matrix(condition, chips).mean(axis=(0, 1))
  return share - results.clean_wrong if metric == "drop" else share


def _standard_error(values):
  values = np.asarray(values, np.float64)
  if values.size < 2:
    return None
  return float(np.std(values, ddof=1) / math.sqrt(values.size))


def compare(results_a, results_b, condition, metric="rerr", seeds_a=None, seeds_b=None,
            seed_std=None):
  """Compares model A with model B at ``condition``; returns a :class:`Comparison`.

  Args:
    results_a, results_b: ``results.Results`` of each model, one per training seed, all on
      the same test set and the same chips at ``condition``.
    condition: the bit error rate (fraction) or voltage to compare at.
    metric: "rerr" (RErr) or "drop" (RErr - Err).
    seeds_a, seeds_b: the training seeds of the results (default 0, 1, ...); when both models
      have the same seeds, the seeds are paired.
    seed_std: standard deviation over training seeds of one model's metric, measured elsewhere,
      standing in for the spread of a model trained once (None: not assumed).
  """
  if metric not in METRICS:
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
  results_a = _seed_results(results_a, "results_a")
  results_b = _seed_results(results_b, "results_b")
  seeds_a = list(range(len(results_a)) if seeds_a is None else seeds_a)
  seeds_b = list(range(len(results_b)) if seeds_b is None else seeds_b)
  for seeds, results, what in ((seeds_a, results_a, "seeds_a"), (seeds_b, results_b, "seeds_b")):
    if len(seeds) != len(results) or len(set(seeds)) != len(seeds):
      raise ValueError(f"{what} must name each result's seed once, got {seeds}")
  if seed_std is not None and not (math.isfinite(seed_std) and seed_std >= 0):
    raise ValueError(f"seed_std must be a finite number >= 0, got {seed_std!r}")
  chips = _check_same_test_set(results_a + results_b, condition)
  chip_a = np.stack([_per_chip(r, condition, chips, metric) for r in results_a])  # [S_a, C]
  chip_b = np.stack([_per_chip(r, condition, chips, metric) for r in results_b])
  se_chips = _standard_error(chip_a.mean(axis=0) - chip_b.mean(axis=0))
  per_example = all(r.per_example for r in results_a + results_b)
  se_test = None
  if per_example:
    example_a = np.mean([_per_example(r, condition, chips, metric) for r in results_a], axis=0)
    example_b = np.mean([_per_example(r, condition, chips, metric) for r in results_b], axis=0)
    se_test = _standard_error(example_a - example_b)
  mean_a, mean_b = chip_a.mean(axis=1), chip_b.mean(axis=1)  # per seed
  assumed = False
  if sorted(seeds_a) == sorted(seeds_b) and len(seeds_a) > 1:
    order_b = [seeds_b.index(seed) for seed in seeds_a]
    se_seeds = _standard_error(mean_a - mean_b[order_b])
  else:
    variances = []
    for means in (mean_a, mean_b):
      if means.size > 1:
        variances.append(np.var(means, ddof=1) / means.size)
      elif seed_std is not None:
        variances.append(seed_std ** 2)
        assumed = True
      else:
        variances.append(None)
    se_seeds = None if None in variances else float(math.sqrt(sum(variances)))
  return Comparison(condition=float(condition), metric=metric, mean_a=float(mean_a.mean()),
                    mean_b=float(mean_b.mean()), num_chips=len(chips), n=results_a[0].n,
                    seeds_a=len(results_a), seeds_b=len(results_b),
                    se_chips=se_chips, se_test=se_test,
                    se_seeds=se_seeds, seed_std_assumed=assumed)


def seed_spread(results_list, condition, metric="rerr"):
  """Standard deviation over training seeds of one model's mean metric at ``condition``."""
  results_list = _seed_results(results_list, "results_list")
  if len(results_list) < 2:
    raise ValueError("the spread over seeds needs the results of at least two seeds")
  chips = _check_same_test_set(results_list, condition)
  means = [_per_chip(r, condition, chips, metric).mean() for r in results_list]
  return float(np.std(means, ddof=1))
