"""Accuracy budget -> rate -> voltage -> energy: interpolation, bisection, profiled voltages."""
import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import helpers
from tfbet import budget
from tfbet import chips
from tfbet import energy
from tfbet import evaluation
from tfbet import quantize_configs
from tfbet.cli import energy_budget_lib
from tfbet.cli import energy_figure
from tfbet.compat import keras

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rate_results():
  """Err 2 %; p = 0.1 %: chips 2 %, 4 % (mean 3 %); p = 1 %: chips 6 %, 8 % (mean 7 %)."""
  return evaluation.Results(
      model={"name": "m", "digest": "m"}, n=100, data_digest="d", clean_errors=2,
      condition_kind="rate",
      errors={("a", 0.001, 0): 2, ("b", 0.001, 0): 4, ("a", 0.01, 0): 6, ("b", 0.01, 0): 8})


def test_interpolation_between_measured_rates_matches_hand_computation():
  found = budget.rate_budget(rate_results(), 0.02)
  # Excess 1 point at p = 0.1 %, 5 points at p = 1 %: 2 points at 0.1 + 0.9 / 4 = 0.325 %.
  assert found.how == "interpolated" and (found.low, found.high) == (0.001, 0.01)
  assert found.rate == pytest.approx(0.00325)
  assert found.rerr == pytest.approx(0.04)
  assert found.voltage == energy.voltage_at_rate(found.rate)
  assert found.energy_saving == energy.energy_saving(found.rate)
  assert 0 < found.energy_saving < energy.energy_saving(0.01)


def test_below_the_lowest_rate_interpolates_from_the_clean_model_at_p_zero():
  found = budget.rate_budget(rate_results(), 0.005)
  assert found.how == "interpolated" and found.low == 0
  assert found.rate == pytest.approx(0.0005)  # Half of the way to 1 point excess at 0.1 %.


def test_worst_chip_statistic_and_an_unfailed_budget():
  worst = budget.rate_budget(rate_results(), 0.02, statistic="max")
  assert worst.rate == pytest.approx(0.001)  # Worst chip exactly 2 points over at p = 0.1 %.
  generous = budget.rate_budget(rate_results(), 0.1)
  assert generous.how == "at least" and generous.rate == 0.01 and math.isnan(generous.high)
  assert generous.to_dict()["high"] is None


def test_an_excess_equal_to_the_budget_keeps_it_despite_float_rounding():
  assert 0.04 - 0.03 > 0.01  # What plain floats would decide.
  results = evaluation.Results(
      model={"name": "m", "digest": "m"}, n=100, data_digest="d", clean_errors=3,
      condition_kind="rate", errors={("a", 0.01, 0): 4, ("a", 0.02, 0): 9})
  found = budget.rate_budget(results, 0.01)
  assert found.low == 0.01 and found.rate == pytest.approx(0.01)
  voltages = evaluation.Results(
      model={"name": "m", "digest": "m"}, n=100, data_digest="d", clean_errors=3,
      condition_kind="voltage", errors={("c", 0.9, 0): 4})
  assert budget.voltage_budgets(voltages, 0.01)[0].voltage == 0.9


def test_a_rate_that_recovers_after_failing_is_not_trusted():
  results = evaluation.Results(
      model={"name": "m", "digest": "m"}, n=100, data_digest="d", clean_errors=0,
      condition_kind="rate", errors={("a", 0.001, 0): 1, ("a", 0.01, 0): 10, ("a", 0.1, 0): 2})
  found = budget.rate_budget(results, 0.05)
  assert found.high == 0.01 and found.rate < 0.01


def test_bad_budgets_are_refused():
  for bad in (-0.1, 2, float("nan")):
    with pytest.raises(ValueError, match="budget"):
      budget.rate_budget(rate_results(), bad)
  with pytest.raises(TypeError, match="budget"):
    budget.rate_budget(rate_results(), "1")
  with pytest.raises(ValueError, match="percentage points"):
    energy_budget_lib.parse_budgets(["200"])
  assert energy_budget_lib.parse_budgets(["0.5", "1"]) == [0.005, 0.01]


def test_pareto_front_keeps_only_undominated_points():
  points = [(0.0, 0.02), (0.1, 0.03), (0.2, 0.025), (0.3, 0.5), (0.2, 0.04)]
  assert budget.pareto_front(points) == [(0.3, 0.5), (0.2, 0.025), (0.0, 0.02)]


def test_voltage_budget_stops_at_the_first_failing_voltage():
  results = evaluation.Results(
      model={"name": "m", "digest": "m"}, n=100, data_digest="d", clean_errors=1,
      condition_kind="voltage",
      errors={("c", 0.9, 0): 2, ("c", 0.9, 8): 2, ("c", 0.85, 0): 9, ("c", 0.8, 0): 1,
              ("d", 0.9, 0): 50})
  by_chip = {item.chip: item for item in budget.voltage_budgets(results, 0.02)}
  assert by_chip["c"].voltage == 0.9 and by_chip["c"].failed_at == 0.85
  assert by_chip["c"].energy_saving == pytest.approx(1 - 0.81)
  assert by_chip["d"].voltage is None and by_chip["d"].failed_at == 0.9


@pytest.fixture(scope="module")
def evaluator():
  """A random quantized MLP on random inputs labeled by its own clean predictions (Err 0)."""
  keras.utils.set_random_seed(3)
  inputs = keras.Input((16,))
  hidden = keras.layers.Dense(32, activation="relu")(inputs)
  outputs = keras.layers.Dense(4)(hidden)
  model = quantize_configs.quantize_model(keras.Model(inputs, outputs), "rquant")
  images = np.random.default_rng(0).normal(size=(400, 16)).astype(np.float32)
  labels = np.argmax(model(images).numpy(), axis=-1)
  return evaluation.Evaluator(model, [(images[:200], labels[:200]), (images[200:], labels[200:])])


def test_bisection_brackets_the_budget_with_measured_rates(evaluator):
  chip_list = [chips.RandomChip(seed) for seed in (1000, 1001)]
  lines = []
  found, results = budget.bisect_rate(evaluator, chip_list, 0.05, 1e-4, 0.2, steps=5,
                                      progress=lines.append)
  assert results.clean_errors == 0 and len(lines) == 7 and len(results.conditions) == 7
  assert found.how == "bisection" and found.low < found.high
  assert found.high / found.low == pytest.approx((0.2 / 1e-4) ** (1 / 32))
  stats = dict(budget.rate_statistics(results))
  assert stats[found.low] <= 0.05 < stats[found.high] and found.rerr == stats[found.low]
  # The same counts from an independent evaluation at the found rate.
  again = evaluator.run(chip_list, [found.low], progress=None)
  assert again.summary()[0].mean == stats[found.low]
  with pytest.raises(ValueError, match="choose a higher high"):
    budget.bisect_rate(evaluator, chip_list, 0.05, 1e-4, 2e-4, steps=1)


def test_bisection_from_measured_rates_reuses_them_and_finds_what_a_fresh_bisection_finds(
    evaluator):
  chip_list = [chips.RandomChip(seed) for seed in (1000, 1001)]
  grid = evaluator.run(chip_list, [1e-4, 0.01, 0.05, 0.2], progress=None)
  stats = dict(budget.rate_statistics(grid))
  failing = min(rate for rate in grid.conditions if stats[rate] > 0.05)
  below = max(rate for rate in grid.conditions if rate < failing)
  lines = []
  found, results = budget.bisect_rate(evaluator, chip_list, 0.05, None, None, steps=3,
                                      progress=lines.append, measured=grid)
  # The bracket is the grid's (both ends read, not measured again), then 3 midpoints.
  assert found.how == "bisection" and len(results.conditions) == 4 + 3
  assert sum("measured before" in line for line in lines) == 2
  assert found.high / found.low == pytest.approx((failing / below) ** (1 / 8))
  fresh, _ = budget.bisect_rate(evaluator, chip_list, 0.05, below, failing, steps=3)
  assert (found.low, found.high, found.rerr) == (fresh.low, fresh.high, fresh.rerr)
  for rate in grid.conditions:  # the grid's counts are kept as they were
    assert all(results.errors[(c.name, rate, 0)] == grid.errors[(c.name, rate, 0)]
               for c in chip_list)


def test_a_reference_error_moves_the_budget_up_by_the_difference(evaluator):
  chip_list = [chips.RandomChip(seed) for seed in (1000, 1001)]
  grid = evaluator.run(chip_list, [1e-4, 0.01, 0.05, 0.2], progress=None)
  # Clean Err 0: the own-Err budget is RErr <= 5 %; counted from a reference Err of 2 %, RErr
  # may reach 7 %: the answer moves up.
  found, results = budget.bisect_rate(evaluator, chip_list, 0.05, None, None, steps=2,
                                      measured=grid, reference_error=0.02)
  stats = dict(budget.rate_statistics(results))
  assert found.reference_error == 0.02 and stats[found.low] <= 0.07 + 1e-12 < stats[found.high]
  assert found.rerr == pytest.approx(stats[found.low])
  own, _ = budget.bisect_rate(evaluator, chip_list, 0.05, None, None, steps=2, measured=grid)
  assert own.low <= found.low and own.reference_error is None
  with pytest.raises(ValueError, match="reference_error"):
    budget.bisect_rate(evaluator, chip_list, 0.05, None, None, measured=grid,
                       reference_error=1.5)


def measured_rate_results():
  """(an evaluator stub of the model of ``rate_results``, its two chips, its results on them)."""
  results = rate_results()

  class Stub:
    n, data_digest = results.n, results.data_digest

    def describe_model(self):
      return results.model

    def clean_errors(self):
      return results.clean_errors

  chip_list = [chips.RandomChip(0), chips.RandomChip(1)]
  record = results.to_dict()
  names = {"a": chip_list[0].name, "b": chip_list[1].name}
  record["chips"] = {names[k]: chip.describe() for k, chip in zip("ab", chip_list)}
  record["entries"] = [{**entry, "chip": names[entry["chip"]]} for entry in record["entries"]]
  return Stub(), chip_list, evaluation.Results.from_dict(record)


def test_a_model_whose_clean_error_exceeds_reference_plus_budget_keeps_it_at_no_rate():
  stub, chip_list, measured = measured_rate_results()  # Err 2 %; RErr 3 % at 0.1 %, 7 % at 1 %
  found, results = budget.bisect_rate(stub, chip_list, 0.005, None, None, measured=measured,
                                      reference_error=0.01)
  assert found.how == "none" and found.rate == 0 and found.energy_saving == 0
  assert found.rerr == 0.02 and found.clean_error == 0.02 and found.high == 0.001
  assert results.same_counts(measured)  # the measured rates, written back


def test_when_every_measured_rate_keeps_the_budget_the_answer_is_at_least_the_highest():
  stub, chip_list, measured = measured_rate_results()
  found, _ = budget.bisect_rate(stub, chip_list, 0.05, None, None, measured=measured)
  assert (found.how, found.rate, found.rerr) == ("at least", 0.01, pytest.approx(0.07))
  assert math.isnan(found.high)
  # RErr may reach 2 % + 0.5 points: already 0.1 % fails (3 %), and no low below it is given.
  below, _ = budget.bisect_rate(stub, chip_list, 0.005, None, None, measured=measured,
                                reference_error=0.02)
  assert (below.how, below.rate, below.high, below.energy_saving) == ("below", 0, 0.001, 0)


def test_measured_results_of_other_chips_or_another_model_are_refused(evaluator):
  chip_list = [chips.RandomChip(seed) for seed in (1000, 1001)]
  grid = evaluator.run(chip_list, [0.01], progress=None)
  others = [chips.RandomChip(seed) for seed in (7, 8)]
  with pytest.raises(ValueError, match="measured on other chips"):
    budget.bisect_rate(evaluator, others, 0.05, 1e-4, 0.2, measured=grid)
  foreign = evaluation.Results.from_dict({**grid.to_dict(), "model": {**grid.model,
                                                                       "digest": "other"}})
  with pytest.raises(ValueError, match="model weights differ"):
    budget.bisect_rate(evaluator, chip_list, 0.05, 1e-4, 0.2, measured=foreign)


def test_bisection_reads_chips_no_further_than_the_limit(evaluator, monkeypatch):
  monkeypatch.setattr(budget.checks, "MAX_CHIPS", 2)
  endless = (chips.RandomChip(seed) for seed in itertools.count())
  with pytest.raises(ValueError, match="chips must have at most 2 items, got more"):
    budget.bisect_rate(evaluator, endless, 0.05, 1e-4, 0.2)


def test_energy_budget_binary_writes_table_json_and_plot(tmp_path):
  path = rate_results().to_json(str(tmp_path / "m.json"))
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.run(
      [sys.executable, os.path.join(REPO, "bin", "energy_budget"), path, "--budgets=2,10",
       f"--output={tmp_path / 'b.json'}", f"--plot={tmp_path / 'b.png'}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert process.returncode == 0, process.stdout + process.stderr
  assert "interpolated 0.1..1 %" in process.stdout and "at least" in process.stdout
  record = json.loads((tmp_path / "b.json").read_text())
  first = record["models"]["m"]["answers"][0]
  assert first["rate"] == pytest.approx(0.00325) and first["how"] == "interpolated"
  assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_pareto_plot_ties_each_budget_answer_to_its_budget_and_labels_rates_once(
    tmp_path, monkeypatch):
  figures = helpers.capture_figures(monkeypatch)
  results = rate_results()
  results.model = helpers.model_info("m")
  found = energy_budget_lib.answers([results], ["M"], [0.01, 0.02], "mean")
  energy_figure.plot([results], ["M"], found, tmp_path / "pareto.png")
  assert (tmp_path / "pareto.png").stat().st_size > 0
  ax, top = figures[-1].axes
  # One star per budget, at the answer's saving and RErr, labelled with that budget.
  marks = {(round(a.xy[0], 6), round(a.xy[1], 6)): a.get_text() for a in ax.texts}
  assert marks == {(round(100 * item.energy_saving, 6), round(100 * item.rerr, 6)):
                   f"{100 * item.budget:g} pt" for item in found["M"]}
  assert sorted(marks.values()) == ["1 pt", "2 pt"]
  # The rates label the top axis once each, at the energy they save (p = 0 saves nothing).
  assert [t.get_text() for t in top.get_xticklabels()] == ["0", "0.1", "1"]
  np.testing.assert_allclose(
      top.get_xticks(), [0, 100 * energy.energy_saving(0.001), 100 * energy.energy_saving(0.01)])
  assert top.get_xlim() == ax.get_xlim()
  assert helpers.footer(figures[-1]).startswith("M: 8-bit per-tensor asymmetric unsigned")


def test_pareto_plot_marks_the_answers_of_profiled_chips(tmp_path, monkeypatch):
  figures = helpers.capture_figures(monkeypatch)
  voltages = evaluation.Results(
      model=helpers.model_info("m"), n=100, data_digest="d", clean_errors=3,
      condition_kind="voltage", errors={("c", 0.9, 0): 4, ("c", 0.85, 0): 20})
  found = energy_budget_lib.answers([voltages], ["M"], [0.05], "mean")
  energy_figure.plot([voltages], ["M"], found, tmp_path / "chips.png")
  ax, top = figures[-1].axes
  (mark,) = ax.texts
  assert mark.get_text() == "c: 5 pt"
  assert mark.xy == pytest.approx((100 * (1 - 0.9 ** 2), 4.0))
  assert [t.get_text() for t in top.get_xticklabels()] == ["0.9", "0.85"]


def test_interpolated_budget_counts_from_a_reference_error_like_the_papers_headline():
  points = [(0.0, 0.02), (0.001, 0.03), (0.01, 0.07)]  # Err 2 %, RErr 3 % and 7 %
  # From a reference Err of 1 %, 1.5 points allow RErr 2.5 %: half way from p = 0 to 0.1 %.
  found = budget.interpolated_budget(points, 0.015, reference_error=0.01)
  assert (found.how, found.rate, found.rerr) == ("interpolated", pytest.approx(0.0005), 0.025)
  assert found.energy_saving == pytest.approx(energy.energy_saving(0.0005))
  none = budget.interpolated_budget(points, 0.005, reference_error=0.01)
  assert (none.how, none.rate, none.energy_saving) == ("none", 0.0, 0.0)
  own = budget.interpolated_budget(points, 0.05)  # from its own Err: every rate keeps 5 points
  assert (own.how, own.rate, own.reference_error) == ("at least", 0.01, None)
