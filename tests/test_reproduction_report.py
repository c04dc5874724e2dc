"""The reproduction report on synthetic result files: its numbers against numpy, its verdicts."""
import dataclasses
import json
import os
import re
import shutil

import numpy as np
import pytest

from tfbet import evaluation
from tfbet.cli import claim_checks
from tfbet.cli import claim_verdicts
from tfbet.cli import quality_bar
from tfbet.cli import reproduce_lib
from tfbet.cli import reproduction_report
from tfbet.cli import suite_results
from tfbet.cli import suites

N = 500
RATES = (1, 10)  # in %
CHIPS = ("random_1000", "random_1001", "random_1002", "random_1003")


def _suite():
  runs = (reproduce_lib.Run("good", "GOOD", ("a.gin",), seeds=(0, 1, 2)),
          reproduce_lib.Run("bad", "BAD", ("a.gin",), seeds=(0, 1, 2)),
          reproduce_lib.Run("same", "SAME", ("a.gin",)))
  tables = ({"title": "T", "runs": ["good", "bad", "same"], "findings": [
      {"claim": "GOOD is more robust than BAD", "better": "good", "worse": "bad"},
      {"claim": "GOOD is more robust than SAME", "better": "good", "worse": "same"}]},)
  return reproduce_lib.Suite(
      name="synthetic", description="Synthetic.", runs=runs, rates=RATES,
      num_chips=len(CHIPS), test_limit=None, tables=tables, quality_pairs=(("good", "bad"),),
      figure_runs=("good", "bad"), figure_families={"G": ["good"], "B": ["bad"]})


def _write(output_dir, run, seed, clean_p, chip_p, rng, digest="data", rates=RATES):
  """A run's eval_random.json: each chip adds errors with probability chip_p * rate (chip_p a
  number) or chip_p[rate] (a dict), on top of the clean errors."""
  run_dir = run.directory(str(output_dir), seed)
  os.makedirs(run_dir)
  clean = rng.random(N) < clean_p
  errors, wrong = {}, {}
  for rate in rates:
    for chip in CHIPS:
      added = chip_p[rate] if isinstance(chip_p, dict) else chip_p * rate
      flags = clean | (rng.random(N) < added)
      errors[(chip, rate / 100, 0)] = int(flags.sum())
      wrong[(chip, rate / 100, 0)] = flags
  results = evaluation.Results(model={"name": run.name, "digest": f"{run.name}{seed}"}, n=N,
                               data_digest=digest, clean_errors=int(clean.sum()),
                               condition_kind="rate", errors=errors, clean_wrong=clean,
                               wrong=wrong)
  results.to_json(os.path.join(run_dir, "eval_random.json"))
  with open(os.path.join(run_dir, "result.json"), "w", encoding="utf-8") as f:
    json.dump({"num_weights": 1234, "test_error": results.clean_error}, f)
  return results


@pytest.fixture(name="written")
def written_fixture(tmp_path):
  rng = np.random.default_rng(0)
  suite = _suite()
  written = {}
  for run, clean_p, chip_p in ((suite.runs[0], 0.02, 0.005), (suite.runs[1], 0.02, 0.03),
                               (suite.runs[2], 0.02, 0.005)):
    written[run.name] = [_write(tmp_path / "runs", run, seed, clean_p, chip_p, rng)
                         for seed in run.seeds]
  return suite, tmp_path / "runs", written


def test_tables_show_means_over_seeds_and_chips_computed_like_numpy(written, tmp_path):
  suite, output_dir, results = written
  report = tmp_path / "docs" / "report.md"
  reproduction_report.write_report(suite, str(output_dir), str(report))
  text = report.read_text()
  good = results["good"]
  clean = np.array([r.clean_error for r in good])
  rerr = np.mean([[r.rerr(chip, 0.1) for chip in CHIPS] for r in good])
  chip_std = np.mean([np.std([r.rerr(chip, 0.1) for chip in CHIPS]) for r in good])
  row = next(line for line in text.splitlines() if line.startswith("| GOOD |"))
  assert row.startswith(f"| GOOD | 3 | {100 * clean.mean():.2f} ± {100 * clean.std(ddof=1):.2f} |")
  assert row.endswith(f"| {100 * rerr:.2f} ± {100 * chip_std:.2f} |")
  assert "Trained and evaluated: 7 of 7" in text
  # The quality bar's gap with the seed spread of both 3-seed rows (numpy, ddof = 1).
  bad_clean = np.array([r.clean_error for r in results["bad"]])
  margin = 2 * np.sqrt(clean.var(ddof=1) / 3 + bad_clean.var(ddof=1) / 3)
  assert (f"{100 * (clean.mean() - bad_clean.mean()):+.2f} ± {100 * margin:.2f} points (2 s.e. "
          "of the seed spread)") in text
  assert "- **holds**:\n  - GOOD is more robust than BAD: holds at p = 1, 10 %" in text
  assert "- GOOD is more robust than BAD: **holds at p = 1, 10 %**" in text
  assert "not resolved" in text  # GOOD and SAME are the same model up to noise
  # SAME was trained once: its claim's summary line says so; the per-rate error rate is stated.
  assert re.search(r"\n  - GOOD is more robust than SAME: not resolved[^\n]* — trained once: "
                   r"SAME\n", text)
  assert "about 2.3 % probability in each direction" in text
  assert "not corrected for multiplicity" in text
  assert "A monotone claim" not in text  # explained only where a suite has one
  assert (report.parent / "figures" / "synthetic_fig7.png").stat().st_size > 1000


def test_a_clear_difference_holds_and_identical_models_are_not_resolved(written):
  suite, output_dir, _ = written
  loaded = suite_results.load_results(suite, str(output_dir))
  clear = claim_checks.compare_runs(suite, loaded, "good", "bad", 0.1)
  assert clear.verdict == "holds" and clear.seeds_a == clear.seeds_b == 3
  assert clear.se_seeds is not None and not clear.seed_std_assumed
  assert claim_checks.compare_runs(suite, loaded, "bad", "good", 0.1).verdict == "reversed"
  # SAME was trained once: the spread over seeds of the 3-seed runs stands in for its own.
  single = claim_checks.compare_runs(suite, loaded, "good", "same", 0.1)
  assert single.seed_std_assumed and single.verdict == "not resolved"


def test_a_lower_rerr_that_clean_accuracy_explains_is_not_called_more_robust(tmp_path):
  # A and B lose the same share of examples to bit errors; A only has fewer clean errors.
  rng = np.random.default_rng(3)
  runs = (reproduce_lib.Run("a", "A", ("a.gin",), seeds=(0, 1, 2)),
          reproduce_lib.Run("b", "B", ("a.gin",), seeds=(0, 1, 2)))
  suite = reproduce_lib.Suite(
      name="accuracy", description="Synthetic.", runs=runs, rates=RATES, num_chips=len(CHIPS),
      test_limit=None, tables=({"title": "T", "runs": ["a", "b"], "findings": [
          {"claim": "A is more robust than B", "better": "a", "worse": "b"}]},),
      figure_runs=("a",), figure_families={"A": ["a"]})
  for run, clean_p in ((runs[0], 0.02), (runs[1], 0.12)):
    for seed in run.seeds:
      _write(tmp_path, run, seed, clean_p, 0.002, rng)
  loaded = suite_results.load_results(suite, str(tmp_path))
  rerr = claim_checks.compare_runs(suite, loaded, "a", "b", 0.01, "rerr")
  drop = claim_checks.compare_runs(suite, loaded, "a", "b", 0.01, "drop")
  assert rerr.verdict == "holds" and drop.verdict == "not resolved"
  overall, lines = claim_checks.finding_lines(suite, loaded, suite.tables[0]["findings"][0])
  assert overall.startswith("holds on RErr only at p = 1, 10 %"), overall
  assert "together: **holds on RErr only" in lines[1]


def test_the_two_metrics_and_the_rates_join_into_one_verdict():
  combined = claim_verdicts.combined_verdict
  assert combined("holds", "holds", "chips") == "holds"
  assert combined("reversed", "reversed", "chips") == "reversed"
  assert combined("holds", "not resolved", "chips").startswith("holds on RErr only")
  assert combined("reversed", "holds", "chips").startswith("split (A loses less")
  assert combined("holds", "reversed", "chips").startswith("split (A's RErr is lower")
  assert combined("not resolved", "not resolved", "seeds") == \
      "not resolved (limited by seed noise)"
  claim = claim_verdicts.claim_verdict
  assert claim([(0.01, "holds", "chips"), (0.05, "not resolved (x)", "chips")]) == \
      "holds at p = 1 %; not resolved at p = 5 %"
  assert claim([(0.01, "holds", "chips"), (0.1, "reversed", "chips")]) == \
      "mixed (holds at p = 1 %; reversed at p = 10 %)"
  # A split rate next to a holding one makes the claim mixed, never "holds".
  assert claim([(0.025, combined("reversed", "holds", "c"), "chips"), (0.1, "holds", "chips")]) \
      .startswith("mixed (split at p = 2.5 %; holds at p = 10 %)")
  assert claim([(0.01, combined("reversed", "holds", "c"), "chips"),
                (0.05, combined("not resolved", "holds", "c"), "chips")]).startswith(
                    "mixed (split at p = 1 %; holds on the drop only at p = 5 %)")
  assert claim([(0.01, "not resolved (limited by seeds noise)", "seeds"),
                (0.05, "not resolved (limited by chips noise)", "chips"),
                (0.1, "not resolved (limited by seeds noise)", "seeds")]) == \
      "not resolved at any rate (limited by seed noise)"
  # A tie between limits goes to the rate met first, whatever the hash seed.
  assert claim([(0.01, "not resolved (limited by chip noise)", "chips"),
                (0.05, "not resolved (limited by seed noise)", "seeds")]) == \
      "not resolved at any rate (limited by chip noise)"
  for verdict in (combined(r, d, "chips") for r in ("holds", "reversed", "not resolved")
                  for d in ("holds", "reversed", "not resolved")):
    assert any(verdict.startswith(c) for c in claim_verdicts.SUMMARY_CATEGORIES)


def test_runs_evaluated_on_other_test_examples_are_refused(written):
  suite, output_dir, _ = written
  other = reproduce_lib.Run("other", "OTHER", ("a.gin",))
  suite = reproduce_lib.Suite(**{**suite.__dict__, "runs": suite.runs + (other,)})
  _write(output_dir, other, 0, 0.02, 0.01, np.random.default_rng(1), digest="other data")
  with pytest.raises(ValueError, match="different test sets"):
    suite_results.load_results(suite, str(output_dir))


@pytest.mark.parametrize("train_errors, cause", [((0.05, 0.01), "fits the training data less well"),
                                                 ((0.01, 0.01), "generalizes worse")])
def test_a_missed_quality_bar_says_whether_the_gap_is_on_the_training_set(tmp_path, train_errors,
                                                                          cause):
  rng = np.random.default_rng(4)
  runs = (reproduce_lib.Run("randbet", "R", ("a.gin",)), reproduce_lib.Run("clip", "C", ("a.gin",)))
  suite = reproduce_lib.Suite(
      name="bar", description="Synthetic.", runs=runs, rates=RATES, num_chips=len(CHIPS),
      test_limit=None, tables=(), quality_pairs=(("randbet", "clip"),), figure_runs=(),
      figure_families={})
  for run, clean_p, train_error in zip(runs, (0.10, 0.02), train_errors):
    _write(tmp_path, run, 0, clean_p, 0.002, rng)
    path = os.path.join(run.directory(str(tmp_path), 0), "result.json")
    with open(path, encoding="utf-8") as f:
      result = json.load(f)
    result["history"] = {"error": [0.3, train_error]}
    with open(path, "w", encoding="utf-8") as f:
      json.dump(result, f)
  loaded = suite_results.load_results(suite, str(tmp_path))
  (line,) = quality_bar.quality_bar_lines(suite, loaded)
  gap = loaded["randbet"][0]["random"].clean_error - loaded["clip"][0]["random"].clean_error
  assert f"{100 * gap:+.2f} (seed spread not measured: no row has several seeds), **misses**" \
      in line
  assert f"({100 * (train_errors[0] - train_errors[1]):+.2f} points)" in line and cause in line


def test_a_collapse_to_chance_is_judged_against_fifty_percent_with_chip_and_seed_noise(tmp_path):
  # Tab. 1's 4-bit collapse: RErr near chance at low rates. "broken" collapses, "good" does not.
  rng = np.random.default_rng(5)
  runs = (reproduce_lib.Run("good", "GOOD", ("a.gin",), seeds=(0, 1, 2)),
          reproduce_lib.Run("broken", "BROKEN", ("a.gin",)))
  findings = [{"kind": "collapse", "claim": f"{name} collapses", "run": name, "max_rate": 1}
              for name in ("good", "broken")]
  suite = reproduce_lib.Suite(
      name="collapse", description="Synthetic.", runs=runs, rates=RATES, num_chips=len(CHIPS),
      test_limit=None, tables=({"title": "T", "runs": ["good", "broken"], "findings": findings},),
      figure_runs=("good",), figure_families={"G": ["good"]})
  good = [_write(tmp_path, runs[0], seed, 0.02, 0.005, rng) for seed in runs[0].seeds]
  broken = _write(tmp_path, runs[1], 0, 0.02, 0.9, rng)
  loaded = suite_results.load_results(suite, str(tmp_path))

  overall, lines = claim_checks.collapse_lines(suite, loaded, findings[0])
  # p = 10 % is past max_rate, so the verdict rests on one rate and says so.
  assert overall == "does not hold at p = 1 % — rests on one rate" and len(lines) == 2
  per_seed = np.array([[r.rerr(chip, 0.01) for chip in CHIPS] for r in good])
  margin = 2 * np.sqrt(np.mean(per_seed.var(axis=1) / len(CHIPS)) / 3
                       + per_seed.mean(axis=1).var(ddof=1) / 3)
  assert f"RErr {100 * per_seed.mean():.2f} ± {100 * margin:.2f} %" in lines[1]

  overall, lines = claim_checks.collapse_lines(suite, loaded, findings[1])
  assert overall == "holds at p = 1 % — rests on one rate; trained once: BROKEN"
  rerr = np.array([broken.rerr(chip, 0.01) for chip in CHIPS])
  seed_std = claim_checks.pooled_seed_std(suite, loaded, 0.01, "rerr")
  margin = 2 * np.sqrt(rerr.var() / len(CHIPS) + seed_std ** 2)
  assert f"RErr {100 * rerr.mean():.2f} ± {100 * margin:.2f} %" in lines[1]
  assert "seed spread pooled from the multi-seed rows" in lines[1]
  # The report picks the check by the finding's kind.
  assert claim_checks.check_finding(suite, loaded, findings[1]) == (overall, lines)


def test_the_header_names_the_pairs_not_evaluated_yet_and_counts_what_the_runs_recorded(
    written, tmp_path):
  suite, output_dir, _ = written
  os.remove(os.path.join(suite.runs[2].directory(str(output_dir), 0), "eval_random.json"))
  loaded = suite_results.load_results(suite, str(output_dir))
  text = reproduction_report.scale_text(suite, loaded)
  assert text.startswith("Trained and evaluated: 6 of 7 (run, seed) pairs; 1,234 quantized")
  assert "chip seeds 1000-1003" in text
  assert text.endswith("Not evaluated yet, so left out of every table, claim and figure: "
                       "same seed 0.")


def test_suites_sharing_an_output_dir_report_as_parts_each_as_its_own_report(written, tmp_path):
  suite, output_dir, _ = written
  rng = np.random.default_rng(7)
  other = reproduce_lib.Suite(
      name="second", description="Second synthetic.", runs=(
          reproduce_lib.Run("other", "OTHER", ("a.gin",)),), rates=RATES,
      num_chips=len(CHIPS), test_limit=None, tables=(
          {"title": "T2", "runs": ["other"], "findings": []},),
      figure_runs=("other",), figure_families={"O": ["other"]})
  together = tmp_path / "docs" / "both.md"
  alone = tmp_path / "alone" / "one.md"
  # A suite without a run in output_dir is refused, naming it; nothing is written.
  with pytest.raises(ValueError, match=r"holds no evaluated run of suite 'second'.*both.md"):
    reproduction_report.write_report([suite, other], str(output_dir), str(together))
  assert not together.parent.exists()
  _write(output_dir, other.runs[0], 0, 0.05, 0.01, rng)
  reproduction_report.write_report([suite, other], str(output_dir), str(together))
  reproduction_report.write_report(suite, str(output_dir), str(alone))
  text, single = together.read_text(), alone.read_text()
  assert "Generated by `bin/reproduce --suite=synthetic,second` on " in text
  assert "1. [Part 1: suite `synthetic`](#part-1-suite-synthetic)" in text
  part1 = text[text.index("# Part 1: suite `synthetic`"):text.index("# Part 2: suite `second`")]
  part2 = text[text.index("# Part 2: suite `second`"):]
  # Part 1 is the single report of its suite from the scale line on.
  assert part1.split("\n", 2)[2].rstrip() == "Synthetic.\n\n" + single.split(
      "\n\n", 2)[2].rstrip()
  assert "## T2" in part2 and "| OTHER |" in part2 and "| GOOD |" not in part2
  assert part2.count("## Summary") == 1 and "(figures/second_fig2.png)" in part2
  for name in ("synthetic_fig2.png", "second_fig2.png", "second_fig7.png"):
    assert (together.parent / "figures" / name).exists()


def test_pattbet_on_its_own_pattern_compares_each_lower_rate_with_the_training_rate(tmp_path):
  rng = np.random.default_rng(6)
  run = reproduce_lib.Run("patt", "PATT", ("a.gin",))
  suite = reproduce_lib.Suite(
      name="pattern", description="Synthetic.", runs=(run,), rates=RATES, num_chips=len(CHIPS),
      test_limit=None, pattern_run="patt",
      tables=({"title": "T", "runs": ["patt"], "pattern": True},),
      figure_runs=("patt",), figure_families={"P": ["patt"]})
  _write(tmp_path, run, 0, 0.02, 0.005, rng)
  run_dir = run.directory(str(tmp_path), 0)
  # Its own pattern: many more errors at the training rate (10 %) than at 1 %.
  pattern = _write(tmp_path / "pattern", run, 0, 0.02, 0.03, rng)
  os.replace(os.path.join(run.directory(str(tmp_path / "pattern"), 0), "eval_random.json"),
             os.path.join(run_dir, "eval_pattern.json"))
  with open(os.path.join(run_dir, "operative_config.gin"), "w", encoding="utf-8") as f:
    f.write("train.pattern_condition = 0.1\n")  # an old name: read in today's name
  loaded = suite_results.load_results(suite, str(tmp_path))
  (claim, overall), lines = claim_checks.pattern_claim(suite, loaded)
  assert "below its training rate (p = 10 %" in claim
  assert overall == "reversed at p = 1 % — rests on one rate; trained once: PATT"
  change = (pattern.wrong_matrix(0.01)[0, 0].astype(float)
            - pattern.wrong_matrix(0.1)[0, 0].astype(float))
  margin = 2 * change.std(ddof=1) / np.sqrt(N)
  assert f"difference {100 * change.mean():+.2f} ± {100 * margin:.2f} points" in lines[1]


def test_a_run_evaluated_without_a_rate_of_the_suite_is_refused_not_left_out(written):
  suite, output_dir, _ = written
  wider = dataclasses.replace(suite, rates=(1, 5, 10))
  with pytest.raises(ValueError, match=r"another evaluation \(rates \[1.0, 10.0\] %"):
    suite_results.load_results(wider, str(output_dir))


def test_a_run_trained_with_other_settings_than_the_suite_is_refused(written):
  suite, output_dir, _ = written
  run = suite.runs[0]
  record = os.path.join(run.directory(str(output_dir), 0), reproduce_lib.RUN_RECORD)
  with open(record, "w", encoding="utf-8") as f:
    json.dump(reproduce_lib.run_record(suite, run, 0), f)
  assert len(suite_results.load_results(suite, str(output_dir))["good"]) == 3
  with open(record, "w", encoding="utf-8") as f:
    json.dump({"gin_files": ["other.gin"], "params": []}, f)
  with pytest.raises(ValueError, match="was trained with other settings"):
    suite_results.load_results(suite, str(output_dir))


# The fields of a run's result.json that the report uses: a path into the record, whether a run
# may lack it (then the report says it is unknown), and a value of the wrong type.
TRAINING_FIELDS = {
    "num_weights": (("num_weights",), False, "1234"),
    "train_seconds": (("train_seconds",), True, "3600"),
    "history": (("history",), True, [0.1]),
    "history.loss[0]": (("history", "loss", 0), False, "0.5"),
    "history.error[0]": (("history", "error", 0), False, "0.01"),
}
MISSING = object()
WRONG_TYPE = object()
BAD_VALUES = {"missing": MISSING, "wrong type": WRONG_TYPE, "nan": float("nan"),
              "+inf": float("inf"), "-inf": float("-inf"), "huge integer": 10**400}


@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("field", TRAINING_FIELDS)
def test_every_used_training_result_field_that_is_missing_mistyped_or_not_finite_is_refused(
    written, tmp_path, field, bad):
  suite, output_dir, _ = written
  path = os.path.join(suite.runs[1].directory(str(output_dir), 2), "result.json")
  record = {"num_weights": 1234, "test_error": 0.02, "train_seconds": 1800.0,
            "history": {"loss": [0.9, 0.5], "error": [0.2, 0.1]}}
  keys, may_lack, wrong_type = TRAINING_FIELDS[field]
  parent = record
  for key in keys[:-1]:
    parent = parent[key]
  if BAD_VALUES[bad] is MISSING:
    del parent[keys[-1]]
  else:
    parent[keys[-1]] = wrong_type if BAD_VALUES[bad] is WRONG_TYPE else BAD_VALUES[bad]
  with open(path, "w", encoding="utf-8") as f:
    f.write(json.dumps(record))  # NaN, Infinity and 1e400 as a JSON file may hold them
  report = tmp_path / "report.md"
  if BAD_VALUES[bad] is MISSING and may_lack:
    reproduction_report.write_report(suite, str(output_dir), str(report))
    text = report.read_text()
    if field == "train_seconds":  # the other runs of the fixture recorded none either
      assert "training time of these runs, as each measured it: unknown" in text
  elif BAD_VALUES[bad] is MISSING and field.startswith("history."):
    # Removing the first value leaves a shorter list of valid values: nothing to refuse.
    reproduction_report.write_report(suite, str(output_dir), str(report))
    text = report.read_text()
  else:
    with pytest.raises(ValueError) as refusal:
      reproduction_report.write_report(suite, str(output_dir), str(report))
    message = str(refusal.value)
    assert f"training result {path!r}" in message, message
    name = field.replace("[0]", "")
    assert name in message, message
    assert not report.exists()
    return
  assert not re.search(r"\bnan\b|\binf\b", text, re.IGNORECASE)


def test_the_training_time_is_summed_over_the_runs_that_recorded_it_and_unknown_otherwise(
    written):
  suite, output_dir, _ = written
  for seed, seconds in ((0, 1800.0), (1, 5400.0), (2, None)):
    path = os.path.join(suite.runs[0].directory(str(output_dir), seed), "result.json")
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"num_weights": 1234, "train_seconds": seconds}, f)
  loaded = suite_results.load_results(suite, str(output_dir))
  text = reproduction_report.scale_text(suite, loaded)
  assert ("training time of these runs, as each measured it: 2.00 h in all (evaluation not "
          "counted; unknown for 5 runs, which recorded none).") in text


def test_report_figures_state_what_the_runs_were_measured_with(written, tmp_path, monkeypatch):
  from tests import helpers  # pylint: disable=g-import-not-at-top
  figures = helpers.capture_figures(monkeypatch)
  suite, output_dir, _ = written
  reproduction_report.write_report(suite, str(output_dir), str(tmp_path / "report.md"))
  # These synthetic results record neither scheme nor coverage; the figures say so.
  assert figures and [helpers.footer(f) for f in figures] == [
      "all runs: scheme not recorded, share of parameters in faulty memory not recorded"
  ] * len(figures)



def _rerr_steps(results, low, high):
  """numpy: (the rise of mean RErr from low to high, twice its standard error over chips,
  test examples and seeds) of one run's results (one per seed)."""
  per_chip = np.array([[r.rerr(c, high) - r.rerr(c, low) for c in CHIPS] for r in results])
  per_example = np.mean([r.wrong_matrix(high).mean(axis=(0, 1))
                         - r.wrong_matrix(low).mean(axis=(0, 1)) for r in results], axis=0)
  variance = per_chip.mean(axis=0).var(ddof=1) / len(CHIPS) + per_example.var(ddof=1) / N
  if len(results) > 1:
    variance += per_chip.mean(axis=1).var(ddof=1) / len(results)
  return per_chip.mean(), 2 * np.sqrt(variance)


def test_a_monotone_claim_fails_only_on_a_resolved_fall_and_leaves_out_steps_at_chance(tmp_path):
  rng = np.random.default_rng(8)
  rates = (1, 5, 10)
  shapes = {"up": (3, {1: 0.01, 5: 0.05, 10: 0.1}), "flat": (1, {1: 0.05, 5: 0.05, 10: 0.05}),
            "down": (1, {1: 0.4, 5: 0.2, 10: 0.05}), "chance": (1, {1: 0.95, 5: 0.95, 10: 0.95})}
  runs = tuple(reproduce_lib.Run(name, name.upper(), ("a.gin",), seeds=tuple(range(seeds)))
               for name, (seeds, _) in shapes.items())
  findings = [{"kind": "monotone", "claim": "RErr rises", "runs": ["up", "flat", "chance"]},
              {"kind": "monotone", "claim": "RErr rises", "runs": ["up", "down"]}]
  suite = reproduce_lib.Suite(
      name="monotone", description="Synthetic.", runs=runs, rates=rates, num_chips=len(CHIPS),
      test_limit=None, tables=({"title": "T", "runs": list(shapes), "findings": findings},),
      figure_runs=("up",), figure_families={"U": ["up"]})
  written = {run.name: [_write(tmp_path, run, seed, 0.02, shapes[run.name][1], rng, rates=rates)
                        for seed in run.seeds] for run in runs}
  loaded = suite_results.load_results(suite, str(tmp_path))

  overall, lines = claim_checks.check_finding(suite, loaded, findings[0])
  # Up rises at both steps; flat's changes stay within noise; chance is left out.
  assert overall == ("holds at 2 of 4 steps; not resolved at 2 (2 steps with both rates at "
                     "chance left out) — trained once: FLAT / CHANCE"), overall
  assert len(lines) == 3 and lines[1].startswith("  - UP (3 seeds; RErr in %, the rise ± 2 s.e.)")
  for low, high in ((0.01, 0.05), (0.05, 0.1)):
    rise, margin = _rerr_steps(written["up"], low, high)
    assert f"({100 * rise:+.2f} ± {100 * margin:.2f}) rises" in lines[1]
  assert lines[2].startswith("  - FLAT (1 seed; RErr in %, the rise ± 2 s.e.; not measured: "
                             "seeds)")
  rise, margin = _rerr_steps(written["flat"], 0.01, 0.05)
  assert abs(rise) < margin
  assert f"({100 * rise:+.2f} ± {100 * margin:.2f}) not resolved" in lines[2]

  overall, lines = claim_checks.check_finding(suite, loaded, findings[1])
  assert overall == ("does not hold (RErr falls: DOWN at p = 1 → 5 %; DOWN at p = 5 → 10 %)"
                     " — trained once: DOWN"), overall
  rise, margin = _rerr_steps(written["down"], 0.01, 0.05)
  assert f"({100 * rise:+.2f} ± {100 * margin:.2f}) **falls**" in lines[2]
  # One step of one run: the verdict says it rests on one step.
  one = {"kind": "monotone", "claim": "c", "runs": ["up"]}
  narrow = dataclasses.replace(suite, rates=(1, 5))
  assert claim_checks.check_finding(narrow, loaded, one)[0] == \
      "holds at its one step — rests on one step"


@pytest.fixture(name="tab21")
def tab21_fixture(tmp_path):
  """The shipped Tab. 21 suite on this file's chips, each run's errors drawn to follow the
  paper's row (Err, then RErr at each rate), so ours lands near the paper's."""
  suite = dataclasses.replace(suites.load_suite("tab21"), num_chips=len(CHIPS))
  paper = suite.tables[0]["paper"]
  rng = np.random.default_rng(9)
  written = {}
  for run in suite.runs:
    err, rerr = paper.rows[run.paper_row]
    added = {rate: max(0.0, (value - err) / (100 - err)) for rate, value in zip(paper.rates, rerr)}
    written[run.name] = [_write(tmp_path / "runs", run, seed, err / 100, added, rng,
                                rates=suite.rates) for seed in run.seeds]
  return suite, tmp_path / "runs", written


def test_the_tab21_report_shows_the_papers_values_beside_ours_and_checks_monotone_rerr(
    tab21, tmp_path):
  suite, output_dir, written = tab21
  report = tmp_path / "docs" / "tab21.md"
  reproduction_report.write_report(suite, str(output_dir), str(report))
  text = report.read_text()
  clip = written["t21_clip_0.025"]
  clean = np.array([r.clean_error for r in clip])
  rerr = np.mean([[r.rerr(chip, 0.2) for chip in CHIPS] for r in clip])
  chip_std = np.mean([np.std([r.rerr(chip, 0.2) for chip in CHIPS]) for r in clip])
  row = next(line for line in text.splitlines() if line.startswith("| CLIPPING 0.025 |"))
  assert row.startswith(f"| CLIPPING 0.025 | 3 | {100 * clean.mean():.2f} ± "
                        f"{100 * clean.std(ddof=1):.2f} [0.43] | ")
  assert row.endswith(f"| {100 * rerr:.2f} ± {100 * chip_std:.2f} [32.68] |")
  four = next(line for line in text.splitlines() if line.startswith("| 4 bit, CLIPPING 0.025 |"))
  assert four.endswith(" [67.21] |") and "| 1 | " in four
  assert ("In brackets: the paper's value (Stutz et al., Bit Error Robustness for "
          "Energy-Efficient DNN Accelerators, MLSys 2021, App. G.8, Tab. 21") in text
  assert "typed once in `gin/suites/paper/tab21_mnist.json`), from the row of the same model " \
         "at m = 8 bit" in text and "at m = 4 bit that" in text
  assert "A monotone claim (Fig. 7) is checked per run" in text
  summary = text[text.index("## Summary"):text.index("How to read")]
  monotone = [line for line in summary.splitlines()
              if line.startswith("  - RErr increases monotonically")]
  assert len(monotone) == 2
  assert monotone[0].endswith("trained once: NORMAL / RQUANT / CLIPPING 0.1 / CLIPPING 0.05 / "
                              "RANDBET 0.05, p = 1 / RANDBET 0.05, p = 5 / RANDBET 0.05, p = 10")
  # Claims between two 3-seed rows name no run trained once.
  claim = next(line for line in summary.splitlines() if line.startswith(
      "  - RANDBET 0.05 trained at p = 15 % is more robust than CLIPPING 0.025"))
  assert "trained once" not in claim


def test_paper_tables_and_monotone_claims_of_a_suite_file_are_refused_when_wrong(tmp_path):
  with open(os.path.join(suites.suite_dir(), "tab21.json"), encoding="utf-8") as f:
    record = json.load(f)
  shipped = suites.load_suite("tab21")
  assert shipped.run("t21_4bit_clip_0.025").paper_row == (4, "CLIPPING 0.025")
  paper = shipped.tables[0]["paper"]
  assert len(paper.rows) == 25 and paper.rerr((8, "CLIPPING 0.025"), 20) == 32.68
  assert paper.rerr((8, "CLIPPING 0.025"), 2.5) is None
  # A monotone finding without runs checks every run of its table.
  assert shipped.tables[1]["findings"][-1]["runs"] == shipped.tables[1]["runs"]
  for edit, message in (
      (lambda r: r["tables"][0].update(paper="paper/nope.json"), "'paper/nope.json' is no file"),
      (lambda r: r["tables"][0].update(paper="../../setup.py"), "'../../setup.py' is no file"),
      (lambda r: r["runs"][2]["paper_row"].update(model="CLIPPING 0.2"),
       r"paper_row \(8, 'CLIPPING 0.2'\) .* does not hold"),
      (lambda r: r["runs"][2]["paper_row"].pop("model"), r"paper_row: missing field\(s\)"),
      (lambda r: r.update(rates=[1, 5, 10, 12.5, 15, 20]),
       r"the paper's rates \[17.5\] % are not among the suite's rates"),
      (lambda r: [t.pop("paper") for t in r["tables"]], "names a paper_row, but no table"),
      (lambda r: r["tables"][0]["findings"][-1].update(runs=["nope"]), "'nope' is named"),
      (lambda r: r["tables"][0]["findings"][-1].update(runs=[]), "a monotone claim needs runs"),
      (lambda r: r["tables"][0]["findings"][-1].update(run="t21_normal"),
       r"unknown field\(s\) \['run'\]"),
      (lambda r: r["tables"][0]["findings"][-1].update(kind="monotonic"),
       "kind must be 'collapse' or 'monotone'")):
    broken = json.loads(json.dumps(record))
    edit(broken)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=message):
      suites.load_suite(str(path))


def test_a_damaged_paper_file_is_refused_naming_the_row(tmp_path, monkeypatch):
  monkeypatch.setattr(suites, "suite_dir", lambda: str(tmp_path))
  row = {"precision": 8, "model": "M", "paper_label": "M", "err": 0.4, "rerr": [1.0, 2.0]}
  good = {"source": "S", "columns": "C", "rates_percent": [1, 5], "note": "N", "rows": [row]}
  for rows, message in (([dict(row, rerr=[1.0])], r"rows\[0\]: err and rerr must be"),
                        ([dict(row, err=150)], r"rows\[0\]: err and rerr must be"),
                        ([row, row], r"rows\[1\]: the row \(8, 'M'\) .* is repeated"),
                        ([dict(row, err="0.4")], "'err' has the wrong type")):
    (tmp_path / "paper.json").write_text(json.dumps(dict(good, rows=rows)))
    with pytest.raises(ValueError, match=message):
      suites.load_paper("paper.json")
  (tmp_path / "paper.json").write_text(json.dumps(good))
  assert suites.load_paper("paper.json").rows == {(8, "M"): (0.4, (1.0, 2.0))}
  # A confidence column (Tab. 2): two percentages per row, at the file's confidence rate.
  for record, message in (
      (dict(good, rows=[dict(row, confidence=[90, 80])]),
       "rows\\[0\\]: a confidence needs the file's confidence_rate_percent"),
      (dict(good, confidence_rate_percent=1), r"rows\[0\]: missing field\(s\) \['confidence'\]"),
      (dict(good, confidence_rate_percent=1, rows=[dict(row, confidence=[90, 80, 70])]),
       r"rows\[0\]: err and rerr must be .* and so must a confidence"),
      (dict(good, confidence_rate_percent=75, rows=[dict(row, confidence=[90, 80])]),
       r"confidence_rate_percent must be a percentage in \(0, 50\], got 75")):
    (tmp_path / "paper.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=message):
      suites.load_paper("paper.json")
  (tmp_path / "paper.json").write_text(json.dumps(
      dict(good, confidence_rate_percent=1, rows=[dict(row, confidence=[90, 80])])))
  paper = suites.load_paper("paper.json")
  assert (paper.confidence_rate, paper.confidence) == (1.0, {(8, "M"): (90.0, 80.0)})


def test_the_energy_headline_table_reads_the_bisection_files_and_the_papers_table(
    tab21, tmp_path):
  from tfbet import budget  # pylint: disable=g-import-not-at-top
  from tfbet import energy  # pylint: disable=g-import-not-at-top
  suite, output_dir, written = tab21
  reference = np.mean([r.clean_error for r in written["t21_normal"]])
  answers = {}
  for name in ("t21_normal", "t21_clip_0.025", "t21_randbet_0.05_p20"):
    results = written[name][0]
    run_dir = suite.run(name).directory(str(output_dir), 0)
    for points in suite.headline.budgets:  # as bin/bisect_rate writes them
      found = budget.interpolated_budget(budget.rate_statistics(results), points / 100,
                                         reference_error=reference)
      answers[(name, points)] = found
      record = results.to_dict()
      record["metadata"] = {"bisection": found.to_dict()}
      evaluation.Results.from_dict(record).to_json(
          os.path.join(run_dir, suite.headline.file_name(points)))
  report = tmp_path / "docs" / "tab21.md"
  reproduction_report.write_report(suite, str(output_dir), str(report))
  text = report.read_text()
  section = text[text.index("## Energy headline"):text.index("How to read")]
  assert f"NORMAL's clean Err ({100 * reference:.2f} %, its one seed)" in section
  assert (tmp_path / "docs" / "figures" / "tab21_energy.png").read_bytes()[:4] == b"\x89PNG"
  clip = next(line for line in section.splitlines() if line.startswith("| CLIPPING 0.025 |"))
  one = answers[("t21_clip_0.025", 1)]
  assert f"| {one.voltage:.3f} | {100 * energy.energy_saving(one.rate):.1f} |" in clip
  # The paper's row: Err 0.43, RErr 0.43 at 1 % ... ; NORMAL's Err 0.39, so 1 point allows 1.39:
  # numpy's interpolation of the paper's RErr against p finds the same rate.
  paper = suite.tables[0]["paper"]
  rates = np.array((0,) + paper.rates)
  rerr = np.array((paper.rows[(8, "CLIPPING 0.025")][0],) + paper.rows[(8, "CLIPPING 0.025")][1])
  first = int(np.argmax(rerr > 1.39))
  p = np.interp(1.39, rerr[first - 1:first + 1], rates[first - 1:first + 1])
  assert f"≈ {p:.3g} % → {100 * energy.energy_saving(p / 100):.0f} %" in clip
  assert "| RANDBET 0.05, p = 20 |" in section
  # The most saved at each budget: every model that saves as much, a lower bound marked as one.
  labels = {"t21_normal": "NORMAL", "t21_clip_0.025": "CLIPPING 0.025",
            "t21_randbet_0.05_p20": "RANDBET 0.05, p = 20"}
  parts = []
  for points in suite.headline.budgets:
    most = max(answers[(name, points)].energy_saving for name in labels)
    names = [labels[n] for n in labels if answers[(n, points)].energy_saving == most]
    item = next(answers[(n, points)] for n in labels
                if answers[(n, points)].energy_saving == most)
    rate = (f"p ≥ {100 * item.rate:.3g} % (the highest rate measured), at least "
            if item.how == "at least" else f"p = {100 * item.rate:.3g} %, ")
    parts.append(f"within {points:g} point{'' if points == 1 else 's'}, {' / '.join(names)}: "
                 f"{rate}{100 * most:.1f} % saved")
  assert "Most energy saved: " + "; ".join(parts) + "." in section
  assert "CLIPPING 0.1 |" not in section  # runs without headline files are left out
  # A headline file of another model (copied from another run's directory) is refused.
  clip_dir = suite.run("t21_clip_0.025").directory(str(output_dir), 0)
  name = suite.headline.file_name(suite.headline.budgets[0])
  shutil.copy(os.path.join(suite.run("t21_normal").directory(str(output_dir), 0), name),
              os.path.join(clip_dir, name))
  with pytest.raises(ValueError, match=f"{name} was measured on another model or test set "
                     "than .*t21_clip_0.025/seed0/eval_random.json; remove it to bisect again"):
    reproduction_report.write_report(suite, str(output_dir), str(report))
