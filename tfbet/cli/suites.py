"""Reproduction suites: the training runs of a report and how they are evaluated, and the checks
that a run directory holds what its suite asks for.

A *suite* (``gin/suites/<name>.json``) lists training runs (a method's gin file plus bindings,
each trained with one or more seeds) and how to evaluate them. bin/reproduce trains and evaluates
them; ``tfbet.cli.reproduction_report`` renders the report from the runs' JSON files, after
checking that each run was trained and evaluated as its suite says. A report table may name a
table of the paper (``gin/suites/paper/<table>.json``, read by :func:`load_paper`), whose row
for each run (its ``paper_row``) the report prints beside ours. A suite's ``"analysis"`` names
runs whose first seed the analysis binaries study in the evaluate stage (:class:`Analysis`).
"""
import dataclasses
import os

from tfbet import checks
from tfbet import chip_files
from tfbet import chip_simulation
from tfbet import evaluation
from tfbet import files
from tfbet.cli import gin_utils

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
  paper_row: tuple = None  # (precision, model): its row in the paper's table, if one is named

  def directory(self, output_dir, seed):
    return os.path.join(output_dir, self.name, f"seed{seed}")

  def bindings(self, suite, seed):
    """The gin bindings of one seed: the suite's, the run's, then the seeds of init and data."""
    return suite.common_params + self.params + (f"train.seed = {seed}",
                                                f"load_data.seed = {seed}")


@dataclasses.dataclass(frozen=True)
class PaperTable:
  """The paper's values of one table (``gin/suites/paper/*.json``, typed once from the paper and
  checked against its text by tests/test_paper_values.py), printed beside ours in the report."""
  path: str  # relative to gin/suites
  source: str  # the paper, its table and rows
  rates: tuple  # the test bit error rates of its RErr columns, in %
  rows: dict  # {(precision, model): (Err in %, (RErr in % at each rate))}
  confidence_rate: float = None  # in %: the rate of the perturbed confidence column, if any
  confidence: dict = dataclasses.field(default_factory=dict)  # {key: (clean, perturbed) in %}

  def rerr(self, key, rate):
    """The paper's RErr (in %) of row ``key`` at ``rate`` (in %), None where it has no column."""
    columns = [round(r, 10) for r in self.rates]
    index = columns.index(round(rate, 10)) if round(rate, 10) in columns else None
    return None if index is None else self.rows[key][1][index]


@dataclasses.dataclass(frozen=True)
class Analysis:
  """The analysis binaries run on some runs' first seed in the evaluate stage, into
  ``<run dir>/analysis/`` (``suite_jobs``), and reported by ``report_analysis``."""
  runs: tuple
  rate: float  # in %: the random chips of bin/sensitivity and bin/diagnose (bin/eval's seeds)
  num_chips: int  # bin/sensitivity's chips and bin/weight_noise's draws per magnitude
  magnitudes: tuple  # bin/weight_noise's, in % of each tensor's range
  chip: str  # bin/chip_map's profiled chip: one of the suite's chip_presets ...
  voltage: float  # ... at one of its profiled voltages ...
  offset: int  # ... with the first weight at this bit address
  # bin/sensitivity's and bin/diagnose's first test examples (None: the suite's test set);
  # bin/weight_noise uses the suite's, as its bit errors (eval_random.json) are drawn beside it.
  test_limit: int = None
  paper: PaperTable = None  # the paper's Tab. 2 rows, found by the runs' paper_row


@dataclasses.dataclass(frozen=True)
class Headline:
  """The paper's headline question, asked of the first seed of every run: the highest bit error
  rate whose RErr stays within each budget of the reference run's clean Err (NORMAL 8-bit's in
  the paper), bisected from the suite's rates on the suite's chips (``bin/bisect_rate``)."""
  reference: str  # the run whose clean Err (mean over its seeds) the budgets count from
  budgets: tuple  # percentage points
  steps: int = 4  # bisection steps between two of the suite's rates
  low: float = 0.01  # percent: measured only where even the suite's lowest rate fails a budget

  def file_name(self, budget):
    return f"headline_{budget:g}.json"


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
  # The report: [{"title", "runs", "findings": [{"claim", "better", "worse", "min_rate"?},
  # {"kind": "collapse", "claim", "run", "max_rate"} or {"kind": "monotone", "claim", "runs"}],
  # "pattern"?, "paper"?: a PaperTable}], the [randbet, clipping] pairs of the quality bar, the
  # runs of the RErr-vs-p figure and {family label: [runs]} of the best-per-family figure.
  tables: tuple = ()
  quality_pairs: tuple = ()
  figure_runs: tuple = ()
  figure_families: dict = dataclasses.field(default_factory=dict)
  analysis: Analysis = None
  headline: Headline = None  # the energy headline (bisection per run), if the suite asks it

  def run(self, name):
    for run in self.runs:
      if run.name == name:
        return run
    raise KeyError(name)


_SUITE_FIELDS = {"description": str, "base_gin": str, "common_params": list, "rates": list,
                 "num_chips": int, "test_limit": (int, type(None)), "chip_presets": list,
                 "offsets": int, "profiled_runs": list, "pattern_run": (str, type(None)),
                 "runs": list, "tables": list, "quality_pairs": list, "figure_runs": list,
                 "figure_families": dict, "analysis": dict, "headline": dict}
_HEADLINE_FIELDS = {"reference": str, "budgets": list, "steps": int, "low": (int, float)}
_TABLE_FIELDS = {"title": str, "runs": list, "findings": list, "pattern": bool, "paper": str}
# Each kind of finding: its fields and the required ones. None: run "better" is more robust
# than "worse"; collapse: one run collapses to chance (RErr >= 50 %) at the rates up to max_rate
# (in %); monotone: RErr rises with p for every run of "runs" (default: the table's).
_FINDING_KINDS = {
    None: ({"claim": str, "better": str, "worse": str, "min_rate": (int, float)},
           ("claim", "better", "worse")),
    "collapse": ({"kind": str, "claim": str, "run": str, "max_rate": (int, float)},
                 ("kind", "claim", "run", "max_rate")),
    "monotone": ({"kind": str, "claim": str, "runs": list}, ("kind", "claim")),
}
_RUN_FIELDS = {"name": str, "label": str, "method": str, "params": list, "seeds": list,
               "paper_row": dict}
_ANALYSIS_FIELDS = {"runs": list, "rate": (int, float), "num_chips": int, "magnitudes": list,
                    "chip": str, "voltage": (int, float), "offset": int,
                    "test_limit": (int, type(None)), "paper": str}
_PAPER_FIELDS = {"source": str, "columns": str, "rates_percent": list, "note": str, "rows": list,
                 "confidence_rate_percent": (int, float)}
_PAPER_KEY_FIELDS = {"precision": int, "model": str}  # a run's paper_row
_PAPER_ROW_FIELDS = {"precision": int, "model": str, "paper_label": str, "err": (int, float),
                     "rerr": list, "confidence": list}


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
    paper_row = item.get("paper_row")
    if paper_row is not None:
      _check_fields(paper_row, _PAPER_KEY_FIELDS, tuple(_PAPER_KEY_FIELDS), f"{where}.paper_row")
      paper_row = (paper_row["precision"], paper_row["model"])
    runs.append(Run(item["name"], item["label"],
                    (record["base_gin"], f"methods/{item['method']}.gin"),
                    tuple(item.get("params", [])), seeds, paper_row))
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
      pattern_run=record.get("pattern_run"),
      quality_pairs=tuple(tuple(p) for p in record.get("quality_pairs", [])),
      figure_runs=tuple(record.get("figure_runs", [])),
      figure_families=dict(record.get("figure_families", {})))
  if "headline" in record:
    suite = dataclasses.replace(suite, headline=_headline(path, record["headline"], suite))
  referenced = list(suite.profiled_runs) + ([suite.pattern_run] if suite.pattern_run else [])
  referenced += [suite.headline.reference] if suite.headline else []
  referenced += list(suite.figure_runs) + [n for p in suite.quality_pairs for n in p]
  referenced += [n for family in suite.figure_families.values() for n in family]
  tables, named, shown = _check_tables(path, record.get("tables", []), suite)
  analysis = _check_analysis(path, record.get("analysis"), suite)
  suite = dataclasses.replace(suite, tables=tables, analysis=analysis)
  referenced += named + list(analysis.runs if analysis else ())
  if any(len(pair) != 2 for pair in suite.quality_pairs):
    raise ValueError(f"{path}: quality_pairs must be [randbet run, clipping run] pairs")
  for name in referenced:
    if not isinstance(name, str) or name not in names:
      raise ValueError(f"{path}: {name!r} is named in the report settings but is not a run; "
                       f"the runs are {sorted(names)}")
  shown |= set(analysis.runs if analysis and analysis.paper else ())
  for run in suite.runs:
    if run.paper_row is not None and run.name not in shown:
      raise ValueError(f"{path}: run {run.name!r} names a paper_row, but no table with a "
                       "\"paper\" shows it (nor the analysis' paper)")
  if suite.num_chips < 1 or suite.offsets < 1 or (
      suite.test_limit is not None and suite.test_limit < 1):
    raise ValueError(f"{path}: num_chips and offsets must be >= 1, test_limit >= 1 or null")
  checks.count(suite.num_chips, f"{path}: num_chips", maximum=checks.MAX_CHIPS)
  checks.count(suite.offsets, f"{path}: offsets", maximum=checks.MAX_OFFSETS)
  return suite


def _headline(path, record, suite):
  """The suite's ``headline`` field, checked: budgets in percentage points in (0, 100], steps in
  [0, 20], low a rate in percent below the suite's lowest."""
  where = f"{path}: headline"
  _check_fields(record, _HEADLINE_FIELDS, ("reference", "budgets"), where)
  checks.percentages([str(b) for b in record["budgets"]], f"{where}.budgets", 0, 100,
                     unit="percentage points")
  budgets = tuple(float(b) for b in record["budgets"])
  if 0 in budgets:
    raise ValueError(f"{where}.budgets must be percentage points in (0, 100], got "
                     f"{record['budgets']}")
  steps = checks.integer(record.get("steps", 4), f"{where}.steps", 0, 20)
  low = record.get("low", 0.01)
  if isinstance(low, bool) or not 0 < low < min(suite.rates):
    raise ValueError(f"{where}.low must be a rate in percent in (0, {min(suite.rates):g}) (below "
                     f"the suite's lowest rate), got {low!r}")
  return Headline(record["reference"], budgets, steps, float(low))


def _check_tables(path, records, suite):
  """(the report's tables, the run names they hold, the runs shown beside a paper table),
  checked: each finding's fields by its kind, a monotone finding's runs (the table's where it
  names none), a paper table read and held against the suite's rates and its runs' paper rows."""
  tables, referenced, with_paper = [], [], set()
  runs = {run.name: run for run in suite.runs}
  for index, table in enumerate(records):
    where = f"{path}: tables[{index}]"
    _check_fields(table, _TABLE_FIELDS, ("title", "runs"), where)
    referenced += table["runs"]
    table = dict(table)
    findings = []
    for number, finding in enumerate(table.get("findings", [])):
      kind = finding.get("kind") if isinstance(finding, dict) else None
      if kind not in _FINDING_KINDS:
        kinds = " or ".join(repr(k) for k in _FINDING_KINDS if k)
        raise ValueError(f"{where}.findings[{number}]: kind must be {kinds} (or absent for a "
                         f"comparison), got {kind!r}")
      _check_fields(finding, *_FINDING_KINDS[kind], f"{where}.findings[{number}]")
      if kind == "monotone":
        finding = {**finding, "runs": finding.get("runs", table["runs"])}
        if not finding["runs"]:
          raise ValueError(f"{where}.findings[{number}]: a monotone claim needs runs")
      referenced += [finding[k] for k in ("better", "worse", "run") if k in finding]
      referenced += finding.get("runs", [])
      findings.append(finding)
    if "findings" in table:
      table["findings"] = findings
    if "paper" in table:
      table["paper"] = load_paper(table["paper"], where)
      missing = sorted(set(_rounded(table["paper"].rates)) - set(_rounded(suite.rates)))
      if missing:
        raise ValueError(f"{where}: the paper's rates {missing} % are not among the suite's "
                         f"rates {list(suite.rates)}; add them to the suite's rates")
      for name in table["runs"]:
        row = runs[name].paper_row if name in runs else None
        if row is not None and row not in table["paper"].rows:
          raise ValueError(f"{where}: run {name!r} names paper_row {row} (precision, model), "
                           f"which {table['paper'].path} does not hold; its rows are "
                           f"{sorted(table['paper'].rows)}")
        with_paper.add(name)
    tables.append(table)
  return tuple(tables), referenced, with_paper


def _check_analysis(path, record, suite):
  """The suite's Analysis (None without one), each field checked against the suite."""
  if record is None:
    return None
  where = f"{path}: analysis"
  _check_fields(record, _ANALYSIS_FIELDS, tuple(k for k in _ANALYSIS_FIELDS if k != "paper"),
                where)
  runs = tuple(checks.bounded_list(record["runs"], f"{where}.runs", len(suite.runs)))
  if not runs or any(not isinstance(r, str) for r in runs) or len(set(runs)) != len(runs):
    raise ValueError(f"{where}.runs must name distinct runs of the suite, got {list(runs)}")
  rate = record["rate"]
  if not 0 < rate <= 50:
    raise ValueError(f"{where}.rate must be a percentage in (0, 50], got {rate}")
  num_chips = checks.count(record["num_chips"], f"{where}.num_chips", minimum=1,
                           maximum=checks.MAX_CHIPS)
  magnitudes = checks.percentages(record["magnitudes"], f"{where}.magnitudes", 0, 100)
  if record["chip"] not in suite.chip_presets:
    raise ValueError(f"{where}.chip must be one of the suite's chip_presets "
                     f"{list(suite.chip_presets)}, got {record['chip']!r}")
  voltages = chip_simulation.preset_arguments(record["chip"])["voltages"]
  if not any(abs(v - record["voltage"]) <= chip_files.VOLTAGE_TOLERANCE for v in voltages):
    raise ValueError(f"{where}.voltage must be one of {record['chip']}'s profiled voltages "
                     f"{voltages}, got {record['voltage']}")
  offset = checks.integer(record["offset"], f"{where}.offset", minimum=0)
  limit = record["test_limit"]
  if limit is not None and not 1 <= limit <= (suite.test_limit or limit):
    raise ValueError(f"{where}.test_limit must be in [1, the suite's test_limit "
                     f"{suite.test_limit}] or null (the suite's test set), got {limit}")
  paper = load_paper(record["paper"], f"{where}.paper") if "paper" in record else None
  if paper is not None and paper.confidence_rate is None:
    raise ValueError(f"{where}.paper: {paper.path} holds no confidence columns "
                     "(confidence_rate_percent)")
  return Analysis(runs, float(rate), num_chips, tuple(100 * m for m in magnitudes),
                  record["chip"], float(record["voltage"]), offset, limit, paper)


def _rounded(rates):
  return [round(float(rate), 10) for rate in rates]


def load_paper(relative, where="paper table"):
  """The paper's values in ``gin/suites/<relative>``, checked once here: a PaperTable."""
  root = os.path.join(os.path.realpath(suite_dir()), "")
  path = os.path.realpath(os.path.join(root, relative))
  if not path.startswith(root) or not os.path.isfile(path):
    raise ValueError(f"{where}: paper {relative!r} is no file under {root}")
  record = files.read_json(path, "paper table")
  _check_fields(record, _PAPER_FIELDS, ("source", "columns", "rates_percent", "note", "rows"),
                path)
  rates = record["rates_percent"]
  if not rates or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 50
                      for r in rates):
    raise ValueError(f"{path}: rates_percent must be percentages in (0, 50], got {rates}")
  confidence_rate = record.get("confidence_rate_percent")
  rows, confidence = {}, {}
  for index, row in enumerate(record["rows"]):
    where_row = f"{path}: rows[{index}]"
    required = ("confidence",) if confidence_rate is not None else ()
    _check_fields(row, _PAPER_ROW_FIELDS, tuple(k for k in _PAPER_ROW_FIELDS
                                                if k != "confidence") + required, where_row)
    if "confidence" in row and confidence_rate is None:
      raise ValueError(f"{where_row}: a confidence needs the file's confidence_rate_percent")
    values = [row["err"]] + row["rerr"] + row.get("confidence", [])
    if len(row["rerr"]) != len(rates) or len(row.get("confidence", [0, 0])) != 2 or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100
        for v in values):
      raise ValueError(f"{where_row}: err and rerr must be percentages in [0, 100], one RErr "
                       f"per rate of rates_percent ({len(rates)}), and so must a confidence, "
                       f"clean and at confidence_rate_percent, got {values}")
    key = (row["precision"], row["model"])
    if key in rows:
      raise ValueError(f"{where_row}: the row {key} (precision, model) is repeated")
    rows[key] = (float(row["err"]), tuple(float(v) for v in row["rerr"]))
    if "confidence" in row:
      confidence[key] = tuple(float(v) for v in row["confidence"])
  if confidence_rate is not None and not 0 < confidence_rate <= 50:
    raise ValueError(f"{path}: confidence_rate_percent must be a percentage in (0, 50], got "
                     f"{confidence_rate}")
  return PaperTable(relative, record["source"], tuple(float(r) for r in rates), rows,
                    None if confidence_rate is None else float(confidence_rate), confidence)


def load_suites(names):
  """The suites ``names`` (``load_suite`` each) that share one output directory: a name given
  twice, or one run name that two suites define differently, is refused (ValueError)."""
  if not names:
    raise ValueError("--suite must name at least one suite")
  if len(set(names)) < len(names):
    raise ValueError(f"--suite names a suite twice: {list(names)}")
  chosen, runs = [], {}
  for name in names:
    suite = load_suite(name)
    for run in suite.runs:
      other, first = runs.setdefault(run.name, (suite, run))
      if other is not suite:
        _check_shared(other, first, suite, run)
    chosen.append(suite)
  return chosen


def _check_shared(suite_a, run_a, suite_b, run_b):
  """Two suites may share a run's directories only where they train and evaluate it alike."""
  seeds = sorted(set(run_a.seeds) & set(run_b.seeds))
  trained = all(run_record(suite_a, run_a, s) == run_record(suite_b, run_b, s) for s in seeds)
  if not trained or evaluation_settings(suite_a) != evaluation_settings(suite_b):
    raise ValueError(f"--suite: suites {suite_a.name!r} and {suite_b.name!r} both have a run "
                     f"{run_a.name!r}, {'evaluated' if trained else 'trained'} differently; they "
                     "cannot share --output_dir")


def check_only(chosen, only):
  """ValueError unless every name in ``only`` is a run of one of ``chosen`` (a suite or a
  list of them; a typo would run nothing)."""
  chosen = chosen if isinstance(chosen, (list, tuple)) else [chosen]
  names = [run.name for suite in chosen for run in suite.runs]
  unknown = [name for name in only or () if name not in names]
  if unknown:
    which = " or ".join(repr(suite.name) for suite in chosen)
    raise ValueError(f"--only: {unknown} are not runs of suite {which}; "
                     f"{'its' if len(chosen) == 1 else 'their'} runs are "
                     f"{sorted(set(names), key=names.index)}")
  if only is not None and not only:
    raise ValueError("--only must name at least one run")


def only_of(suite, only):
  """The names of ``only`` that are runs of ``suite`` (None: all of them)."""
  return None if only is None else [run.name for run in suite.runs if run.name in only]


def run_record(suite, run, seed):
  """What RUN_RECORD holds for a (run, seed) of ``suite``: its gin files and bindings."""
  return {"gin_files": list(run.gin_files), "params": list(run.bindings(suite, seed))}


def check_record(run_dir, record, write=True):
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


def check_finished_run(suite, run, seed, run_dir):
  """Refuses a finished (run, seed) trained (per its RUN_RECORD, where there is one) or
  evaluated otherwise than ``suite`` says: what the report checks before it uses the run."""
  check_record(run_dir, run_record(suite, run, seed), write=False)
  check_random_evaluation(suite, run_dir)


def evaluation_settings(suite):
  """(rates in % sorted, chips, test_limit): what decides a run's eval_random.json."""
  return (tuple(sorted(round(float(r), 10) for r in suite.rates)), suite.num_chips,
          suite.test_limit)


def check_random_evaluation(suite, run_dir):
  """Refuses an existing eval_random.json measured with other rates, chips or test examples."""
  path = os.path.join(run_dir, "eval_random.json")
  if not os.path.exists(path):
    return
  results = evaluation.Results.from_json(path)
  rates = sorted(round(100 * c, 10) for c in results.conditions)
  found = (rates, len(results.chip_names), results.per_example)
  wanted = (list(evaluation_settings(suite)[0]), suite.num_chips, True)
  if found != wanted or (suite.test_limit is not None and results.n != suite.test_limit):
    raise ValueError(f"{path} holds another evaluation (rates {rates} %, {found[1]} chips, "
                     f"n = {results.n}, per-example {found[2]}) than suite {suite.name!r} asks "
                     f"for (rates {wanted[0]} %, {suite.num_chips} chips, test_limit "
                     f"{suite.test_limit}, per-example); remove it to evaluate again")
