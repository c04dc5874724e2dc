"""Reproduces the paper's findings at CPU scale: trains, evaluates, writes docs/reproduction.md.

  tfbet-reproduce --suite=full --output_dir=runs/full     # 30 runs, 2.5-10 minutes each here
  tfbet-reproduce --suite=recipe --output_dir=runs/full --report=docs/recipe_diagnostics.md
  tfbet-reproduce --suite=quick --output_dir=runs/quick   # 5 short runs, one seed
Suites are gin/suites/<name>.json. Re-running skips finished steps (and resumes a killed
training run), so it can run in the background and be restarted:
  nohup tfbet-reproduce --suite=full --output_dir=runs/full > full.log 2>&1 &
"""
from absl import app
from absl import flags

from tfbet.cli import launch

FLAGS = flags.FLAGS


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  flags.DEFINE_string("suite", "full", "Suite of runs: a name of gin/suites/ ('full': the "
                      "paper's main findings with 3 seeds on the core rows, 30 training runs of "
                      "2.5-10 minutes each on 2 cores; 'recipe': why RANDBET 0.05 at p = 10 % "
                      "misses the quality bar, sharing the full suite's runs in the same "
                      "--output_dir; 'quick': 5 short runs, one seed; 'tiny': a smoke test) or "
                      "the path of a suite .json file.")
  flags.DEFINE_enum("stage", "all", ["all", "train", "evaluate"], "'train' trains every run "
                    "first, 'evaluate' evaluates trained runs, 'all' does both, then reports.")
  flags.DEFINE_string("output_dir", None, "Directory of the runs (one sub-directory per run).")
  flags.DEFINE_string("report", "docs/reproduction.md", "Markdown report to write; figures go "
                      "to a figures/ directory next to it.")
  flags.DEFINE_list("only", None, "Run only these run names (default: all of the suite).")
  flags.DEFINE_bool("report_only", False, "Do not train or evaluate; only render the report "
                    "(refused when --output_dir holds no evaluated run: the report is never "
                    "replaced by an empty one).")
  flags.mark_flag_as_required("output_dir")
  return main, ()


def main(argv):
  del argv
  from tfbet.cli import reproduce_lib  # pylint: disable=g-import-not-at-top
  try:
    suite = reproduce_lib.load_suite(FLAGS.suite)
    reproduce_lib.check_only(suite, FLAGS.only)
    if FLAGS.report_only and FLAGS.only is not None:
      raise ValueError("--only selects runs to train and evaluate; it has no effect with "
                       "--report_only (the report covers every finished run)")
    if not FLAGS.report_only:
      reproduce_lib.run_suite(suite, FLAGS.output_dir, only=FLAGS.only, stage=FLAGS.stage,
                              progress=lambda line: print(line, flush=True))
    if FLAGS.stage == "train":
      return
    from tfbet.cli import reproduction_report  # pylint: disable=g-import-not-at-top
    path = reproduction_report.write_report(suite, FLAGS.output_dir, FLAGS.report)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  print(f"report: {path}")


def run():
  """Runs tfbet-reproduce (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
