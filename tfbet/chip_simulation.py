"""Simulated profiled chips: fault maps with the statistics of the paper's measured chips.

The measured chips of the paper (App. C.1) are not public. :func:`simulate_profiled_chip` makes
per-cell fault probability maps whose faults are nested across voltages (Fig. 3) and whose
expected statistics follow a rate curve (default: :func:`tfbet.energy.rate_at_voltage`); the
presets ``chip1``, ``chip2``, ``chip3`` (:func:`simulate_preset`) match the App. C.1 table.
"""
import numbers

import numpy as np

from tfbet import checks
from tfbet import chip_files
from tfbet import chip_models
from tfbet import energy

PATTERNS = ("uniform", "columns")
# Simulated transient faults fail with a probability drawn uniformly from this range, strictly
# inside (0, 1) so they stay apart from persistent faults (probability 1) and from healthy cells.
TRANSIENT_PROBABILITY_RANGE = (0.02, 0.98)
# Defaults of the "columns" pattern: this share of all faults falls into weak columns, which are
# this fraction of the columns.
DEFAULT_COLUMN_CONCENTRATION = 0.9
DEFAULT_WEAK_COLUMN_FRACTION = 0.125


def _per_voltage(value, name, count):
  """Broadcasts a fraction or a sequence of ``count`` fractions to a float64 array."""
  if isinstance(value, numbers.Real) and not isinstance(value, bool):
    values = np.full(count, float(value))
  else:
    try:
      values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
      raise TypeError(f"{name} must be a fraction or a sequence of {count} fractions, "
                      f"got {value!r}") from error
    if values.shape != (count,):
      raise ValueError(f"{name} must be a fraction or one fraction per voltage ({count}), "
                       f"got {value!r}")
  if not np.all((values >= 0) & (values <= 1)):
    raise ValueError(f"{name} must be in [0, 1], got {value!r}")
  return values


def _spatial_weights(rows, cols, pattern, column_concentration, weak_column_fraction, rng):
  """Relative fault propensity per cell (mean 1): flat, or high in a few weak columns."""
  if pattern == "uniform":
    return np.ones((rows, cols))
  num_weak = max(1, int(round(weak_column_fraction * cols)))
  if num_weak >= cols:
    raise ValueError(f"weak_column_fraction={weak_column_fraction} leaves no normal column "
                     f"among cols={cols}; use a value below {1 - 0.5 / cols:.4f}")
  share = num_weak / cols
  column_weights = np.full(cols, (1.0 - column_concentration) / (1.0 - share))
  weak = rng.choice(cols, size=num_weak, replace=False)
  column_weights[weak] = column_concentration / share
  return np.broadcast_to(column_weights, (rows, cols))


def _faulty_share(threshold, weight_values, weight_counts):
  """Expected fraction of faulty cells when a cell with weight w fails w.p. min(1, t * w)."""
  return float(np.sum(weight_counts * np.minimum(1.0, threshold * weight_values))
               / np.sum(weight_counts))


def _calibrate_threshold(target, weights):
  """Threshold t with mean(min(1, t * w)) == target, by bisection (exact to float precision)."""
  values, counts = np.unique(weights, return_counts=True)
  reachable = float(np.sum(counts[values > 0]) / np.sum(counts))
  if target > reachable + 1e-12:
    raise ValueError(f"the requested rates need {target:.4%} of the cells to be faulty, but the "
                     f"spatial pattern lets only {reachable:.4%} fail; lower the rates or the "
                     f"column_concentration")
  if target <= 0:
    return 0.0
  low, high = 0.0, 1.0
  while _faulty_share(high, values, counts) < target:
    high *= 2.0
  for _ in range(200):
    middle = 0.5 * (low + high)
    if _faulty_share(middle, values, counts) < target:
      low = middle
    else:
      high = middle
  return high


def simulate_profiled_chip(rows, cols, voltages, *, pattern="uniform", rate_at=None,
                           fraction_0to1=0.5, persistent_fraction=0.5,
                           column_concentration=None, weak_column_fraction=None, seed=0,
                           name=None, description=None):
  """Simulates a profiled SRAM chip with nested faults (Fig. 3) and App. C.1-like statistics.

  Every cell has a failure voltage, drawn at the resolution of ``voltages``: it is faulty at
  voltage v iff v is below it, so the faulty cells at a higher voltage are a subset of those at a
  lower one. A faulty cell keeps its direction (0-to-1 or 1-to-0) and its probability (1 for a
  persistent fault, else a transient probability from TRANSIENT_PROBABILITY_RANGE) at every
  voltage where it is faulty. The cells that start failing between two listed voltages get the
  persistent share and the 0-to-1 share that make the *expected* statistics at every voltage
  equal the targets below; the realized maps scatter around them (binomially).

  Args:
    rows, cols: size of the bit-cell array (App. C.1: 2048 x 128 or 8192 x 128).
    voltages: normalized voltages, strictly increasing.
    pattern: "uniform" (faulty cells spread at random, chip 1 of Fig. 3) or "columns" (most
      faults in a few weak columns, chips 2 and 3).
    rate_at: callable voltage -> expected bit error rate p (fraction, mean of p0t1 + p1t0);
      default :func:`tfbet.energy.rate_at_voltage`. Must not increase with the voltage.
    fraction_0to1: share of p due to 0-to-1 faults (p_0t1 / p), one value or one per voltage.
    persistent_fraction: share of p due to persistent faults (p_sa / p), one value or one per
      voltage.
    column_concentration: "columns" only: expected share of the faulty cells that lie in weak
      columns when nothing saturates (default 0.9).
    weak_column_fraction: "columns" only: fraction of the columns that are weak (default 1/8).
    seed: seed of everything random here (numpy PCG64); same seed, same maps.
    name, description: stored with the chip; generated from the arguments when None.

  Returns:
    A :class:`tfbet.chip_models.ProfiledChip` (its transient-fault seed is ``seed``).

  Raises:
    ValueError: on out-of-range arguments, or targets that cannot be nested: p_0t1, p_1t0,
      p_sa and p - p_sa must each not increase with the voltage.
  """
  rows = checks.integer(rows, "rows", minimum=1)
  cols = checks.integer(cols, "cols", minimum=1)
  seed = checks.seed(seed)
  checks.choice(pattern, "pattern", PATTERNS)
  if pattern == "uniform":
    if column_concentration is not None or weak_column_fraction is not None:
      raise ValueError("column_concentration and weak_column_fraction only apply to "
                       "pattern='columns'")
  else:
    column_concentration = checks.probability(
        DEFAULT_COLUMN_CONCENTRATION if column_concentration is None else column_concentration,
        "column_concentration")
    weak_column_fraction = checks.probability(
        DEFAULT_WEAK_COLUMN_FRACTION if weak_column_fraction is None else weak_column_fraction,
        "weak_column_fraction")
    if weak_column_fraction in (0.0, 1.0):
      raise ValueError(f"weak_column_fraction must be in (0, 1), got {weak_column_fraction}")
  voltages = chip_files.check_voltages(voltages, "simulate_profiled_chip")
  count = voltages.size
  checks.count(rows * cols * count, "rows x cols x voltages (fault probabilities)",
               maximum=checks.MAX_CHIP_CELLS)
  rate_at = energy.rate_at_voltage if rate_at is None else rate_at
  if not callable(rate_at):
    raise TypeError(f"rate_at must be a callable voltage -> rate, got {rate_at!r}")
  rates = np.array([float(rate_at(float(v))) for v in voltages])
  if not np.all((rates >= 0) & (rates < 1)):
    raise ValueError(f"rate_at must give rates in [0, 1), got {rates.tolist()} at voltages "
                     f"{voltages.tolist()}")
  fraction_0to1 = _per_voltage(fraction_0to1, "fraction_0to1", count)
  persistent_fraction = _per_voltage(persistent_fraction, "persistent_fraction", count)

  # Cumulative targets at each voltage, then the increments of the cells that start failing
  # between voltages[k + 1] and voltages[k] ("band" k; band count - 1 fails at the top voltage).
  targets = {
      "p_0t1": rates * fraction_0to1,
      "p_1t0": rates * (1.0 - fraction_0to1),
      "p_sa": rates * persistent_fraction,
      "p - p_sa (transient part)": rates * (1.0 - persistent_fraction),
  }
  increments = {}
  for label, values in targets.items():
    step = values - np.append(values[1:], 0.0)
    if np.any(step < -1e-12):
      bad = int(np.flatnonzero(step < -1e-12)[0])
      raise ValueError(
          f"{label} must not increase with the voltage (faults are nested across voltages), "
          f"but it is {values[bad]:.6g} at voltage {voltages[bad]:.6g} and "
          f"{values[bad + 1]:.6g} at voltage {voltages[bad + 1]:.6g}; check rate_at, "
          f"fraction_0to1 and persistent_fraction")
    increments[label] = np.maximum(step, 0.0)
  new_rate = increments["p_0t1"] + increments["p_1t0"]
  new_persistent = increments["p_sa"]
  transient_mean = 0.5 * sum(TRANSIENT_PROBABILITY_RANGE)
  new_faulty = new_persistent + increments["p - p_sa (transient part)"] / transient_mean
  with np.errstate(divide="ignore", invalid="ignore"):
    persistent_share = np.where(new_faulty > 0, new_persistent / new_faulty, 0.0)
    share_0to1 = np.where(new_rate > 0, increments["p_0t1"] / new_rate, 0.0)
  faulty = np.cumsum(new_faulty[::-1])[::-1]  # Expected faulty fraction at each voltage.

  rng = np.random.default_rng(seed)
  weights = _spatial_weights(rows, cols, pattern, column_concentration, weak_column_fraction,
                             rng)
  thresholds = np.array([_calibrate_threshold(f, weights) for f in faulty])
  latent = rng.random((rows, cols))
  with np.errstate(divide="ignore"):
    weakness = np.where(weights > 0, latent / np.where(weights > 0, weights, 1.0), np.inf)
  # A cell is faulty at voltages[k] iff weakness < thresholds[k] (thresholds fall with k).
  levels = np.sum(weakness[None] < thresholds[:, None, None], axis=0)
  band = np.clip(levels - 1, 0, count - 1)
  persistent = rng.random((rows, cols)) < persistent_share[band]
  direction_0to1 = rng.random((rows, cols)) < share_0to1[band]
  transient = rng.uniform(*TRANSIENT_PROBABILITY_RANGE, size=(rows, cols))
  probability = np.where(persistent, 1.0, transient).astype(np.float32)

  p0t1 = np.zeros((count, rows, cols), dtype=np.float32)
  p1t0 = np.zeros((count, rows, cols), dtype=np.float32)
  for k in range(count):
    faulty_here = levels > k
    p0t1[k] = np.where(faulty_here & direction_0to1, probability, 0.0)
    p1t0[k] = np.where(faulty_here & ~direction_0to1, probability, 0.0)

  if name is None:
    name = f"simulated_{pattern}_{rows}x{cols}_seed{seed}"
  if description is None:
    details = (f", column_concentration={column_concentration}, "
               f"weak_column_fraction={weak_column_fraction}" if pattern == "columns" else "")
    description = (f"Simulated by tfbet.chips.simulate_profiled_chip(pattern={pattern!r}, "
                   f"fraction_0to1={fraction_0to1.tolist()}, "
                   f"persistent_fraction={persistent_fraction.tolist()}{details}, seed={seed}); "
                   f"target rates {rates.tolist()}.")
  return chip_models.ProfiledChip(name, voltages, p0t1, p1t0, description=description,
                                  pattern=pattern, seed=seed)


# Statistics of the profiled chips in App. C.1, in %: (p, p_0t1, p_1t0, p_sa) per voltage,
# listed as in the paper (lowest voltage, i.e. highest rate, first).
APP_C1_TABLE = {
    "chip1": ((2.744, 1.27, 1.47, 1.223), (0.866, 0.38, 0.49, 0.393)),
    "chip2": ((4.707, 3.443, 1.091, 0.627), (1.01, 0.82, 0.19, 0.105),
              (0.136, 0.115, 0.021, 0.01)),
    "chip3": ((2.297, 1.81, 0.48, 0.204), (0.597, 0.496, 0.0995, 0.206)),
}
# Simulated presets match every entry of APP_C1_TABLE within
# |measured - paper| <= PRESET_RELATIVE_TOLERANCE * paper + PRESET_ABSOLUTE_TOLERANCE (fractions).
PRESET_RELATIVE_TOLERANCE = 0.10
PRESET_ABSOLUTE_TOLERANCE = 1e-4

# How each preset is simulated. Targets per voltage are (p_0t1, p_1t0, p_sa) in %, from
# APP_C1_TABLE, except: p is taken as p_0t1 + p_1t0 (chip 2's 4.707 exceeds its 3.443 + 1.091),
# and chip 3's p_sa is 0.205 at both voltages (the paper's 0.204 at the lower voltage and 0.206
# at the higher one cannot both hold with nested faults). Voltages are where the energy model
# gives that p, rounded to 3 decimals.
_PRESET_SPECS = {
    "chip1": dict(rows=2048, cols=128, pattern="uniform", seed=1,
                  targets=((1.27, 1.47, 1.223), (0.38, 0.49, 0.393))),
    "chip2": dict(rows=8192, cols=128, pattern="columns", seed=2,
                  targets=((3.443, 1.091, 0.627), (0.82, 0.19, 0.105), (0.115, 0.021, 0.01))),
    "chip3": dict(rows=8192, cols=128, pattern="columns", seed=3,
                  targets=((1.81, 0.48, 0.205), (0.496, 0.0995, 0.205))),
}
PRESETS = tuple(_PRESET_SPECS)


def preset_arguments(preset):
  """Keyword arguments of :func:`simulate_profiled_chip` that make preset ``preset``."""
  checks.choice(preset, "preset", PRESETS)
  spec = _PRESET_SPECS[preset]
  targets = np.array(spec["targets"], dtype=np.float64) / 100.0  # By increasing voltage.
  rates = targets[:, 0] + targets[:, 1]
  voltages = [round(energy.voltage_at_rate(p), 3) for p in rates]
  return dict(rows=spec["rows"], cols=spec["cols"], voltages=voltages, pattern=spec["pattern"],
              fraction_0to1=(targets[:, 0] / rates).tolist(),
              persistent_fraction=(targets[:, 2] / rates).tolist(), seed=spec["seed"],
              name=preset)


def simulate_preset(preset, seed=None):
  """Simulates ``chip1``, ``chip2`` or ``chip3`` (App. C.1 statistics); ``seed`` overrides."""
  arguments = preset_arguments(preset)
  if seed is not None:
    arguments["seed"] = checks.seed(seed)
  return simulate_profiled_chip(**arguments)
