"""Argument checks: one rule per kind of input, applied where the input enters tfbet.

A value is checked once, by the public function or constructor that receives it from the user;
what is called with already-checked values does not check them again. Each check returns the
value in its canonical type (``int``, ``float``, ``str``) and raises :class:`ArgumentTypeError`
(a ``TypeError`` that is also a ``ValueError``, so the binaries report it as a bad setting like
any other) for a value of the wrong type, ``ValueError`` for one of the right type outside the
accepted range; the message names the argument and the range. A ``bool`` is never accepted as a number.

The rules:

* integer / count: a Python or numpy integer in ``[minimum, maximum]`` (counts: ``>= 0``).
* seed: an integer in ``[0, 2**63 - 1]`` (an int64 that is never negative). Every random thing
  in tfbet takes one; the same seed gives bit-identical results.
* real: a finite Python or numpy real in ``[minimum, maximum]``; :func:`positive`: ``> 0``.
* probability: a real in ``[0, 1]`` (a share or fraction of something).
* rate: a bit error rate p as a fraction in ``[0, 1]``; above 0.5 only when the caller allows it
  (a rate above 0.5 is almost always a percent passed by mistake).
* boolean: ``True`` or ``False`` (numpy's ``bool_`` too), never a number or a string.
* choice: one of a fixed tuple of values.
* class labels: an array of integer dtype (never bool or float) with values in
  ``[0, num_classes)``; the message names the first bad value and its example.
* path: a ``str`` or ``os.PathLike``, not empty; optionally an existing file.
* size: a count of things tfbet allocates per item (chips, rates, offsets, shards, batch
  entries) is at most its limit below, checked before anything is allocated; a list of such
  things is read no further than one item past its limit (:func:`bounded_list`).
"""
import collections.abc as collections_abc
import itertools
import math
import numbers
import os

import numpy as np

MAX_SEED = 2**63 - 1

# Limits on sizes (the messages name them). Each lies far beyond any experiment of the paper and
# keeps what tfbet allocates per item (seed lists, plans, counts in result files) small, so a
# mistyped or hostile size fails at once instead of hanging or exhausting memory.
# Chips of one evaluation: 20,000 times the paper's 50 (App. F); at 1 s a chip, 12 days of work,
# while its plan and counts stay within tens of MB.
MAX_CHIPS = 10**6
# Rates or voltages of one evaluation (a table of the paper has a handful of rate columns).
MAX_CONDITIONS = 1000
# Placements of the weights on one profiled chip (App. C.1 averages over a few).
MAX_OFFSETS = 10**4
# Entries (chip, condition, offset) of one evaluation: ~100 bytes each in a result file, so
# at most ~1 GB, the largest result file tfbet reads (results.MAX_RESULT_BYTES).
MAX_PLAN_ENTRIES = 10**7
# Largest count (test examples, errors, parameters, bit offsets) a result may hold: ratios of
# such counts are exact in float64, and it is far beyond any test set or model.
MAX_COUNT = 2**53
# Shards of one evaluation: a shard holds at least one chip.
MAX_SHARDS = MAX_CHIPS
# Examples in one batch: 2**16 CIFAR images are 800 MB of float32, beyond any accelerator's
# batch of the paper's models.
MAX_BATCH_SIZE = 2**16
# Fault probabilities of one simulated profiled chip (bit cells x voltages): 256 times the
# paper's largest array (8192 x 128, App. C.1) at one voltage; its two float32 maps take 2 GB.
MAX_CHIP_CELLS = 2**28


class ArgumentTypeError(TypeError, ValueError):
  """An argument of the wrong type: a TypeError, and a ValueError for callers that report bad
  settings (a gin value of the wrong type in ``bin/train`` gives a usage line, not a traceback)."""


def integer(value, name, minimum=None, maximum=None):
  """``value`` as an ``int`` in ``[minimum, maximum]`` (None: unbounded)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ArgumentTypeError(f"{name} must be an integer, got {value!r}")
  value = int(value)
  if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
    low = "-inf" if minimum is None else minimum
    high = "inf" if maximum is None else maximum
    shown = value if abs(value) < 10**30 else f"an integer of {len(str(abs(value)))} digits"
    raise ValueError(f"{name} must be in [{low}, {high}], got {shown}")
  return value


def count(value, name, minimum=0, maximum=None):
  """``value`` as an ``int`` >= ``minimum`` (default 0) and <= ``maximum`` (None: unbounded)."""
  return integer(value, name, minimum=minimum, maximum=maximum)


def bounded_list(values, name, maximum):
  """``values`` (any iterable) as a list of at most ``maximum`` items.

  Reads at most ``maximum + 1`` items, so a huge range or an endless generator fails at once.
  """
  if isinstance(values, (str, bytes)) or not isinstance(values, collections_abc.Iterable):
    raise ArgumentTypeError(f"{name} must be a list (or another iterable), got {values!r}")
  if isinstance(values, collections_abc.Sized) and len(values) > maximum:
    raise ValueError(f"{name} must have at most {maximum} items, got {len(values)}")
  items = list(itertools.islice(values, maximum + 1))
  if len(items) > maximum:
    raise ValueError(f"{name} must have at most {maximum} items, got more")
  return items



def percentages(values, name, low, high, high_included=True, unit="percent", example=""):
  """A flag's list of values in ``unit`` (percent or percentage points) -> fractions.

  Each value is a number in [low, high] (``high`` excluded unless ``high_included``; ``high``
  may be ``math.inf``, never reached); the list is not empty, its values are distinct, and it
  is read no further than one item past MAX_CONDITIONS. ValueError naming ``name``.
  """
  fractions = []
  for value in bounded_list(values, name, MAX_CONDITIONS):
    try:
      number = float(value)
    except (TypeError, ValueError) as error:
      raise ValueError(f"{name} must be numbers in {unit}{example}, got {value!r}") from error
    if not (low <= number <= high and (high_included or number < high) and math.isfinite(number)):
      closing = "]" if high_included and high != math.inf else ")"
      raise ValueError(f"{name} are in {unit} and must be in [{low:g}, {high:g}{closing}, got "
                       f"{value!r}")
    fractions.append(number / 100.0)
  if not fractions:
    raise ValueError(f"{name} must not be empty")
  if len(set(fractions)) != len(fractions):
    raise ValueError(f"{name} must be distinct, got {list(values)}")
  return fractions

def seed(value, name="seed"):
  """``value`` as an ``int`` in ``[0, 2**63 - 1]``."""
  return integer(value, name, minimum=0, maximum=MAX_SEED)


def real(value, name, minimum=-math.inf, maximum=math.inf):
  """``value`` as a finite ``float`` in ``[minimum, maximum]``."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ArgumentTypeError(f"{name} must be a real number, got {value!r}")
  bounds = "" if (minimum, maximum) == (-math.inf, math.inf) else f" in [{minimum}, {maximum}]"
  try:
    number = float(value)
  except OverflowError:  # An integer beyond every float (e.g. 10**400 in a JSON file).
    raise ValueError(f"{name} must be a finite number{bounds}, got an integer of "
                     f"{len(str(abs(int(value))))} digits") from None
  if not math.isfinite(number) or not minimum <= number <= maximum:
    raise ValueError(f"{name} must be a finite number{bounds}, got {number}")
  return number


def positive(value, name):
  """``value`` as a finite ``float`` > 0."""
  value = real(value, name)
  if value <= 0:
    raise ValueError(f"{name} must be a finite number > 0, got {value}")
  return value


def probability(value, name):
  """``value`` as a ``float`` in ``[0, 1]``."""
  return real(value, name, 0.0, 1.0)


def rate(value, name="rate", allow_high_rate=False):
  """A bit error rate p as a fraction in [0, 1]; above 0.5 only with ``allow_high_rate``.

  The Python API takes fractions (1 % is 0.01), the command lines take percent. A fraction
  above 0.5 (more than every other bit wrong) almost always is a percent passed by mistake, so
  it is refused unless the caller says it is meant.
  """
  value = probability(value, name)
  if value > 0.5 and not allow_high_rate:
    raise ValueError(
        f"{name}={value:g} is a fraction of bits (1 % is 0.01); a rate above 0.5 looks like a "
        f"percent. Pass {value / 100:g} for {value:g} %, or allow_high_rate=True if you mean "
        f"{100 * value:g} % of all bits.")
  return value


def boolean(value, name):
  """``value`` as a ``bool``; only ``True`` and ``False`` (or numpy's) are accepted."""
  if not isinstance(value, (bool, np.bool_)):
    raise ArgumentTypeError(f"{name} must be True or False, got {value!r}")
  return bool(value)


def choice(value, name, choices):
  """``value`` if it is one of ``choices``."""
  if value not in choices:
    raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
  return value


def class_labels(values, name, num_classes, first_example=0):
  """``values`` as an int64 numpy array of class indices in ``[0, num_classes)``.

  Checked with whole-array reductions (cheap on large test sets); a float 0.5 would otherwise
  be cast to class 0, and -1 or 99 silently counted as errors. ``first_example`` is the index
  of ``values[0]`` in the whole data set, so the message points at the example.
  """
  array = np.asarray(values)
  if array.dtype.kind not in "iu":
    found = f"{array.dtype} labels"
    if array.dtype.kind == "f" and array.size:
      fractional = ~np.isfinite(array) | (array != np.round(array))
      if fractional.any():
        index = int(np.argmax(fractional))
        found += f"; the first not a whole number is {array.flat[index].item()!r} (example " \
                 f"{first_example + index})"
    raise ArgumentTypeError(f"{name} must be integer class indices in [0, {num_classes}), got "
                            f"{found}")
  if array.size and (array.min() < 0 or array.max() >= num_classes):
    index = int(np.argmax((array < 0) | (array >= num_classes)))
    raise ValueError(f"{name} must be class indices in [0, {num_classes}) (the model's "
                     f"{num_classes} outputs), got {array.flat[index].item()} (example "
                     f"{first_example + index})")
  return array.astype(np.int64)


def path(value, name, must_exist=False):
  """``value`` as a non-empty ``str`` path; with ``must_exist``, the path of an existing file."""
  if not isinstance(value, (str, os.PathLike)):
    raise ArgumentTypeError(f"{name} must be a path (str or os.PathLike), got {value!r}")
  value = os.fspath(value)
  if not isinstance(value, str) or not value:
    raise ValueError(f"{name} must be a non-empty path, got {value!r}")
  if must_exist and not os.path.isfile(value):
    raise FileNotFoundError(f"{name} {value!r} does not exist")
  return value
