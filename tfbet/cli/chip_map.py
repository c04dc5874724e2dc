r"""A profiled chip's fault map at a voltage and the bit errors the stored weights meet there.

Examples:
  tfbet-chip-map --chip_file=runs/chips/chip2.npz --voltage=0.798 --run_dir=runs/mnist_rquant \
      --offset=0 --plot=runs/eval/chip2_map.png
See tfbet/cli/chip_map_lib.py.
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import chip_map_lib  # pylint: disable=g-import-not-at-top
  chip_map_lib.define_flags()
  return chip_map_lib.main, (chip_map_lib,)


def run():
  """Runs tfbet-chip-map (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
