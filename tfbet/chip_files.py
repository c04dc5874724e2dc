"""The profiled-chip file: per-cell fault probability maps as a documented ``.npz``.

Format version 1, one array per key (no pickled objects):

* ``format_version``: int64 scalar, 1.
* ``name``, ``description``, ``pattern``: unicode scalars (pattern e.g. "uniform", "columns", or
  "" if unknown).
* ``rows``, ``cols``: int64 scalars, the bit-cell array size.
* ``voltages``: float64 (K,), normalized by V_min, strictly increasing.
* ``p0t1``, ``p1t0``: float32 (K, rows, cols), probabilities in [0, 1] of a 0-to-1 / 1-to-0
  failure of each cell at each voltage, with ``p0t1 + p1t0 <= 1`` per cell; 1 = persistent.

The transient-fault seed is not part of the file. :func:`check_maps` is also the rule the
in-memory chip (``tfbet.chip_models.ProfiledChip``) follows, so a chip that exists can be saved
and a file that loads is a valid chip.
"""
import os

import numpy as np

from tfbet import archives
from tfbet import checks
from tfbet import files

FORMAT_VERSION = 1
CHIP_FILE_KEYS = ("format_version", "name", "description", "pattern", "rows", "cols", "voltages",
                  "p0t1", "p1t0")
# Tolerance on p0t1 + p1t0 <= 1 per cell (float32 sums of two probabilities).
SUM_TOLERANCE = 1e-6
# Two voltages closer than this are the same operating condition.
VOLTAGE_TOLERANCE = 1e-6


def check_voltages(voltages, where):
  """Validates profiled voltages (finite, > 0, strictly increasing); returns them as float64."""
  voltages = np.asarray(voltages)
  if voltages.ndim != 1 or voltages.size == 0 or voltages.dtype.kind not in "iuf":
    raise ValueError(f"{where}: voltages must be a non-empty 1-D array of numbers, "
                     f"got shape {voltages.shape} and dtype {voltages.dtype}")
  voltages = voltages.astype(np.float64)
  if not np.all(np.isfinite(voltages)) or np.any(voltages <= 0):
    raise ValueError(f"{where}: voltages must be finite and > 0, got {voltages.tolist()}")
  if np.any(np.diff(voltages) <= VOLTAGE_TOLERANCE):
    raise ValueError(f"{where}: voltages must be strictly increasing, got {voltages.tolist()}")
  return voltages


def check_maps(voltages, p0t1, p1t0, where):
  """Validates voltages and probability maps; returns them as float64 / float32 arrays."""
  voltages = check_voltages(voltages, where)
  maps = []
  for key, values in (("p0t1", p0t1), ("p1t0", p1t0)):
    values = np.asarray(values)
    if values.dtype.kind not in "iuf":
      raise ValueError(f"{where}: {key} must hold numbers, got dtype {values.dtype}")
    if values.ndim != 3 or values.shape[0] != voltages.size or 0 in values.shape:
      raise ValueError(f"{where}: {key} must have shape (num_voltages={voltages.size}, rows, "
                       f"cols) with rows, cols > 0, got {values.shape}")
    values = values.astype(np.float32)
    if np.any(np.isnan(values)):
      raise ValueError(f"{where}: {key} contains NaN")
    if np.any((values < 0) | (values > 1)):
      raise ValueError(f"{where}: {key} must be probabilities in [0, 1], found values in "
                       f"[{values.min()}, {values.max()}]")
    maps.append(values)
  if maps[0].shape != maps[1].shape:
    raise ValueError(f"{where}: p0t1 and p1t0 must have the same shape, got {maps[0].shape} "
                     f"and {maps[1].shape}")
  total = maps[0].astype(np.float64) + maps[1]
  if np.any(total > 1 + SUM_TOLERANCE):
    raise ValueError(f"{where}: p0t1 + p1t0 must be <= 1 in every cell, found {total.max()}")
  return voltages, maps[0], maps[1]


def write(path, *, name, description, pattern, voltages, p0t1, p1t0):
  """Writes a chip file (already validated fields) to ``path`` atomically; returns the path."""
  path = os.fspath(path)
  with files.atomic_open(path, "wb") as f:
    np.savez_compressed(
        f, format_version=np.int64(FORMAT_VERSION), name=np.str_(name),
        description=np.str_(description), pattern=np.str_(pattern),
        rows=np.int64(p0t1.shape[1]), cols=np.int64(p0t1.shape[2]), voltages=voltages,
        p0t1=p0t1, p1t0=p1t0)
  return path


def _read_scalar(fields, key, kinds, where):
  value = fields[key]
  if value.ndim != 0 or value.dtype.kind not in kinds:
    raise ValueError(f"{where}: {key} must be a scalar of kind {kinds!r}, got shape "
                     f"{value.shape} and dtype {value.dtype}")
  return value.item()


def read(path):
  """Reads a chip file; returns a dict of ``name, description, pattern, voltages, p0t1, p1t0``.

  Raises FileNotFoundError if ``path`` does not exist, ValueError naming the file if it is not a
  valid chip file of this format version.
  """
  path = checks.path(path, "chip file")
  where = f"chip file {path!r}"
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{where} does not exist")
  fields = archives.read_npz(path, where)
  missing = [key for key in CHIP_FILE_KEYS if key not in fields]
  if missing:
    raise ValueError(f"{where} lacks the key(s) {missing}; a chip file needs "
                     f"{list(CHIP_FILE_KEYS)}")
  version = _read_scalar(fields, "format_version", "iu", where)
  if version != FORMAT_VERSION:
    raise ValueError(f"{where} has format_version {version}; this tfbet reads version "
                     f"{FORMAT_VERSION}")
  name = _read_scalar(fields, "name", "U", where)
  description = _read_scalar(fields, "description", "U", where)
  pattern = _read_scalar(fields, "pattern", "U", where)
  rows = _read_scalar(fields, "rows", "iu", where)
  cols = _read_scalar(fields, "cols", "iu", where)
  voltages, p0t1, p1t0 = check_maps(fields["voltages"], fields["p0t1"], fields["p1t0"], where)
  if p0t1.shape[1:] != (rows, cols):
    raise ValueError(f"{where}: maps have shape {p0t1.shape[1:]} per voltage but rows, cols "
                     f"say ({rows}, {cols})")
  if not name:
    raise ValueError(f"{where}: name must not be empty")
  return dict(name=name, description=description, pattern=pattern, voltages=voltages,
              p0t1=p0t1, p1t0=p1t0)
