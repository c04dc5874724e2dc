"""The jobs of a reproduction suite: one (run, seed) trained and evaluated, here or on Beam.

A job is resumable and writes only into its own run directory: it calls ``bin/train`` unless
``result.json`` exists (a killed run resumes from its last checkpoint; ``bin/train``'s lock
keeps a second process out of the directory, so a retried job never trains twice into it),
then ``bin/eval`` / ``bin/eval_chips`` for each evaluation file not written yet (and, for the
first seed of a run the suite analyses, the analysis binaries into ``analysis/``). A suite that
asks the energy headline (``suites.Headline``) then bisects the first seed of every evaluated run
with ``bin/bisect_rate``, once the reference run is evaluated: a second pass of jobs. ``run_suite``
runs the jobs one after another in this process; ``run_suite_on_beam`` hands them to an Apache
Beam runner as work items (e.g. DirectRunner worker processes on this machine), each job's
binaries with the thread budget of its worker (``--worker_threads``). TensorFlow's results
depend on its thread count (the order of floating-point sums), so a suite gives the same
numbers on both paths when they use the same budget.
"""
import os
import re
import subprocess
import sys
import time

from tfbet import chip_simulation
from tfbet import evaluation
from tfbet.cli import suites

# The binaries run as `python -m tfbet.cli.NAME`. From a checkout (the directory above the
# package holds setup.py) that checkout goes first on PYTHONPATH, so they run this very tfbet
# even where another one is installed; an installed tfbet is found as it is.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CHECKOUT = (_PACKAGE_PARENT if os.path.isfile(os.path.join(_PACKAGE_PARENT, "setup.py"))
             else None)

STAGES = ("all", "train", "evaluate", "headline")
# The kinds of step of each stage's (run, seed) jobs; 'all', 'evaluate' and 'headline' then
# measure the headline in a pass of its own (``_asks_headline``).
_KINDS = {"train": ("train",), "evaluate": ("evaluate",), "all": ("train", "evaluate"),
          "headline": ()}


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


def _threads_flag(worker_threads):
  return [] if worker_threads is None else [f"--worker_threads={worker_threads}"]


def _train_command(suite, run, seed, run_dir, worker_threads=None):
  return (_binary("train") + [f"--gin_file={f}" for f in run.gin_files]
          + [f"--gin_param={p}" for p in run.bindings(suite, seed)]
          + ["--gin_param=train.verbose = 2", f"--output_dir={run_dir}"]
          + _threads_flag(worker_threads))


def _eval_commands(suite, run, seed, run_dir, chip_files, worker_threads=None):
  """[(step name, output file, command)] of the evaluations of one trained (run, seed)."""
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
  return [(step, name, command + [f"--output={os.path.join(run_dir, name)}"]
           + _threads_flag(worker_threads)) for step, name, command in steps] + (
               _analysis_commands(suite, run, seed, run_dir, chip_files, worker_threads))


ANALYSIS_DIR = "analysis"
ANALYSIS_TOOLS = ("sensitivity", "diagnose", "weight_noise", "chip_map")


def _analysis_commands(suite, run, seed, run_dir, chip_files, worker_threads=None):
  """[(step name, output file, command)] of the analysis binaries (``suite.analysis``) on a run's
  first seed, after its bin/eval. Each writes <tool>.json, then <tool>.png: the PNG marks the
  step done. bin/weight_noise measures on the suite's test set, beside eval_random.json."""
  analysis = suite.analysis
  if analysis is None or run.name not in analysis.runs or seed != run.seeds[0]:
    return []
  threads = _threads_flag(worker_threads)  # bin/chip_map computes no model: no thread flag
  limit = analysis.test_limit or suite.test_limit
  sample = ([f"--test_limit={limit}"] if limit else []) + threads
  whole = ([f"--test_limit={suite.test_limit}"] if suite.test_limit else []) + threads
  arguments = {
      "sensitivity": sample + [f"--rate={analysis.rate:g}", f"--num_chips={analysis.num_chips}"],
      "diagnose": sample + [f"--rate={analysis.rate:g}"],
      "weight_noise": whole + [
          f"--magnitudes={_rates_flag(analysis.magnitudes)}",
          f"--num_samples={analysis.num_chips}",
          f"--bit_errors={os.path.join(run_dir, 'eval_random.json')}"],
      "chip_map": [f"--chip_file={dict(zip(suite.chip_presets, chip_files)).get(analysis.chip)}",
                   f"--voltage={analysis.voltage!r}", f"--offset={analysis.offset}"]}
  folder = os.path.join(run_dir, ANALYSIS_DIR)
  return [(f"analysis {tool}", os.path.join(ANALYSIS_DIR, f"{tool}.png"), _binary(tool) + [
      f"--run_dir={run_dir}", *arguments[tool], f"--output={os.path.join(folder, tool)}.json",
      f"--plot={os.path.join(folder, tool)}.png"]) for tool in ANALYSIS_TOOLS]


def _headline_commands(suite, run, run_dir, reference, worker_threads=None):
  """[(step name, output file, command)]: bin/bisect_rate per budget of the suite's headline,
  from the run's bin/eval rates on the same chips, counted from the reference Err."""
  headline = suite.headline
  common = [f"--run_dir={run_dir}"] + (
      [f"--test_limit={suite.test_limit}"] if suite.test_limit else [])
  return [(f"headline {budget:g} points", headline.file_name(budget), _binary("bisect_rate")
           + common + [f"--measured={os.path.join(run_dir, 'eval_random.json')}",
                       f"--reference_error={100 * reference!r}", f"--budget={budget:g}",
                       f"--steps={headline.steps}", f"--low={headline.low:g}",
                       f"--num_chips={suite.num_chips}",
                       f"--output={os.path.join(run_dir, headline.file_name(budget))}"]
           + _threads_flag(worker_threads)) for budget in headline.budgets]


def _asks_headline(suite, stage):
  return suite.headline is not None and stage in ("all", "evaluate", "headline")


def headline_reference(suite, output_dir):
  """The clean Err the headline's budgets count from: the mean over the reference run's seeds of
  their bin/eval clean Err; None while one of them is not evaluated."""
  run = suite.run(suite.headline.reference)
  paths = [os.path.join(run.directory(output_dir, seed), "eval_random.json") for seed in run.seeds]
  if not all(os.path.exists(path) for path in paths):
    return None
  return sum(evaluation.Results.from_json(path).clean_error for path in paths) / len(paths)


def check_headline(suite, run_dir, reference):
  """Refuses a headline file counted from another reference Err than ``reference`` (e.g. one
  measured before the reference run was trained again)."""
  for budget in suite.headline.budgets:
    path = os.path.join(run_dir, suite.headline.file_name(budget))
    if os.path.exists(path):
      found = evaluation.Results.from_json(path).metadata.get("bisection", {})
      earlier = found.get("reference_error")
      if earlier is None or abs(earlier - reference) > 1e-9:
        raise ValueError(f"{path} counts its budget from a reference Err of {earlier!r}, but "
                         f"{suite.headline.reference}'s clean Err is now {reference!r}; remove "
                         "it to measure again")


def headline_jobs(suite, output_dir, only=None, progress=print):
  """(reference Err, [(run, first seed)] evaluated and not refused), or (None, []) with a
  line saying why, while the reference run is not evaluated."""
  reference = headline_reference(suite, output_dir)
  if reference is None:
    progress(f"headline: not measured, {suite.headline.reference} (the reference) is not "
             "evaluated yet; the same command measures it once it is")
    return None, []
  jobs = []
  for run in suite.runs:
    run_dir = run.directory(output_dir, run.seeds[0])
    if (only is None or run.name in only) and os.path.exists(
        os.path.join(run_dir, "eval_random.json")):
      check_headline(suite, run_dir, reference)
      jobs.append((run, run.seeds[0]))
  return reference, jobs


def ranks(suite, only=None, stage="all"):
  """The (run, seed) pairs to work on, seed by seed: [[every run's first seed], [every
  second seed], ...], so a suite stopped early still covers every row."""
  suites.check_only(suite, only)
  if stage not in STAGES:
    raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
  runs = [run for run in suite.runs if only is None or run.name in only]
  return [[(run, run.seeds[rank]) for run in runs if rank < len(run.seeds)]
          for rank in range(max(len(run.seeds) for run in runs))]


def run_suite(suite, output_dir, only=None, stage="all", worker_threads=None, progress=print):
  """Trains (stage 'train'), evaluates ('evaluate') or both ('all') what is not done yet, one
  job after another in this process, seed by seed (``ranks``; with 'all', a rank is trained,
  then evaluated); ``worker_threads``: the binaries' thread budget (None: TensorFlow's
  default, every core)."""
  by_rank = ranks(suite, only, stage)
  os.makedirs(output_dir, exist_ok=True)
  chip_files = simulate_chips(suite, output_dir)
  total = sum(len(rank) for rank in by_rank)
  started, first = time.time(), 1
  for rank in by_rank:
    for kind in _KINDS[stage]:
      for number, (run, seed) in enumerate(rank, start=first):
        run_step(suite, run, seed, output_dir, kind, chip_files,
                 f"[{kind} {number}/{total}] {run.name} seed {seed}", started, progress,
                 worker_threads)
    first += len(rank)
  if _asks_headline(suite, stage):
    reference, jobs = headline_jobs(suite, output_dir, only, progress)
    for number, (run, seed) in enumerate(jobs, start=1):
      run_step(suite, run, seed, output_dir, "headline", chip_files,
               f"[headline {number}/{len(jobs)}] {run.name} seed {seed}", started, progress,
               worker_threads, reference)


def run_step(suite, run, seed, output_dir, kind, chip_files, where, started, progress,
             worker_threads=None, reference=None):
  """Trains, evaluates or measures the headline (counted from the ``reference`` Err) of one
  (run, seed) unless its outputs exist."""
  run_dir = run.directory(output_dir, seed)
  os.makedirs(run_dir, exist_ok=True)
  if kind == "train":
    suites.check_record(run_dir, suites.run_record(suite, run, seed))
    steps = [] if os.path.exists(os.path.join(run_dir, "result.json")) else [
        ("train", _train_command(suite, run, seed, run_dir, worker_threads))]
  elif kind == "headline":
    check_headline(suite, run_dir, reference)
    steps = [(step, command) for step, name, command in
             _headline_commands(suite, run, run_dir, reference, worker_threads)
             if not os.path.exists(os.path.join(run_dir, name))]
  else:
    if not os.path.exists(os.path.join(run_dir, "result.json")):
      progress(f"{where}: not trained yet, not evaluated (the report counts it as missing)")
      return
    steps = [(step, command) for step, name, command in
             _eval_commands(suite, run, seed, run_dir, chip_files, worker_threads)
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


def run_suite_on_beam(suite, output_dir, runner, beam_options=(), only=None, stage="all",
                      worker_threads=None, progress=print):
  """``run_suite`` with each job a work item of the Beam ``runner`` (options as in
  ``tfbet.beam_evaluation.pipeline_options``). A job does its kinds of ``stage`` in turn
  ('all': train, then evaluate); the headline's jobs follow in a second pipeline. ``worker_threads``
  defaults to the cores divided among the DirectRunner's worker processes (TensorFlow's default
  on other runners). Returns the threads used. A job whose binary fails prints its error line
  and the other jobs go on; then (or when the pipeline itself fails) RuntimeError names the jobs
  left; the same call resumes them."""
  from tfbet import beam_evaluation  # pylint: disable=g-import-not-at-top  (needs tfbet[beam])
  todo = [job for rank in ranks(suite, only, stage) for job in rank] if _KINDS[stage] else []
  for run, seed in todo:  # a run directory of other settings: refused before any work starts
    run_dir = run.directory(output_dir, seed)
    if stage != "evaluate":
      suites.check_record(run_dir, suites.run_record(suite, run, seed), write=False)
    if stage != "train":
      suites.check_random_evaluation(suite, run_dir)
  options = beam_evaluation.pipeline_options(runner, list(beam_options))
  if worker_threads is None:
    worker_threads = beam_evaluation.default_worker_threads(options)
  os.makedirs(output_dir, exist_ok=True)
  chip_files = simulate_chips(suite, output_dir)
  workers = beam_evaluation.local_worker_processes(options)
  on = (f"{runner} (" + (f"{workers} worker processes, " if workers else "")
        + f"{worker_threads or 'default'} TensorFlow threads each)")
  if todo:
    progress(f"{len(todo)} jobs on {on}")
    _run_pipeline(options, suite, output_dir, todo, _KINDS[stage], chip_files, worker_threads)
  if _asks_headline(suite, stage):
    reference, jobs = headline_jobs(suite, output_dir, only, progress)
    if jobs:
      progress(f"{len(jobs)} headline jobs (bin/bisect_rate) on {on}")
      _run_pipeline(options, suite, output_dir, jobs, ("headline",), chip_files, worker_threads,
                    reference)
  return worker_threads


def _run_pipeline(options, suite, output_dir, todo, kinds, chip_files, worker_threads,
                  reference=None):
  """Runs the jobs ``todo`` [(run, seed)], each doing ``kinds``, as one Beam pipeline; then
  RuntimeError naming the jobs not done, if any."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top  (needs tfbet[beam])
  items = [(run.name, seed, number) for number, (run, seed) in enumerate(todo, start=1)]
  job = _SuiteJob(suite, os.path.abspath(output_dir), kinds, chip_files, worker_threads,
                  len(todo), time.time(), reference)
  try:
    with beam.Pipeline(options=options) as pipeline:
      (pipeline | "Jobs" >> beam.Create(items)  # pylint: disable=expression-not-assigned
       # Redistributed, so the runner spreads the jobs over its workers.
       | "Spread" >> beam.Reshuffle() | "Work" >> beam.FlatMap(job))
  except Exception as error:  # pylint: disable=broad-except  (e.g. a lost worker process)
    raise RuntimeError(f"the suite's pipeline failed ({_failure_line(str(error))}); jobs not "
                       f"finished: {_left(suite, todo, output_dir, kinds) or 'none'}. The same "
                       "command resumes them from their checkpoints.") from error
  left = _left(suite, todo, output_dir, kinds)
  if left:
    raise RuntimeError(f"{len(left)} of {len(todo)} jobs did not finish: {left} (each one's "
                       "error is printed above, its log is driver.log in its run directory); "
                       "the same command resumes them")


def _left(suite, todo, output_dir, kinds):
  return [f"{run.name} seed {seed}" for run, seed in todo
          if not _done(suite, run, seed, output_dir, kinds)]


def _failure_line(text):
  """The line of a failed step's output that says what went wrong: a binary's "prog: error:"
  line or an exception's "ValueError: ..." line (the last one), else its last line."""
  lines = [line.strip() for line in text.splitlines()
           if line.strip() and not line.strip().startswith(("Run `", "[while running"))]
  errors = [line for line in lines if re.search(r"\w*(Error|error):", line)]
  return (errors or lines or [text])[-1]


def _done(suite, run, seed, output_dir, kinds):
  """Whether a job's outputs of ``kinds`` exist (an 'evaluate' job of an untrained run is left
  to the report, which counts it as missing, as ``run_suite`` does)."""
  run_dir = run.directory(output_dir, seed)
  if "train" not in kinds and not os.path.exists(os.path.join(run_dir, "result.json")):
    return True
  names = (["result.json"] if "train" in kinds else []) + (
      [name for _, name, _ in _eval_commands(suite, run, seed, run_dir, ())]
      if "evaluate" in kinds else []) + (
          [suite.headline.file_name(budget) for budget in suite.headline.budgets]
          if "headline" in kinds else [])
  return all(os.path.exists(os.path.join(run_dir, name)) for name in names)


class _SuiteJob:
  """The work of one item, (run name, seed, its number), in a Beam worker: ``run_step`` for
  each of its kinds, progress printed with the worker's process id."""

  def __init__(self, suite, output_dir, kinds, chip_files, worker_threads, total, started,
               reference=None):
    self._args = (suite, output_dir, kinds, tuple(chip_files), worker_threads, total, started,
                  reference)

  def __call__(self, item):
    suite, output_dir, kinds, chip_files, worker_threads, total, started, reference = self._args
    name, seed, number = item
    run = suite.run(name)
    where = f"[job {number}/{total}, pid {os.getpid()}] {name} seed {seed}"
    try:
      for kind in kinds:
        run_step(suite, run, seed, output_dir, kind, chip_files, f"{where} {kind}", started,
                 lambda line: print(line, flush=True), worker_threads, reference)
    except RuntimeError as error:  # a binary failed: the other jobs go on
      print(f"{where}: failed: {_failure_line(str(error))}", flush=True)
      return
    yield name, seed
