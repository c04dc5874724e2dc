"""Simulates a profiled SRAM chip file (App. C.1 statistics); see tfbet/cli/simulate_chips_lib.py.

Example:
  tfbet-simulate-chips --preset=chip2 --output=runs/chips/chip2.npz --plot=runs/chips/plots
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import simulate_chips_lib  # pylint: disable=g-import-not-at-top
  simulate_chips_lib.define_flags()
  return simulate_chips_lib.main, (simulate_chips_lib,)


def run():
  """Runs tfbet-simulate-chips (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__, tensorflow=False)


if __name__ == "__main__":
  run()
