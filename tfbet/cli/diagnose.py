r"""Why a model survives bit errors: confidence, weight redundancy, effect per bit position.

Examples:
  tfbet-diagnose --run_dir=runs/mnist_randbet --rate=2.5 --plot=runs/eval/diagnose.png \
      --output=runs/eval/diagnose.json
See tfbet/cli/diagnose_lib.py.
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import diagnose_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import eval_lib  # pylint: disable=g-import-not-at-top
  diagnose_lib.define_flags()
  return diagnose_lib.main, (diagnose_lib, eval_lib)


def run():
  """Runs tfbet-diagnose (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
