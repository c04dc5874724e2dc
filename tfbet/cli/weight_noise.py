r"""RErr under random L-infinity weight noise relative to each tensor's range (Fig. 9).

Examples:
  tfbet-weight-noise --run_dir=runs/mnist_clipping --magnitudes=1,2.5,5,10 --num_samples=10 \
      --bit_errors=runs/eval/clipping.json --plot=runs/eval/noise.png --output=runs/eval/noise.json
Magnitudes are in percent of each tensor's range; see tfbet/cli/weight_noise_lib.py.
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import weight_noise_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import eval_lib  # pylint: disable=g-import-not-at-top
  weight_noise_lib.define_flags()
  return weight_noise_lib.main, (weight_noise_lib, eval_lib)


def run():
  """Runs tfbet-weight-noise (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
