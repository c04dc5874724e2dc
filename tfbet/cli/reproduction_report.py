"""Renders a reproduction suite's report (Markdown + figures) from its runs' JSON files.

Every number, verdict and sentence that states a result is computed here from the files that
``tfbet.cli.reproduce_lib.run_suite`` wrote; the claims checked and the tables come from the
suite file (``gin/suites/<name>.json``, ``"tables"``). Comparisons are paired over chips and test
examples and account for training seeds (:mod:`tfbet.paired`).
"""
import datetime
import math
import os

from absl import logging
import numpy as np

from tfbet import evaluation
from tfbet import files
from tfbet import paired
from tfbet import plots
from tfbet.cli import gin_utils
from tfbet.cli import reporting
from tfbet.cli import suites as reproduce_lib
from tfbet.cli import training_job as train_lib

# Only rates where at least one of two models keeps RErr below this can tell them apart.
INFORMATIVE_RERR = 0.5
# The quality bar of the recipe: RANDBET's clean error at most this far above CLIPPING's.
QUALITY_BAR = 0.002


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
      reproduce_lib.check_finished_run(suite, run, seed, run_dir)
      entry = {"result": train_lib.read_result(result_path),
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


def _random(loaded, name):
  seeds = loaded.get(name, {})
  return [seeds[s]["random"] for s in sorted(seeds)], sorted(seeds)


def _rates(suite):
  return [r / 100 for r in suite.rates]


def _summary_at(results, rate):
  """The ConditionSummary of ``results`` at ``rate`` (fraction), or None if not evaluated."""
  return {round(s.condition, 10): s for s in results.summary()}.get(round(rate, 10))


def model_mean(loaded, name, rate):
  """Mean RErr over seeds and chips of a run at a rate (fraction), or None."""
  summaries = [_summary_at(item, rate) for item in _random(loaded, name)[0]]
  if not summaries or any(s is None for s in summaries):
    return None
  return float(np.mean([s.mean for s in summaries]))


def _clean_errors(loaded, name):
  return np.array([loaded[name][s]["random"].clean_error for s in sorted(loaded[name])])


def _fmt_pm(mean, std, digits=2):
  return f"{100 * mean:.{digits}f} ± {100 * std:.{digits}f}"


def rate_table(suite, loaded, names):
  """Markdown: Err (mean ± std over seeds) and RErr per rate (mean ± std over chips)."""
  labels = {r.name: r.label for r in suite.runs}
  rates = _rates(suite)
  lines = ["| Model | seeds | Err in % | " + " | ".join(f"p={r:g} %" for r in suite.rates) + " |",
           "|---|---|---|" + "---|" * len(rates)]
  for name in names:
    if name not in loaded:
      continue
    results, seeds = _random(loaded, name)
    clean = _clean_errors(loaded, name)
    err = _fmt_pm(clean.mean(), clean.std(ddof=1)) if len(clean) > 1 else f"{100 * clean[0]:.2f}"
    cells = []
    for rate in rates:
      summaries = [_summary_at(r, rate) for r in results]
      if any(s is None for s in summaries):
        cells.append("–")
      else:
        cells.append(_fmt_pm(np.mean([s.mean for s in summaries]),
                             np.mean([s.std for s in summaries])))
    lines.append(f"| {labels[name]} | {len(seeds)} | {err} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def pooled_seed_std(suite, loaded, rate, metric):
  """Spread over seeds of one model, pooled over the runs trained with several seeds."""
  variances = []
  for run in suite.runs:
    results, _ = _random(loaded, run.name)
    if len(results) > 1:
      try:
        variances.append(paired.seed_spread(results, rate, metric) ** 2)
      except ValueError:
        continue
  return math.sqrt(float(np.mean(variances))) if variances else None


def compare_runs(suite, loaded, better, worse, rate, metric="rerr"):
  """paired.Comparison of run ``better`` (A) with ``worse`` (B), or None if not evaluated."""
  results_a, seeds_a = _random(loaded, better)
  results_b, seeds_b = _random(loaded, worse)
  if not results_a or not results_b:
    return None
  if model_mean(loaded, better, rate) is None or model_mean(loaded, worse, rate) is None:
    return None
  seed_std = None
  if len(results_a) == 1 or len(results_b) == 1:
    seed_std = pooled_seed_std(suite, loaded, rate, metric)
  return paired.compare(results_a, results_b, rate, metric=metric, seeds_a=seeds_a,
                        seeds_b=seeds_b, seed_std=seed_std)


def _noise_text(comparison):
  parts = [f"{source} {100 * value:.2f}" for source, value in comparison.components().items()]
  text = "s.e. in points: " + ", ".join(parts)
  if comparison.seed_std_assumed:
    text += (" (the seed spread of the rows trained with several seeds assumed for a run trained"
             " once)")
  if comparison.unmeasured():
    text += f"; not measured: {', '.join(comparison.unmeasured())}"
  return text


# The noise sources of tfbet.paired as the verdicts name them.
_NOISE = {"chips": "chip", "test set": "test-set", "seeds": "seed"}


def _verdict_text(comparison):
  if comparison.verdict == "not resolved":
    return f"not resolved (limited by {_NOISE[comparison.limited_by]} noise)"
  return comparison.verdict


def finding_lines(suite, loaded, finding):
  """(overall verdict or None, [Markdown lines]) of one claim over the informative rates.

  At each rate the claim is judged on RErr and on the drop RErr - Err (:func:`combined_verdict`),
  so a difference that clean accuracy alone could explain is never reported as more robustness;
  :func:`claim_verdict` joins the rates.
  """
  better, worse = finding["better"], finding["worse"]
  if better not in loaded or worse not in loaded:
    return None, []
  min_rate = finding.get("min_rate", 0)
  lines, per_rate, seeds_unmeasured = [], [], False
  for rate in _rates(suite):
    if rate * 100 < min_rate:
      continue
    rerr = compare_runs(suite, loaded, better, worse, rate, "rerr")
    if rerr is None or min(rerr.mean_a, rerr.mean_b) >= INFORMATIVE_RERR:
      continue
    drop = compare_runs(suite, loaded, better, worse, rate, "drop")
    verdict = combined_verdict(rerr.verdict, drop.verdict, rerr.limited_by)
    per_rate.append((rate, verdict, rerr.limited_by))
    seeds_unmeasured = seeds_unmeasured or "seeds" in rerr.unmeasured()
    shown_a, shown_b = model_mean(loaded, better, rate), model_mean(loaded, worse, rate)
    lines.append(  # RErr as in the tables (the same number, rounded the same way)
        f"  - p = {100 * rate:g} %: RErr {100 * shown_a:.2f} vs {100 * shown_b:.2f} %, "
        f"difference {100 * rerr.difference:+.2f} ± {100 * rerr.margin:.2f} points (2 s.e.) → "
        f"{_verdict_text(rerr)}; drop RErr − Err {100 * drop.difference:+.2f} ± "
        f"{100 * drop.margin:.2f} → {_verdict_text(drop)}; together: **{verdict}**. "
        f"{_noise_text(rerr)}.")
  if not per_rate:
    return "not informative", [f"- {finding['claim']}: no rate of the grid is informative "
                               "(both models above 50 % RErr, or not evaluated)."]
  overall = claim_verdict(per_rate)
  if seeds_unmeasured:
    overall += " (seed noise not measured: a model trained once, no multi-seed rows yet)"
  return overall, [f"- {finding['claim']}: **{overall}**"] + lines


def collapse_lines(suite, loaded, finding):
  """(overall verdict or None, [Markdown lines]) of a claim that one run collapses to chance.

  Tab. 1 reports 4-bit models whose RErr is near chance (90 %) already at p = 0.05 %. At each
  rate up to ``max_rate`` (in %) the run's RErr (mean over seeds and chips) is held against the
  50 % of :data:`INFORMATIVE_RERR`, with twice its standard error (chips and seeds; the pooled
  seed spread of the multi-seed rows when the run was trained once): *holds* above, *does not
  hold* below, *not resolved* in between.
  """
  name = finding["run"]
  if name not in loaded:
    return None, []
  results, _ = _random(loaded, name)
  lines, kinds = [], {}
  for rate in _rates(suite):
    if rate * 100 > finding["max_rate"]:
      continue
    summaries = [_summary_at(r, rate) for r in results]
    if any(s is None for s in summaries):
      continue
    k = len(summaries)
    mean = float(np.mean([s.mean for s in summaries]))
    chip_var = float(np.mean([s.std ** 2 / s.num_chips for s in summaries])) / k
    if k > 1:
      seed_std, assumed = float(np.std([s.mean for s in summaries], ddof=1)), ""
    else:
      seed_std = pooled_seed_std(suite, loaded, rate, "rerr")
      assumed = "; the seed spread pooled from the multi-seed rows"
      if seed_std is None:
        seed_std, assumed = 0.0, "; seed noise not measured: no row has several seeds"
    margin = 2 * math.sqrt(chip_var + seed_std ** 2 / k)
    if mean - margin >= INFORMATIVE_RERR:
      kind = "holds"
    elif mean + margin < INFORMATIVE_RERR:
      kind = "does not hold"
    else:
      kind = "not resolved"
    kinds.setdefault(kind, []).append(rate)
    lines.append(f"  - p = {100 * rate:g} %: RErr {100 * mean:.2f} ± {100 * margin:.2f} % "
                 f"(2 s.e. of chips and seeds{assumed}) against {100 * INFORMATIVE_RERR:g} % "
                 f"→ **{kind}**.")
  if not lines:
    return None, []
  overall = "; ".join(f"{kind} at p = {', '.join(f'{100 * r:g}' for r in rates)} %"
                      for kind, rates in kinds.items())
  if len(kinds) > 1:
    overall = f"mixed ({overall})"
  return overall, [f"- {finding['claim']}: **{overall}**"] + lines


def claim_verdict(per_rate):
  """One verdict of a claim from its (rate, combined verdict, limiting noise) per rate.

  Names every rate: where the claim holds, where it is reversed or split (then the verdict is
  *mixed*), and where it is not resolved, so a claim that holds at one rate of six never reads
  as holding everywhere.
  """
  rates, explanations = {}, {}
  for rate, verdict, _ in per_rate:
    kind, _, explanation = verdict.partition(" (")
    rates.setdefault(kind, []).append(rate)
    explanations.setdefault(kind, f" ({explanation}" if explanation else "")

  def at(kind):
    return f"{kind} at p = {', '.join(f'{100 * r:g}' for r in rates[kind])} %"

  resolved = [kind for kind in rates if kind != "not resolved"]
  if not resolved:
    limits = [limit for _, _, limit in per_rate]
    # The most frequent limit; a tie goes to the one met first (a set's order varies by run).
    return (f"not resolved at any rate (limited by {_NOISE[max(limits, key=limits.count)]} "
            "noise)")
  if len({kind.split(" on ")[0] for kind in resolved}) == 1:
    # One direction (e.g. holds, and holds on RErr only): the plain verdict first.
    resolved.sort(key=len)
    text = "; ".join(at(kind) + explanations[kind] for kind in resolved)
  else:
    text = f"mixed ({'; '.join(at(kind) for kind in resolved)})"
  if "not resolved" in rates:
    text += f"; {at('not resolved')}"
  return text


# combined_verdict's answers when RErr and the drop point opposite ways. RErr is what the
# paper reports; the drop says whether a difference in RErr is robustness or only clean accuracy.
_SPLIT = {
    ("reversed", "holds"): "split (A loses less to bit errors but its RErr is higher: "
                           "clean accuracy decides)",
    ("holds", "reversed"): "split (A's RErr is lower only through clean accuracy: it loses "
                           "more to bit errors)",
}


def combined_verdict(rerr, drop, limited_by):
  """Joins the verdicts (holds, reversed, not resolved) on RErr and on the drop at one rate."""
  if rerr == drop:
    if rerr == "not resolved":
      return f"not resolved (limited by {_NOISE[limited_by]} noise)"
    return rerr
  if drop == "not resolved":
    return f"{rerr} on RErr only (the drop is not resolved: clean accuracy may explain it)"
  if rerr == "not resolved":
    return f"{drop} on the drop only (RErr not resolved)"
  return _SPLIT[(rerr, drop)]


# The summary's categories, in its order: a claim is listed under the first one its verdict
# starts with (so the qualified "holds on ..." come before plain "holds").
SUMMARY_CATEGORIES = ("holds on RErr only", "holds on the drop only", "holds",
                      "reversed on RErr only", "reversed on the drop only", "reversed",
                      "does not hold", "split", "mixed", "not resolved", "not informative")


def _last_epoch_train_errors(loaded, name):
  """Clean training error of the last epoch per seed (from the training history), or None."""
  values = [(loaded[name][s]["result"].get("history") or {}).get("error")
            for s in sorted(loaded[name])]
  return None if any(not v for v in values) else np.array([v[-1] for v in values])


def _clean_seed_var(suite, loaded, errors):
  """Variance over seeds of one model's clean Err: its own, or pooled over the multi-seed rows."""
  if len(errors) > 1:
    return float(np.var(errors, ddof=1))
  pooled = [np.var(_clean_errors(loaded, run.name), ddof=1) for run in suite.runs
            if run.name in loaded and len(loaded[run.name]) > 1]
  return float(np.mean(pooled)) if pooled else None  # no seed spread measured anywhere


def quality_bar_lines(suite, loaded):
  """RANDBET's clean Err against CLIPPING's at the same w_max (the recipe's quality bar).

  A pair that misses the bar gets the same gap on the training set next to it: a gap there too
  means RANDBET fits the training data less well, none means it generalizes worse.
  """
  lines = []
  labels = {r.name: r.label for r in suite.runs}
  for randbet, clipping in suite.quality_pairs:
    if randbet not in loaded or clipping not in loaded:
      continue
    a, b = _clean_errors(loaded, randbet), _clean_errors(loaded, clipping)
    gap = a.mean() - b.mean()
    met = "meets" if gap <= QUALITY_BAR else "misses"
    variances = [_clean_seed_var(suite, loaded, errors) for errors in (a, b)]
    if None in variances:
      noise, near = " (seed spread not measured: no row has several seeds)", ""
    else:
      margin = 2 * math.sqrt(variances[0] / len(a) + variances[1] / len(b))
      pooled = ("; pooled from the multi-seed rows for a run trained once"
                if min(len(a), len(b)) == 1 else "")
      noise = f" ± {100 * margin:.2f} points (2 s.e. of the seed spread{pooled})"
      near = "" if abs(gap - QUALITY_BAR) > margin else " (within noise of it)"
    line = (f"- {labels[randbet]}: clean Err {100 * a.mean():.2f} % vs {labels[clipping]} "
            f"{100 * b.mean():.2f} % (means over {len(a)} and {len(b)} seeds): "
            f"{100 * gap:+.2f}{noise}, **{met}** the bar of +{100 * QUALITY_BAR:.1f} on the "
            f"means{near}.")
    train_a, train_b = (_last_epoch_train_errors(loaded, n) for n in (randbet, clipping))
    if met == "misses" and train_a is not None and train_b is not None:
      train_gap = train_a.mean() - train_b.mean()
      cause = ("the gap is on the training set too: RANDBET fits the training data less well "
               "(not a generalization gap)" if train_gap >= gap / 2 else "the gap is not on "
               "the training set: RANDBET generalizes worse")
      line += (f" Training error in the last epoch (clean weights): {100 * train_a.mean():.2f} "
               f"vs {100 * train_b.mean():.2f} % ({100 * train_gap:+.2f} points): {cause}.")
    lines.append(line)
  return lines


def pattern_lines(suite, loaded):
  """Tab. 3: the PATTBET run on lower rates of its own pattern (one chip: test noise only)."""
  name = suite.pattern_run
  if name not in loaded:
    return []
  entries = [loaded[name][s] for s in sorted(loaded[name]) if "pattern" in loaded[name][s]]
  if not entries:
    return []
  results = entries[0]["pattern"]
  lines = ["| p in % (its own pattern) | RErr in % | paired s.e. vs clean (test set) |",
           "|---|---|---|"]
  for rate in results.conditions:
    wrong = results.wrong_matrix(rate)[0, 0] if results.per_example else None
    error = results.rerr(results.chip_names[0], rate)
    if wrong is None:
      se = "–"
    else:
      change = wrong.astype(float) - results.clean_wrong
      se = f"{100 * np.std(change, ddof=1) / math.sqrt(results.n):.2f}"
    lines.append(f"| {100 * rate:g} | {100 * error:.2f} | {se} |")
  return lines


def pattern_claim(suite, loaded):
  """(verdict or None, [Markdown lines]): does PATTBET's RErr on its own pattern rise below
  its training rate (Tab. 3)? The masks are nested across rates, so a lower rate keeps a subset
  of the training errors. Each lower rate is paired over test examples with the training rate;
  one chip and one seed, so only test-set noise is measured."""
  name = suite.pattern_run
  if name not in loaded:
    return None, []  # not evaluated yet: the header lists the missing pairs
  seeds = sorted(s for s in loaded[name] if "pattern" in loaded[name][s])
  claim = ("PATTBET's RErr on its own pattern rises at rates below its training rate (Tab. 3, "
           "CIFAR10, trained at 2.5 %: RErr 7.87 % there, 14.14 % at p = 1 %)")
  if not seeds:
    return (claim, "not informative"), [
        f"- {claim}: **not informative** ({name} has no eval_pattern.json: evaluate it again)."]
  entry = loaded[name][seeds[0]]
  results = entry["pattern"]
  trained = entry["config"].get("BitErrorTrainer.pattern_condition", "not recorded")
  try:
    trained = float(trained)
  except ValueError:
    trained = None
  why = None
  if trained is None:
    why = "its operative config records no numeric BitErrorTrainer.pattern_condition"
  elif round(trained, 10) not in {round(c, 10) for c in results.conditions}:
    why = f"its training rate {100 * trained:g} % is not among the evaluated rates"
  elif not results.per_example:
    why = "its evaluation on the pattern has no per-example results"
  trained_text = "" if trained is None else f"p = {100 * trained:g} %; "
  claim = ("PATTBET's RErr on its own pattern rises at rates below its training rate "
           f"({trained_text}Tab. 3, CIFAR10, trained at 2.5 %: RErr 7.87 % there, 14.14 % at "
           "p = 1 %)")
  if why is not None:
    return (claim, "not informative"), [f"- {claim}: **not informative** ({why})."]
  at_training = results.wrong_matrix(trained)[0, 0].astype(float)
  per_rate, lines = [], []
  for rate in results.conditions:
    if rate >= trained:
      continue
    change = results.wrong_matrix(rate)[0, 0].astype(float) - at_training
    difference = float(change.mean())
    margin = 2 * float(np.std(change, ddof=1)) / math.sqrt(results.n)
    verdict = ("holds" if difference > margin else "reversed" if difference < -margin
               else "not resolved")
    per_rate.append((rate, verdict if verdict != "not resolved" else
                     "not resolved (limited by test-set noise)", "test set"))
    lines.append(f"  - p = {100 * rate:g} %: RErr {100 * (at_training.mean() + difference):.2f} "
                 f"vs {100 * at_training.mean():.2f} % at its training rate, difference "
                 f"{100 * difference:+.2f} ± {100 * margin:.2f} points (2 s.e., test set; one "
                 f"chip, one seed) → {verdict}.")
  if not per_rate:
    return (claim, "not informative"), [
        f"- {claim}: **not informative** (no evaluated rate below the training rate)."]
  overall = claim_verdict(per_rate)
  return (claim, overall), [f"- {claim}: **{overall}**"] + lines


def _rate_axes():
  """A new figure with RErr against the bit error rate, both on log scales (RErr spans about
  0.5 to 90 %: on a linear axis every robust model sits on one line near the clean error)."""
  fig = plots.new_figure((6, 4))
  ax = fig.add_subplot()
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("bit error rate p in %")
  ax.grid(alpha=0.3)
  return fig, ax


def _footer(fig, suite, loaded, names):
  """Names the schemes and coverage the plotted runs were measured with, one line each."""
  labels = {r.name: r.label for r in suite.runs}
  described = {}
  for name in names:
    for entry in loaded.get(name, {}).values():
      if "random" in entry:
        described.setdefault(plots.describe_measurement(entry["random"].model), []).append(
            labels.get(name, name))
  lines = [f"{'all runs' if len(described) == 1 else ', '.join(dict.fromkeys(runs))}: {text}"
           for text, runs in described.items()]
  plots.add_footer(fig, lines or ["scheme and coverage not recorded"])


def _save(fig, ax, path, ylabel):
  ax.set_ylabel(ylabel)
  ax.legend(fontsize=8)
  files.save_figure(fig, path)


def _curve(suite, loaded, name):
  """(p in %, mean RErr in %) of a run over the suite's rates it was evaluated at."""
  points = [(r, model_mean(loaded, name, r / 100)) for r in suite.rates]
  points = [(r, 100 * m) for r, m in points if m is not None]
  return tuple(np.array(v) for v in zip(*points)) if points else (np.array([]), np.array([]))


def plot_curves(suite, loaded, path, names):
  """RErr against p for several models (Fig. 2 style), means over seeds and chips."""
  fig, ax = _rate_axes()
  labels = {r.name: r.label for r in suite.runs}
  for name in names:
    if name in loaded:
      p, mean = _curve(suite, loaded, name)
      ax.plot(p, mean, "o-", label=labels[name])
  _footer(fig, suite, loaded, names)
  _save(fig, ax, path, "RErr in %")


def plot_best(suite, loaded, path, families):
  """Lowest mean RErr per rate within each method family (Fig. 7 style)."""
  fig, ax = _rate_axes()
  for name in loaded:
    p, mean = _curve(suite, loaded, name)
    ax.plot(p, mean, "-", color="0.8", lw=0.8)
  for label, names in families.items():
    best = []
    for rate in suite.rates:
      values = [m for m in (model_mean(loaded, n, rate / 100) for n in names) if m is not None]
      if values:
        best.append((rate, 100 * min(values)))
    if best:
      ax.plot(*zip(*best), "o-", label=label)
  _footer(fig, suite, loaded, list(loaded))
  _save(fig, ax, path, "best RErr in % (per method family)")


def _profiled_lines(suite, loaded):
  labels = {r.name: r.label for r in suite.runs}
  lines = []
  for name in suite.profiled_runs:
    seeds = loaded.get(name, {})
    chips = [seeds[s]["chips"] for s in sorted(seeds) if "chips" in seeds[s]]
    if chips:
      lines += [f"**{labels[name]}** (seed {sorted(seeds)[0]})", "", "```",
                reporting.voltages_table(chips[0]), "```", ""]
  return lines


def scale_text(suite, loaded):
  """What was trained and evaluated, from the runs' files: pairs done (and the ones still
  missing, whose rows and claims are left out), weights, epochs, training set, chips, time."""
  runs_done = sum(len(seeds) for seeds in loaded.values())
  runs_total = sum(len(run.seeds) for run in suite.runs)
  entries = [(name, e) for name, seeds in loaded.items() for e in seeds.values()]
  counts = sorted({e["result"]["num_weights"] for _, e in entries})
  epochs = {}
  for name, e in entries:
    count = len((e["result"].get("history") or {}).get("loss", []))
    epochs.setdefault(count or "not recorded", set()).add(name)
  usual = max(epochs, key=lambda k: len(epochs[k]))
  epoch_text = f"{usual} epochs" + "".join(
      f" ({k} for {', '.join(sorted(names))})" for k, names in
      sorted(epochs.items(), key=lambda item: str(item[0])) if k != usual)
  limits = {e["config"].get("load_data.train_limit", "not recorded") for _, e in entries}
  train_text = " / ".join(
      "the whole training set" if v == "None" else "a training set of unrecorded size"
      if v == "not recorded" else f"{v} training images" for v in sorted(limits))
  any_results = entries[0][1]["random"]
  chip_counts = sorted({len(e["random"].chip_names) for _, e in entries})
  chip_names = {c for _, e in entries for c in e["random"].chip_names}
  seeds = sorted(int(c.rsplit("_", 1)[-1]) for c in chip_names
                 if c.rsplit("_", 1)[-1].isdigit())
  chip_text = (f"chip seeds {seeds[0]}-{seeds[-1]}" if len(seeds) == len(chip_names) else
               "chips " + ", ".join(sorted(chip_names)))
  timed = [e["result"]["train_seconds"] for _, e in entries
           if e["result"].get("train_seconds") is not None]
  if timed:
    untimed = (f"; unknown for {len(entries) - len(timed)} runs, which recorded none"
               if len(timed) < len(entries) else "")
    time_text = f"{sum(timed) / 3600:.2f} h in all (evaluation not counted{untimed})"
  else:
    time_text = "unknown (no run recorded it)"
  text = (f"Trained and evaluated: {runs_done} of {runs_total} (run, seed) pairs; "
          f"{' / '.join(f'{c:,}' for c in counts)} quantized weights; {epoch_text} on "
          f"{train_text}; n = {any_results.n} test examples; "
          f"{' / '.join(map(str, chip_counts))} random chips per rate ({chip_text}); training "
          f"time of these runs, as each measured it: {time_text}.")
  missing = [f"{run.name} seed {seed}" for run in suite.runs for seed in run.seeds
             if seed not in loaded.get(run.name, {})]
  if missing:
    text += (f" Not evaluated yet, so left out of every table, claim and figure: "
             f"{', '.join(missing)}.")
  return text


def _operative_config(run_dir):
  """{binding: value text} of a run's operative_config.gin, in today's binding names (runs
  trained before the rename included); {} when the file is missing or not a gin config."""
  path = os.path.join(run_dir, "operative_config.gin")
  if not os.path.exists(path):
    return {}
  with open(path, encoding="utf-8") as f:
    lines = gin_utils.migrate_bindings(f.read().splitlines())
  return gin_utils.config_bindings("\n".join(lines)) or {}


def write_report(suite, output_dir, report_path):
  """Renders the report (and its figures next to it) from the runs' JSON files.

  Refuses (ValueError) when ``output_dir`` holds no evaluated run of the suite, so a wrong
  directory never replaces a report with an empty one. Report and figures are written
  atomically.
  """
  if not os.path.isdir(output_dir):
    raise ValueError(f"output_dir {output_dir!r} does not exist; nothing to report, so "
                     f"{report_path!r} is left as it is")
  loaded = load_results(suite, output_dir)
  if not loaded:
    raise ValueError(f"{output_dir!r} holds no evaluated run of suite {suite.name!r} (expected "
                     f"<run>/seed<k>/eval_random.json for runs like {suite.runs[0].name!r}); "
                     f"nothing to report, so {report_path!r} is left as it is")
  figure_dir = os.path.join(os.path.dirname(report_path), "figures")
  os.makedirs(figure_dir, exist_ok=True)
  sections, summary = [], []
  for table in suite.tables:
    names = [n for n in table["runs"] if n in loaded]
    if not names:
      continue
    sections += [f"## {table['title']}", "", rate_table(suite, loaded, table["runs"]), ""]
    if table.get("pattern") and pattern_lines(suite, loaded):
      sections += [f"{suite.pattern_run} on its own pattern (one chip, the pattern seed):", ""]
      sections += pattern_lines(suite, loaded) + [""]
    claim_lines = []
    if table.get("pattern"):
      verdict, lines = pattern_claim(suite, loaded)
      if verdict is not None:
        claim_lines += lines
        summary.append(verdict)
    for finding in table.get("findings", ()):
      judge = collapse_lines if finding.get("kind") == "collapse" else finding_lines
      overall, lines = judge(suite, loaded, finding)
      if overall is not None:
        claim_lines += lines
        summary.append((finding["claim"], overall))
    if claim_lines:
      sections += ["Claims of the paper, checked (paired over chips and test examples; each "
                   "line: A − B with A the model the paper finds more robust):", ""]
      sections += claim_lines + [""]
  curves = os.path.join(figure_dir, f"{suite.name}_fig2.png")
  best = os.path.join(figure_dir, f"{suite.name}_fig7.png")
  plot_curves(suite, loaded, curves, suite.figure_runs)
  plot_best(suite, loaded, best, suite.figure_families)
  out = [f"# Reproduction: suite `{suite.name}`", "",
         f"Generated by `bin/reproduce --suite={suite.name}` on "
         f"{datetime.date.today().isoformat()} from `{output_dir}`: every number and verdict is "
         f"computed from the runs' JSON files. {suite.description}", "",
         scale_text(suite, loaded), "",
         "## Summary", ""]
  categories = {}
  for claim, overall in summary:
    category = next(c for c in SUMMARY_CATEGORIES if overall.startswith(c))
    categories.setdefault(category, []).append((claim, overall))
  for category in SUMMARY_CATEGORIES:
    if category in categories:
      out += [f"- **{category}**:"] + [f"  - {claim}: {overall}"
                                       for claim, overall in categories[category]]
  quality = quality_bar_lines(suite, loaded)
  if quality:
    out += ["", "Recipe quality bar (RANDBET's clean Err at most "
            f"{100 * QUALITY_BAR:.1f} points above CLIPPING's at the same w_max):", ""] + quality
  out += ["", "How to read the verdicts: at each rate, model A (the one the paper finds more "
          "robust) is compared with B on RErr and on the drop RErr − Err, each paired over the "
          "same chips and test examples. A difference is resolved when it exceeds twice its "
          "standard error, which adds the chip-to-chip, test-set (per-example) and "
          "training-seed noise; otherwise it is *not resolved* and the largest noise source is "
          "named. A claim *holds* when A is better on both metrics; *holds on RErr only* when "
          "the drop does not resolve, so A's clean accuracy may be all of its advantage; "
          "*split* when the two metrics point opposite ways. A claim's verdict names the rates of "
          "each outcome; it is *mixed* when they point opposite ways. Models trained with the "
          "same seeds are paired seed by seed; a model trained once borrows the seed spread "
          "pooled over all rows trained with several seeds (shown as \"seeds\" in its noise "
          "line), which is conservative where RErr is low and that pool is dominated by "
          "mid-range rows. Twice the standard error is a normal approximation (with 3 seeds "
          "its coverage is below 95 %), and rates are not corrected for being several. Rates "
          "where both models exceed 50 % RErr are left out. A collapse claim (Tab. 1) *holds* "
          "when the run's RErr is above 50 % by more than twice its standard error and *does "
          "not hold* when it is below by as much. Cells: RErr mean over seeds and chips ± the "
          "std over chips; Err ± the std over seeds.", ""]
  out += sections
  profiled = _profiled_lines(suite, loaded)
  if profiled:
    out += ["## Tab. 5 / Tab. 15 — simulated profiled chips (App. C.1 presets)", ""] + profiled
  out += ["## Figures", "", f"![RErr against p](figures/{os.path.basename(curves)})", "",
          f"![Best RErr per method family](figures/{os.path.basename(best)})", ""]
  files.write_text(report_path, "\n".join(out))
  logging.info("report written to %s", report_path)
  return report_path
