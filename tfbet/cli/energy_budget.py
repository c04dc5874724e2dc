r"""Accuracy budget -> highest tolerated bit error rate -> voltage -> SRAM energy saving.

Examples:
  tfbet-energy-budget runs/eval/rquant.json runs/eval/randbet.json --budgets=0.5,1 \
      --plot=runs/eval/pareto.png --output=runs/eval/budget.json
  tfbet-energy-budget runs/eval/randbet_chips.json --budgets=1   # profiled chips: per voltage
Budgets are in percentage points of RErr above the clean Err; see tfbet/cli/energy_budget.py.
"""
import math
import os

from absl import app
from absl import flags

from tfbet import budget as budget_lib
from tfbet import checks
from tfbet import comparison
from tfbet import evaluation
from tfbet import files
from tfbet.cli import energy_figure
from tfbet.cli import launch

DEFAULT_BUDGETS = ("0.5", "1")


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/energy_budget on ``flag_values``."""
  flags.DEFINE_list(
      "budgets", list(DEFAULT_BUDGETS),
      "Comma-separated tolerated increases of RErr over the clean Err, in percentage POINTS "
      "(--budgets=0.5,1: RErr may be 0.5 or 1 point above Err). Each in [0, 100].",
      flag_values=flag_values)
  flags.DEFINE_enum(
      "statistic", "mean", list(budget_lib.STATISTICS),
      "RErr statistic that must keep the budget: mean over chips (the paper's RErr) or max "
      "(the worst chip). For profiled chips: over offsets.", flag_values=flag_values)
  flags.DEFINE_list(
      "labels", [],
      "Comma-separated names of the models, one per result file (default: the stored model "
      "names).", flag_values=flag_values)
  flags.DEFINE_string(
      "output", None, "Optional path of a JSON file with every answer (fractions, not %).",
      flag_values=flag_values)
  flags.DEFINE_string(
      "plot", None,
      "Optional path of a PNG: SRAM energy saving against RErr per model (measured rates or "
      "profiled voltages), the budget answers marked, and the Pareto front over all models.",
      flag_values=flag_values)


def parse_budgets(values):
  """Budgets in percentage points (strings) -> fractions, validated and distinct."""
  return checks.percentages(values, "budgets", 0, 100, unit="percentage points")


def answers(results_list, labels, budgets, statistic="mean"):
  """{label: [RateBudget or VoltageBudget, ...]} for every model and budget."""
  found = {}
  for results, label in zip(results_list, labels):
    found[label] = []
    for budget in budgets:
      if results.condition_kind == "rate":
        found[label].append(budget_lib.rate_budget(results, budget, statistic))
      else:
        found[label].extend(budget_lib.voltage_budgets(results, budget, statistic))
  return found


def _pct(value, digits=2):
  return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else \
      f"{100 * value:.{digits}f}"


def table(results_list, labels, found, statistic):
  """Text table of ``answers``."""
  width = max(10, *(len(label) for label in labels))
  over = "chips" if results_list[0].condition_kind == "rate" else "offsets"
  lines = [f"budget: {statistic} RErr over {over} - clean Err <= budget (percentage points)"]
  if results_list[0].condition_kind == "rate":
    lines.append(f"{'model':>{width}} {'budget':>6} {'Err %':>6} {'p %':>8} {'how':>32} "
                 f"{'V/Vmin':>7} {'energy %':>8} {'RErr %':>7}")
    for label in labels:
      for item in found[label]:
        if item.how == "interpolated":
          how = f"interpolated {100 * item.low:g}..{100 * item.high:g} %"
        elif item.how == "at least":
          how = "at least (highest measured)"
        else:
          how = f"bisection {100 * item.low:.4g}..{100 * item.high:.4g} %"
        lines.append(f"{label:>{width}} {100 * item.budget:6.2f} {_pct(item.clean_error):>6} "
                     f"{100 * item.rate:8.4f} {how:>32} {item.voltage:7.4f} "
                     f"{100 * item.energy_saving:8.2f} {_pct(item.rerr):>7}")
    lines.append("p: highest bit error rate that keeps the budget; energy: SRAM access energy "
                 "saved at its voltage (tfbet.energy model of Fig. 1)")
  else:
    lines.append(f"{'model':>{width}} {'chip':>10} {'budget':>6} {'Err %':>6} {'V/Vmin':>7} "
                 f"{'energy %':>8} {'RErr %':>7} {'fails at':>8}")
    for label in labels:
      for item in found[label]:
        voltage = "none" if item.voltage is None else f"{item.voltage:.3f}"
        failed = "-" if item.failed_at is None else f"{item.failed_at:.3f}"
        lines.append(f"{label:>{width}} {item.chip:>10} {100 * item.budget:6.2f} "
                     f"{_pct(item.clean_error):>6} {voltage:>7} {_pct(item.energy_saving):>8} "
                     f"{_pct(item.rerr):>7} {failed:>8}")
    lines.append("V/Vmin: lowest profiled voltage that, with every higher profiled voltage, keeps "
                 "the budget (none: not even the highest); energy: SRAM access energy saved there")
  return "\n".join(lines)


def main(argv):
  """Accuracy budget -> bit error rate -> voltage -> energy saving.

  For every result file (bin/eval: random chips over rates; or bin/eval_chips: profiled chips over
  voltages) and every budget (tolerated RErr - Err in percentage points), prints the highest bit
  error rate that keeps the budget (``tfbet.budget.rate_budget``: interpolated linearly in p
  between measured rates and marked so, or "at least" the highest measured rate), the voltage
  and SRAM access energy saving of ``tfbet.energy``; for profiled chips the lowest profiled
  voltage per chip. ``--plot`` draws energy saving against RErr for all models with the Pareto
  front over them (Fig. 1 and Fig. 2 combined).
  """
  flag_values = flags.FLAGS
  paths = argv[1:]
  try:
    budgets = parse_budgets(flag_values.budgets)
    if not paths:
      raise ValueError("give result files (bin/eval or bin/eval_chips) as arguments")
    results_list = [evaluation.Results.from_json(path) for path in paths]
    labels = comparison.check_comparable(results_list, flag_values.labels or None, paths)
    found = answers(results_list, labels, budgets, flag_values.statistic)
  except (TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  print(table(results_list, labels, found, flag_values.statistic), flush=True)
  if flag_values.output:
    record = {"statistic": flag_values.statistic, "how": budget_lib.HOW,
              "models": {label: {"file": os.path.abspath(path),
                                 "answers": [item.to_dict() for item in found[label]]}
                         for label, path in zip(labels, paths)}}
    files.write_json(flag_values.output, record)
    print(f"wrote {flag_values.output}")
  if flag_values.plot:
    energy_figure.plot(results_list, labels, found, flag_values.plot, flag_values.statistic)
    print(f"wrote {flag_values.plot}")


if __name__ == "__main__":  # python -m tfbet.cli.energy_budget
  launch.start("energy_budget")
