r"""Accuracy budget -> highest tolerated bit error rate -> voltage -> SRAM energy saving.

Examples:
  tfbet-energy-budget runs/eval/rquant.json runs/eval/randbet.json --budgets=0.5,1 \
      --plot=runs/eval/pareto.png --output=runs/eval/budget.json
  tfbet-energy-budget runs/eval/randbet_chips.json --budgets=1   # profiled chips: per voltage
Budgets are in percentage points of RErr above the clean Err; see tfbet/cli/energy_budget_lib.py.
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import energy_budget_lib  # pylint: disable=g-import-not-at-top
  energy_budget_lib.define_flags()
  return energy_budget_lib.main, (energy_budget_lib,)


def run():
  """Runs tfbet-energy-budget (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__, tensorflow=False)


if __name__ == "__main__":
  run()
