r"""RErr when only one layer's (or tensor's) memory is faulty: which parts need protection.

Examples:
  tfbet-sensitivity --run_dir=runs/mnist_rquant --rate=1 --num_chips=10 \
      --plot=runs/eval/sensitivity.png --output=runs/eval/sensitivity.json
  tfbet-sensitivity --run_dir=runs/r --chip_files=chip2.npz --voltage=0.83 --by=tensor
See tfbet/cli/sensitivity_lib.py.
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import sensitivity_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import eval_lib  # pylint: disable=g-import-not-at-top
  sensitivity_lib.define_flags()
  return sensitivity_lib.main, (sensitivity_lib, eval_lib)


def run():
  """Runs tfbet-sensitivity (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
