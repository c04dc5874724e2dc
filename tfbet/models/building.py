"""What every tfbet model shares: argument checks, width scaling and a seeded layer factory.

All models are functional Keras models (``quantize_apply`` refuses subclassed ones) made only of
standard Keras layers and the normalization layers of ``tfbet.layers``. The factory gives every
conv/dense kernel He initialization (App. F) from its own seed, derived from the model seed and
the layer's creation index, so the same seed builds bit-identical weights; and it attaches one
constraint (e.g. ``WeightClip``) to every kernel, bias and normalization parameter, which are
exactly the parameters that get quantized.
"""
import math
import numbers

import numpy as np

from tfbet import checks
from tfbet import layers as tfbet_layers
from tfbet.compat import keras

NORMALIZATIONS = ("group", "batch")


def check_positive_int(name, value):
  """Returns value as an int, or raises if it is not an int >= 1 (``tfbet.checks.count``)."""
  return checks.count(value, name, minimum=1)


def check_width(width):
  """Returns the channel width multiplier as a float, or raises if it is not finite and > 0."""
  return checks.positive(width, "width")


def check_rate(name, rate):
  """A dropout rate: a probability below 1 (1 would drop everything)."""
  rate = checks.probability(rate, name)
  if rate == 1.0:
    raise ValueError(f"{name} must be in [0, 1), got {rate!r}.")
  return rate


def check_normalization(normalization):
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
  return normalization


def check_input_shape(input_shape, min_size=1):
  """Returns (height, width, channels) as ints; height and width must be >= min_size."""
  try:
    shape = tuple(input_shape)
  except TypeError:
    raise TypeError(f"input_shape must be a tuple (height, width, channels), "
                    f"got {input_shape!r}.") from None
  if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, numbers.Integral)
                            or d < 1 for d in shape):
    raise ValueError(f"input_shape must be (height, width, channels) of ints >= 1, "
                     f"got {input_shape!r}.")
  if min(shape[:2]) < min_size:
    raise ValueError(f"input_shape must have height and width >= {min_size} for this model "
                     f"(it halves them with every pooling/stride), got {input_shape!r}.")
  return tuple(int(d) for d in shape)


def scale_channels(channels, width):
  """Channels of a layer at a width multiplier: max(1, round(channels * width)), halves up."""
  return max(1, int(math.floor(channels * width + 0.5)))


def group_count(channels, groups, channels_per_group=None):
  """Largest divisor of ``channels`` not above the requested number of groups.

  The request is ``groups``, or ``channels // channels_per_group`` when that is given (at least
  one group). Adapting per layer lets one setting serve every layer and every width multiplier.
  """
  if channels_per_group is not None:
    target = max(1, channels // channels_per_group)
  else:
    target = groups
  target = min(target, channels)
  while channels % target:
    target -= 1
  return target


class LayerFactory:
  """Creates the layers of one model: seeded He-initialized convs/dense, the chosen norm."""

  def __init__(self, normalization="group", groups=32, channels_per_group=None,
               kernel_constraint=None, seed=None):
    self.normalization = check_normalization(normalization)
    self.groups = check_positive_int("groups", groups)
    self.channels_per_group = (None if channels_per_group is None else
                               check_positive_int("channels_per_group", channels_per_group))
    self.constraint = keras.constraints.get(kernel_constraint)
    self.seed = None if seed is None else checks.seed(seed)
    self._created = 0

  def next_seed(self):
    """A fresh seed per random layer; None (unseeded) when the model has no seed."""
    self._created += 1
    if self.seed is None:
      return None
    state = np.random.SeedSequence([self.seed, self._created]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)

  def _he_normal(self):
    return keras.initializers.HeNormal(seed=self.next_seed())

  def conv(self, filters, kernel_size, strides=1, use_bias=True, name=None):
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
        kernel_initializer=self._he_normal(), bias_initializer="zeros",
        kernel_constraint=self.constraint, bias_constraint=self.constraint, name=name)

  def dense(self, units, name=None):
    return keras.layers.Dense(
        units, kernel_initializer=self._he_normal(), bias_initializer="zeros",
        kernel_constraint=self.constraint, bias_constraint=self.constraint, name=name)

  def norm(self, channels, name=None):
    if self.normalization == "group":
      return tfbet_layers.GroupNormalization(
          groups=group_count(channels, self.groups, self.channels_per_group),
          gamma_constraint=self.constraint, beta_constraint=self.constraint, name=name)
    return tfbet_layers.BatchNormalization(
        gamma_constraint=self.constraint, beta_constraint=self.constraint, name=name)

  def dropout(self, rate, name=None):
    return keras.layers.Dropout(rate, seed=self.next_seed(), name=name)
