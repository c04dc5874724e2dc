"""Simulates a profiled SRAM chip file (App. C.1 statistics); see tfbet/cli/simulate_chips_lib.py.

Example:
  tfbet-simulate-chips --preset=chip2 --output=runs/chips/chip2.npz --plot=runs/chips/plots
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags of tfbet-simulate-chips; returns ``main`` and the modules listed under --help."""
  from tfbet.cli import simulate_chips_lib  # pylint: disable=g-import-not-at-top
  simulate_chips_lib.define_flags()
  return simulate_chips_lib.main, (simulate_chips_lib,)


def run():
  """Entry point of tfbet-simulate-chips (console script, ``python -m tfbet.cli.simulate_chips``, bin/simulate_chips)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
