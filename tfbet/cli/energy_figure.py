"""The Pareto figure of Fig. 1 and Fig. 2 combined: SRAM energy saved against RErr.

One curve per model (measured rates, or a profiled chip's voltages), the budget answers
(``tfbet.budget``) starred, and the Pareto front over all models; drawn by bin/energy_budget and
by the reproduction report's energy headline (``tfbet.cli.report_headline``).
"""
from tfbet import budget as budget_lib
from tfbet import comparison
from tfbet import energy
from tfbet import files
from tfbet import plots


def _curves(results, statistic):
  """{curve name: [(energy saving, RErr, condition)]} of one model, p = 0 / V_min included."""
  if results.condition_kind == "rate":
    points = [(0.0, results.clean_error, 0.0)]
    points += [(s, r, p) for p, s, r in budget_lib.energy_points(results, statistic)]
    return {"": points}
  curves = {}
  for chip in results.chip_names:
    points = []
    for voltage in results.conditions:
      cell = comparison.voltage_cell(results, chip, voltage)
      if cell is not None:
        value = cell.mean if statistic == "mean" else cell.max
        points.append((1 - energy.energy_at_voltage(voltage), value, voltage))
    curves[chip] = points
  return curves


def plot(results_list, labels, found, path, statistic="mean", budget_text="RErr \u2212 Err",
         window=None):
  """PNG: energy saving (x) against RErr (y) per model, budget answers, Pareto front.

  The rates (or voltages) of the points label a second x axis on top, once each (the saving is
  a function of the rate alone); each budget answer is a star labelled with its budget, for
  random and profiled chips alike; the footer names each model's scheme and coverage.
  ``budget_text`` says what the budgets bound; ``window`` = (rates to label on top, highest
  RErr shown) zooms in on the region of the answers (the energy axis starts at the lowest of
  those rates or answers).
  """
  figure = plots.new_figure(figsize=(7.6, 5.4))
  ax = figure.subplots()
  everything = {}  # {chip ('' for random chips): [points of all models]}
  rates = results_list[0].condition_kind == "rate"
  conditions = {}  # {energy saving: condition}, for the top axis
  curves = [_curves(results, statistic) for results in results_list]
  near_left = 15 * max(s for c in curves for points in c.values() for s, _, _ in points)
  for index, (label, curves_of_model) in enumerate(zip(labels, curves)):
    color = f"C{index}"
    for number, (chip, points) in enumerate(curves_of_model.items()):
      everything.setdefault(chip, []).extend(points)
      name = label if not chip else f"{label}, {chip}"
      ax.plot([100 * s for s, _, _ in points], [100 * r for _, r, _ in points],
              "os^dv"[number % 5] + "-", color=color, label=name, markersize=4)
      conditions.update({round(100 * s, 6): c for s, _, c in points})
    for number, item in enumerate(found[label]):
      if item.energy_saving is None:  # a profiled chip on which no voltage keeps the budget
        continue
      at_least = rates and item.how == "at least"
      ax.plot(100 * item.energy_saving, 100 * item.rerr, ">" if at_least else "*", color=color,
              markersize=12, markerfacecolor="none", markeredgewidth=1.3)
      text = ("" if rates else f"{item.chip}: ") + ("\u2265 " if at_least else "")
      # Labels go up and left (toward the smaller budgets, lower on the curve) unless there
      # is no room there.
      right = 100 * item.energy_saving > near_left
      ax.annotate(f"{text}{100 * item.budget:g} pt",
                  (100 * item.energy_saving, 100 * item.rerr), fontsize="small", color=color,
                  textcoords="offset points", xytext=(-12 if right else 12, 14 + 11 * (number % 3)),
                  ha="right" if right else "left",
                  arrowprops={"arrowstyle": "-", "color": color, "linewidth": 0.6})
  # Different profiled chips are different hardware: one front per chip.
  for number, (chip, points) in enumerate(everything.items()):
    front = budget_lib.pareto_front(points)
    ax.step([100 * s for s, _, _ in front], [100 * r for _, r, _ in front],
            color="black", linestyle=("--", ":", "-.")[number % 3], where="post", linewidth=1,
            label="Pareto front (all models" + (f", {chip})" if chip else ")"))
  ax.set_xlabel("SRAM access energy saved in % (tfbet.energy model of Fig. 1)")
  ax.set_ylabel(f"RErr in % ({statistic} over {'chips' if rates else 'offsets'})")
  if window is not None:
    conditions = {round(100 * energy.energy_saving(rate), 6): rate for rate in window[0]}
    answers = [100 * item.energy_saving for items in found.values() for item in items
               if item.energy_saving]
    ax.set_xlim(min([*conditions, *answers]) - 1, ax.get_xlim()[1])
    ax.set_ylim(0, 100 * window[1])
  top = ax.twiny()  # the condition of each saving, once
  top.set_xlim(ax.get_xlim())
  savings = sorted(conditions)
  top.set_xticks(savings, [f"{100 * conditions[s]:g}" if rates else f"{conditions[s]:.3g}"
                           for s in savings], fontsize="small")
  top.set_xlabel("bit error rate p in %" if rates else "V/Vmin", fontsize="small")
  ax.set_title(f"Energy saving vs. RErr (stars: most saving within a budget of {budget_text}"
               + (", >: at least" if rates else "") + ")", fontsize="medium")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize="small", loc="upper left")
  plots.add_footer(figure, [plots.measured_with(r.model, label)
                            for r, label in zip(results_list, labels)])
  files.save_figure(figure, path)
  return path
