"""The report's energy headline: how much SRAM energy each model saves within an accuracy budget.

The paper's headline (Sec. 1): within 1 point of a normally trained 8-bit DNN's accuracy, 20 %
of the SRAM energy is saved on CIFAR10; 30 % at 2.5 points, even at 4 bit. The suite asks the same
of its models (``suites.Headline``): ``tfbet.cli.suite_jobs`` bisects each run's first seed with
``bin/bisect_rate``, the budgets counted from the reference run's clean Err; this module reads
those files into a table, the Pareto figure (``tfbet.cli.energy_figure``) and, where the suite
names a table of the paper, what the paper's own values imply (interpolated between its rates).
"""
import math
import os

from tfbet import budget as budget_lib
from tfbet import evaluation
from tfbet.cli import energy_figure
from tfbet.cli import suite_jobs

PAPER_CIFAR10 = ("the paper's headline, CIFAR10: 20 % energy saved within 1 point of NORMAL "
                 "8-bit's accuracy, 30 % within 2.5 points, even at 4 bit (Sec. 1)")


def _answer(record):
  """A RateBudget from a headline file's ``bisection`` metadata (None: no failing rate)."""
  return budget_lib.RateBudget(**{key: math.nan if key == "high" and value is None else value
                                  for key, value in record.items()})


def load_headlines(suite, output_dir, loaded):
  """{run name: (Results over every measured rate, [RateBudget per budget])} of the runs whose
  first seed has every headline file, each counted from the reference run's clean Err now and
  measured on the model and test set of that seed's evaluation (``loaded``, from
  ``suite_results.load_results``)."""
  found = {}
  reference = suite_jobs.headline_reference(suite, output_dir)
  if reference is None:
    return found
  for run in suite.runs:
    run_dir = run.directory(output_dir, run.seeds[0])
    paths = [os.path.join(run_dir, suite.headline.file_name(b)) for b in suite.headline.budgets]
    if not all(os.path.exists(path) for path in paths):
      continue
    # A file counted from an older reference Err (the reference run evaluated again since) is
    # refused, never reported beside the others.
    suite_jobs.check_headline(suite, run_dir, reference)
    parts = [evaluation.Results.from_json(path) for path in paths]
    own = loaded.get(run.name, {}).get(run.seeds[0])
    for path, part in zip(paths, parts):  # e.g. a file copied from another run's directory
      if own is None or (part.model.get("digest"), part.data_digest) != (
          own["random"].model.get("digest"), own["random"].data_digest):
        raise ValueError(f"{path} was measured on another model or test set than "
                         f"{run_dir}/eval_random.json{' (missing)' if own is None else ''}; "
                         "remove it to bisect again")
    answers = [_answer(part.metadata["bisection"]) for part in parts]
    errors = {}
    for part in parts:  # the same chips and model: one curve of every rate measured
      errors.update(part.errors)
    first = parts[0]
    curve = evaluation.Results(model=first.model, n=first.n, data_digest=first.data_digest,
                               clean_errors=first.clean_errors, condition_kind="rate",
                               errors=errors)
    found[run.name] = (curve, answers)
  return found


def _rate_cell(item):
  if item.how == "none":
    return "none (Err over the budget)"
  if item.how == "below":
    return f"< {100 * item.high:.3g} (lowest rate measured)"
  if item.how == "at least":
    return f"≥ {100 * item.rate:.3g} (highest rate measured)"
  return f"{100 * item.rate:.3g} (fails at {100 * item.high:.3g})"


def _best_text(item):
  """The answer of the "Most energy saved" line; a lower bound says it is one."""
  if item.how == "none":
    return "none keeps the budget at any rate"
  if item.how == "at least":
    return (f"p ≥ {100 * item.rate:.3g} % (the highest rate measured), at least "
            f"{100 * item.energy_saving:.1f} % saved")
  return f"p = {100 * item.rate:.3g} %, {100 * item.energy_saving:.1f} % saved"


def _points(budget):
  return f"{budget:g} point" + ("" if budget == 1 else "s")


def _paper_implied(paper, row, reference_row, budget):
  """What the paper's table row implies: RateBudget interpolated between its rates."""
  err, rerr = paper.rows[row]
  points = [(0.0, err / 100)] + [(r / 100, v / 100) for r, v in zip(paper.rates, rerr)]
  return budget_lib.interpolated_budget(points, budget / 100,
                                        reference_error=paper.rows[reference_row][0] / 100)


def _paper_cell(item):
  if item.how == "none":
    return "none"
  prefix = "≥ " if item.how == "at least" else "≈ "
  return f"{prefix}{100 * item.rate:.3g} % → {100 * item.energy_saving:.0f} %"


def headline_lines(suite, output_dir, figure_path, loaded):
  """Markdown lines of the energy headline and its Pareto figure (written to ``figure_path``);
  [] when no run has its headline files yet. ``loaded``: the suite's evaluated runs."""
  headline = suite.headline
  found = load_headlines(suite, output_dir, loaded) if headline else {}
  if not found:
    return []
  reference_run = suite.run(headline.reference)
  reference = next(iter(found.values()))[1][0].reference_error
  paper = next((t["paper"] for t in suite.tables if t.get("paper") is not None), None)
  with_paper = paper is not None and reference_run.paper_row in (paper.rows if paper else {})
  budgets = " / ".join(f"{b:g}" for b in headline.budgets)
  chips = len(next(iter(found.values()))[0].chip_names)
  lines = [f"## Energy headline: SRAM energy saved within {budgets} points of "
           f"{reference_run.label}'s accuracy", "",
           f"For each model (its first seed), the highest bit error rate p whose mean RErr over "
           f"the suite's {chips} random chips stays within each budget of {reference_run.label}'s "
           f"clean Err ({100 * reference:.2f} %, "
           + ("its one seed" if len(reference_run.seeds) == 1 else
              f"mean over its {len(reference_run.seeds)} seeds")
           + "), measured by bisection on those chips (`bin/bisect_rate`, "
           f"{headline.steps} steps from the suite's rates, which are reused), and the SRAM "
           "access energy saved at p's voltage in `tfbet.energy`'s model of Fig. 1 (a model, not "
           f"measurements: p = 0.1 % saves about 20 %, p = 1 % 30 %). Compare with "
           f"{PAPER_CIFAR10}."
           + (" The last columns: what the paper's own MNIST table implies (its RErr interpolated "
              "linearly in p between its rates, the budget counted from its NORMAL 8-bit Err)."
              if with_paper else ""), ""]
  header = ["model", "m", "Err %"]
  for b in headline.budgets:
    header += [f"≤ {b:g} pt: p %", "V/Vmin", "energy saved %"]
  if with_paper:
    header += [f"paper ≤ {b:g} pt: p → energy" for b in headline.budgets]
  lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  best = {}
  for run in suite.runs:
    if run.name not in found:
      continue
    curve, answers = found[run.name]
    cells = [run.label, str(curve.model.get("scheme", {}).get("precision", "-")),
             f"{100 * curve.clean_error:.2f}"]
    for b, item in zip(headline.budgets, answers):
      cells += [_rate_cell(item), f"{item.voltage:.3f}", f"{100 * item.energy_saving:.1f}"]
      if b not in best or item.energy_saving > best[b][1].energy_saving:
        best[b] = ([run], item)
      elif item.energy_saving == best[b][1].energy_saving:
        best[b][0].append(run)  # a tie: every model that saves as much is named
    if with_paper:
      cells += ["-" if run.paper_row not in paper.rows else _paper_cell(
          _paper_implied(paper, run.paper_row, reference_run.paper_row, b))
                for b in headline.budgets]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Most energy saved: " + "; ".join(
      f"within {_points(b)}, {' / '.join(run.label for run in runs)}: " + _best_text(item)
      for b, (runs, item) in best.items()) + ".", ""]
  shown = [name for name in [headline.reference, *(suite.figure_runs or [r.name for r in suite.runs])]
           if name in found]
  shown = list(dict.fromkeys(shown))
  labels = [suite.run(name).label for name in shown]
  ceiling = reference + 2 * max(headline.budgets) / 100
  energy_figure.plot([found[name][0] for name in shown], labels,
                     {suite.run(name).label: found[name][1] for name in shown}, figure_path,
                     budget_text=f"RErr \u2212 {reference_run.label}'s Err",
                     window=([r / 100 for r in suite.rates], ceiling))
  lines += [f"![Energy saved vs. RErr](figures/{os.path.basename(figure_path)})", "",
            f"The figure shows {', '.join(labels)}, from the suite's lowest rate "
            f"({min(suite.rates):g} %) and up to RErr {100 * ceiling:.1f} %.", ""]
  return lines
