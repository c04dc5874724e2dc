"""The Markdown tables of the reproduction report: RErr per rate, PATTBET's own pattern (Tab. 3)
and the profiled chips (Tab. 5 / Tab. 15)."""
import math

import numpy as np

from tfbet.cli import reporting
from tfbet.cli import suite_results


def _fmt_pm(mean, std, digits=2):
  return f"{100 * mean:.{digits}f} ± {100 * std:.{digits}f}"


def rate_table(suite, loaded, names, paper=None):
  """Markdown: Err (mean ± std over seeds) and RErr per rate (mean ± std over chips), each with
  the paper's value in brackets where ``paper`` (a suites.PaperTable) has the run's row."""
  labels = suite_results.run_labels(suite)
  runs = {run.name: run for run in suite.runs}
  rates = suite_results.rate_fractions(suite)
  lines = ["| Model | seeds | Err in % | " + " | ".join(f"p={r:g} %" for r in suite.rates) + " |",
           "|---|---|---|" + "---|" * len(rates)]
  for name in names:
    if name not in loaded:
      continue
    results, seeds = suite_results.random_results(loaded, name)
    clean = suite_results.clean_errors(loaded, name)
    err = _fmt_pm(clean.mean(), clean.std(ddof=1)) if len(clean) > 1 else f"{100 * clean[0]:.2f}"
    cells = []
    for rate in rates:
      summaries = [suite_results.summary_at(r, rate) for r in results]
      if any(s is None for s in summaries):
        cells.append("–")
      else:
        cells.append(_fmt_pm(np.mean([s.mean for s in summaries]),
                             np.mean([s.std for s in summaries])))
    row = runs[name].paper_row
    if paper is not None and row in paper.rows:
      err += f" [{paper.rows[row][0]:.2f}]"
      cells = [cell if paper.rerr(row, rate) is None else f"{cell} [{paper.rerr(row, rate):.2f}]"
               for cell, rate in zip(cells, suite.rates)]
    lines.append(f"| {labels[name]} | {len(seeds)} | {err} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def paper_note(suite, names, paper):
  """The sentence under a table with the paper's values: where they come from, which rows."""
  runs = {run.name: run for run in suite.runs}
  rows = [runs[name].paper_row for name in names if runs[name].paper_row in paper.rows]
  precisions = " / ".join(str(p) for p in sorted({p for p, _ in rows}, reverse=True)) or "–"
  text = (f"In brackets: the paper's value ({paper.source}; typed once in "
          f"`gin/suites/{paper.path}`), from the row of the same model at m = {precisions} bit "
          "that the suite's `paper_row` names; ours are at CPU scale (the recipe above).")
  without = [suite_results.run_labels(suite)[n] for n in names
             if runs[n].paper_row not in paper.rows]
  if without:
    text += f" No paper row for {' / '.join(without)}."
  return text


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


def profiled_lines(suite, loaded):
  """Tab. 5 / Tab. 15: each profiled run on the simulated profiled chips (App. C.1 presets)."""
  labels = suite_results.run_labels(suite)
  lines = []
  for name in suite.profiled_runs:
    seeds = loaded.get(name, {})
    chips = [seeds[s]["chips"] for s in sorted(seeds) if "chips" in seeds[s]]
    if chips:
      lines += [f"**{labels[name]}** (seed {sorted(seeds)[0]})", "", "```",
                reporting.voltages_table(chips[0]), "```", ""]
  return lines
