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
"""
import math
import numbers
import os

import numpy as np

MAX_SEED = 2**63 - 1


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
    raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
  return value


def count(value, name, minimum=0):
  """``value`` as an ``int`` >= ``minimum`` (default 0)."""
  return integer(value, name, minimum=minimum)


def seed(value, name="seed"):
  """``value`` as an ``int`` in ``[0, 2**63 - 1]``."""
  return integer(value, name, minimum=0, maximum=MAX_SEED)


def real(value, name, minimum=-math.inf, maximum=math.inf):
  """``value`` as a finite ``float`` in ``[minimum, maximum]``."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ArgumentTypeError(f"{name} must be a real number, got {value!r}")
  value = float(value)
  if not math.isfinite(value) or not minimum <= value <= maximum:
    bounds = "" if (minimum, maximum) == (-math.inf, math.inf) else f" in [{minimum}, {maximum}]"
    raise ValueError(f"{name} must be a finite number{bounds}, got {value}")
  return value


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
