"""The bit errors the stored weights meet on a profiled chip at a voltage and an offset.

A profiled chip (``tfbet.chips.ProfiledChip``) is a rows x cols array of bit cells; bit ``b`` of
weight ``i`` sits at address ``offset + 8 * i + b`` and uses cell ``address mod (rows * cols)``
in row-major order. A 0-to-1 fault changes the bit only where a 0 is stored and a 1-to-0 fault
only where a 1 is stored, so with the stored codes of a memory image (``tfbet.memory``) the
probability that each stored bit changes is exact:
``P(bit changes) = p0t1[cell] if bit == 0 else p1t0[cell]``.
Averaged per tensor and bit position this is the pattern the weights meet: with byte-aligned
offsets and ``cols`` a multiple of 8, bit b always lands in the columns c = b mod 8, so a chip's
weak columns hit fixed bit positions (App. C.1).
"""
import dataclasses

import numpy as np



def cell_indices(num_bytes, precision, offset, num_cells):
  """int64 [num_bytes, precision]: the cell of bit b of byte i, ``(offset + 8 i + b) % cells``."""
  if num_cells < 1 or offset < 0 or not 1 <= precision <= 8:
    raise ValueError(f"need num_cells >= 1, offset >= 0, precision in 1..8; got {num_cells}, "
                     f"{offset}, {precision}")
  addresses = (offset + 8 * np.arange(num_bytes, dtype=np.int64)[:, None]
               + np.arange(precision, dtype=np.int64)[None, :])
  return addresses % num_cells


def change_probabilities(codes, precision, p0t1, p1t0, offset):
  """float64 [W, precision]: probability that stored bit b of byte i changes on the chip.

  Args:
    codes: uint8 [W] stored bytes (e.g. ``memory_contents`` or a memory image's ``codes``).
    precision: m; bits m..7 are never touched.
    p0t1, p1t0: (rows, cols) probability maps of the chip at one voltage.
    offset: bit address of the first weight on the array (any integer >= 0).
  """
  codes = np.asarray(codes, np.uint8).reshape(-1)
  p0t1 = np.asarray(p0t1, np.float64).reshape(-1)
  p1t0 = np.asarray(p1t0, np.float64).reshape(-1)
  cells = cell_indices(codes.size, precision, offset, p0t1.size)
  bits = (codes[:, None] >> np.arange(precision, dtype=np.uint8)[None, :]) & 1
  return np.where(bits == 0, p0t1[cells], p1t0[cells])


@dataclasses.dataclass(frozen=True)
class MetPattern:
  """What the weights meet: mean change probability per (tensor, bit position)."""
  chip: str
  voltage: float
  offset: int
  tensors: tuple  # "<index>: <variable name>" in memory order
  starts: tuple  # bit address of each tensor's first bit, modulo the array
  per_tensor: np.ndarray  # float64 [tensors, precision]
  per_bit: np.ndarray  # float64 [precision], over all weights
  expected_changed_bits: float  # sum over all stored bits


def met_pattern(chip, voltage, image, offset=0):
  """``MetPattern`` of a memory image (``tfbet.memory.read_image``) on ``chip`` at ``voltage``."""
  p0t1, p1t0 = chip.probability_maps(voltage)
  precision = image["scheme"].precision
  codes = np.asarray(image["codes"], np.uint8)
  probabilities = change_probabilities(codes, precision, p0t1, p1t0, offset)
  names, starts, rows = [], [], []
  for entry in image["layout"]:
    part = probabilities[entry["offset"]:entry["offset"] + entry["size"]]
    names.append(f"{len(names)}: {entry['name'].split(':')[0]}")
    starts.append((offset + 8 * entry["offset"]) % chip.num_cells)
    rows.append(part.mean(axis=0) if part.size else np.zeros(precision))
  return MetPattern(chip=chip.name, voltage=float(voltage), offset=int(offset),
                    tensors=tuple(names), starts=tuple(starts),
                    per_tensor=np.array(rows).reshape(len(rows), precision),
                    per_bit=probabilities.mean(axis=0), expected_changed_bits=float(
                        probabilities.sum()))
