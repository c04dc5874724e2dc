r"""Several models' result files (tfbet-eval or tfbet-eval-chips) in one table and one plot.

Examples:
  tfbet-compare runs/eval/rquant.json runs/eval/randbet.json --labels=RQUANT,RANDBET \
      --plot=runs/eval/compare.png --output=runs/eval/compare.txt
  tfbet-compare runs/eval/rquant_chips.json runs/eval/randbet_chips.json --plot=chips.png
All files must be on the same test set and of one kind (rates or voltages); see
tfbet/cli/compare_lib.py.
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import compare_lib  # pylint: disable=g-import-not-at-top
  compare_lib.define_flags()
  return compare_lib.main, (compare_lib,)


def run():
  """Runs tfbet-compare (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__, tensorflow=False)


if __name__ == "__main__":
  run()
