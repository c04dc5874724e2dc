"""tfbet.paired: paired differences and their noise against a direct numpy computation."""
import math

import numpy as np
import pytest

from tfbet import evaluation
from tfbet import paired

N = 400
CHIPS = [f"rate_chip_{i}" for i in range(6)]
RATE = 0.01


def _results(wrong_by_chip, clean_wrong, per_example=True, name="m"):
  """Results with the given per-example errors ([chips, n] booleans) at RATE."""
  errors = {(chip, RATE, 0): int(w.sum()) for chip, w in zip(CHIPS, wrong_by_chip)}
  wrong = {(chip, RATE, 0): w for chip, w in zip(CHIPS, wrong_by_chip)}
  return evaluation.Results(
      model={"name": name, "digest": name}, n=N, data_digest="d",
      clean_errors=int(clean_wrong.sum()), condition_kind="rate", errors=errors,
      clean_wrong=clean_wrong if per_example else None, wrong=wrong if per_example else None)


def _model(rng, clean_p, chip_p):
  clean = rng.random(N) < clean_p
  chips = np.stack([clean | (rng.random(N) < p) for p in chip_p])
  return clean, chips


def test_one_seed_each_measures_chip_and_test_noise_like_numpy():
  rng = np.random.default_rng(0)
  clean_a, chips_a = _model(rng, 0.02, [0.03, 0.05, 0.04, 0.06, 0.02, 0.05])
  clean_b, chips_b = _model(rng, 0.03, [0.10, 0.12, 0.08, 0.15, 0.09, 0.11])
  a, b = _results(chips_a, clean_a), _results(chips_b, clean_b)
  for metric in ("rerr", "drop"):
    c = paired.compare([a], [b], RATE, metric=metric)
    offset_a = clean_a.mean() if metric == "drop" else 0.0
    offset_b = clean_b.mean() if metric == "drop" else 0.0
    per_chip = (chips_a.mean(axis=1) - offset_a) - (chips_b.mean(axis=1) - offset_b)
    assert c.difference == pytest.approx(per_chip.mean(), abs=1e-12)
    assert c.se_chips == pytest.approx(per_chip.std(ddof=1) / math.sqrt(len(CHIPS)))
    share_a = chips_a.mean(axis=0) - (clean_a if metric == "drop" else 0)
    share_b = chips_b.mean(axis=0) - (clean_b if metric == "drop" else 0)
    assert c.se_test == pytest.approx((share_a - share_b).std(ddof=1) / math.sqrt(N))
    assert c.se_seeds is None and c.unmeasured() == ["seeds"]
    assert c.se_total == pytest.approx(math.hypot(c.se_chips, c.se_test))
  c = paired.compare([a], [b], RATE)
  assert c.difference < -c.margin and c.verdict == "holds"
  assert paired.compare([b], [a], RATE).verdict == "reversed"
  assert paired.compare([a], [a], RATE).verdict == "not resolved"


def test_paired_seeds_use_the_spread_of_the_per_seed_differences():
  rng = np.random.default_rng(1)
  runs_a = [_model(rng, 0.02, [0.03 + 0.01 * s] * len(CHIPS)) for s in range(3)]
  runs_b = [_model(rng, 0.02, [0.06 + 0.02 * s] * len(CHIPS)) for s in range(3)]
  a = [_results(chips, clean) for clean, chips in runs_a]
  b = [_results(chips, clean) for clean, chips in runs_b]
  c = paired.compare(a, b, RATE, seeds_a=[0, 1, 2], seeds_b=[0, 1, 2])
  per_seed = np.array([ca.mean() - cb.mean() for (_, ca), (_, cb) in zip(runs_a, runs_b)])
  assert c.difference == pytest.approx(per_seed.mean())
  assert c.se_seeds == pytest.approx(per_seed.std(ddof=1) / math.sqrt(3))
  # The seeds are matched by name, not by position.
  shuffled = paired.compare(a, b[::-1], RATE, seeds_a=[0, 1, 2], seeds_b=[2, 1, 0])
  assert shuffled.se_seeds == pytest.approx(c.se_seeds)
  # Other seed sets: each model's own spread over its seeds.
  unpaired = paired.compare(a, b[:2], RATE, seeds_a=[0, 1, 2], seeds_b=[5, 6])
  mean_a = np.array([ca.mean() for _, ca in runs_a])
  mean_b = np.array([cb.mean() for _, cb in runs_b[:2]])
  assert unpaired.se_seeds == pytest.approx(
      math.sqrt(mean_a.var(ddof=1) / 3 + mean_b.var(ddof=1) / 2))
  # A model trained once: its spread is unknown unless a measured one stands in.
  single = paired.compare(a, b[:1], RATE)
  assert single.se_seeds is None and "seeds" in single.unmeasured()
  assumed = paired.compare(a, b[:1], RATE, seed_std=0.004)
  assert assumed.seed_std_assumed
  assert assumed.se_seeds == pytest.approx(math.sqrt(mean_a.var(ddof=1) / 3 + 0.004 ** 2))
  assert paired.seed_spread(a, RATE) == pytest.approx(mean_a.std(ddof=1))


def test_without_per_example_results_the_test_noise_is_unmeasured():
  rng = np.random.default_rng(2)
  clean, chips = _model(rng, 0.02, [0.05] * len(CHIPS))
  a = _results(chips, clean, per_example=False)
  c = paired.compare([a], [a], RATE)
  assert c.se_test is None and "test set" in c.unmeasured()
  with pytest.raises(ValueError, match="no per-example errors"):
    a.wrong_matrix(RATE)


def test_comparisons_on_other_chips_or_examples_are_refused():
  rng = np.random.default_rng(3)
  clean, chips = _model(rng, 0.02, [0.05] * len(CHIPS))
  a = _results(chips, clean)
  fewer = evaluation.Results(model={"name": "b", "digest": "b"}, n=N, data_digest="d",
                             clean_errors=int(clean.sum()), condition_kind="rate",
                             errors={(CHIPS[0], RATE, 0): int(chips[0].sum())})
  with pytest.raises(ValueError, match="same chips"):
    paired.compare([a], [fewer], RATE)
  other = evaluation.Results(model={"name": "b", "digest": "b"}, n=N, data_digest="other",
                             clean_errors=0, condition_kind="rate", errors={})
  with pytest.raises(ValueError, match="different test sets"):
    paired.compare([a], [other], RATE)
  with pytest.raises(ValueError, match="metric must be one of"):
    paired.compare([a], [a], RATE, metric="accuracy")
  with pytest.raises(ValueError, match="seeds_a must name"):
    paired.compare([a], [a], RATE, seeds_a=[0, 1])
  with pytest.raises(ValueError, match="seed_std"):
    paired.compare([a], [a], RATE, seed_std=-1.0)
