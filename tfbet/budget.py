"""Accuracy budget -> highest tolerated bit error rate -> voltage -> SRAM energy (Fig. 1, Sec. 1).

The purpose of bit error robustness is to run the weight memory below V_min: the lower the
voltage, the higher the bit error rate p and the lower the energy per access. A user tolerates
some loss of accuracy, the *budget*: RErr may exceed the clean Err by at most ``budget``
(a fraction; 0.01 = one percentage point). This module finds the highest p that keeps it and
translates p into voltage and energy saving with :mod:`tfbet.energy`.

The excess ``RErr(p) - Err`` is known only at the evaluated rates. Two ways to find the
highest tolerated rate:

* :func:`rate_budget` interpolates between measured rates: it walks up the rates, stops at the
  first one whose excess is over the budget, and interpolates *linearly in p* between it and
  the rate before (p = 0, whose excess is 0 by definition: no errors, all masks zero). A
  measured rate whose excess comes back under the budget after a first failure is not trusted.
  The result is marked ``"interpolated"``; if no measured rate fails, it is ``"at least"`` the
  highest measured rate, never extrapolated.
* :func:`bisect_rate` measures: bisection on p (geometric midpoints) between a rate that keeps
  the budget and one that fails it. A chip's faulty bits at p' <= p are a subset of those at p
  (DESIGN §3), so the errors grow with p chip by chip; RErr usually does too, which bisection
  assumes. The result is the highest *measured* rate that kept the budget (``"bisection"``).

For profiled chips the conditions are voltages: :func:`voltage_budgets` gives per chip the
lowest profiled voltage that, together with every higher profiled voltage, keeps the budget.

The statistic over chips is the mean (the paper's RErr) or the maximum (the worst chip).
"""
import dataclasses
import math

from tfbet import checks
from tfbet import energy
from tfbet import evaluation_plan
from tfbet import result_identity
from tfbet import results as results_lib

STATISTICS = ("mean", "max")
HOW = {
    "interpolated": "linear interpolation in p between the measured rates low and high",
    "at least": "every measured rate keeps the budget; the highest tolerated p is at least this",
    "bisection": "highest measured rate that kept the budget, found by bisection",
    "none": "the clean model already exceeds the budget (counted from a reference Err)",
    "below": "even the lowest rate measured (high) fails the budget; the highest tolerated p "
             "is below it",
}
# RErr and Err are ratios of integer counts, so their difference can equal the budget exactly
# (e.g. 4/100 - 3/100 and 0.01) yet exceed it in floating point; a tie keeps the budget. Distinct
# ratios differ by at least 1/n, far more than this for any test set.
_TIE = 1e-9


def keeps(excess, budget):
  """True if ``excess`` (RErr - Err) stays within ``budget``; an exact tie keeps it."""
  return excess <= budget + _TIE


def check_budget(budget):
  """The tolerated RErr - Err as a fraction in [0, 1] (0.01 = 1 percentage point)."""
  return checks.probability(budget, "budget (tolerated RErr - Err, a fraction: 0.01 = 1 point)")


def _check_statistic(statistic):
  return checks.choice(statistic, "statistic", STATISTICS)


@dataclasses.dataclass(frozen=True)
class RateBudget:
  """The highest bit error rate that keeps a budget, and what it buys (fractions throughout)."""
  budget: float  # tolerated RErr - Err
  statistic: str  # over chips: "mean" or "max"
  clean_error: float  # Err
  rate: float  # highest p found to keep the budget
  how: str  # a key of HOW
  low: float  # highest measured rate that keeps the budget (0: none; p = 0 always does)
  high: float  # lowest measured rate that fails it (nan: none failed)
  rerr: float  # the statistic of RErr at ``rate`` (= Err + budget when interpolated)
  voltage: float  # tfbet.energy.voltage_at_rate(rate), normalized by V_min
  energy_saving: float  # tfbet.energy.energy_saving(rate)
  # The clean Err the budget counts from when it is not the model's own (e.g. NORMAL 8-bit's,
  # the paper's headline question); None: the model's own ``clean_error``.
  reference_error: float = None

  def to_dict(self):
    """JSON-able dict; a nan (no failing rate measured) becomes None."""
    return {key: None if isinstance(value, float) and math.isnan(value) else value
            for key, value in dataclasses.asdict(self).items()}


def _with_energy(**fields):
  rate = fields["rate"]
  return RateBudget(voltage=energy.voltage_at_rate(rate), energy_saving=energy.energy_saving(rate),
                    **fields)


def rate_statistics(results, statistic="mean"):
  """[(p, statistic of RErr over chips)] at every evaluated rate, increasing; p = 0 -> Err."""
  _check_statistic(statistic)
  if not isinstance(results, results_lib.Results) or results.condition_kind != "rate":
    raise ValueError("need evaluation.Results over bit error rates (random chips)")
  points = {0.0: results.clean_error}
  for row in results.summary():
    points[row.condition] = row.mean if statistic == "mean" else row.max
  return sorted(points.items())


def rate_budget(results, budget, statistic="mean"):
  """The highest p whose RErr statistic stays within ``budget`` of Err, interpolated.

  See the module docstring; raises ValueError if ``results`` holds no rate > 0.
  """
  budget = check_budget(budget)
  points = rate_statistics(results, statistic)
  if len(points) < 2:
    raise ValueError("results hold no bit error rate > 0; evaluate some rates first")
  return interpolated_budget(points, budget, statistic)


def interpolated_budget(points, budget, statistic="mean", reference_error=None):
  """``rate_budget`` of [(p, RErr statistic)] by increasing p, the first (0, clean Err); the
  budget counted from ``reference_error`` where given (e.g. a table of the paper's values)."""
  err = points[0][1]
  reference = err if reference_error is None else reference_error
  common = dict(budget=budget, statistic=statistic, clean_error=err,
                reference_error=reference_error)
  low, low_excess = 0.0, err - reference
  if not keeps(low_excess, budget):
    return _with_energy(rate=0.0, how="none", low=0.0, high=points[1][0], rerr=err, **common)
  for rate, value in points[1:]:
    excess = value - reference
    if not keeps(excess, budget):
      # low_excess <= budget < excess (up to ties), so the denominator is positive.
      found = low + min(max((budget - low_excess) / (excess - low_excess), 0.0), 1.0) * (
          rate - low)
      return _with_energy(rate=found, how="interpolated", low=low, high=rate,
                          rerr=reference + budget, **common)
    low, low_excess = rate, excess
  return _with_energy(rate=low, how="at least", low=low, high=math.nan,
                      rerr=reference + low_excess, **common)


def _statistic_at(results, rate, statistic):
  return dict(rate_statistics(results, statistic))[rate]


def _all_rates(chips, parts, measured=None):
  """One Results over every rate measured, one part per rate (the same chips, model, data);
  with no part, the clean count of ``measured`` alone."""
  rates = sorted(rate for part in parts for rate in part.conditions)
  plan, _ = evaluation_plan.make_plan(chips, rates or None)
  first = parts[0] if parts else measured
  results = results_lib.Results(
      model=first.model, n=first.n, data_digest=first.data_digest,
      clean_errors=first.clean_errors, condition_kind=first.condition_kind,
      chips={entry["name"]: entry["chip"] for entry in plan["chips"]}, plan=plan)
  for part in parts:
    for (chip, rate, offset), errors in part.errors.items():
      results.add(chip, rate, offset, errors)
  return results


def bisect_rate(evaluator, chips, budget, low, high, steps=6, statistic="mean", progress=None,
                reference_error=None, measured=None):
  """Measures the highest tolerated rate by bisection on p; returns (RateBudget, Results).

  Args:
    evaluator: ``evaluation.Evaluator`` of the model on its test set.
    chips: random chips (the same at every rate, so their errors are nested).
    budget: tolerated RErr - Err (fraction).
    low, high: rates with 0 < low < high < 1; the statistic at ``low`` must keep the budget and
      at ``high`` fail it (both are measured first; ValueError otherwise). With ``measured``,
      see below; either may then be None.
    steps: bisection steps (geometric midpoints); the bracket shrinks to (high / low) ** 2**-steps.
    statistic: "mean" or "max" over chips.
    progress: optional callable(str) for one line per measured rate.
    reference_error: the clean Err (fraction) the budget counts from, e.g. NORMAL 8-bit's to ask
      the paper's headline question; None: the model's own. A model whose own clean Err already
      exceeds ``reference_error + budget`` keeps it at no rate: the answer is "none", p = 0.
    measured: ``Results`` of this model on this test set and these chips (e.g. bin/eval's); their
      rates are reused, not measured again, and the bracket starts from them: ``high`` is the
      first measured rate that fails the budget and ``low`` the measured rate before it. The
      ``low`` argument is measured only when even the lowest measured rate fails (if it fails
      too, or is None, the answer is "below" the lowest rate that failed), ``high`` only when
      none fails (if it keeps the budget too, or is None, the answer is "at least" the highest
      rate that kept it). ValueError if ``measured`` is of another model, test set or chips.

  The Results hold every measured (and reused) rate (write them with ``to_json``).
  """
  budget = check_budget(budget)
  _check_statistic(statistic)
  if reference_error is not None:
    reference_error = checks.probability(reference_error, "reference_error (a clean Err)")
  if measured is None and not (low is not None and high is not None and 0 < low < high < 1):
    raise ValueError(f"need rates 0 < low < high < 1, got low={low!r}, high={high!r}")
  for name, rate in (("low", low), ("high", high)):
    if rate is not None:
      checks.rate(rate, name)
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
    raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
  chips = checks.bounded_list(chips, "chips", checks.MAX_CHIPS)
  known = {} if measured is None else measured_parts(measured, evaluator, chips)
  parts = list(known.values())
  excesses = {}

  def measure(rate):
    if rate not in excesses:
      part = known.get(rate)
      if part is None:
        part = evaluator.run(chips, [rate], progress=None)
        parts.append(part)
      value = _statistic_at(part, rate, statistic)
      if progress is not None:
        progress(f"p = {100 * rate:.4g} %: {statistic} RErr {100 * value:.2f} % "
                 f"(Err {100 * part.clean_error:.2f} %)" + (" (measured before)" if rate in known
                                                              else ""))
      excesses[rate] = value - (part.clean_error if reference_error is None else reference_error)
    return excesses[rate]

  def answer(how, rate, low, high, rerr, clean_error):
    return _with_energy(budget=budget, statistic=statistic, clean_error=clean_error, rate=rate,
                        how=how, low=low, high=high, rerr=rerr, reference_error=reference_error)

  if measured is not None:
    clean_error = measured.clean_error
    if reference_error is not None and not keeps(clean_error - reference_error, budget):
      return (answer("none", 0.0, 0.0, min(known, default=math.nan), clean_error, clean_error),
              _all_rates(chips, parts, measured))
    low, high = _bracket(sorted(known), measure, budget, low, high)
    if low is None or not keeps(measure(low), budget):
      return (answer("below", 0.0, 0.0, high if low is None else low, clean_error, clean_error),
              _all_rates(chips, parts))
  if not keeps(measure(low), budget):
    raise ValueError(f"at low = {low:g} the excess RErr - Err is already {excesses[low]:.4f} > "
                     f"budget {budget:g}; choose a lower low")
  how = "bisection"
  if high is None or keeps(measure(high), budget):
    if measured is None:
      raise ValueError(f"at high = {high:g} the excess RErr - Err is {excesses[high]:.4f} <= "
                       f"budget {budget:g}; choose a higher high")
    how, low, high = "at least", max(r for r in excesses if keeps(excesses[r], budget)), math.nan
  for _ in range(steps if how == "bisection" else 0):
    middle = math.sqrt(low * high)
    if not low < middle < high:
      break  # The bracket is as narrow as floats allow.
    if keeps(measure(middle), budget):
      low = middle
    else:
      high = middle
  results = _all_rates(chips, parts)
  reference = results.clean_error if reference_error is None else reference_error
  return answer(how, low, low, high, reference + excesses[low], results.clean_error), results


def _bracket(rates, measure, budget, low, high):
  """(low, high) from measured ``rates``: the first that fails the budget and the one before;
  the arguments ``low`` / ``high`` where the measured rates leave an end open."""
  before = None
  for rate in rates:
    if not keeps(measure(rate), budget):
      if before is None and low is not None and low >= rate:
        low = None  # no rate below the first failing one to start from
      return (before if before is not None else low), rate
    before = rate
  if before is None:
    if low is None:
      raise ValueError("measured holds no rate of these chips; give low and high")
    return low, high
  return before, (high if high is not None and high > before else None)


def measured_parts(measured, evaluator, chips):
  """{rate: Results of that rate alone} of ``measured`` on ``chips``: the rates it holds for
  every chip, after checking that it measured the evaluator's model, test set and chips."""
  if not isinstance(measured, results_lib.Results) or measured.condition_kind != "rate":
    raise ValueError("measured must be evaluation.Results over bit error rates (random chips)")
  difference = (result_identity.model_difference(measured.model, evaluator.describe_model())
                or ("test set differs" if (measured.n, measured.data_digest) != (
                    evaluator.n, evaluator.data_digest) else None))
  described = {chip.name: chip.describe() for chip in chips}
  if difference is None and any(measured.chips.get(name) != description
                                for name, description in described.items()):
    difference = "it was measured on other chips (names or seeds differ)"
  if difference is None and measured.clean_errors != evaluator.clean_errors():
    difference = (f"clean errors differ ({measured.clean_errors} vs {evaluator.clean_errors()} "
                  "now; e.g. another TensorFlow thread count)")
  if difference:
    raise ValueError(f"measured results cannot be reused: {difference}")
  parts = {}
  for rate in measured.conditions:
    if all((name, rate, 0) in measured.errors for name in described):
      part = results_lib.Results(
          model=measured.model, n=measured.n, data_digest=measured.data_digest,
          clean_errors=measured.clean_errors, condition_kind="rate", chips=described,
          plan=evaluation_plan.make_plan(chips, [rate])[0])
      for name in described:
        part.add(name, rate, 0, measured.errors[(name, rate, 0)])
      parts[rate] = part
  return parts


def energy_points(results, statistic="mean"):
  """[(p, energy saving, RErr statistic)] at every measured rate 0 < p < 1 (Pareto plot)."""
  return [(rate, energy.energy_saving(rate), value)
          for rate, value in rate_statistics(results, statistic) if 0 < rate < 1]


def pareto_front(points):
  """The points (saving, rerr, ...) that no other point beats: more saving and no more RErr.

  Returned by decreasing saving (so by decreasing RErr too).
  """
  front = []
  best = math.inf
  for point in sorted(points, key=lambda p: (-p[0], p[1])):
    if point[1] < best:
      front.append(point)
      best = point[1]
  return front


@dataclasses.dataclass(frozen=True)
class VoltageBudget:
  """Per profiled chip: the lowest profiled voltage that keeps a budget (None: none does)."""
  chip: str
  budget: float
  statistic: str  # over offsets: "mean" or "max"
  clean_error: float
  voltage: float  # or None
  rerr: float  # the statistic at ``voltage`` (None with it)
  energy_saving: float  # 1 - tfbet.energy.energy_at_voltage(voltage) (None with it)
  failed_at: float  # the highest profiled voltage that fails the budget (None: none)

  def to_dict(self):
    return dataclasses.asdict(self)


def voltage_budgets(results, budget, statistic="mean"):
  """[VoltageBudget] per chip of profiled-chip ``results`` (conditions are voltages).

  Walks down the chip's evaluated voltages and stops at the first that fails the budget; the
  voltage before it is the answer. Profiled voltages are few, so nothing is interpolated.
  """
  budget = check_budget(budget)
  _check_statistic(statistic)
  if not isinstance(results, results_lib.Results) or results.condition_kind != "voltage":
    raise ValueError("need evaluation.Results over voltages (profiled chips)")
  err = results.clean_error
  answers = []
  for chip in results.chip_names:
    voltages = sorted({v for c, v, _ in results.errors if c == chip}, reverse=True)
    best = None
    failed = None
    for voltage in voltages:
      per_offset = [results.errors[(chip, voltage, o)] / results.n
                    for o in results.offsets(chip, voltage)]
      value = results.rerr(chip, voltage) if statistic == "mean" else max(per_offset)
      if not keeps(value - err, budget):
        failed = voltage
        break
      best = (voltage, value)
    answers.append(VoltageBudget(
        chip=chip, budget=budget, statistic=statistic, clean_error=err,
        voltage=None if best is None else best[0], rerr=None if best is None else best[1],
        energy_saving=None if best is None else 1 - energy.energy_at_voltage(best[0]),
        failed_at=failed))
  return answers
