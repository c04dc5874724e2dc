r"""Trains a bit error robust model: tfbet-train --gin_file=... [--gin_param=...] --output_dir=...

Examples:
  tfbet-train --gin_file=experiments/cpu/mnist_randbet.gin --output_dir=runs/mnist_randbet
  tfbet-train --gin_file=experiments/cpu/mnist_clipping.gin --gin_param='WeightClip.w_max = 0.05' \
      --output_dir=runs/clip005
  # Your own model: a module registering a gin configurable, referenced from your gin file.
  tfbet-train --gin_module=my_models.py --gin_search_path=my_configs \
      --gin_file=my_experiment.gin --output_dir=runs/mine
  # RErr on 5 fixed chips at p = 0.1 % and 1 % every 2 epochs (tfbet.callbacks.RErrMonitor, on
  # the test set), logged as rerr_p0.001, rerr_p0.01, rerr_clean into TensorBoard and the
  # history of result.json; off by default:
  tfbet-train --gin_file=experiments/cpu/mnist_randbet.gin --output_dir=runs/monitored \
      --gin_param='train.rerr_monitor = @RErrMonitor' \
      --gin_param='RErrMonitor.rates = [0.001, 0.01]' --gin_param='RErrMonitor.every_n_epochs = 2'
Re-running the same command after a kill resumes from the last epoch checkpoint (a damaged
newest checkpoint is skipped for the one before it). A directory with checkpoints of a different
config is refused unless --restart is given; a lock file keeps a second process out. A full disk
or a read-only --output_dir ends the run with one line naming the path; the same command resumes.
A multi-worker run that loses a worker ends every other worker with one line naming it and the
command that resumes the run.
"""
import os
import shlex
import sys

from absl import app
from absl import flags

from tfbet.cli import gin_utils
from tfbet.cli import launch


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/train on ``flag_values``."""
  flags.DEFINE_multi_string("gin_file", [], "Gin config file(s), absolute or relative to a "
                            "--gin_search_path or the shipped gin/ directory (e.g. "
                            "experiments/cpu/mnist_randbet.gin); later files override earlier "
                            "ones.", flag_values=flag_values)
  flags.DEFINE_multi_string("gin_param", [], "Gin binding(s) applied after the files, e.g. "
                            "--gin_param='train.epochs = 10'.", flag_values=flag_values)
  flags.DEFINE_string("output_dir", None, "Directory for checkpoints, TensorBoard logs, the "
                      "operative gin config, model.h5, memory.npz and result.json. An existing "
                      "directory with checkpoints is resumed.", flag_values=flag_values)
  flags.DEFINE_bool("restart", False, "Discard what an earlier run left in --output_dir "
                    "(checkpoints, logs, model, results) and train from scratch. Without it, a "
                    "directory with checkpoints is resumed, and refused if they were trained with "
                    "a different config.", flag_values=flag_values)
  flags.DEFINE_integer("worker_threads", None, "TensorFlow intra- and inter-op threads of this "
                       "process, in [1, 1024] (default: TensorFlow's, every core). The trained "
                       "weights depend on it in the last bits (the order of floating-point "
                       "sums); result.json records the threads used (worker_threads).",
                       flag_values=flag_values)
  flags.mark_flag_as_required("output_dir", flag_values=flag_values)
  gin_utils.define_flags(flag_values)


def main(argv):
  """Trains the configured model into --output_dir (``tfbet.cli.training_job.train``)."""
  del argv
  from tfbet import data  # pylint: disable=g-import-not-at-top
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top  (TensorFlow)
  flag_values = flags.FLAGS
  output_dir = flag_values.output_dir
  new_output_dir = not os.path.exists(output_dir)
  if flag_values.worker_threads is not None:
    from tfbet import threads  # pylint: disable=g-import-not-at-top
    try:
      threads.limit(flag_values.worker_threads)
    except (RuntimeError, TypeError, ValueError) as error:
      raise app.UsageError(f"--worker_threads: {error}") from error
  try:
    gin_utils.parse(flag_values.gin_file, flag_values.gin_param,
                    search_paths=flag_values.gin_search_path, modules=flag_values.gin_module)
    result = training_job.train(output_dir, restart=flag_values.restart)
  except (ValueError, data.DataUnavailableError) as error:  # Bad settings, files or output
    raise app.UsageError(str(error)) from error  # directories, missing data: named in the text.
  except Exception as error:  # pylint: disable=broad-except  (re-raised unless told in a line)
    from tfbet import files  # pylint: disable=g-import-not-at-top
    lost_peer = training_job.lost_peer_message(error, shlex.join(sys.argv))
    if lost_peer:
      raise SystemExit(lost_peer) from error
    failure = files.write_failure(error)
    if failure is None:
      raise
    path, reason = failure
    raise SystemExit(
        f"cannot write {path or 'into --output_dir ' + repr(output_dir)}: {reason}. "
        "What the run did up to its last checkpoint is kept: once there is space (or "
        "permission), the same command resumes from there.") from error
  finally:
    if new_output_dir and os.path.isdir(output_dir) and not os.listdir(output_dir):
      os.rmdir(output_dir)  # a run that failed before writing anything leaves nothing
  injection = training_job.describe_injection(result.get("injection"))
  if injection:
    print(injection)
  print(f"clean test error: {100 * result['test_error']:.2f} % "
        f"({result['num_weights']} quantized weights) -> {output_dir}")


if __name__ == "__main__":  # python -m tfbet.cli.train
  launch.start("train")
