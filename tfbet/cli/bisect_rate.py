r"""Highest bit error rate that keeps an accuracy budget, measured by bisection on p.

Examples:
  tfbet-bisect-rate --run_dir=runs/mnist_randbet --budget=1 --low=0.1 --high=10 --steps=6 \
      --num_chips=10 --output=runs/eval/randbet_bisect.json
  # Refine tfbet-eval's rates (same chips) and count the budget from NORMAL 8-bit's clean Err:
  tfbet-bisect-rate --run_dir=runs/mnist_randbet --measured=runs/mnist_randbet/eval.json \
      --reference_error=0.8 --budget=1 --steps=4 --output=runs/eval/randbet_headline.json
Rates in percent, the budget in percentage points; see tfbet/cli/bisect_rate.py.
"""
import os

from absl import app
from absl import flags

from tfbet import budget as budget_lib
from tfbet import checks
from tfbet import chip_models
from tfbet import evaluation
from tfbet.cli import chip_flags
from tfbet.cli import evaluation_run
from tfbet.cli import launch
from tfbet.cli import model_flags


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/bisect_rate on ``flag_values``."""
  model_flags.define_flags(flag_values)
  flags.DEFINE_float("budget", 1.0, "Tolerated RErr - clean Err in percentage POINTS, in "
                     "[0, 100].", flag_values=flag_values)
  flags.DEFINE_float("low", 0.01, "Lower end of the bracket: a rate in PERCENT that keeps the "
                     "budget; 0 < low < high. With --measured: measured only when even the "
                     "lowest measured rate fails the budget.", flag_values=flag_values)
  flags.DEFINE_float("high", 10.0, "Upper end: a rate in PERCENT that fails the budget, <= 50. "
                     "With --measured: measured only when no measured rate fails the budget and "
                     "it is above them all (if it keeps the budget too, the answer is 'at "
                     "least' the highest rate that kept it).", flag_values=flag_values)
  flags.DEFINE_string("measured", None, "Optional bin/eval result of this model on these chips "
                      "(--num_chips, --first_chip_seed, --test_limit as it was evaluated): its "
                      "rates are reused, not measured again, and bisection starts between the "
                      "first that fails the budget and the one before. Refused when it measured "
                      "another model, test set or chips.", flag_values=flag_values)
  flags.DEFINE_float("reference_error", None, "Optional clean Err in PERCENT that the budget "
                     "counts from (RErr <= reference + budget), e.g. NORMAL 8-bit's: the paper's "
                     "headline question. Default: this model's own clean Err. A model whose own "
                     "clean Err is over reference + budget keeps it at no rate (answer 'none', "
                     "p = 0).", flag_values=flag_values)
  flags.DEFINE_integer("steps", 6, "Bisection steps; the bracket shrinks to "
                       "(high / low) ** (2 ** -steps).", lower_bound=0, flag_values=flag_values)
  flags.DEFINE_enum("statistic", "mean", list(budget_lib.STATISTICS),
                    "RErr over chips that must keep the budget: mean or max (worst chip).",
                    flag_values=flag_values)
  flags.DEFINE_integer("num_chips", chip_models.DEFAULT_NUM_CHIPS,
                       f"Number of random chips, at most {checks.MAX_CHIPS}.", lower_bound=1,
                       upper_bound=checks.MAX_CHIPS, flag_values=flag_values)
  flags.DEFINE_integer("first_chip_seed", chip_models.FIRST_EVALUATION_SEED,
                       "Seed of the first chip (default: bin/eval's).", lower_bound=0,
                       flag_values=flag_values)


def answer_line(found):
  """The answer in one line: the rate, where the bisection ended, what the rate saves."""
  reference = ("Err" if found.reference_error is None else
               f"{100 * found.reference_error:.4g} % (the reference Err)")
  question = f"{found.statistic} RErr - {reference} <= {100 * found.budget:g} points"
  if found.how == "none":
    return (f"no rate keeps {question}: the clean Err is already "
            f"{100 * found.clean_error:.2f} %; no energy saved")
  if found.how == "below":
    return (f"no measured rate keeps {question}: it fails already at {100 * found.high:.4g} % "
            "(the lowest rate measured; measure lower with --low); no energy saved")
  where = (f"fails at {100 * found.high:.4g} %" if found.how == "bisection" else
           "the highest rate measured; no measured rate failed")
  return (f"highest measured p keeping {question}: {100 * found.low:.4g} % ({where}), RErr "
          f"{100 * found.rerr:.2f} %, V/Vmin {found.voltage:.4f}, SRAM energy saved "
          f"{100 * found.energy_saving:.2f} % (tfbet.energy model of Fig. 1)")


def main(argv):
  """The highest bit error rate that keeps an accuracy budget, measured.

  Like bin/eval, but the rates are chosen by bisection (``tfbet.budget.bisect_rate``): between
  ``--low`` (which must keep the budget) and ``--high`` (which must fail it), ``--steps`` geometric
  midpoints on the same random chips, whose errors are nested across rates. Prints the measured
  table and the answer with its voltage and SRAM energy saving (``tfbet.energy``); ``--output``
  writes the counts of every measured rate in bin/eval's format, so bin/compare and
  bin/energy_budget read them. ``--measured`` starts from bin/eval's rates on the same chips
  (reused, not measured again); ``--reference_error`` counts the budget from another model's
  clean Err (the paper's "within 1 % of a normally trained 8-bit DNN").
  """
  flag_values = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not 0 <= flag_values.budget <= 100:
    raise app.UsageError(f"--budget is in percentage points, in [0, 100]; got "
                         f"{flag_values.budget}")
  if not 0 < flag_values.low < flag_values.high <= 50:
    raise app.UsageError(f"need 0 < --low < --high <= 50 (percent), got {flag_values.low}, "
                         f"{flag_values.high}")
  if flag_values.reference_error is not None and not 0 <= flag_values.reference_error <= 100:
    raise app.UsageError(f"--reference_error is a clean Err in percent, in [0, 100]; got "
                         f"{flag_values.reference_error}")
  try:
    model, data, model_path = model_flags.load(flag_values)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  chip_list = chip_flags.make_chips(
      "random", [flag_values.first_chip_seed + i for i in range(flag_values.num_chips)])
  evaluator = evaluation.Evaluator(model, data.test_dataset())
  reference = flag_values.reference_error
  try:
    measured = (None if flag_values.measured is None else
                evaluation.Results.from_json(flag_values.measured))
    found, results = budget_lib.bisect_rate(
        evaluator, chip_list, flag_values.budget / 100, flag_values.low / 100,
        flag_values.high / 100, flag_values.steps, flag_values.statistic,
        progress=lambda line: print(line, flush=True),
        reference_error=None if reference is None else reference / 100, measured=measured)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  results.metadata.update({"tool": "bin/bisect_rate", "model_path": os.path.abspath(model_path),
                           "bisection": found.to_dict()})
  evaluation_run.show(results, flag_values)
  print(answer_line(found), flush=True)


if __name__ == "__main__":  # python -m tfbet.cli.bisect_rate
  launch.start("bisect_rate")
