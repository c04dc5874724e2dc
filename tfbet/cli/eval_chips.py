r"""RErr of a trained model on profiled chip files at their voltages (App. C.1, Tab. 5, App. G.5).

Example:
  tfbet-simulate-chips --preset=chip1 --output=runs/chips/chip1.npz
  tfbet-eval-chips --run_dir=runs/mnist_randbet --chip_files=runs/chips/chip1.npz --offsets=4 \
      --output=runs/eval/chips.json --plot=runs/eval/chips.png
--runner, --beam_options and --worker_threads (TensorFlow threads per process) work as in
tfbet-eval. See tfbet/cli/eval_chips_lib.py.
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import eval_chips_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import gin_utils  # pylint: disable=g-import-not-at-top
  eval_chips_lib.define_flags()
  return eval_chips_lib.main, (eval_chips_lib, gin_utils)


def run():
  """Runs tfbet-eval-chips (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
