r"""Trains a bit error robust model: tfbet-train --gin_file=... [--gin_param=...] --output_dir=...

Examples:
  tfbet-train --gin_file=experiments/cpu/mnist_randbet.gin --output_dir=runs/mnist_randbet
  tfbet-train --gin_file=experiments/cpu/mnist_clipping.gin --gin_param='WeightClip.w_max = 0.05' \
      --output_dir=runs/clip005
  # Your own model: a module registering a gin configurable, referenced from your gin file.
  tfbet-train --gin_module=my_models.py --gin_search_path=my_configs \
      --gin_file=my_experiment.gin --output_dir=runs/mine
Re-running the same command after a kill resumes from the last epoch checkpoint (a damaged
newest checkpoint is skipped for the one before it). A directory with checkpoints of a different
config is refused unless --restart is given; a lock file keeps a second process out.
"""
import os

from absl import app
from absl import flags

from tfbet.cli import launch

FLAGS = flags.FLAGS


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import gin_utils  # pylint: disable=g-import-not-at-top
  flags.DEFINE_multi_string("gin_file", [], "Gin config file(s), absolute or relative to a "
                            "--gin_search_path or the shipped gin/ directory (e.g. "
                            "experiments/cpu/mnist_randbet.gin); later files override earlier "
                            "ones.")
  flags.DEFINE_multi_string("gin_param", [], "Gin binding(s) applied after the files, e.g. "
                            "--gin_param='train.epochs = 10'.")
  flags.DEFINE_string("output_dir", None, "Directory for checkpoints, TensorBoard logs, the "
                      "operative gin config, model.h5, memory.npz and result.json. An existing "
                      "directory with checkpoints is resumed.")
  flags.DEFINE_bool("restart", False, "Discard what an earlier run left in --output_dir "
                    "(checkpoints, logs, model, results) and train from scratch. Without it, a "
                    "directory with checkpoints is resumed, and refused if they were trained with "
                    "a different config.")
  flags.mark_flag_as_required("output_dir")
  gin_utils.define_flags()
  return main, (gin_utils,)


def main(argv):
  del argv
  from tfbet import data  # pylint: disable=g-import-not-at-top
  from tfbet.cli import gin_utils  # pylint: disable=g-import-not-at-top
  from tfbet.cli import train_lib  # pylint: disable=g-import-not-at-top
  new_output_dir = not os.path.exists(FLAGS.output_dir)
  try:
    gin_utils.parse(FLAGS.gin_file, FLAGS.gin_param, search_paths=FLAGS.gin_search_path,
                    modules=FLAGS.gin_module)
    result = train_lib.train(FLAGS.output_dir, restart=FLAGS.restart)
  except (ValueError, data.DataUnavailableError) as error:  # Bad settings, files or output
    raise app.UsageError(str(error)) from error  # directories, missing data: named in the text.
  finally:
    if new_output_dir and os.path.isdir(FLAGS.output_dir) and not os.listdir(FLAGS.output_dir):
      os.rmdir(FLAGS.output_dir)  # a run that failed before writing anything leaves nothing
  print(f"clean test error: {100 * result['test_error']:.2f} % "
        f"({result['num_weights']} quantized weights) -> {FLAGS.output_dir}")


def run():
  """Runs tfbet-train (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
