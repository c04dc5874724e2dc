r"""Reproduces the paper's findings at CPU scale: trains, evaluates, writes docs/reproduction.md.

  tfbet-reproduce --suite=full --output_dir=runs/full     # 30 runs; wall times: README
  tfbet-reproduce --suite=recipe --output_dir=runs/full --report=docs/recipe_diagnostics.md
  tfbet-reproduce --suite=quick --output_dir=runs/quick   # 5 short runs, one seed
  tfbet-reproduce --suite=full,tab21 --output_dir=runs/full  # docs/reproduction.md: 2 parts
Suites are gin/suites/<name>.json. Re-running skips finished steps (and resumes a killed
training run), so it can run in the background and be restarted:
  nohup tfbet-reproduce --suite=full --output_dir=runs/full > full.log 2>&1 &
  # The jobs (one per run and seed) on 2 worker processes of Beam's DirectRunner, 1 TensorFlow
  # thread each (pip install tfbet[beam]); the same command resumes a failed or killed suite:
  tfbet-reproduce --suite=full --output_dir=runs/full --runner=DirectRunner \
      --beam_options=--direct_num_workers=2 --worker_threads=1
"""
import logging
import shlex
import sys

from absl import app
from absl import flags

from tfbet import threads
from tfbet.cli import launch
from tfbet.cli import model_flags
from tfbet.cli import suite_jobs
from tfbet.cli import suites

IN_PROCESS = model_flags.IN_PROCESS


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/reproduce on ``flag_values``."""
  flags.DEFINE_list("suite", ["full"], "Suite of runs: a name of gin/suites/ ('full': the "
                      "paper's main findings with 3 seeds on the core rows, 30 training runs of "
                      "2.5-14 minutes each on one thread; 'recipe': why RANDBET 0.05 at p = 10 % "
                      "misses the quality bar, sharing the full suite's runs in the same "
                      "--output_dir; 'tab21': the paper's MNIST table (App. G.8) at its bit "
                      "error rates up to 20 %, 20 training runs; 'quick': 5 short runs, one "
                      "seed; 'tiny': a smoke test) or the path of a suite .json file. Several, "
                      "comma-separated, share --output_dir: their jobs run suite after suite "
                      "and the report has a part per suite (docs/reproduction.md is "
                      "--suite=full,tab21).", flag_values=flag_values)
  flags.DEFINE_enum("stage", "all", list(suite_jobs.STAGES), "'train' trains every run "
                    "first, 'evaluate' evaluates trained runs, 'all' does both, then reports. "
                    "Where the suite asks the energy headline, 'all' and 'evaluate' then bisect "
                    "the first seed of every evaluated run (bin/bisect_rate, once the reference "
                    "run is evaluated); 'headline' does only that.", flag_values=flag_values)
  flags.DEFINE_string("output_dir", None, "Directory of the runs (one sub-directory per run).",
                      flag_values=flag_values)
  flags.DEFINE_string("report", "docs/reproduction.md", "Markdown report to write; figures go "
                      "to a figures/ directory next to it.", flag_values=flag_values)
  flags.DEFINE_list("only", None, "Run only these run names (default: all of the suite).",
                    flag_values=flag_values)
  flags.DEFINE_bool("report_only", False, "Do not train or evaluate; only render the report "
                    "(refused when --output_dir holds no evaluated run: the report is never "
                    "replaced by an empty one).", flag_values=flag_values)
  flags.DEFINE_string("runner", IN_PROCESS, f"{IN_PROCESS}: train and evaluate the suite's "
                      "jobs, one (run, seed) each, one after another from this process. Any "
                      "other value is an Apache Beam runner (pip install tfbet[beam]) that runs "
                      "the jobs as work items on its workers, e.g. DirectRunner: worker "
                      "processes on this machine, one per core unless --beam_options say "
                      "otherwise. Each job resumes what an earlier, killed one left; every run "
                      "directory lives under --output_dir, which the workers must share.",
                      flag_values=flag_values)
  flags.DEFINE_string("beam_options", "", "Only with a Beam --runner: its pipeline options, "
                      "space-separated, e.g. '--direct_num_workers=2'.", flag_values=flag_values)
  flags.DEFINE_integer("worker_threads", None, "TensorFlow threads of each training and "
                       "evaluation process, in [1, 1024]. Default: TensorFlow's (every core) "
                       f"with --runner={IN_PROCESS}; the cores divided among the workers on "
                       "the DirectRunner. Results depend on it in the last bits (the order of "
                       "floating-point sums): the same suite with the same budget gives the same "
                       "numbers on every runner.", flag_values=flag_values)
  flags.mark_flag_as_required("output_dir", flag_values=flag_values)


def main(argv):
  """Runs a reproduction suite: trains and evaluates its models, then renders the report.

  The driver (``suite_jobs.run_suite``, or ``run_suite_on_beam`` with a Beam --runner)

  1. trains every (run, seed) with ``bin/train`` (skipped when ``result.json`` exists; a killed
     run resumes from its last checkpoint; a directory trained with other settings is refused),
  2. evaluates RErr with ``bin/eval --per_example`` on ``num_chips`` random chips at every rate
     (per-example errors make the test-set noise of a comparison measurable),
  3. evaluates the profiled runs with ``bin/eval_chips`` on simulated profiled chips (App. C.1),
  4. analyses the first seed of the suite's ``"analysis"`` runs with bin/sensitivity,
     bin/diagnose, bin/weight_noise and bin/chip_map (``tfbet.cli.report_analysis``),
  5. where the suite asks it, measures the energy headline: ``bin/bisect_rate`` from each run's
     rates, the budgets counted from the reference run's clean Err,

  and ``tfbet.cli.reproduction_report`` renders the report from the runs' JSON files.
  """
  del argv
  flag_values = flags.FLAGS
  try:
    chosen = suites.load_suites(flag_values.suite)
    suites.check_only(chosen, flag_values.only)
    if flag_values.report_only and flag_values.only is not None:
      raise ValueError("--only selects runs to train and evaluate; it has no effect with "
                       "--report_only (the report covers every finished run)")
    if flag_values.worker_threads is not None:
      threads.check(flag_values.worker_threads, "--worker_threads")
    progress = lambda line: print(line, flush=True)  # pylint: disable=unnecessary-lambda-assignment
    if flag_values.report_only:
      pass
    elif flag_values.runner == IN_PROCESS and flag_values.beam_options:
      raise ValueError(f"--beam_options needs a Beam --runner (not {IN_PROCESS})")
    else:
      if flag_values.runner != IN_PROCESS and launch.verbosity(sys.argv) < 1:
        logging.getLogger("apache_beam").setLevel(logging.WARNING)  # every worker's INFO lines
      for number, suite in enumerate(chosen, start=1):
        only = suites.only_of(suite, flag_values.only)
        if only == []:  # pylint: disable=g-explicit-bool-comparison
          continue  # --only names none of this suite's runs
        if len(chosen) > 1:
          progress(f"suite {suite.name} ({number} of {len(chosen)})")
        if flag_values.runner == IN_PROCESS:
          suite_jobs.run_suite(suite, flag_values.output_dir, only=only, stage=flag_values.stage,
                               worker_threads=flag_values.worker_threads, progress=progress)
        else:
          suite_jobs.run_suite_on_beam(
              suite, flag_values.output_dir, flag_values.runner, shlex.split(
                  flag_values.beam_options), only=only, stage=flag_values.stage,
              worker_threads=flag_values.worker_threads, progress=progress)
    if flag_values.stage == "train":
      return
    from tfbet.cli import reproduction_report  # pylint: disable=g-import-not-at-top
    path = reproduction_report.write_report(chosen, flag_values.output_dir, flag_values.report)
  except (TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  except (ImportError, RuntimeError) as error:  # no Beam; a failed job (named, with its log)
    raise SystemExit(f"bin/reproduce: {error}") from error
  except OSError as error:  # e.g. a full disk: the report and each figure are written atomically
    raise SystemExit(f"bin/reproduce: {error}; the report (and any figure not yet replaced) "
                     "is left as it was") from error
  print(f"report: {path}")


if __name__ == "__main__":  # python -m tfbet.cli.reproduce
  launch.start("reproduce")
