"""bin/reproduce on the tiny suite: trains, evaluates, skips finished work, writes the report."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfbet import checks
from tfbet import evaluation
from tfbet.cli import reproduction_report
from tfbet.cli import suite_jobs
from tfbet.cli import suites

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _reproduce(output_dir, report, *extra):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "bin", "reproduce"), "--suite=tiny",
       f"--output_dir={output_dir}", f"--report={report}", *extra],
      capture_output=True, text=True, timeout=1800, check=False)


@pytest.mark.slow
def test_tiny_suite_trains_evaluates_and_reports_from_its_own_runs(tmp_path, real_mnist):  # pylint: disable=unused-argument
  output_dir, report = tmp_path / "runs", tmp_path / "docs" / "reproduction.md"
  result = _reproduce(output_dir, report, "--worker_threads=1")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  suite = suites.load_suite("tiny")
  for run in suite.runs:
    for seed in run.seeds:
      results = evaluation.Results.from_json(
          os.path.join(run.directory(str(output_dir), seed), "eval_random.json"))
      assert len(results.chip_names) == suite.num_chips and results.per_example
      assert sorted(round(100 * c, 6) for c in results.conditions) == sorted(suite.rates)
  assert (output_dir / "pattbet" / "seed0" / "eval_pattern.json").exists()
  assert (output_dir / "q_rquant" / "seed0" / "eval_chips.json").exists()
  # Two seeds of one run: other weights, the same chips and test examples.
  seeds = [evaluation.Results.from_json(str(output_dir / "q_rquant" / f"seed{s}" /
                                            "eval_random.json")) for s in (0, 1)]
  assert seeds[0].model["digest"] != seeds[1].model["digest"]
  assert seeds[0].data_digest == seeds[1].data_digest
  text = report.read_text()
  assert "## Tab. 3 / Tab. 4" in text and "## Summary" in text and "Tab. 5" in text
  assert "RANDBET is more robust than RQUANT" in text and "Recipe quality bar" in text
  assert "Trained and evaluated: 4 of 4" in text
  assert (report.parent / "figures" / "tiny_fig2.png").stat().st_size > 1000
  # The numbers in the table are the measured ones: RQUANT's Err is the mean over its seeds.
  clean = [s.clean_error for s in seeds]
  assert f"| RQUANT | 2 | {100 * np.mean(clean):.2f} ± {100 * np.std(clean, ddof=1):.2f} |" in text
  # The analysis of the first seed of q_rquant (the second seed is not analysed), its figures.
  analysed = output_dir / "q_rquant" / "seed0" / "analysis"
  assert sorted(p.name for p in analysed.iterdir()) == sorted(
      f"{tool}.{ext}" for tool in suite_jobs.ANALYSIS_TOOLS for ext in ("json", "png"))
  assert not (output_dir / "q_rquant" / "seed1" / "analysis").exists()
  assert "## Analysis of the suite's models" in text and "Not analysed yet" not in text
  noise = json.loads((analysed / "weight_noise.json").read_text())
  assert noise["data"]["n"] == seeds[0].n and noise["data"]["digest"] == seeds[0].data_digest
  for tool in suite_jobs.ANALYSIS_TOOLS:
    assert (report.parent / "figures" / f"tiny_analysis_q_rquant_{tool}.png").stat().st_size > 1000
  # The energy headline: every run's first seed bisected from its own rates, the budget counted
  # from RQUANT's clean Err (the mean over its seeds), the rates of bin/eval reused as measured.
  for run in suite.runs:
    headline = evaluation.Results.from_json(os.path.join(
        run.directory(str(output_dir), run.seeds[0]), suite.headline.file_name(5)))
    answer = headline.metadata["bisection"]
    assert answer["reference_error"] == pytest.approx(np.mean(clean))
    grid = evaluation.Results.from_json(os.path.join(
        run.directory(str(output_dir), run.seeds[0]), "eval_random.json"))
    assert all(headline.errors[key] == count for key, count in grid.errors.items())
  assert "## Energy headline: SRAM energy saved within 5 points of RQUANT's accuracy" in text
  assert (report.parent / "figures" / "tiny_energy.png").stat().st_size > 1000

  # The same suite as work items of Beam's DirectRunner, 2 worker processes x 1 thread: the
  # same weights and the same counts as the sequential run with the same thread budget.
  on_beam = tmp_path / "beam"
  beam = _reproduce(on_beam, tmp_path / "beam.md", "--runner=DirectRunner", "--worker_threads=1",
                    "--beam_options=--direct_num_workers=2")
  assert beam.returncode == 0, beam.stdout[-3000:] + beam.stderr[-3000:]
  assert "4 jobs on DirectRunner (2 worker processes, 1 TensorFlow threads each)" in beam.stdout
  assert "3 headline jobs (bin/bisect_rate) on DirectRunner" in beam.stdout
  for run in suite.runs:
    for seed in run.seeds:
      here, there = run.directory(str(output_dir), seed), run.directory(str(on_beam), seed)
      trained = [json.load(open(os.path.join(d, "result.json"), encoding="utf-8"))
                 for d in (here, there)]
      assert trained[0]["worker_threads"] == trained[1]["worker_threads"] == 1
      assert trained[0]["test_loss"] == trained[1]["test_loss"]
      for name in ("eval_random.json", "eval_pattern.json", "eval_chips.json",
                   suite.headline.file_name(5)):
        if os.path.exists(os.path.join(here, name)):
          a, b = (evaluation.Results.from_json(os.path.join(d, name)) for d in (here, there))
          assert a.model["digest"] == b.model["digest"] and a.errors == b.errors, (run, name)
  assert (on_beam / "pattbet" / "seed0" / "eval_pattern.json").exists()
  for tool in suite_jobs.ANALYSIS_TOOLS:  # the same analysis, paths aside
    here, there = (json.loads((d / "q_rquant" / "seed0" / "analysis" / f"{tool}.json").read_text())
                   for d in (output_dir, on_beam))
    for key in ("metadata", "memory_image", "model_path"):
      here.pop(key, None)
      there.pop(key, None)
    assert here == there, tool

  # A second call finds everything done and only re-renders the report.
  again = _reproduce(output_dir, report)
  assert again.returncode == 0
  assert again.stdout.count("done already") == 2 * 4 + 3, again.stdout

  # A run directory trained with other settings is never reused for this suite.
  record = output_dir / "pattbet" / "seed0" / suites.RUN_RECORD
  record.write_text(record.read_text().replace("BitErrorTrainer.pattern_condition = 0.1",
                                               "BitErrorTrainer.pattern_condition = 0.2"))
  refused = _reproduce(output_dir, report, "--stage=train")
  assert refused.returncode != 0 and "was trained with other settings" in refused.stderr


def test_shipped_suites_load_and_bad_suite_files_are_refused_naming_the_field(tmp_path):
  for name in suites.suite_names():
    suite = suites.load_suite(name)
    assert suite.runs and suite.tables
  full = suites.load_suite("full")
  assert full.test_limit is None and full.num_chips >= 10
  assert all(len(run.seeds) >= 3 for run in full.runs if run.name in ("q_rquant", "clip_0.1"))
  with open(os.path.join(suites.suite_dir(), "tiny.json"), encoding="utf-8") as f:
    record = json.load(f)
  for edit, message in (
      (lambda r: r.update(num_chip=2), r"unknown field\(s\) \['num_chip'\]"),
      (lambda r: r["runs"][0].update(seeds=[0, 0]), "seeds must be distinct"),
      (lambda r: r.update(rates=[1, 75]), r"rates must be percentages in \(0, 50\]"),
      (lambda r: r["tables"][0]["findings"][0].update(better="nope"), "'nope' is named"),
      (lambda r: r.update(num_chips="2"), "'num_chips' has the wrong type"),
      (lambda r: r["tables"][0]["findings"].append({"kind": "collapse", "claim": "c",
                                                    "run": "nope", "max_rate": 1}),
       "'nope' is named"),
      (lambda r: r["tables"][0]["findings"].append({"kind": "collapses", "claim": "c"}),
       "kind must be 'collapse'"),
      (lambda r: r["tables"][0]["findings"].append({"kind": "collapse", "claim": "c",
                                                    "run": r["runs"][0]["name"]}),
       r"missing field\(s\) \['max_rate'\]"),
      (lambda r: r["headline"].update(reference="nope"), "'nope' is named"),
      (lambda r: r["headline"].update(budgets=[0]), r"headline.budgets must be percentage "
       r"points in \(0, 100\]"),
      (lambda r: r["headline"].update(budgets=[1, 1]), "headline.budgets must be distinct"),
      (lambda r: r["headline"].update(low=5), r"headline.low must be a rate in percent in "
       r"\(0, 1\)"),
      (lambda r: r["headline"].update(steps=50), r"headline.steps must be in \[0, 20\]"),
      (lambda r: r["headline"].pop("budgets"), r"headline: missing field\(s\) \['budgets'\]")):
    broken = json.loads(json.dumps(record))
    edit(broken)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=message):
      suites.load_suite(str(path))
  with pytest.raises(ValueError, match="no file"):
    suites.load_suite("nosuchsuite")


def test_bad_analysis_settings_are_refused_naming_the_field(tmp_path):
  with open(os.path.join(suites.suite_dir(), "tiny.json"), encoding="utf-8") as f:
    record = json.load(f)
  assert suites.load_suite("tiny").analysis.runs == ("q_rquant",)
  for edit, message in (
      (lambda a: a.update(rates=[1]), r"analysis: unknown field\(s\) \['rates'\]"),
      (lambda a: a.pop("chip"), r"analysis: missing field\(s\) \['chip'\]"),
      (lambda a: a.update(rate="10"), "analysis: field 'rate' has the wrong type"),
      (lambda a: a.update(runs=["nope"]), "'nope' is named in the report settings but is not a "
       "run"),
      (lambda a: a.update(runs=["q_rquant", "q_rquant"]), "analysis.runs must name distinct runs"),
      (lambda a: a.update(rate=75), r"analysis.rate must be a percentage in \(0, 50\], got 75"),
      (lambda a: a.update(num_chips=0),
       rf"analysis.num_chips must be in \[1, {checks.MAX_CHIPS}\]"),
      (lambda a: a.update(magnitudes=[1, -5]),
       r"analysis.magnitudes are in percent and must be in \[0, 100\], got -5"),
      (lambda a: a.update(chip="chip2"),
       r"analysis.chip must be one of the suite's chip_presets \['chip1'\], got 'chip2'"),
      (lambda a: a.update(voltage=0.5),
       r"analysis.voltage must be one of chip1's profiled voltages \[0.811, 0.84\], got 0.5"),
      (lambda a: a.update(offset=-8), r"analysis.offset must be in \[0, inf\], got -8"),
      (lambda a: a.update(test_limit=101),
       r"analysis.test_limit must be in \[1, the suite's test_limit 100\] or null"),
      (lambda a: a.update(paper="paper/tab21_mnist.json"),
       "analysis.paper: paper/tab21_mnist.json holds no confidence columns"),
      (lambda a: a.pop("paper"), "run 'q_rquant' names a paper_row, but no table")):
    broken = json.loads(json.dumps(record))
    edit(broken["analysis"])
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="broken.json: (analysis: )?" + message):
      suites.load_suite(str(path))


def test_the_analysis_and_paper_rows_leave_every_run_record_as_it_was(tmp_path):
  for name in suites.suite_names():
    with open(os.path.join(suites.suite_dir(), f"{name}.json"), encoding="utf-8") as f:
      record = json.load(f)
    record.pop("analysis", None)
    for run in record["runs"]:
      if not any("paper" in table for table in record.get("tables", [])):
        run.pop("paper_row", None)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(record))
    plain, shipped = suites.load_suite(str(path)), suites.load_suite(name)
    for before, after in zip(plain.runs, shipped.runs, strict=True):
      for seed in after.seeds:
        assert suites.run_record(plain, before, seed) == suites.run_record(shipped, after, seed)


def test_an_analysed_run_gets_the_analysis_binaries_after_its_evaluation_on_its_first_seed(
    tmp_path):
  suite = suites.load_suite("tiny")
  run, chip_files = suite.run("q_rquant"), [str(tmp_path / "chips" / "chip1.npz")]
  run_dir = run.directory(str(tmp_path), 0)
  folder = os.path.join(run_dir, "analysis")
  steps = suite_jobs._eval_commands(suite, run, 0, run_dir, chip_files, worker_threads=1)  # pylint: disable=protected-access
  assert [name for _, name, _ in steps] == [
      "eval_random.json", "eval_chips.json", "analysis/sensitivity.png", "analysis/diagnose.png",
      "analysis/weight_noise.png", "analysis/chip_map.png"]
  commands = {name: command for _, name, command in steps}
  common = [f"--run_dir={run_dir}", "--test_limit=100", "--worker_threads=1"]
  expected = {
      "sensitivity": common + ["--rate=10", "--num_chips=2"],
      "diagnose": common + ["--rate=10"],
      "weight_noise": common + ["--magnitudes=1,10", "--num_samples=2",
                                f"--bit_errors={run_dir}/eval_random.json"],
      "chip_map": [f"--run_dir={run_dir}", f"--chip_file={chip_files[0]}", "--voltage=0.811",
                   "--offset=0"]}
  for tool, flags in expected.items():
    assert commands[f"analysis/{tool}.png"] == [
        sys.executable, "-m", f"tfbet.cli.{tool}", *flags, f"--output={folder}/{tool}.json",
        f"--plot={folder}/{tool}.png"]
  # The second seed and the runs not analysed: their evaluations only.
  for other, seed in ((run, 1), (suite.run("pattbet"), 0)):
    names = [n for _, n, _ in suite_jobs._eval_commands(suite, other, seed, run_dir, chip_files)]  # pylint: disable=protected-access
    assert not any(n.startswith("analysis/") for n in names)
  # The job is done once every step's output exists, the last PNG included.
  os.makedirs(folder)
  for name in ["result.json"] + [n for _, n, _ in steps][:-1]:
    open(os.path.join(run_dir, name), "w", encoding="utf-8").close()
  assert not suite_jobs._done(suite, run, 0, str(tmp_path), "evaluate")  # pylint: disable=protected-access
  open(os.path.join(folder, "chip_map.png"), "w", encoding="utf-8").close()
  assert suite_jobs._done(suite, run, 0, str(tmp_path), "evaluate")  # pylint: disable=protected-access


def test_counts_of_a_suite_file_are_bounded_naming_the_limit(tmp_path):
  with open(os.path.join(suites.suite_dir(), "tiny.json"), encoding="utf-8") as f:
    record = json.load(f)
  for field, value, message in (
      ("num_chips", 10**12, rf"num_chips must be in \[0, {checks.MAX_CHIPS}\], got {10**12}"),
      ("offsets", 10**9, rf"offsets must be in \[0, {checks.MAX_OFFSETS}\], got {10**9}"),
      ("rates", [1] * (checks.MAX_CONDITIONS + 1),
       f"rates must have at most {checks.MAX_CONDITIONS} items")):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(dict(record, **{field: value})))
    with pytest.raises(ValueError, match="huge.json: " + message):
      suites.load_suite(str(path))


def test_nothing_to_report_never_replaces_the_report(tmp_path):
  report = tmp_path / "docs" / "reproduction.md"
  report.parent.mkdir()
  report.write_text("the committed report")
  suite = suites.load_suite("tiny")
  (tmp_path / "empty").mkdir()
  for output_dir, message in ((tmp_path / "empty", "holds no evaluated run"),
                              (tmp_path / "missing", "does not exist")):
    with pytest.raises(ValueError, match=message):
      reproduction_report.write_report(suite, str(output_dir), str(report))
  with pytest.raises(ValueError, match=r"\['q_rquantt'\] are not runs of suite 'tiny'"):
    suites.check_only(suite, ["q_rquantt"])
  # The binary refuses the same way, before any work.
  for extra in (("--report_only",), ("--only=q_rquantt",)):
    result = _reproduce(tmp_path / "missing", report, *extra)
    assert result.returncode != 0, result.stdout
    assert "does not exist" in result.stderr or "are not runs" in result.stderr
  assert report.read_text() == "the committed report"
  assert not (report.parent / "figures").exists()
  assert not (tmp_path / "missing").exists()


def test_suites_share_an_output_dir_only_where_they_train_and_evaluate_shared_runs_alike(
    tmp_path):
  assert [s.name for s in suites.load_suites(["full", "tab21"])] == ["full", "tab21"]
  assert [s.name for s in suites.load_suites(["full", "recipe"])] == ["full", "recipe"]
  with open(os.path.join(suites.suite_dir(), "tiny.json"), encoding="utf-8") as f:
    record = json.load(f)
  other_params = [dict(record["runs"][0], params=["train.epochs = 9"])] + record["runs"][1:]
  for change, word in (({"runs": other_params}, "trained"), ({"rates": [1, 3]}, "evaluated")):
    path = tmp_path / "twin.json"
    path.write_text(json.dumps(dict(record, **change)))
    with pytest.raises(ValueError, match=f"suites 'tiny' and 'twin' both have a run "
                       f"'q_rquant', {word} differently; they cannot share --output_dir"):
      suites.load_suites(["tiny", str(path)])
  with pytest.raises(ValueError, match=r"--suite names a suite twice: \['tiny', 'tiny'\]"):
    suites.load_suites(["tiny", "tiny"])
  both = suites.load_suites(["tiny", "tab21"])
  suites.check_only(both, ["t21_normal", "q_rquant"])
  assert suites.only_of(both[1], ["t21_normal", "q_rquant"]) == ["t21_normal"]
  assert suites.only_of(both[0], ["t21_normal"]) == [] and suites.only_of(both[0], None) is None
  with pytest.raises(ValueError, match=r"\['t21_nrmal'\] are not runs of suite 'tiny' or "
                     "'tab21'"):
    suites.check_only(both, ["t21_nrmal"])


def test_an_existing_evaluation_with_other_rates_or_chips_is_refused(tmp_path):
  suite = suites.load_suite("tiny")
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  chip_names = [f"random_{1000 + i}" for i in range(suite.num_chips)]

  def write(rates, chips, n=suite.test_limit):
    wrong = np.zeros(n, bool)
    evaluation.Results(
        model={"name": "m", "digest": "m"}, n=n, data_digest="d", clean_errors=0,
        condition_kind="rate", clean_wrong=wrong,
        errors={(c, r / 100, 0): 0 for c in chips for r in rates},
        wrong={(c, r / 100, 0): wrong for c in chips for r in rates},
    ).to_json(str(run_dir / "eval_random.json"))

  write(suite.rates, chip_names)
  suites.check_random_evaluation(suite, str(run_dir))
  for rates, chips, n in ((suite.rates[:1], chip_names, suite.test_limit),
                          (suite.rates, chip_names[:1], suite.test_limit),
                          (suite.rates, chip_names, suite.test_limit + 1)):
    write(rates, chips, n)
    with pytest.raises(ValueError, match="holds another evaluation"):
      suites.check_random_evaluation(suite, str(run_dir))


def test_a_run_recorded_with_old_train_bindings_is_the_same_run(tmp_path):
  suite = suites.load_suite("tiny")
  run = suite.run("randbet_0.1_p5")
  record = {"gin_files": list(run.gin_files), "params": list(run.bindings(suite, 0))}
  old = [{"BitErrorTrainer.rate = 0.05": "train.rate = 0.05"}.get(p, p) for p in record["params"]
         if p != "train.weight_constraint = @WeightClip()"]
  old = [p.replace("WeightClip.w_max = 0.1", "train.w_max = 0.1") for p in old]
  assert "train.w_max = 0.1" in old and "train.rate = 0.05" in old
  (tmp_path / suites.RUN_RECORD).write_text(json.dumps({**record, "params": old}))
  suites.check_record(str(tmp_path), record)
  (tmp_path / suites.RUN_RECORD).write_text(json.dumps(
      {**record, "params": [p.replace("0.05", "0.1") for p in old]}))
  with pytest.raises(ValueError, match="was trained with other settings"):
    suites.check_record(str(tmp_path), record)


def test_every_run_of_the_shipped_suites_parses_as_a_training_config():
  import gin  # pylint: disable=g-import-not-at-top
  from tfbet.cli import gin_utils  # pylint: disable=g-import-not-at-top
  # training_job registers the configurables the suites bind.
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top,unused-import
  for name in suites.suite_names():
    suite = suites.load_suite(name)
    for run in suite.runs:
      for seed in run.seeds:
        gin.clear_config()
        try:
          gin_utils.parse(run.gin_files, list(run.bindings(suite, seed)) + ["train.verbose = 2"])
        except ValueError as error:
          raise AssertionError(f"suite {name!r}, run {run.name!r}: {error}") from error
        finally:
          gin.clear_config()


def test_a_failing_job_on_beam_is_named_with_its_error_and_the_suite_fails(tmp_path):
  pytest.importorskip("apache_beam")
  with open(os.path.join(suites.suite_dir(), "tiny.json"), encoding="utf-8") as f:
    record = json.load(f)
  bad = dict(record["runs"][2], params=record["runs"][2]["params"] + ["BitErrorTrainer.rate = 7"])
  record.update(runs=[bad], tables=[], quality_pairs=[], figure_runs=[], figure_families={},
                profiled_runs=[], pattern_run=None)
  del record["analysis"], record["headline"]
  path = tmp_path / "bad.json"
  path.write_text(json.dumps(record))
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bin", "reproduce"), f"--suite={path}",
       f"--output_dir={tmp_path / 'runs'}", "--stage=train", "--runner=DirectRunner",
       "--beam_options=--direct_num_workers=1", "--worker_threads=1"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 1
  assert ("randbet_0.1_p5 seed 0: failed: python -m tfbet.cli.train: error: rate must be a "
          "finite number in [0.0, 1.0], got 7.0") in result.stdout
  assert result.stderr.rstrip().splitlines()[-1] == (
      "bin/reproduce: 1 of 1 jobs did not finish: ['randbet_0.1_p5 seed 0'] (each one's error "
      "is printed above, its log is driver.log in its run directory); the same command resumes "
      "them")


def test_a_run_directory_of_other_settings_is_refused_on_beam_before_any_job_starts(tmp_path):
  pytest.importorskip("apache_beam")
  record = tmp_path / "runs" / "pattbet" / "seed0" / suites.RUN_RECORD
  record.parent.mkdir(parents=True)
  record.write_text(json.dumps({"gin_files": [], "params": ["train.epochs = 99"]}))
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bin", "reproduce"), "--suite=tiny",
       f"--output_dir={tmp_path / 'runs'}", "--stage=train", "--runner=DirectRunner"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 1 and "jobs on DirectRunner" not in result.stdout
  assert "pattbet/seed0 was trained with other settings" in result.stderr.splitlines()[-2]
  assert not (tmp_path / "runs" / "q_rquant").exists()


def test_the_suite_log_tool_reads_each_workers_busy_time_from_the_drivers_own_lines(
    tmp_path, monkeypatch, capsys):
  spec = importlib.util.spec_from_file_location(
      "suite_log", os.path.join(ROOT, "benchmarks", "suite_log.py"))
  suite_log = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(suite_log)
  clock = [1000.0]
  durations = iter([100, 40, 30])  # two trainings, then one headline step

  def fake_call(command, log_path):  # pylint: disable=unused-argument
    clock[0] += next(durations)

  monkeypatch.setattr(suite_jobs, "_call", fake_call)
  monkeypatch.setattr(suite_jobs.time, "time", lambda: clock[0])
  monkeypatch.setattr(suite_jobs, "_headline_commands",
                      lambda *args: [("headline 1 points", "headline_1.json", ["true"])])
  monkeypatch.setattr(suite_jobs, "check_headline", lambda *args: None)
  suite = suites.load_suite("tiny")
  train = suite_jobs._SuiteJob(suite, str(tmp_path), ("train",), (), 1, 2, clock[0])  # pylint: disable=protected-access
  print("2 jobs on DirectRunner (1 worker processes, 1 TensorFlow threads each)")
  for number, run in enumerate(suite.runs[:2], start=1):
    list(train((run.name, 0, number)))
  print("1 headline jobs (bin/bisect_rate) on DirectRunner (1 worker processes, 1 TensorFlow "
        "threads each)")
  headline = suite_jobs._SuiteJob(suite, str(tmp_path), ("headline",), (), 1, 1, clock[0])  # pylint: disable=protected-access
  list(headline((suite.runs[0].name, 0, 1)))
  lines = capsys.readouterr().out.splitlines()
  found = suite_log.pipelines(lines)
  pid = str(os.getpid())
  assert [(p["jobs"], p["wall"], dict(p["busy"]), dict(p["steps"])) for p in found] == [
      (2, 140, {pid: 140}, {"train": 140}), (1, 30, {pid: 30}, {"headline": 30})]
