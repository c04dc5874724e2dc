"""What the evaluation binaries print and draw: progress, RErr tables, RErr plots.

bin/eval, bin/eval_chips, bin/compare and bin/reproduce report results through this module, so a
table or a curve looks the same whichever binary made it. Rates are shown in percent, like the
paper's tables; the functions take ``tfbet.evaluation.Results``.
"""
from absl import flags

from tfbet import energy
from tfbet import evaluation
from tfbet import files
from tfbet import plots


def define_delta_flag(flag_values, help_suffix=""):
  """--delta of Prop. 1 (App. C.2), refused at parsing unless it is in (0, 1)."""
  flags.DEFINE_float(
      "delta", evaluation.DEFAULT_DELTA,
      "Prop. 1 (App. C.2) holds with probability 1 - delta; delta in (0, 1)." + help_suffix,
      flag_values=flag_values)
  flags.register_validator("delta", lambda value: 0 < value < 1,
                           message="--delta must be in (0, 1)", flag_values=flag_values)


def print_progress(event):
  """Progress callback of the binaries: ``event.line()`` on stdout, one line per chip."""
  print(event.line(), flush=True)


def partial_lines(results):
  """A loud first line for results that lack planned counts (a partial merge), else []."""
  missing = results.describe_missing()
  return [f"PARTIAL RESULT: {missing}; the statistics cover only the chips measured"] \
      if missing else []


def _saving(rate):
  return energy.energy_saving(rate) if rate < 1 else float("nan")


def rates_table(results, delta=evaluation.DEFAULT_DELTA):
  """Text table: per rate p the RErr statistics over chips, the Prop. 1 bound, energy saving."""
  if results.condition_kind != "rate":
    raise ValueError("rates_table needs results over bit error rates")
  lines = partial_lines(results) + [
      f"{evaluation.describe_model(results.model)}, "
      f"n = {results.n} test examples, clean Err = {100 * results.clean_error:.2f} %",
      f"{'p %':>8} {'chips':>5} {'RErr %':>8} {'std %':>7} {'min %':>7} {'max %':>7} "
      f"{'Prop.1 %':>8} {'energy %':>8}"]
  rows = results.summary(delta)
  for row in rows:
    bound = f"{'100*':>8}" if row.vacuous else f"{100 * row.bound:8.2f}"
    lines.append(
        f"{100 * row.condition:8.4g} {row.num_chips:5d} {100 * row.mean:8.2f} "
        f"{100 * row.std:7.2f} {100 * row.min:7.2f} {100 * row.max:7.2f} "
        f"{bound} {100 * _saving(row.condition):8.1f}")
  lines.append(f"Prop. 1 bound: with probability {1 - delta:g} the expected RErr is below it "
               "(App. C.2); energy: SRAM access energy saved at p (tfbet.energy model of Fig. 1)")
  if any(row.vacuous for row in rows):
    lines.append("100*: the bound is vacuous (RErr + excess >= 100 %): too few test examples or "
                 "chips for Prop. 1 to say anything there")
  return "\n".join(lines)


def _rates_at(info, voltage):
  for record in info.get("rates", []):
    if abs(record["voltage"] - voltage) <= 1e-6:
      return record
  return None


def voltages_table(results):
  """Text table per chip and voltage: measured rates, RErr over offsets, energy saving."""
  if results.condition_kind != "voltage":
    raise ValueError("voltages_table needs results over voltages (profiled chips)")
  lines = partial_lines(results) + [
      f"{evaluation.describe_model(results.model)}, "
      f"n = {results.n} test examples, clean Err = {100 * results.clean_error:.2f} %",
      f"{'chip':>12} {'V/Vmin':>7} {'p %':>7} {'p_0t1 %':>7} {'p_1t0 %':>7} "
      f"{'offsets':>7} {'RErr %':>7} {'min %':>7} {'max %':>7} {'energy %':>8}"]
  for name in results.chip_names:
    info = results.chips.get(name, {})
    for voltage in results.conditions:
      offsets = results.offsets(name, voltage)
      if not offsets:
        continue
      per_offset = [results.errors[(name, voltage, o)] / results.n for o in offsets]
      rates = _rates_at(info, voltage) or {}
      rate_cells = " ".join(f"{100 * rates[key]:7.3f}" if key in rates else f"{'?':>7}"
                            for key in ("p", "p_0t1", "p_1t0"))
      lines.append(
          f"{name:>12} {voltage:7.3f} {rate_cells} {len(offsets):7d} "
          f"{100 * results.rerr(name, voltage):7.2f} {100 * min(per_offset):7.2f} "
          f"{100 * max(per_offset):7.2f} {100 * (1 - energy.energy_at_voltage(voltage)):8.1f}")
  lines.append("RErr: mean over offsets (min, max over offsets); energy: SRAM access energy "
               "saved at that voltage (tfbet.energy model of Fig. 1)")
  return "\n".join(lines)


def plot_rates(results_list, path, labels=None):
  """PNG like Fig. 2: mean RErr with a +-std band against p (log x axis), one curve per result.

  p = 0 has no place on a log axis; the clean error of each result is drawn as a dotted line.
  """
  labels = labels or [r.model.get("name", f"model {i}") for i, r in enumerate(results_list)]
  figure = plots.new_figure(figsize=(6.4, 4.4))
  ax = figure.subplots()
  for index, (results, label) in enumerate(zip(results_list, labels)):
    color = f"C{index}"
    rows = [row for row in results.summary() if row.condition > 0]
    if rows:
      p = [100 * row.condition for row in rows]
      mean = [100 * row.mean for row in rows]
      std = [100 * row.std for row in rows]
      ax.plot(p, mean, "o-", color=color, label=f"{label} (RErr, {rows[0].num_chips} chips)")
      ax.fill_between(p, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                      color=color, alpha=0.25, linewidth=0)
    ax.axhline(100 * results.clean_error, color=color, linestyle=":", linewidth=1,
               label=f"{label} (clean Err)")
  ax.set_xscale("log")
  rates = sorted({100 * row.condition for results in results_list for row in results.summary()
                  if row.condition > 0})
  if rates:
    ax.set_xticks(rates, [f"{p:g}" for p in rates])
    ax.set_xticks([], minor=True)
  ax.set_xlabel("bit error rate p in %")
  ax.set_ylabel("RErr in %")
  ax.set_title("Robustness to random bit errors (mean \u00b1 std over chips)")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize="small")
  plots.add_footer(figure, [plots.measured_with(r.model, label)
                            for r, label in zip(results_list, labels)])
  files.save_figure(figure, path)
  return path


def plot_voltages(results, path):
  """PNG: RErr (mean over offsets, bars = min..max) against voltage, one curve per chip."""
  figure = plots.new_figure(figsize=(6.4, 4.4))
  ax = figure.subplots()
  for index, name in enumerate(results.chip_names):
    voltages = [v for v in results.conditions if results.offsets(name, v)]
    if not voltages:
      continue
    mean, low, high = [], [], []
    for voltage in voltages:
      per_offset = [results.errors[(name, voltage, o)] / results.n
                    for o in results.offsets(name, voltage)]
      m = 100 * sum(per_offset) / len(per_offset)
      mean.append(m)
      low.append(m - 100 * min(per_offset))
      high.append(100 * max(per_offset) - m)
    ax.errorbar(voltages, mean, yerr=[low, high], fmt="o-", color=f"C{index}", capsize=3,
                label=name)
  ax.axhline(100 * results.clean_error, color="black", linestyle=":", linewidth=1,
             label="clean Err")
  ax.set_xlabel("supply voltage / V_min")
  ax.set_ylabel("RErr in %")
  ax.set_title("Robustness to profiled bit errors (mean over offsets, min..max)")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize="small")
  plots.add_footer(figure, [plots.measured_with(results.model)])
  files.save_figure(figure, path)
  return path
