"""Simulates a profiled SRAM chip file (App. C.1 statistics); see tfbet/cli/simulate_chips.py.

Example:
  tfbet-simulate-chips --preset=chip2 --output=runs/chips/chip2.npz --plot=runs/chips/plots
"""
import os

from absl import app
from absl import flags

from tfbet import chip_simulation
from tfbet import energy
from tfbet import plots
from tfbet.cli import launch

# Flags that describe a chip explicitly; they cannot be combined with --preset.
_EXPLICIT_FLAGS = ("rows", "cols", "voltages", "pattern", "fraction_0to1", "persistent_fraction",
                   "column_concentration", "weak_column_fraction")


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/simulate_chips on ``flag_values``."""
  flags.DEFINE_enum(
      "preset", None, list(chip_simulation.PRESETS),
      "Simulate a chip with the statistics of App. C.1: chip1 (2048x128 bits, uniform faults, "
      "2 voltages), chip2 or chip3 (8192x128 bits, column-aligned, mostly 0-to-1 faults, 3 resp. "
      "2 voltages). Only --seed, --name, --output, --plot and --plot_region may be combined "
      "with it.", flag_values=flag_values)
  flags.DEFINE_integer("rows", 2048, "Rows of the simulated bit-cell array (explicit chip).",
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("cols", 128, "Columns of the simulated bit-cell array (explicit chip).",
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_list(
      "voltages", ["0.811", "0.84"],
      "Comma-separated supply voltages normalized by V_min, strictly increasing (explicit chip). "
      "The expected bit error rate at each is tfbet.energy.rate_at_voltage (e.g. 0.837 gives "
      "p = 1 %).", flag_values=flag_values)
  flags.DEFINE_enum(
      "pattern", "uniform", list(chip_simulation.PATTERNS),
      "Spatial distribution of faulty cells (explicit chip): 'uniform' = at random like chip 1, "
      "'columns' = mostly in a few weak columns like chips 2 and 3.", flag_values=flag_values)
  flags.DEFINE_list(
      "fraction_0to1", ["0.5"],
      "Share of the bit error rate due to 0-to-1 faults (p_0t1 / p), in [0, 1]: one value, or "
      "one per voltage (explicit chip).", flag_values=flag_values)
  flags.DEFINE_list(
      "persistent_fraction", ["0.5"],
      "Share of the bit error rate due to persistent faults that fail with probability 1 "
      "(p_sa / p), in [0, 1]: one value, or one per voltage (explicit chip).",
      flag_values=flag_values)
  flags.DEFINE_float(
      "column_concentration", None,
      "Only with --pattern=columns: share of the faulty cells in the weak columns, in [0, 1] "
      f"(default {chip_simulation.DEFAULT_COLUMN_CONCENTRATION}).", flag_values=flag_values)
  flags.DEFINE_float(
      "weak_column_fraction", None,
      "Only with --pattern=columns: fraction of the columns that are weak, in (0, 1) "
      f"(default {chip_simulation.DEFAULT_WEAK_COLUMN_FRACTION}).", flag_values=flag_values)
  flags.DEFINE_integer(
      "seed", None,
      "Seed (>= 0) of the simulation and of the chip's transient faults; same seed, same file. "
      "Default: the preset's own seed, or 0 for an explicit chip.", lower_bound=0,
      flag_values=flag_values)
  flags.DEFINE_string("name", None, "Name stored in the chip file (default: the preset's name "
                      "or one made from the parameters).", flag_values=flag_values)
  flags.DEFINE_string("output", None, "Path of the chip file to write (.npz, format of "
                      "tfbet.chips.ProfiledChip.save). Required.", flag_values=flag_values)
  flags.DEFINE_string(
      "plot", None,
      "Optional directory; writes <name>_v<voltage>.png with the error map (p0t1 + p1t0, p0t1, "
      "p1t0) of the --plot_region cells at each voltage, like Fig. 3 / Fig. 8.",
      flag_values=flag_values)
  flags.DEFINE_list("plot_region", ["64", "128"], "Rows,cols of the plotted corner of the array "
                    "(Fig. 3 shows 64x128).", flag_values=flag_values)


def _floats(values, flag_name):
  try:
    return [float(value) for value in values]
  except ValueError as error:
    raise app.UsageError(f"--{flag_name} must be comma-separated numbers, got "
                         f"{','.join(values)!r}") from error


def _one_or_many(values):
  return values[0] if len(values) == 1 else values


def chip_from_flags(flag_values=flags.FLAGS):
  """Simulates the chip the flags describe."""
  if flag_values.preset is not None:
    given = [name for name in _EXPLICIT_FLAGS if flag_values[name].present]
    if given:
      raise app.UsageError(f"--preset={flag_values.preset} fixes the chip; drop "
                           f"{', '.join('--' + name for name in given)}")
    arguments = chip_simulation.preset_arguments(flag_values.preset)
    if flag_values.seed is not None:
      arguments["seed"] = flag_values.seed
  else:
    arguments = dict(
        rows=flag_values.rows, cols=flag_values.cols,
        voltages=_floats(flag_values.voltages, "voltages"), pattern=flag_values.pattern,
        fraction_0to1=_one_or_many(_floats(flag_values.fraction_0to1, "fraction_0to1")),
        persistent_fraction=_one_or_many(
            _floats(flag_values.persistent_fraction, "persistent_fraction")),
        column_concentration=flag_values.column_concentration,
        weak_column_fraction=flag_values.weak_column_fraction,
        seed=0 if flag_values.seed is None else flag_values.seed)
  if flag_values.name is not None:
    arguments["name"] = flag_values.name
  return chip_simulation.simulate_profiled_chip(**arguments)


def rates_table(chip):
  """Text table of the App. C.1 statistics (in %) and the energy saved at each voltage (in %,
  as every other binary prints it)."""
  lines = [f"chip {chip.name}: {chip.rows} x {chip.cols} bits, pattern {chip.pattern or '?'}",
           f"{'V/Vmin':>8} {'p %':>8} {'p_0t1 %':>8} {'p_1t0 %':>8} {'p_sa %':>8} "
           f"{'energy %':>8}"]
  for voltage in chip.conditions:
    rates = chip.rates(voltage)
    lines.append(f"{voltage:8.3f} {100 * rates['p']:8.4f} {100 * rates['p_0t1']:8.4f} "
                 f"{100 * rates['p_1t0']:8.4f} {100 * rates['p_sa']:8.4f} "
                 f"{100 * (1 - energy.energy_at_voltage(voltage)):8.1f}")
  lines.append("energy: SRAM access energy saved at that voltage (tfbet.energy model of Fig. 1)")
  return "\n".join(lines)


def plot_chip(chip, directory, region):
  """Writes one error map PNG per voltage into ``directory``; returns their paths."""
  os.makedirs(directory, exist_ok=True)
  return [plots.draw_error_map(chip, voltage,
                              os.path.join(directory, f"{chip.name}_v{voltage:.3f}.png"),
                              region=region)
          for voltage in chip.conditions]


def main(argv):
  """Simulates a profiled SRAM chip, saves it, plots it, prints its rates.

  The real profiled chips of the paper (App. C.1) are not public; this writes a chip file in the
  format of :meth:`tfbet.chips.ProfiledChip.save`, either one of the presets ``chip1``..``chip3``
  that reproduce the App. C.1 statistics or a chip with explicit parameters.
  """
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  flag_values = flags.FLAGS
  if not flag_values.output:
    raise app.UsageError("--output (path of the .npz chip file) is required")
  try:
    region = tuple(int(value) for value in flag_values.plot_region)
  except ValueError as error:
    raise app.UsageError(f"--plot_region must be two integers rows,cols, got "
                         f"{flag_values.plot_region}") from error
  try:
    chip = chip_from_flags(flag_values)
  except (TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  if (len(region) != 2 or not 1 <= region[0] <= chip.rows or not 1 <= region[1] <= chip.cols):
    raise app.UsageError(f"--plot_region must be rows,cols within the {chip.rows} x {chip.cols} "
                         f"array, got {flag_values.plot_region}")
  directory = os.path.dirname(os.path.abspath(flag_values.output))
  os.makedirs(directory, exist_ok=True)
  chip.save(flag_values.output)
  print(rates_table(chip))
  print(f"wrote {flag_values.output}")
  if flag_values.plot:
    for path in plot_chip(chip, flag_values.plot, region):
      print(f"wrote {path}")


if __name__ == "__main__":  # python -m tfbet.cli.simulate_chips
  launch.start("simulate_chips")
