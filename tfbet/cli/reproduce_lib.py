"""Runs a reproduction suite: trains and evaluates its models, then renders the report.

A *suite* (``gin/suites/<name>.json``) lists training runs (a method's gin file plus bindings,
each trained with one or more seeds) and how to evaluate them. The driver

1. trains every (run, seed) with ``bin/train`` (skipped when ``result.json`` exists; a killed
   run resumes from its last checkpoint; a directory trained with other settings is refused),
2. evaluates RErr with ``bin/eval --per_example`` on ``num_chips`` random chips at every rate
   (per-example errors make the test-set noise of a comparison measurable),
3. evaluates the profiled runs with ``bin/eval_chips`` on simulated profiled chips (App. C.1),

and ``tfbet.cli.reproduction_report`` renders the report from the runs' JSON files.
"""
import dataclasses
import os
import subprocess
import sys
import time

from tfbet import checks
from tfbet import chip_simulation
from tfbet import evaluation
from tfbet import files
from tfbet.cli import gin_utils

# The binaries run as `python -m tfbet.cli.NAME`. From a checkout (the directory above the
# package holds setup.py) that checkout goes first on PYTHONPATH, so they run this very tfbet
# even where another one is installed; an installed tfbet is found as it is.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CHECKOUT = (_PACKAGE_PARENT if os.path.isfile(os.path.join(_PACKAGE_PARENT, "setup.py"))
             else None)

STAGES = ("all", "train", "evaluate")
# What the driver records of a training run, to refuse reusing it for other settings.
RUN_RECORD = "suite_run.json"


@dataclasses.dataclass(frozen=True)
class Run:
  """One row of the report: a configuration, trained once per seed."""
  name: str
  label: str
  gin_files: tuple
  params: tuple = ()
  seeds: tuple = (0,)

  def directory(self, output_dir, seed):
    return os.path.join(output_dir, self.name, f"seed{seed}")

  def bindings(self, suite, seed):
    """The gin bindings of one seed: the suite's, the run's, then the seeds of init and data."""
    return suite.common_params + self.params + (f"train.seed = {seed}",
                                                f"load_data.seed = {seed}")


@dataclasses.dataclass(frozen=True)
class Suite:
  """Runs plus how to evaluate them (see gin/suites/*.json)."""
  name: str
  description: str
  runs: tuple
  rates: tuple  # in %
  num_chips: int
  test_limit: int  # None: the whole test set
  common_params: tuple = ()
  chip_presets: tuple = ("chip1", "chip2")
  profiled_runs: tuple = ()
  offsets: int = 2
  pattern_run: str = None  # evaluated on its own training pattern too (Tab. 3)
  # The report: [{"title", "runs", "findings": [{"claim", "better", "worse", "min_rate"?} or
  # {"kind": "collapse", "claim", "run", "max_rate"}], "pattern"?}], the [randbet, clipping]
  # pairs of the quality bar, the runs of the RErr-vs-p figure and {family label: [runs]} of the
  # best-per-family figure.
  tables: tuple = ()
  quality_pairs: tuple = ()
  figure_runs: tuple = ()
  figure_families: dict = dataclasses.field(default_factory=dict)

  def run(self, name):
    for run in self.runs:
      if run.name == name:
        return run
    raise KeyError(name)


_SUITE_FIELDS = {"description": str, "base_gin": str, "common_params": list, "rates": list,
                 "num_chips": int, "test_limit": (int, type(None)), "chip_presets": list,
                 "offsets": int, "profiled_runs": list, "pattern_run": (str, type(None)),
                 "runs": list, "tables": list, "quality_pairs": list, "figure_runs": list,
                 "figure_families": dict}
_TABLE_FIELDS = {"title": str, "runs": list, "findings": list, "pattern": bool}
_FINDING_FIELDS = {"claim": str, "better": str, "worse": str, "min_rate": (int, float)}
# A claim that one run collapses to chance (RErr >= 50 %) at the rates up to max_rate (in %).
_COLLAPSE_FIELDS = {"kind": str, "claim": str, "run": str, "max_rate": (int, float)}
_RUN_FIELDS = {"name": str, "label": str, "method": str, "params": list, "seeds": list}


def suite_dir():
  return os.path.join(gin_utils.gin_dir(), "suites")


def suite_names():
  return sorted(f[:-len(".json")] for f in os.listdir(suite_dir()) if f.endswith(".json"))


def _check_fields(record, fields, required, where):
  if not isinstance(record, dict):
    raise ValueError(f"{where} must be a JSON object, got {type(record).__name__}")
  unknown = sorted(set(record) - set(fields))
  if unknown:
    raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(fields)}")
  missing = sorted(set(required) - set(record))
  if missing:
    raise ValueError(f"{where}: missing field(s) {missing}")
  for key, value in record.items():
    expected = fields[key]
    if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
      raise ValueError(f"{where}: field {key!r} has the wrong type ({value!r})")


def load_suite(name):
  """The suite ``gin/suites/<name>.json`` (or a path to such a file), validated."""
  path = name if name.endswith(".json") else os.path.join(suite_dir(), f"{name}.json")
  if not os.path.isfile(path):
    raise ValueError(f"suite {name!r}: no file {path!r}; the shipped suites are {suite_names()}")
  record = files.read_json(path, "suite file")
  _check_fields(record, _SUITE_FIELDS, ("description", "base_gin", "rates", "num_chips",
                                        "test_limit", "runs"), path)
  runs, names = [], set()
  for index, item in enumerate(record["runs"]):
    where = f"{path}: runs[{index}]"
    _check_fields(item, _RUN_FIELDS, ("name", "label", "method"), where)
    seeds = tuple(item.get("seeds", [0]))
    if not seeds or len(set(seeds)) != len(seeds) or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
      raise ValueError(f"{where}: seeds must be distinct non-negative integers, got {seeds}")
    if item["name"] in names or os.sep in item["name"]:
      raise ValueError(f"{where}: run name {item['name']!r} is repeated or holds {os.sep!r}")
    names.add(item["name"])
    runs.append(Run(item["name"], item["label"],
                    (record["base_gin"], f"methods/{item['method']}.gin"),
                    tuple(item.get("params", [])), seeds))
  rates = tuple(checks.bounded_list(record["rates"], f"{path}: rates", checks.MAX_CONDITIONS))
  if not rates or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 50
                      for r in rates):
    raise ValueError(f"{path}: rates must be percentages in (0, 50], got {list(rates)}")
  suite = Suite(
      name=os.path.basename(path)[:-len(".json")], description=record["description"],
      runs=tuple(runs), rates=rates, num_chips=record["num_chips"],
      test_limit=record["test_limit"],
      common_params=tuple(record.get("common_params", [])),
      chip_presets=tuple(record.get("chip_presets", ("chip1", "chip2"))),
      profiled_runs=tuple(record.get("profiled_runs", [])), offsets=record.get("offsets", 2),
      pattern_run=record.get("pattern_run"), tables=tuple(record.get("tables", [])),
      quality_pairs=tuple(tuple(p) for p in record.get("quality_pairs", [])),
      figure_runs=tuple(record.get("figure_runs", [])),
      figure_families=dict(record.get("figure_families", {})))
  referenced = list(suite.profiled_runs) + ([suite.pattern_run] if suite.pattern_run else [])
  referenced += list(suite.figure_runs) + [n for p in suite.quality_pairs for n in p]
  referenced += [n for family in suite.figure_families.values() for n in family]
  for index, table in enumerate(suite.tables):
    where = f"{path}: tables[{index}]"
    _check_fields(table, _TABLE_FIELDS, ("title", "runs"), where)
    referenced += table["runs"]
    for number, finding in enumerate(table.get("findings", [])):
      if isinstance(finding, dict) and "kind" in finding:
        if finding["kind"] != "collapse":
          raise ValueError(f"{where}.findings[{number}]: kind must be 'collapse' (or absent "
                           f"for a comparison), got {finding['kind']!r}")
        _check_fields(finding, _COLLAPSE_FIELDS, tuple(_COLLAPSE_FIELDS),
                      f"{where}.findings[{number}]")
        referenced.append(finding["run"])
        continue
      _check_fields(finding, _FINDING_FIELDS, ("claim", "better", "worse"),
                    f"{where}.findings[{number}]")
      referenced += [finding["better"], finding["worse"]]
  if any(len(pair) != 2 for pair in suite.quality_pairs):
    raise ValueError(f"{path}: quality_pairs must be [randbet run, clipping run] pairs")
  for name in referenced:
    if name not in names:
      raise ValueError(f"{path}: {name!r} is named in the report settings but is not a run; "
                       f"the runs are {sorted(names)}")
  if suite.num_chips < 1 or suite.offsets < 1 or (
      suite.test_limit is not None and suite.test_limit < 1):
    raise ValueError(f"{path}: num_chips and offsets must be >= 1, test_limit >= 1 or null")
  checks.count(suite.num_chips, f"{path}: num_chips", maximum=checks.MAX_CHIPS)
  checks.count(suite.offsets, f"{path}: offsets", maximum=checks.MAX_OFFSETS)
  return suite


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


def check_only(suite, only):
  """ValueError unless every name in ``only`` is a run of ``suite`` (a typo would run nothing)."""
  names = [run.name for run in suite.runs]
  unknown = [name for name in only or () if name not in names]
  if unknown:
    raise ValueError(f"--only: {unknown} are not runs of suite {suite.name!r}; its runs are "
                     f"{names}")
  if only is not None and not only:
    raise ValueError("--only must name at least one run")


def run_record(suite, run, seed):
  """What RUN_RECORD holds for a (run, seed) of ``suite``: its gin files and bindings."""
  return {"gin_files": list(run.gin_files), "params": list(run.bindings(suite, seed))}


def _check_record(run_dir, record, write=True):
  """Records a run's settings (unless ``write`` is false), or refuses a directory trained with
  other settings."""
  path = os.path.join(run_dir, RUN_RECORD)
  if os.path.exists(path):
    earlier = files.read_json(path, "run record")
    if isinstance(earlier, dict) and isinstance(earlier.get("params"), list):
      # A record written before the training parameters were renamed means the same run.
      earlier = {**earlier, "params": gin_utils.migrate_bindings(earlier["params"])}
    if earlier != record:
      raise ValueError(f"{run_dir} was trained with other settings ({earlier} instead of "
                       f"{record}); remove it or use another --output_dir")
  elif write:
    files.write_json(path, record)


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
  check_only(suite, only)
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
    _check_record(run_dir, run_record(suite, run, seed))
    steps = [] if os.path.exists(os.path.join(run_dir, "result.json")) else [
        ("train", _train_command(suite, run, seed, run_dir))]
  else:
    if not os.path.exists(os.path.join(run_dir, "result.json")):
      progress(f"{where}: not trained yet, not evaluated (the report counts it as missing)")
      return
    steps = [(step, command) for step, name, command in
             _eval_commands(suite, run, run_dir, chip_files)
             if not os.path.exists(os.path.join(run_dir, name))]
    check_random_evaluation(suite, run_dir)
  for step, command in steps:
    t0 = time.time()
    progress(f"{where}: {step} ...")
    _call(command, os.path.join(run_dir, "driver.log"))
    progress(f"{where}: {step} done in {time.time() - t0:.0f} s "
             f"(suite {time.time() - started:.0f} s)")
  if not steps:
    progress(f"{where}: {kind} done already")


def check_finished_run(suite, run, seed, run_dir):
  """Refuses a finished (run, seed) trained (per its RUN_RECORD, where there is one) or
  evaluated otherwise than ``suite`` says: what the report checks before it uses the run."""
  _check_record(run_dir, run_record(suite, run, seed), write=False)
  check_random_evaluation(suite, run_dir)


def check_random_evaluation(suite, run_dir):
  """Refuses an existing eval_random.json measured with other rates, chips or test examples."""
  path = os.path.join(run_dir, "eval_random.json")
  if not os.path.exists(path):
    return
  results = evaluation.Results.from_json(path)
  rates = sorted(round(100 * c, 10) for c in results.conditions)
  found = (rates, len(results.chip_names), results.per_example)
  wanted = (sorted(round(float(r), 10) for r in suite.rates), suite.num_chips, True)
  if found != wanted or (suite.test_limit is not None and results.n != suite.test_limit):
    raise ValueError(f"{path} holds another evaluation (rates {rates} %, {found[1]} chips, "
                     f"n = {results.n}, per-example {found[2]}) than suite {suite.name!r} asks "
                     f"for (rates {wanted[0]} %, {suite.num_chips} chips, test_limit "
                     f"{suite.test_limit}, per-example); remove it to evaluate again")


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
