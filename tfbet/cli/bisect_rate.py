r"""Highest bit error rate that keeps an accuracy budget, measured by bisection on p.

Examples:
  tfbet-bisect-rate --run_dir=runs/mnist_randbet --budget=1 --low=0.1 --high=10 --steps=6 \
      --num_chips=10 --output=runs/eval/randbet_bisect.json
Rates in percent, the budget in percentage points; see tfbet/cli/bisect_rate_lib.py.
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import bisect_rate_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import eval_lib  # pylint: disable=g-import-not-at-top
  bisect_rate_lib.define_flags()
  return bisect_rate_lib.main, (bisect_rate_lib, eval_lib)


def run():
  """Runs tfbet-bisect-rate (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
