"""Chip models: where and how low-voltage bit errors hit the weight memory.

The memory is a flat uint8 array of W quantized weights, one byte per weight (docs/design.md §3);
bit b (0 = least significant) of byte i has address ``offset + 8 * i + b``. A chip turns
(number of bytes, precision m, operating condition, offset) into three uint8 masks per byte,
applied as ``v' = ((v ^ flip) | set) & ~clear``; bits m..7 are never touched. Every chip
describes itself (:meth:`Chip.describe`) for the result files.

A chip *kind* registers itself once, in its class statement (``class RandomChip(Chip,
kind="random", settings=("seed",))``): its name (the ``"kind"`` of its descriptions), the
settings a binary builds it from (:meth:`Chip.from_settings`, :func:`build`) and how a result
file's description names it (:meth:`Chip.from_description`, :func:`name_of_description`). The
binaries offer the kinds they have the settings for (:func:`kinds`), so a new chip model is one
class here (docs/design.md §3, "Chip kinds").

* :class:`RandomChip` - the paper's error model (Sec. 3): a chip is a seed; bit a flips at rate p
  iff ``u(seed, a) <= p``, so errors at p' <= p are a subset of those at p. Condition: p.
* :class:`AsymmetricRandomChip` - the same chip with faulty cells that only fail 0-to-1 (rate
  ``p * fraction_0to1``) or 1-to-0 (rate ``p * (1 - fraction_0to1)``), as App. C.1 finds for
  profiled chips. Such a fault changes the bit only if the stored bit is the opposite value.
* :class:`ProfiledChip` - per-cell 0-to-1 / 1-to-0 probability maps of a rows x cols bit-cell
  array at a few voltages (App. C.1, Fig. 3, Fig. 8), stored as a documented ``.npz``
  (:mod:`tfbet.chip_files`). Weights map linearly onto the array from a bit offset and wrap
  around. Condition: the voltage, normalized by V_min. Transient faults are drawn from the chip's
  seed; persistent faults (probability 1) are hit for every seed.

The masks come from the compiled op in :mod:`tfbet.ops` (imported on first use, so chip files,
the simulator and the plots work without the compiled library).
"""
import abc

import numpy as np

from tfbet import chip_files
from tfbet import checks

# Evaluation uses the chips with seeds FIRST_EVALUATION_SEED + i, i = 0..num_chips-1.
FIRST_EVALUATION_SEED = 1000
DEFAULT_NUM_CHIPS = 50

# The rule for bit error rates (kept here under its old name: tfbet.chips.check_rate).
check_rate = checks.rate


def _ops():
  from tfbet import ops  # pylint: disable=g-import-not-at-top
  return ops


def default_chip_seeds(num_chips=DEFAULT_NUM_CHIPS):
  """Fixed seeds ``1000 + i`` of the random chips used by evaluation (App. F: 50 chips).

  At most ``checks.MAX_CHIPS`` chips, so a mistyped count fails before the tuple is built.
  """
  checks.count(num_chips, "num_chips", minimum=1, maximum=checks.MAX_CHIPS)
  return tuple(FIRST_EVALUATION_SEED + i for i in range(num_chips))


def _check_layout(num_bytes, precision, offset, byte_aligned=True):
  num_bytes = checks.count(num_bytes, "num_bytes")
  precision = checks.integer(precision, "precision", minimum=1, maximum=8)
  offset = checks.count(offset, "offset")
  if byte_aligned and offset % 8:
    raise ValueError(f"offset (in bits) must be a non-negative multiple of 8, got {offset}")
  return num_bytes, precision, offset


def _zeros(num_bytes):
  return np.zeros(num_bytes, dtype=np.uint8)


# {kind: Chip subclass} of every registered chip kind, in the order they registered.
KINDS = {}


def kinds(settings):
  """The registered kinds a binary can build from ``settings`` (the names it has values for)."""
  return tuple(kind for kind, cls in KINDS.items() if set(cls.settings) <= set(settings))


def build(kind, where="chip", **settings):
  """A chip of ``kind`` from a binary's settings (flags, gin parameters named in ``where``).

  ``kind`` must be one of ``kinds(settings)``; settings that the kind does not take are ignored
  (``bin/eval`` passes ``fraction_0to1`` to every kind), and one it takes must not be None.
  """
  choices = kinds(settings)
  if kind not in choices:
    raise ValueError(f"{where}.kind must be {' or '.join(map(repr, choices))}, got {kind!r}")
  cls = KINDS[kind]
  for key in cls.settings:
    if settings[key] is None:
      raise ValueError(f"{where}.{key} is required for kind={kind!r}")
  return cls.from_settings(**{key: settings[key] for key in cls.settings})


def name_of_description(info):
  """The name of the chip a result describes; None for kinds named freely and unknown kinds."""
  cls = KINDS.get(info.get("kind"))
  chip = None if cls is None else cls.from_description(info)
  return None if chip is None else chip.name


class Chip(abc.ABC):
  """A bit error model: masks for a slice of the weight memory under one operating condition.

  A subclass registers a chip kind with ``class MyChip(Chip, kind="mine", settings=(...))``
  (see the module docstring); unregistered subclasses are described by their class name.
  """

  kind = None  # The registered name, None for an unregistered chip.
  settings = ()  # What the kind is built from (its constructor's arguments by default).

  def __init_subclass__(cls, kind=None, settings=(), **kwargs):
    super().__init_subclass__(**kwargs)
    if kind is not None:
      if kind in KINDS:
        raise ValueError(f"chip kind {kind!r} is registered already, by {KINDS[kind].__name__}")
      cls.kind, cls.settings = kind, tuple(settings)
      KINDS[kind] = cls

  @classmethod
  def from_settings(cls, **settings):
    """The chip built from its kind's settings (checked by the constructor)."""
    return cls(**settings)

  @classmethod
  def from_description(cls, info):
    """The chip that :meth:`describe` gave ``info``; None where the description cannot tell
    (a chip named freely). By default the description holds the kind's settings."""
    return cls.from_settings(**{key: info[key] for key in cls.settings})

  @property
  @abc.abstractmethod
  def name(self):
    """Short identifier, used in result files."""

  @property
  def conditions(self):
    """The conditions this chip knows (voltages), or None if any rate in [0, 1] is allowed."""
    return None

  def describe(self):
    """JSON-able description, stored with results (and compared when merging them).

    ``{"kind": ...}`` plus what makes the chip this chip: by default its kind's settings.
    """
    return {"kind": self.kind or type(self).__name__,
            **{key: getattr(self, key) for key in self.settings}}

  @abc.abstractmethod
  def masks(self, num_bytes, precision, condition, offset=0):
    """Returns numpy uint8 arrays ``(flip, set, clear)`` of length ``num_bytes``.

    Args:
      num_bytes: number of stored bytes (weights) in the slice.
      precision: m in 1..8; only bits 0..m-1 of each byte can be hit.
      condition: bit error rate p in [0, 1] (random chips) or normalized voltage (profiled).
      offset: bit address of the slice's first bit (a multiple of 8 for random chips), so any
        slice of the memory can be computed alone.
    """


class RandomChip(Chip, kind="random", settings=("seed",)):
  """Uniform random bit flips (Sec. 3): the chip is its seed; errors are nested across p."""

  def __init__(self, seed):
    self._seed = checks.seed(seed)

  @property
  def seed(self):
    return self._seed

  @property
  def name(self):
    return f"random_{self._seed}"

  def masks(self, num_bytes, precision, condition, offset=0):
    num_bytes, precision, offset = _check_layout(num_bytes, precision, offset)
    rate = checks.probability(condition, "condition (bit error rate p)")
    if num_bytes == 0:
      return _zeros(0), _zeros(0), _zeros(0)
    flip = _ops().random_flip_mask([num_bytes], self._seed, rate, precision=precision,
                                   offset=offset)
    return np.asarray(flip, dtype=np.uint8), _zeros(num_bytes), _zeros(num_bytes)

  def __repr__(self):
    return f"RandomChip(seed={self._seed})"


class AsymmetricRandomChip(Chip, kind="asymmetric", settings=("seed", "fraction_0to1")):
  """Random faults that set (0-to-1, rate p * f) or clear (1-to-0, rate p * (1 - f)) a bit.

  Bit a is set iff ``u(seed, a) <= p * f`` and cleared iff ``u(seed, a) > 1 - p * (1 - f)``, so
  for a fixed ``fraction_0to1`` the faulty bits are nested across p, and no bit is both.
  """

  def __init__(self, seed, fraction_0to1):
    self._seed = checks.seed(seed)
    self._fraction_0to1 = checks.probability(fraction_0to1, "fraction_0to1")

  @property
  def seed(self):
    return self._seed

  @property
  def fraction_0to1(self):
    return self._fraction_0to1

  @property
  def name(self):
    return f"asymmetric_{self._fraction_0to1:g}_{self._seed}"

  def masks(self, num_bytes, precision, condition, offset=0):
    num_bytes, precision, offset = _check_layout(num_bytes, precision, offset)
    rate = checks.probability(condition, "condition (bit error rate p)")
    if num_bytes == 0:
      return _zeros(0), _zeros(0), _zeros(0)
    set_mask, clear_mask = _ops().asymmetric_masks(
        [num_bytes], self._seed, rate * self._fraction_0to1, rate * (1.0 - self._fraction_0to1),
        precision=precision, offset=offset)
    return (_zeros(num_bytes), np.asarray(set_mask, dtype=np.uint8),
            np.asarray(clear_mask, dtype=np.uint8))

  def __repr__(self):
    return f"AsymmetricRandomChip(seed={self._seed}, fraction_0to1={self._fraction_0to1})"


class ProfiledChip(Chip, kind="profiled", settings=("path", "seed")):
  """Per-cell fault probability maps of one chip at a few voltages (App. C.1).

  ``p0t1[k, r, c]`` / ``p1t0[k, r, c]``: probability that bit cell (r, c) reads 1 after a 0 was
  written / 0 after a 1, at ``voltages[k]`` (normalized by V_min, strictly increasing). A cell
  with probability 1 is a persistent fault. Bit address a uses cell ``a mod (rows * cols)`` in
  row-major order.
  """

  def __init__(self, name, voltages, p0t1, p1t0, *, description="", pattern="", seed=0):
    if not isinstance(name, str) or not name:
      raise TypeError(f"name must be a non-empty string, got {name!r}")
    for label, text in (("description", description), ("pattern", pattern)):
      if not isinstance(text, str):
        raise TypeError(f"{label} must be a string, got {text!r}")
    self._name = name
    self._description = description
    self._pattern = pattern
    self._seed = checks.seed(seed)
    self._voltages, self._p0t1, self._p1t0 = chip_files.check_maps(
        voltages, p0t1, p1t0, f"profiled chip {name!r}")

  @property
  def name(self):
    return self._name

  @property
  def description(self):
    return self._description

  @property
  def pattern(self):
    return self._pattern

  @property
  def seed(self):
    """Seed of the transient faults (persistent ones do not depend on it)."""
    return self._seed

  @property
  def rows(self):
    return self._p0t1.shape[1]

  @property
  def cols(self):
    return self._p0t1.shape[2]

  @property
  def num_cells(self):
    """Bits in the array; bit addresses wrap around modulo this."""
    return self.rows * self.cols

  @property
  def voltages(self):
    return self._voltages.copy()

  @property
  def conditions(self):
    return tuple(float(v) for v in self._voltages)

  def with_seed(self, seed):
    """The same maps with another seed for the transient faults."""
    return ProfiledChip(self._name, self._voltages, self._p0t1, self._p1t0,
                        description=self._description, pattern=self._pattern, seed=seed)

  def voltage_index(self, voltage):
    """Index of ``voltage`` in :attr:`voltages` (exact up to 1e-6); ValueError if absent."""
    voltage = checks.real(voltage, "voltage", minimum=0.0)
    matches = np.flatnonzero(np.abs(self._voltages - voltage) <= chip_files.VOLTAGE_TOLERANCE)
    if matches.size == 0:
      raise ValueError(f"voltage {voltage} is not profiled on chip {self._name!r}; "
                       f"available voltages: {list(self.conditions)}")
    return int(matches[0])

  def probability_maps(self, voltage):
    """Returns copies of the (rows, cols) float32 maps ``(p0t1, p1t0)`` at ``voltage``."""
    k = self.voltage_index(voltage)
    return self._p0t1[k].copy(), self._p1t0[k].copy()

  def rates(self, voltage):
    """Statistics of App. C.1 at ``voltage``, as fractions (the paper's table is in %).

    Returns:
      dict with ``p`` (mean of p0t1 + p1t0 over cells), ``p_0t1``, ``p_1t0`` (means of each map)
      and ``p_sa`` (fraction of cells that fail with probability 1, i.e. persistent faults).
    """
    k = self.voltage_index(voltage)
    p0t1 = self._p0t1[k].astype(np.float64)
    p1t0 = self._p1t0[k].astype(np.float64)
    return {
        "p": float(np.mean(p0t1 + p1t0)),
        "p_0t1": float(np.mean(p0t1)),
        "p_1t0": float(np.mean(p1t0)),
        "p_sa": float(np.mean((p0t1 == 1) | (p1t0 == 1))),
    }

  def masks(self, num_bytes, precision, condition, offset=0, seed=None):
    """Masks at voltage ``condition``; ``seed`` (default: the chip's) draws transient faults.

    Unlike the random chips, ``offset`` may be any bit address >= 0: with a byte-aligned offset
    and ``cols`` a multiple of 8, bit b of every weight always lands in the columns c with
    c mod 8 == b, so unaligned offsets are the way to move weak columns to other bit positions.
    """
    num_bytes, precision, offset = _check_layout(num_bytes, precision, offset, byte_aligned=False)
    k = self.voltage_index(condition)
    seed = self._seed if seed is None else checks.seed(seed)
    if num_bytes == 0:
      return _zeros(0), _zeros(0), _zeros(0)
    set_mask, clear_mask = _ops().profiled_masks(
        [num_bytes], seed, self._p0t1[k], self._p1t0[k], precision=precision, offset=offset)
    return (_zeros(num_bytes), np.asarray(set_mask, dtype=np.uint8),
            np.asarray(clear_mask, dtype=np.uint8))

  def save(self, path):
    """Writes the chip to ``path`` (exactly this name) in the format of :mod:`tfbet.chip_files`.

    The transient-fault seed is not part of the file; pass it to :meth:`load`.
    """
    return chip_files.write(path, name=self._name, description=self._description,
                            pattern=self._pattern, voltages=self._voltages, p0t1=self._p0t1,
                            p1t0=self._p1t0)

  @classmethod
  def load(cls, path, seed=0):
    """Reads a chip file written by :meth:`save`; ValueError naming the file if it is invalid."""
    return cls(seed=seed, **chip_files.read(path))

  @classmethod
  def from_settings(cls, path, seed):
    return cls.load(path, seed=seed)

  @classmethod
  def from_description(cls, info):
    """None: the maps are in the chip's file, not in its description, so it is named freely."""
    return None

  def describe(self):
    """Kind, seed, array size, pattern and the App. C.1 statistics at every voltage."""
    return {"kind": "profiled", "seed": self._seed, "rows": self.rows, "cols": self.cols,
            "pattern": self._pattern,
            "rates": [dict(voltage=v, **self.rates(v)) for v in self.conditions]}

  def __repr__(self):
    return (f"ProfiledChip(name={self._name!r}, rows={self.rows}, cols={self.cols}, "
            f"voltages={list(self.conditions)}, seed={self._seed})")
