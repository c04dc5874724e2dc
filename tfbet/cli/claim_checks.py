"""The paper's claims checked against a suite's results: one verdict and its lines per claim.

Four kinds of claim (the ``findings`` of a suite's tables, docs/design.md): model A is more
robust than B (:func:`finding_lines`, paired over chips and test examples with
:mod:`tfbet.paired`), a run collapses to chance (:func:`collapse_lines`), RErr rises with p for
every run of a table (:func:`monotone_lines`), and PATTBET's RErr on its own pattern rises below
its training rate (:func:`pattern_claim`). Each returns its verdict and the Markdown lines that
show how it was reached; :func:`check_finding` picks the check of a finding by its ``kind``, so a
new kind of claim is one function here plus its fields in the suite file's schema
(``tfbet.cli.suites``). Every verdict says when it rests on one rate and names the runs trained
once (:func:`with_caveats`), so a summary line never reads as more than its evidence.
"""
import math

import numpy as np

from tfbet import paired
from tfbet.cli import claim_verdicts
from tfbet.cli import suite_results

# Only rates where at least one of two models keeps RErr below this can tell them apart.
INFORMATIVE_RERR = 0.5


def pooled_seed_std(suite, loaded, rate, metric):
  """Spread over seeds of one model, pooled over the runs trained with several seeds."""
  variances = []
  for run in suite.runs:
    results, _ = suite_results.random_results(loaded, run.name)
    if len(results) > 1:
      try:
        variances.append(paired.seed_spread(results, rate, metric) ** 2)
      except ValueError:
        continue
  return math.sqrt(float(np.mean(variances))) if variances else None


def compare_runs(suite, loaded, better, worse, rate, metric="rerr"):
  """paired.Comparison of run ``better`` (A) with ``worse`` (B), or None if not evaluated."""
  results_a, seeds_a = suite_results.random_results(loaded, better)
  results_b, seeds_b = suite_results.random_results(loaded, worse)
  if not results_a or not results_b:
    return None
  if any(suite_results.model_mean(loaded, name, rate) is None for name in (better, worse)):
    return None
  seed_std = None
  if len(results_a) == 1 or len(results_b) == 1:
    seed_std = pooled_seed_std(suite, loaded, rate, metric)
  return paired.compare(results_a, results_b, rate, metric=metric, seeds_a=seeds_a,
                        seeds_b=seeds_b, seed_std=seed_std)


def with_caveats(suite, loaded, overall, names, rests_on, unit="rate"):
  """``overall`` followed by what it rests on where that is thin: one rate (``rests_on``: the
  rates, or steps, of its resolved outcomes, else of its checked ones) and the runs of
  ``names`` that were trained once (one evaluated seed)."""
  notes = [f"rests on one {unit}"] if len(rests_on) == 1 else []
  labels = suite_results.run_labels(suite)
  once = [labels[name] for name in dict.fromkeys(names) if len(loaded.get(name, {})) == 1]
  if once:
    notes.append(f"trained once: {' / '.join(once)}")
  return f"{overall} — {'; '.join(notes)}" if notes else overall


def _rests_on(per_rate):
  """The rates of (rate, verdict, ...) whose verdict is resolved, else all of them."""
  resolved = [item[0] for item in per_rate if not item[1].startswith("not resolved")]
  return resolved or [item[0] for item in per_rate]


def _noise_text(comparison):
  parts = [f"{source} {100 * value:.2f}" for source, value in comparison.components().items()]
  text = "s.e. in points: " + ", ".join(parts)
  if comparison.seed_std_assumed:
    text += (" (the seed spread of the rows trained with several seeds assumed for a run trained"
             " once)")
  if comparison.unmeasured():
    text += f"; not measured: {', '.join(comparison.unmeasured())}"
  return text


def _verdict_text(comparison):
  if comparison.verdict == "not resolved":
    return claim_verdicts.not_resolved(comparison.limited_by)
  return comparison.verdict


def finding_lines(suite, loaded, finding):
  """(overall verdict or None, [Markdown lines]) of one claim over the informative rates.

  At each rate the claim is judged on RErr and on the drop RErr - Err (``combined_verdict``
  of :mod:`tfbet.cli.claim_verdicts`), so a difference that clean accuracy alone could explain is
  never reported as more robustness; ``claim_verdict`` joins the rates.
  """
  better, worse = finding["better"], finding["worse"]
  if better not in loaded or worse not in loaded:
    return None, []
  min_rate = finding.get("min_rate", 0)
  lines, per_rate, seeds_unmeasured = [], [], False
  for rate in suite_results.rate_fractions(suite):
    if rate * 100 < min_rate:
      continue
    rerr = compare_runs(suite, loaded, better, worse, rate, "rerr")
    if rerr is None or min(rerr.mean_a, rerr.mean_b) >= INFORMATIVE_RERR:
      continue
    drop = compare_runs(suite, loaded, better, worse, rate, "drop")
    verdict = claim_verdicts.combined_verdict(rerr.verdict, drop.verdict, rerr.limited_by)
    per_rate.append((rate, verdict, rerr.limited_by))
    seeds_unmeasured = seeds_unmeasured or "seeds" in rerr.unmeasured()
    shown_a, shown_b = (suite_results.model_mean(loaded, name, rate) for name in (better, worse))
    lines.append(  # RErr as in the tables (the same number, rounded the same way)
        f"  - p = {100 * rate:g} %: RErr {100 * shown_a:.2f} vs {100 * shown_b:.2f} %, "
        f"difference {100 * rerr.difference:+.2f} ± {100 * rerr.margin:.2f} points (2 s.e.) → "
        f"{_verdict_text(rerr)}; drop RErr − Err {100 * drop.difference:+.2f} ± "
        f"{100 * drop.margin:.2f} → {_verdict_text(drop)}; together: **{verdict}**. "
        f"{_noise_text(rerr)}.")
  if not per_rate:
    return with_caveats(suite, loaded, "not informative", (better, worse), ()), [
        f"- {finding['claim']}: no rate of the grid is informative (both models above 50 % "
        "RErr, or not evaluated)."]
  overall = claim_verdicts.claim_verdict(per_rate)
  if seeds_unmeasured:
    overall += " (seed noise not measured: a model trained once, no multi-seed rows yet)"
  overall = with_caveats(suite, loaded, overall, (better, worse), _rests_on(per_rate))
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
  results, _ = suite_results.random_results(loaded, name)
  lines, kinds = [], {}
  for rate in suite_results.rate_fractions(suite):
    if rate * 100 > finding["max_rate"]:
      continue
    summaries = [suite_results.summary_at(r, rate) for r in results]
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
  overall = "; ".join(claim_verdicts.at_rates(kind, rates) for kind, rates in kinds.items())
  if len(kinds) > 1:
    overall = f"mixed ({overall})"
  resolved = [rate for kind, rates in kinds.items() if kind != "not resolved" for rate in rates]
  overall = with_caveats(suite, loaded, overall, (name,),
                         resolved or [rate for rates in kinds.values() for rate in rates])
  return overall, [f"- {finding['claim']}: **{overall}**"] + lines


def _rise(results, low, high):
  """(twice the standard error, the sources not measured) of one run's rise in RErr from rate
  ``low`` to ``high`` (fractions): paired over its chips and test examples, and over its seeds
  where it has several (a run trained once has no measured seed noise)."""
  chips = results[0].chip_names
  per_chip = np.array([[r.rerr(c, high) - r.rerr(c, low) for c in chips] for r in results])
  variances, unmeasured = [], []
  for source, values in (("chips", per_chip.mean(axis=0)), ("seeds", per_chip.mean(axis=1))):
    if len(values) > 1:
      variances.append(np.var(values, ddof=1) / len(values))
    else:
      unmeasured.append(source)
  if all(r.per_example for r in results):
    per_example = np.mean([r.wrong_matrix(high, chips).mean(axis=(0, 1))
                           - r.wrong_matrix(low, chips).mean(axis=(0, 1)) for r in results], axis=0)
    variances.append(np.var(per_example, ddof=1) / results[0].n)
  else:
    unmeasured.append("test set")
  return 2 * math.sqrt(float(sum(variances))), unmeasured


def monotone_lines(suite, loaded, finding):
  """(overall verdict or None, [Markdown lines]) of a claim that RErr rises with p for every run.

  Each run's mean RErr (over seeds and chips) is compared from each evaluated rate to the next:
  the step *rises* when the increase exceeds twice its standard error (:func:`_rise`), *falls*
  (the claim does not hold) when the decrease does, and is *not resolved* in between. Steps
  where both rates are at chance (RErr >= :data:`INFORMATIVE_RERR`) are left out: there RErr
  only wanders around 90 %.
  """
  names = [name for name in finding["runs"] if name in loaded]
  if not names:
    return None, []
  labels = suite_results.run_labels(suite)
  lines, steps, falls, at_chance = [], {}, [], 0
  for name in names:
    results, seeds = suite_results.random_results(loaded, name)
    rates = [rate for rate in suite_results.rate_fractions(suite)
             if suite_results.model_mean(loaded, name, rate) is not None]
    parts, unmeasured = [], set()
    for low, high in zip(rates, rates[1:]):
      means = [suite_results.model_mean(loaded, name, rate) for rate in (low, high)]
      if min(means) >= INFORMATIVE_RERR:
        at_chance += 1
        continue
      margin, missing = _rise(results, low, high)
      unmeasured.update(missing)
      rise = means[1] - means[0]
      kind = "rises" if rise > margin else "falls" if rise < -margin else "not resolved"
      step = f"{100 * low:g} → {100 * high:g} %"
      steps.setdefault(kind, []).append((name, step))
      if kind == "falls":
        falls.append(f"{labels[name]} at p = {step}")
      parts.append(f"p = {step}: {100 * means[0]:.2f} → {100 * means[1]:.2f} "
                   f"({100 * rise:+.2f} ± {100 * margin:.2f}) "
                   f"{'**falls**' if kind == 'falls' else kind}")
    if parts:
      noise = f"; not measured: {', '.join(sorted(unmeasured))}" if unmeasured else ""
      lines.append(f"  - {labels[name]} ({len(seeds)} seed{'s' * (len(seeds) > 1)}; RErr in %, "
                   f"the rise ± 2 s.e.{noise}): " + "; ".join(parts) + ".")
  chance = (f" ({at_chance} step{'s' * (at_chance > 1)} with both rates at chance left out)"
            if at_chance else "")
  total = sum(len(v) for v in steps.values())
  if not total:
    overall = "not informative"
  elif falls:
    overall = f"does not hold (RErr falls: {'; '.join(falls)})"
  elif "rises" not in steps:
    overall = f"not resolved at any of {total} steps"
  elif len(steps["rises"]) == total:
    overall = "holds at its one step" if total == 1 else f"holds at all {total} steps"
  else:
    overall = (f"holds at {len(steps['rises'])} of {total} steps; not resolved at "
               f"{len(steps['not resolved'])}")
  resolved = steps.get("rises", []) + steps.get("falls", [])
  overall = with_caveats(suite, loaded, overall + chance, names,
                         resolved or steps.get("not resolved", []), unit="step")
  return overall, [f"- {finding['claim']}: **{overall}**"] + lines


# The check of each kind of finding of a suite's tables; a finding without "kind" compares two
# runs (finding_lines).
_CHECKS = {None: finding_lines, "collapse": collapse_lines, "monotone": monotone_lines}


def check_finding(suite, loaded, finding):
  """(overall verdict or None, [Markdown lines]) of one finding, by the check of its kind."""
  return _CHECKS[finding.get("kind")](suite, loaded, finding)


def pattern_claim(suite, loaded):
  """(verdict or None, [Markdown lines]): does PATTBET's RErr on its own pattern rise below
  its training rate (Tab. 3)? The masks are nested across rates, so a lower rate keeps a subset
  of the training errors. Each lower rate is paired over test examples with the training rate;
  one chip and one seed, so only test-set noise is measured."""
  name = suite.pattern_run
  if name not in loaded:
    return None, []  # not evaluated yet: the header lists the missing pairs
  seeds = sorted(s for s in loaded[name] if "pattern" in loaded[name][s])
  claim = _pattern_claim_text(None)
  if not seeds:
    return (claim, with_caveats(suite, loaded, "not informative", (name,), ())), [
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
  claim = _pattern_claim_text(trained)
  if why is not None:
    return (claim, with_caveats(suite, loaded, "not informative", (name,), ())), [
        f"- {claim}: **not informative** ({why})."]
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
                     claim_verdicts.not_resolved("test set"), "test set"))
    lines.append(f"  - p = {100 * rate:g} %: RErr {100 * (at_training.mean() + difference):.2f} "
                 f"vs {100 * at_training.mean():.2f} % at its training rate, difference "
                 f"{100 * difference:+.2f} ± {100 * margin:.2f} points (2 s.e., test set; one "
                 f"chip, one seed) → {verdict}.")
  if not per_rate:
    return (claim, with_caveats(suite, loaded, "not informative", (name,), ())), [
        f"- {claim}: **not informative** (no evaluated rate below the training rate)."]
  overall = with_caveats(suite, loaded, claim_verdicts.claim_verdict(per_rate), (name,),
                         _rests_on(per_rate))
  return (claim, overall), [f"- {claim}: **{overall}**"] + lines


def _pattern_claim_text(trained):
  """The claim of :func:`pattern_claim`, naming the training rate (fraction) where it is known."""
  trained_text = "" if trained is None else f"p = {100 * trained:g} %; "
  return ("PATTBET's RErr on its own pattern rises at rates below its training rate "
          f"({trained_text}Tab. 3, CIFAR10, trained at 2.5 %: RErr 7.87 % there, 14.14 % at "
          "p = 1 %)")
