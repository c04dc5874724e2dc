r"""Several models' result files (tfbet-eval or tfbet-eval-chips) in one table and one plot.

Examples:
  tfbet-compare runs/eval/rquant.json runs/eval/randbet.json --labels=RQUANT,RANDBET \
      --plot=runs/eval/compare.png --output=runs/eval/compare.txt
  tfbet-compare runs/eval/rquant_chips.json runs/eval/randbet_chips.json --plot=chips.png
All files must be on the same test set and of one kind (rates or voltages); see
tfbet/cli/compare.py.
"""
import os

from absl import app
from absl import flags

from tfbet import comparison
from tfbet import evaluation
from tfbet import files
from tfbet import plots
from tfbet.cli import launch
from tfbet.cli import reporting


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/compare on ``flag_values``."""
  flags.DEFINE_list(
      "labels", [],
      "Comma-separated names of the models, one per result file and in the same order "
      "(default: the model names stored in the files).", flag_values=flag_values)
  flags.DEFINE_string(
      "output", None, "Optional path of a text file that receives the printed table.",
      flag_values=flag_values)
  flags.DEFINE_string(
      "plot", None,
      "Optional path of a PNG: RErr against p (log axis, mean +- std over chips, clean Err "
      "dotted) or, for profiled chips, RErr against voltage, one panel per chip.",
      flag_values=flag_values)
  reporting.define_delta_flag(flag_values, " Used for the bound column.")


def load(paths):
  """Results of the files in ``paths`` (ValueError naming the file if one is invalid)."""
  if not paths:
    raise ValueError("give the result files to compare as arguments, e.g. bin/compare "
                     "a.json b.json")
  return [evaluation.Results.from_json(path) for path in paths]


def _header(results_list, labels, paths=None):
  first = results_list[0]
  lines = [f"{len(results_list)} models on the same test set (n = {first.n} examples)"]
  for index, (item, label) in enumerate(zip(results_list, labels)):
    where = f", {paths[index]}" if paths else ""
    weights = item.model.get("num_weights")
    weights = "weights not recorded" if weights is None else f"{weights} weights"
    lines.append(f"  {label}: model {item.model.get('name')} ({weights}), clean Err "
                 f"{100 * item.clean_error:.2f} %{where}")
  return lines


def _chip_note(results_list, labels, unit):
  differ = comparison.chip_sets_differ(results_list)
  if not differ:
    return ["every model met the same chips at every " + unit]
  lines = []
  for condition, sets in differ.items():
    shown = "; ".join(f"{label}: {len(s)} chips" for label, s in zip(labels, sets))
    value = f"p = {100 * condition:g} %" if unit == "rate" else f"V/Vmin = {condition:g}"
    lines.append(f"NOTE: different chips at {value} ({shown})")
  return lines


def rates_table(results_list, labels, delta=evaluation.DEFAULT_DELTA, paths=None):
  """Text table: per rate p (in %) and model, RErr mean +- std in % and the number of chips."""
  rows = comparison.rate_rows(results_list, delta)
  width = max(22, *(len(label) for label in labels))
  lines = _header(results_list, labels, paths)
  lines.append(f"{'p %':>8} " + " ".join(f"{label:>{width}}" for label in labels))
  lines.append(f"{'clean':>8} " + " ".join(f"{f'Err {100 * r.clean_error:.2f}':>{width}}"
                                          for r in results_list))
  for row in rows:
    cells = []
    for summary in row.summaries:
      if summary is None:
        cells.append(f"{'-':>{width}}")
      else:
        text = f"{100 * summary.mean:.2f} \u00b1 {100 * summary.std:.2f} ({summary.num_chips})"
        cells.append(f"{text:>{width}}")
    lines.append(f"{100 * row.rate:8.4g} " + " ".join(cells))
  lines.append("cells: RErr in %, mean \u00b1 std over chips (number of chips); - = not "
               "evaluated")
  lines += _chip_note(results_list, labels, "rate")
  return "\n".join(lines)


def voltages_table(results_list, labels, paths=None):
  """Text table: per profiled chip, voltage and model, RErr mean over offsets [min, max]."""
  rows = comparison.voltage_rows(results_list)
  width = max(24, *(len(label) for label in labels))
  lines = _header(results_list, labels, paths)
  lines.append(f"{'chip':>12} {'V/Vmin':>7} " + " ".join(f"{label:>{width}}" for label in labels))
  for chip, voltage, cells in rows:
    texts = []
    for cell in cells:
      text = ("-" if cell is None else
              f"{100 * cell.mean:.2f} [{100 * cell.min:.2f}, {100 * cell.max:.2f}] "
              f"({cell.num_offsets})")
      texts.append(f"{text:>{width}}")
    lines.append(f"{chip:>12} {voltage:7.3f} " + " ".join(texts))
  lines.append("cells: RErr in %, mean over offsets [min, max over offsets] (number of offsets); "
               "- = not evaluated")
  lines += _chip_note(results_list, labels, "voltage")
  return "\n".join(lines)


def plot_voltages(results_list, labels, path):
  """PNG: one panel per profiled chip, RErr against voltage per model (min..max over offsets)."""
  rows = comparison.voltage_rows(results_list)
  chips = list(dict.fromkeys(chip for chip, _, _ in rows))
  figure = plots.new_figure(figsize=(4.8 * len(chips), 4.2))
  axes = figure.subplots(1, len(chips), squeeze=False)[0]
  for ax, chip in zip(axes, chips):
    for index, (results, label) in enumerate(zip(results_list, labels)):
      points = [(v, cells[index]) for c, v, cells in rows if c == chip and cells[index]]
      color = f"C{index}"
      if points:
        voltages = [v for v, _ in points]
        mean = [100 * cell.mean for _, cell in points]
        low = [100 * (cell.mean - cell.min) for _, cell in points]
        high = [100 * (cell.max - cell.mean) for _, cell in points]
        ax.errorbar(voltages, mean, yerr=[low, high], fmt="o-", color=color, capsize=3,
                    label=label)
      ax.axhline(100 * results.clean_error, color=color, linestyle=":", linewidth=1)
    ax.set_title(f"{chip} (dotted: clean Err)")
    ax.set_xlabel("supply voltage / V_min")
    ax.set_ylabel("RErr in % (mean over offsets, min..max)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
  plots.add_footer(figure, [plots.measured_with(r.model, label)
                            for r, label in zip(results_list, labels)])
  files.save_figure(figure, path)
  return path


def report(results_list, labels, delta=evaluation.DEFAULT_DELTA, plot=None, paths=None):
  """The table (returned as text) and, with ``plot``, the PNG of a comparison."""
  if results_list[0].condition_kind == "rate":
    text = rates_table(results_list, labels, delta, paths)
    if plot:
      reporting.plot_rates(results_list, plot, labels)
  else:
    text = voltages_table(results_list, labels, paths)
    if plot:
      plot_voltages(results_list, labels, plot)
  return text


def main(argv):
  """Several models' result files in one table and one plot (Fig. 2, 7).

  The result files come from bin/eval (random chips, conditions are bit error rates) or from
  bin/eval_chips (profiled chips, conditions are voltages); all must be of one kind and on one
  test set (``tfbet.comparison.check_comparable``). Each cell of the table is the mean +- std of
  RErr over chips and says over how many chips; the plot shows mean +- std against p on a log
  axis with each model's clean Err dotted, or, for profiled chips, RErr (mean over offsets,
  min..max) against voltage, one panel per chip.
  """
  flag_values = flags.FLAGS
  paths = argv[1:]
  try:
    results_list = load(paths)
    labels = comparison.check_comparable(results_list, flag_values.labels or None, paths)
  except (TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  text = report(results_list, labels, flag_values.delta, flag_values.plot, paths)
  print(text, flush=True)
  if flag_values.output:
    os.makedirs(os.path.dirname(os.path.abspath(flag_values.output)), exist_ok=True)
    with open(flag_values.output, "w") as f:
      f.write(text + "\n")
    print(f"wrote {flag_values.output}")
  if flag_values.plot:
    print(f"wrote {flag_values.plot}")


if __name__ == "__main__":  # python -m tfbet.cli.compare
  launch.start("compare")
