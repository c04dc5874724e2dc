"""A reproduction suite's results: its runs' JSON files read into one mapping, and its numbers.

``load_results`` reads what ``tfbet.cli.suite_jobs.run_suite`` wrote, checked once here (each
run trained and evaluated as the suite says, all on one test set); the helpers below answer the
per-run numbers that the tables, claims and figures of the report share.
"""
import os

import numpy as np

from tfbet import evaluation
from tfbet.cli import gin_utils
from tfbet.cli import suites
from tfbet.cli import training_job


def load_results(suite, output_dir):
  """{run name: {seed: {"result", "random", "config", "pattern"?, "chips"?}}} of the evaluated
  seeds; "config" holds the run's operative gin bindings ({} when not recorded)."""
  loaded = {}
  for run in suite.runs:
    seeds = {}
    for seed in run.seeds:
      run_dir = run.directory(output_dir, seed)
      random_path = os.path.join(run_dir, "eval_random.json")
      result_path = os.path.join(run_dir, "result.json")
      if not (os.path.exists(random_path) and os.path.exists(result_path)):
        continue
      # Trained and evaluated as the suite says (also for --report_only): a run of other
      # settings, or a rate missing from one seed, would otherwise pass unnoticed.
      suites.check_finished_run(suite, run, seed, run_dir)
      entry = {"result": training_job.read_result(result_path),
               "random": evaluation.Results.from_json(random_path),
               "config": _operative_config(run_dir)}
      for key, name in (("pattern", "eval_pattern.json"), ("chips", "eval_chips.json")):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
          entry[key] = evaluation.Results.from_json(path)
      seeds[seed] = entry
    if seeds:
      loaded[run.name] = seeds
  _check_one_test_set(loaded)
  return loaded


def _check_one_test_set(loaded):
  """Refuses runs evaluated on different test sets: their comparisons would mean nothing."""
  runs = [(f"{name} seed {seed}", entry["random"]) for name, seeds in loaded.items()
          for seed, entry in seeds.items()]
  for label, results in runs[1:]:
    difference = evaluation.data_difference(results, runs[0][1], label, runs[0][0])
    if difference:
      raise ValueError(f"the runs were evaluated on different test sets: {label} and "
                       f"{runs[0][0]}: {difference}; evaluate them all the same way (bin/reproduce "
                       "evaluates a run again once its eval_*.json files are removed)")


def _operative_config(run_dir):
  """{binding: value text} of a run's operative_config.gin, in today's binding names (runs
  trained before the rename included); {} when the file is missing or not a gin config."""
  path = os.path.join(run_dir, "operative_config.gin")
  if not os.path.exists(path):
    return {}
  with open(path, encoding="utf-8") as f:
    lines = gin_utils.migrate_bindings(f.read().splitlines())
  return gin_utils.config_bindings("\n".join(lines)) or {}


def run_labels(suite):
  """{run name: its row label}."""
  return {r.name: r.label for r in suite.runs}


def rate_fractions(suite):
  """The suite's bit error rates as fractions (the suite file gives them in %)."""
  return [r / 100 for r in suite.rates]


def random_results(loaded, name):
  """(the random-chip results of a run, one per seed, and those seeds), in seed order."""
  seeds = loaded.get(name, {})
  return [seeds[s]["random"] for s in sorted(seeds)], sorted(seeds)


def summary_at(results, rate):
  """The ConditionSummary of ``results`` at ``rate`` (fraction), or None if not evaluated."""
  return {round(s.condition, 10): s for s in results.summary()}.get(round(rate, 10))


def model_mean(loaded, name, rate):
  """Mean RErr over seeds and chips of a run at a rate (fraction), or None."""
  summaries = [summary_at(item, rate) for item in random_results(loaded, name)[0]]
  if not summaries or any(s is None for s in summaries):
    return None
  return float(np.mean([s.mean for s in summaries]))


def clean_errors(loaded, name):
  """Clean Err of a run per seed, in seed order."""
  return np.array([loaded[name][s]["random"].clean_error for s in sorted(loaded[name])])
