"""Renders a reproduction suite's report (Markdown + figures) from its runs' JSON files.

Every number, verdict and sentence that states a result is computed from the files that
``tfbet.cli.suite_jobs.run_suite`` wrote (read by :mod:`tfbet.cli.suite_results`); the claims
checked and the tables come from the suite file (``gin/suites/<name>.json``, ``"tables"``).
This module puts the report together: its header, summary and sections, from the claims
(:mod:`tfbet.cli.claim_checks`), the quality bar (:mod:`tfbet.cli.quality_bar`), the tables
(:mod:`tfbet.cli.report_tables`) and the figures (:mod:`tfbet.cli.report_figures`).
"""
import datetime
import os

from absl import logging

from tfbet import files
from tfbet.cli import claim_checks
from tfbet.cli import claim_verdicts
from tfbet.cli import quality_bar
from tfbet.cli import report_analysis
from tfbet.cli import report_figures
from tfbet.cli import report_headline
from tfbet.cli import report_tables
from tfbet.cli import suite_results


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


def _table_sections(suite, loaded):
  """(Markdown lines of the suite's tables and their claims, [(claim, verdict)] of the claims)."""
  sections, summary = [], []
  for table in suite.tables:
    names = [n for n in table["runs"] if n in loaded]
    if not names:
      continue
    paper = table.get("paper")
    sections += [f"## {table['title']}", "",
                 report_tables.rate_table(suite, loaded, table["runs"], paper), ""]
    if paper is not None:
      sections += [report_tables.paper_note(suite, names, paper), ""]
    if table.get("pattern") and report_tables.pattern_lines(suite, loaded):
      sections += [f"{suite.pattern_run} on its own pattern (one chip, the pattern seed):", ""]
      sections += report_tables.pattern_lines(suite, loaded) + [""]
    claim_lines = []
    if table.get("pattern"):
      verdict, lines = claim_checks.pattern_claim(suite, loaded)
      if verdict is not None:
        claim_lines += lines
        summary.append(verdict)
    for finding in table.get("findings", ()):
      overall, lines = claim_checks.check_finding(suite, loaded, finding)
      if overall is not None:
        claim_lines += lines
        summary.append((finding["claim"], overall))
    if claim_lines:
      sections += ["Claims of the paper, checked (paired over chips and test examples; each "
                   "line: A − B with A the model the paper finds more robust):", ""]
      sections += claim_lines + [""]
  return sections, summary


def _summary_lines(summary):
  """The claims listed under their verdict's category (``claim_verdicts.SUMMARY_CATEGORIES``)."""
  categories = {}
  for claim, overall in summary:
    category = next(c for c in claim_verdicts.SUMMARY_CATEGORIES if overall.startswith(c))
    categories.setdefault(category, []).append((claim, overall))
  lines = []
  for category in claim_verdicts.SUMMARY_CATEGORIES:
    if category in categories:
      lines += [f"- **{category}**:"] + [f"  - {claim}: {overall}"
                                         for claim, overall in categories[category]]
  return lines


_HOW_TO_READ = (
    "How to read the verdicts: at each rate, model A (the one the paper finds more "
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
    "mid-range rows. The error rate of each verdict at one rate: where two models do not "
    "differ, a difference beyond twice its standard error is resolved by chance with about "
    "2.3 % probability in each direction (one-sided, under normality; more with 3 seeds, "
    "whose spread is itself uncertain), and the rates of a claim are not corrected for "
    "multiplicity, so over k rates a spurious resolved rate has up to k times that "
    "probability. A summary line says when its verdict rests on one rate and names the "
    "runs trained once. Rates where both models exceed 50 % RErr are left out. A collapse "
    "claim (Tab. 1) *holds* when the run's RErr is above 50 % by more than twice its "
    "standard error and *does not hold* when it is below by as much. Cells: RErr mean over "
    "seeds and chips ± the std over chips; Err ± the std over seeds.")


_MONOTONE = (
    " A monotone claim (Fig. 7) is checked per run from each evaluated rate to the next: the "
    "step *rises* when its mean RErr grows by more than twice the standard error of the rise "
    "(paired over chips and test examples, and over seeds where a run has several), the claim "
    "*does not hold* where RErr falls by as much, and a fall within that is *not resolved*, "
    "not a violation; steps with both rates at chance (RErr above 50 %) are left out.")


def _load(suite, output_dir):
  """The suite's evaluated runs in ``output_dir`` (``suite_results.load_results``); refused
  when there is none."""
  loaded = suite_results.load_results(suite, output_dir)
  if not loaded:
    raise ValueError(f"{output_dir!r} holds no evaluated run of suite {suite.name!r} (expected "
                     f"<run>/seed<k>/eval_random.json for runs like {suite.runs[0].name!r})")
  return loaded


def _suite_lines(suite, loaded, output_dir, figure_dir):
  """The report of one suite from its scale on: summary, headline, tables, profiled chips,
  analysis and figures (written to ``figure_dir``)."""
  sections, summary = _table_sections(suite, loaded)
  curves = os.path.join(figure_dir, f"{suite.name}_fig2.png")
  best = os.path.join(figure_dir, f"{suite.name}_fig7.png")
  report_figures.plot_curves(suite, loaded, curves, suite.figure_runs)
  report_figures.plot_best(suite, loaded, best, suite.figure_families)
  out = [scale_text(suite, loaded), "", "## Summary", ""] + _summary_lines(summary)
  headline = report_headline.headline_lines(
      suite, output_dir, os.path.join(figure_dir, f"{suite.name}_energy.png"), loaded)
  out += [""] + headline if headline else []
  quality = quality_bar.quality_bar_lines(suite, loaded)
  if quality:
    out += ["", "Recipe quality bar (RANDBET's clean Err at most "
            f"{100 * quality_bar.QUALITY_BAR:.1f} points above CLIPPING's at the same w_max):",
            ""] + quality
  kinds = {f.get("kind") for table in suite.tables for f in table.get("findings", ())}
  out += ["", _HOW_TO_READ + (_MONOTONE if "monotone" in kinds else ""), ""] + sections
  profiled = report_tables.profiled_lines(suite, loaded)
  if profiled:
    out += ["## Tab. 5 / Tab. 15 — simulated profiled chips (App. C.1 presets)", ""] + profiled
  out += report_analysis.analysis_lines(suite, loaded, output_dir, figure_dir)
  out += ["## Figures", "", f"![RErr against p](figures/{os.path.basename(curves)})", "",
          f"![Best RErr per method family](figures/{os.path.basename(best)})", ""]
  return out


def write_report(suite, output_dir, report_path):
  """Renders the report (and its figures next to it) from the runs' JSON files.

  ``suite`` is a suite or a list of suites sharing ``output_dir`` (``bin/reproduce
  --suite=full,tab21``): one report, a part per suite, each as its own report would be.
  Refuses (ValueError) when ``output_dir`` holds no evaluated run of a suite, so a wrong
  directory never replaces a report with an empty one or a part with nothing. Report and
  figures are written atomically.
  """
  parts = list(suite) if isinstance(suite, (list, tuple)) else [suite]
  if not os.path.isdir(output_dir):
    raise ValueError(f"output_dir {output_dir!r} does not exist; nothing to report, so "
                     f"{report_path!r} is left as it is")
  try:
    loaded = [_load(part, output_dir) for part in parts]  # every part, before any figure
  except ValueError as error:
    raise ValueError(f"{error}; nothing to report, so {report_path!r} is left as it is") from error
  figure_dir = os.path.join(os.path.dirname(report_path), "figures")
  os.makedirs(figure_dir, exist_ok=True)
  names = ",".join(part.name for part in parts)
  generated = (f"Generated by `bin/reproduce --suite={names}` on "
               f"{datetime.date.today().isoformat()} from `{output_dir}`: every number and "
               f"verdict is computed from the runs' JSON files.")
  if len(parts) == 1:
    out = [f"# Reproduction: suite `{names}`", "", f"{generated} {parts[0].description}", ""]
    out += _suite_lines(parts[0], loaded[0], output_dir, figure_dir)
  else:
    out = [f"# Reproduction: suites {', '.join(f'`{p.name}`' for p in parts)}", "",
           f"{generated} It has a part per suite, each with its own summary, energy "
           "headline, tables, claims and figures:", ""]
    out += [f"{k}. [Part {k}: suite `{p.name}`](#part-{k}-suite-{p.name.replace('.', '')})"
            for k, p in enumerate(parts, 1)] + [""]
    for k, (part, runs) in enumerate(zip(parts, loaded), 1):
      out += [f"# Part {k}: suite `{part.name}`", "", part.description, ""]
      out += _suite_lines(part, runs, output_dir, figure_dir)
  files.write_text(report_path, "\n".join(out))
  logging.info("report written to %s", report_path)
  return report_path
