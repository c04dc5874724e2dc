"""Reproduces the paper's findings at CPU scale: trains, evaluates, writes docs/reproduction.md.

  tfbet-reproduce --suite=full --output_dir=runs/full     # 30 runs, 2.5-10 minutes each here
  tfbet-reproduce --suite=recipe --output_dir=runs/full --report=docs/recipe_diagnostics.md
  tfbet-reproduce --suite=quick --output_dir=runs/quick   # 5 short runs, one seed
Suites are gin/suites/<name>.json. Re-running skips finished steps (and resumes a killed
training run), so it can run in the background and be restarted:
  nohup tfbet-reproduce --suite=full --output_dir=runs/full > full.log 2>&1 &
"""
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

from tfbet import chip_simulation
from tfbet.cli import launch
from tfbet.cli import suites

# The binaries run as `python -m tfbet.cli.NAME`. From a checkout (the directory above the
# package holds setup.py) that checkout goes first on PYTHONPATH, so they run this very tfbet
# even where another one is installed; an installed tfbet is found as it is.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CHECKOUT = (_PACKAGE_PARENT if os.path.isfile(os.path.join(_PACKAGE_PARENT, "setup.py"))
             else None)

STAGES = ("all", "train", "evaluate")


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/reproduce on ``flag_values``."""
  flags.DEFINE_string("suite", "full", "Suite of runs: a name of gin/suites/ ('full': the "
                      "paper's main findings with 3 seeds on the core rows, 30 training runs of "
                      "2.5-10 minutes each on 2 cores; 'recipe': why RANDBET 0.05 at p = 10 % "
                      "misses the quality bar, sharing the full suite's runs in the same "
                      "--output_dir; 'quick': 5 short runs, one seed; 'tiny': a smoke test) or "
                      "the path of a suite .json file.", flag_values=flag_values)
  flags.DEFINE_enum("stage", "all", list(STAGES), "'train' trains every run "
                    "first, 'evaluate' evaluates trained runs, 'all' does both, then reports.",
                    flag_values=flag_values)
  flags.DEFINE_string("output_dir", None, "Directory of the runs (one sub-directory per run).",
                      flag_values=flag_values)
  flags.DEFINE_string("report", "docs/reproduction.md", "Markdown report to write; figures go "
                      "to a figures/ directory next to it.", flag_values=flag_values)
  flags.DEFINE_list("only", None, "Run only these run names (default: all of the suite).",
                    flag_values=flag_values)
  flags.DEFINE_bool("report_only", False, "Do not train or evaluate; only render the report "
                    "(refused when --output_dir holds no evaluated run: the report is never "
                    "replaced by an empty one).", flag_values=flag_values)
  flags.mark_flag_as_required("output_dir", flag_values=flag_values)


def main(argv):
  """Runs a reproduction suite: trains and evaluates its models, then renders the report.

  The driver (``run_suite``)

  1. trains every (run, seed) with ``bin/train`` (skipped when ``result.json`` exists; a killed
     run resumes from its last checkpoint; a directory trained with other settings is refused),
  2. evaluates RErr with ``bin/eval --per_example`` on ``num_chips`` random chips at every rate
     (per-example errors make the test-set noise of a comparison measurable),
  3. evaluates the profiled runs with ``bin/eval_chips`` on simulated profiled chips (App. C.1),

  and ``tfbet.cli.reproduction_report`` renders the report from the runs' JSON files.
  """
  del argv
  flag_values = flags.FLAGS
  try:
    suite = suites.load_suite(flag_values.suite)
    suites.check_only(suite, flag_values.only)
    if flag_values.report_only and flag_values.only is not None:
      raise ValueError("--only selects runs to train and evaluate; it has no effect with "
                       "--report_only (the report covers every finished run)")
    if not flag_values.report_only:
      run_suite(suite, flag_values.output_dir, only=flag_values.only, stage=flag_values.stage,
                progress=lambda line: print(line, flush=True))
    if flag_values.stage == "train":
      return
    from tfbet.cli import reproduction_report  # pylint: disable=g-import-not-at-top
    path = reproduction_report.write_report(suite, flag_values.output_dir, flag_values.report)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  print(f"report: {path}")


def _binary(name):
  return [sys.executable, "-m", f"tfbet.cli.{name}"]  # works installed, too


def _call(command, log_path):
  """Runs a binary, its output appended to log_path; raises with the log tail on failure."""
  with open(log_path, "a", encoding="utf-8") as log:
    log.write(f"\n$ {' '.join(command)}\n")
    log.flush()
    path = os.pathsep.join(filter(None, [_CHECKOUT, os.environ.get("PYTHONPATH")]))
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False,
                            env=dict(os.environ, PYTHONPATH=path))
  if result.returncode != 0:
    with open(log_path, encoding="utf-8") as log:
      tail = log.read()[-3000:]
    raise RuntimeError(f"{command[2]} failed (exit {result.returncode}); log {log_path}:\n{tail}")


def _rates_flag(rates):
  return ",".join(f"{r:g}" for r in rates)


def _train_command(suite, run, seed, run_dir):
  return (_binary("train") + [f"--gin_file={f}" for f in run.gin_files]
          + [f"--gin_param={p}" for p in run.bindings(suite, seed)]
          + ["--gin_param=train.verbose = 2", f"--output_dir={run_dir}"])


def _eval_commands(suite, run, run_dir, chip_files):
  """[(step name, output file, command)] of the evaluations of one trained run."""
  common = [f"--run_dir={run_dir}"] + (
      [f"--test_limit={suite.test_limit}"] if suite.test_limit else [])
  rates = f"--rates={_rates_flag(suite.rates)}"
  steps = [("eval", "eval_random.json", _binary("eval") + common + [
      rates, f"--num_chips={suite.num_chips}", "--per_example"])]
  if run.name == suite.pattern_run:
    steps.append(("eval pattern", "eval_pattern.json", _binary("eval") + common + [
        rates, "--num_chips=1", f"--first_chip_seed={pattern_seed(run)}", "--per_example"]))
  if run.name in suite.profiled_runs:
    steps.append(("eval chips", "eval_chips.json", _binary("eval_chips") + common + [
        f"--chip_files={','.join(chip_files)}", f"--offsets={suite.offsets}"]))
  return [(step, name, command + [f"--output={os.path.join(run_dir, name)}"])
          for step, name, command in steps]


def run_suite(suite, output_dir, only=None, stage="all", progress=print):
  """Trains (stage 'train'), evaluates ('evaluate') or both ('all') what is not done yet.

  Work goes seed by seed: every run's first seed is trained (and, with 'all', evaluated)
  before any run's second seed, so a suite stopped early still covers every row.
  """
  suites.check_only(suite, only)
  if stage not in STAGES:
    raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
  os.makedirs(output_dir, exist_ok=True)
  chip_files = simulate_chips(suite, output_dir)
  runs = [run for run in suite.runs if only is None or run.name in only]
  ranks = [[(run, run.seeds[rank]) for run in runs if rank < len(run.seeds)]
           for rank in range(max(len(run.seeds) for run in runs))]
  kinds = {"train": ("train",), "evaluate": ("evaluate",), "all": ("train", "evaluate")}[stage]
  total = sum(len(jobs) for jobs in ranks)
  started = time.time()
  for jobs in ranks:
    for kind in kinds:
      for run, seed in jobs:
        done = sum(len(j) for j in ranks[:ranks.index(jobs)]) + jobs.index((run, seed)) + 1
        _run_step(suite, run, seed, output_dir, kind, chip_files,
                  f"[{kind} {done}/{total}] {run.name} seed {seed}", started, progress)


def _run_step(suite, run, seed, output_dir, kind, chip_files, where, started, progress):
  """Trains or evaluates one (run, seed) unless its outputs exist."""
  run_dir = run.directory(output_dir, seed)
  os.makedirs(run_dir, exist_ok=True)
  if kind == "train":
    suites.check_record(run_dir, suites.run_record(suite, run, seed))
    steps = [] if os.path.exists(os.path.join(run_dir, "result.json")) else [
        ("train", _train_command(suite, run, seed, run_dir))]
  else:
    if not os.path.exists(os.path.join(run_dir, "result.json")):
      progress(f"{where}: not trained yet, not evaluated (the report counts it as missing)")
      return
    steps = [(step, command) for step, name, command in
             _eval_commands(suite, run, run_dir, chip_files)
             if not os.path.exists(os.path.join(run_dir, name))]
    suites.check_random_evaluation(suite, run_dir)
  for step, command in steps:
    t0 = time.time()
    progress(f"{where}: {step} ...")
    _call(command, os.path.join(run_dir, "driver.log"))
    progress(f"{where}: {step} done in {time.time() - t0:.0f} s "
             f"(suite {time.time() - started:.0f} s)")
  if not steps:
    progress(f"{where}: {kind} done already")


def pattern_seed(run):
  for param in run.params:
    if param.replace(" ", "").startswith("pattern_chip.seed="):
      return int(param.split("=")[1])
  return 123  # methods/pattbet.gin


def simulate_chips(suite, output_dir):
  """Writes the simulated profiled chips of the suite (once) and returns their paths."""
  paths = []
  for preset in suite.chip_presets:
    path = os.path.join(output_dir, "chips", f"{preset}.npz")
    if not os.path.exists(path):
      os.makedirs(os.path.dirname(path), exist_ok=True)
      chip_simulation.simulate_preset(preset).save(path)
    paths.append(path)
  return paths


if __name__ == "__main__":  # python -m tfbet.cli.reproduce
  launch.start("reproduce")
