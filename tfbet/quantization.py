"""Fixed-point quantization schemes of Sec. 4.1 (Eq. 1, 3, 4) and App. D.

A weight is stored as one uint8 whose low ``precision`` bits hold the code; bits above are zero.
A scheme is the combination of

* ``precision`` m in 1..8;
* ``per_tensor`` range (weights and biases of each layer separately) or one ``global`` range;
* ``asymmetric`` range [q_min, q_max] mapped to [-1, 1] by Eq. (3), or symmetric [-q_max, q_max];
* ``unsigned`` codes with offset 2^(m-1) - 1 (Eq. 4), or signed two's complement in m bits;
* ``rounding`` (round half away from zero) or int conversion, chosen by ``int_conversion``:
  ``"truncate"`` toward zero (C's integer cast; the default, what earlier versions did) or
  ``"floor"`` (Eq. 1 writes the floor bracket). They differ for negative s only: truncation maps
  s in (-1, 1) to 0 and is symmetric around 0, floor maps s in [-1, 0) to -1. The paper leaves
  open which one its int conversion is, so both can be run; ``int_conversion`` has no effect
  with rounding and must then stay "truncate".

With L = 2^(m-1) - 1 levels on each side, the real value s = w / Delta (symmetric,
Delta = q_max / L) or s = N(w) * L (asymmetric) is turned into an integer r in [-L, L]; signed
codes store r in two's complement, unsigned codes store r + L. Eq. (1) has no levels for m = 1
(L = 0); there the single bit selects one end of the range (the nearer one): unsigned code 1 and
signed code 0 mean the upper end, so the sign bit keeps its meaning.

Arithmetic is done in float64 and the result cast to float32 once.
"""
import dataclasses

import gin
import tensorflow as tf

from tfbet import checks

# Smallest range width used for constant tensors (q_max == q_min), so nothing divides by zero.
_MIN_WIDTH = 1e-12
# How s becomes an integer without rounding: toward zero, or down (Eq. 1's floor bracket).
INT_CONVERSIONS = ("truncate", "floor")


@dataclasses.dataclass(frozen=True)
class QuantizationScheme:
  """How float weights become m-bit codes; see the module docstring."""
  precision: int = 8
  per_tensor: bool = True
  asymmetric: bool = True
  unsigned: bool = True
  rounding: bool = True
  int_conversion: str = "truncate"

  def __post_init__(self):
    # Each field checked and stored in its canonical type (plain int and bools, for to_dict).
    object.__setattr__(self, "precision",
                       checks.integer(self.precision, "precision", minimum=1, maximum=8))
    for field in ("per_tensor", "asymmetric", "unsigned", "rounding"):
      object.__setattr__(self, field, checks.boolean(getattr(self, field), field))
    checks.choice(self.int_conversion, "int_conversion", INT_CONVERSIONS)
    if self.rounding and self.int_conversion != "truncate":
      raise ValueError(f"int_conversion={self.int_conversion!r} applies to schemes without "
                       "rounding only; a rounding scheme (e.g. 'rquant') keeps 'truncate'")

  @property
  def levels(self):
    """L = 2^(m-1) - 1, the largest |r| (0 for m = 1)."""
    return 2 ** (self.precision - 1) - 1

  @property
  def code_mask(self):
    """The bits a code may use: 2^m - 1."""
    return 2 ** self.precision - 1

  def to_dict(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, config):
    """The inverse of ``to_dict``; a config saved before ``int_conversion`` existed is
    "truncate", what those versions did."""
    return cls(**config)


# The cumulative rows of Tab. 1 / Tab. 8; "normal" is NORMAL, "rquant" is RQUANT.
PRESETS = {
    "global": dict(per_tensor=False, asymmetric=False, unsigned=False, rounding=False),
    "normal": dict(per_tensor=True, asymmetric=False, unsigned=False, rounding=False),
    "asymmetric": dict(per_tensor=True, asymmetric=True, unsigned=False, rounding=False),
    "unsigned": dict(per_tensor=True, asymmetric=True, unsigned=True, rounding=False),
    "rquant": dict(per_tensor=True, asymmetric=True, unsigned=True, rounding=True),
}


@gin.configurable
def get_scheme(name="rquant", precision=8, int_conversion="truncate"):
  """Returns the preset ``name`` (one of PRESETS) at ``precision`` bits, converting to integers
  by ``int_conversion`` (INT_CONVERSIONS) when the preset does not round."""
  if isinstance(name, QuantizationScheme):
    return name
  key = str(name).lower()
  if key not in PRESETS:
    raise ValueError(f"unknown quantization preset {name!r}; choose one of {sorted(PRESETS)}")
  return QuantizationScheme(precision=precision, int_conversion=int_conversion, **PRESETS[key])


def as_scheme(scheme):
  """The ``QuantizationScheme`` that a preset name (``get_scheme``), a ``to_dict`` config or a
  scheme stands for: what every constructor taking a scheme accepts (a saved config is a dict)."""
  if isinstance(scheme, dict):
    return QuantizationScheme.from_dict(scheme)
  return get_scheme(scheme)


def tensor_range(weights, scheme):
  """(q_min, q_max) of one tensor, float32 scalars: [-max|w|, max|w|] or [min w, max w]."""
  w = tf.convert_to_tensor(weights, tf.float32)
  if scheme.asymmetric:
    return tf.reduce_min(w), tf.reduce_max(w)
  q_max = tf.reduce_max(tf.abs(w))
  return -q_max, q_max


def combined_range(ranges, scheme):
  """The global range covering several per-tensor ranges [(q_min, q_max), ...]."""
  q_min = tf.reduce_min(tf.stack([r[0] for r in ranges]))
  q_max = tf.reduce_max(tf.stack([r[1] for r in ranges]))
  if not scheme.asymmetric:
    q_max = tf.maximum(q_max, -q_min)
    q_min = -q_max
  return q_min, q_max


def _real_levels(w, q_min, q_max, scheme):
  """s = w / Delta (symmetric) or N(w) * L (asymmetric, Eq. 3), in float64."""
  w = tf.cast(w, tf.float64)
  q_min = tf.cast(q_min, tf.float64)
  q_max = tf.cast(q_max, tf.float64)
  levels = max(scheme.levels, 1)
  if scheme.asymmetric:
    width = tf.maximum(q_max - q_min, _MIN_WIDTH)
    return ((w - q_min) / width * 2.0 - 1.0) * levels
  return w / (tf.maximum(q_max, _MIN_WIDTH / 2) / levels)  # w / Delta, Eq. (1)


def quantize(weights, q_min, q_max, scheme):
  """Float weights -> uint8 codes (low ``precision`` bits) for the range [q_min, q_max]."""
  w = tf.debugging.check_numerics(
      tf.convert_to_tensor(weights, tf.float32),
      "tfbet.quantize: weights contain NaN or Inf")
  s = _real_levels(w, q_min, q_max, scheme)
  if scheme.precision == 1:
    upper = s >= 0.0  # nearer end of the range; ties go up
    code = tf.where(upper, 1, 0) if scheme.unsigned else tf.where(upper, 0, 1)
    return tf.cast(code, tf.uint8)
  levels = scheme.levels
  if scheme.rounding:
    r = tf.sign(s) * tf.floor(tf.abs(s) + 0.5)
  elif scheme.int_conversion == "floor":
    r = tf.floor(s)
  else:
    r = tf.sign(s) * tf.floor(tf.abs(s))
  r = tf.clip_by_value(r, -levels, levels)
  if scheme.unsigned:  # r + L in [0, 2L] is an exact small integer: straight to uint8
    return tf.cast(r + levels, tf.uint8)
  code = tf.bitwise.bitwise_and(tf.cast(r, tf.int32), scheme.code_mask)  # two's complement
  return tf.cast(code, tf.uint8)


def integer_values(codes, scheme):
  """uint8 codes -> the integers r they represent (only the low ``precision`` bits count)."""
  c = tf.bitwise.bitwise_and(tf.cast(codes, tf.int32), scheme.code_mask)
  if scheme.precision == 1:
    upper = tf.equal(c, 1) if scheme.unsigned else tf.equal(c, 0)
    return tf.where(upper, 1, -1)
  if scheme.unsigned:
    return c - scheme.levels
  sign_bit = 2 ** (scheme.precision - 1)
  return tf.where(c >= sign_bit, c - 2 * sign_bit, c)


def dequantize(codes, q_min, q_max, scheme):
  """uint8 codes -> float32 weights (Q^-1 of Eq. 1 / Eq. 4, then the inverse of Eq. 3).

  Computed in float64 and rounded to float32 once, so the range ends come back exactly (a
  float32 multiply-add was measured ~2 % of a training step faster but drifts by an ulp).
  """
  r = tf.cast(integer_values(codes, scheme), tf.float64)
  q_min = tf.cast(q_min, tf.float64)
  q_max = tf.cast(q_max, tf.float64)
  normalized = r / max(scheme.levels, 1)
  if scheme.asymmetric:
    width = tf.maximum(q_max - q_min, _MIN_WIDTH)
    w = (normalized + 1.0) / 2.0 * width + q_min
  else:
    w = normalized * tf.maximum(q_max, _MIN_WIDTH / 2)
  return tf.cast(w, tf.float32)


@tf.custom_gradient
def _straight_through(weights, quantized):
  del weights
  return tf.identity(quantized), lambda upstream: (upstream, None)


def straight_through(weights, quantized):
  """Forward: exactly ``quantized``; backward: identity to ``weights`` (STE for QAT)."""
  weights = tf.convert_to_tensor(weights)
  return _straight_through(weights, tf.cast(quantized, weights.dtype))


def fake_quantize(weights, scheme, q_min=None, q_max=None):
  """Q^-1(Q(w)) with a straight-through gradient; the range defaults to the tensor's own."""
  if q_min is None or q_max is None:
    q_min, q_max = tensor_range(weights, scheme)
  q_min, q_max = tf.stop_gradient(q_min), tf.stop_gradient(q_max)
  codes = quantize(weights, q_min, q_max, scheme)
  return straight_through(weights, dequantize(codes, q_min, q_max, scheme))


def step_size(q_min, q_max, scheme):
  """Delta in weight units: the change caused by flipping the LSB (for tests and reports)."""
  levels = max(scheme.levels, 1)
  if scheme.asymmetric:
    return max(q_max - q_min, _MIN_WIDTH) / 2.0 / levels
  return max(q_max, _MIN_WIDTH / 2) / levels


def describe(scheme):
  """A short human-readable name, e.g. 'rquant/8bit', 'unsigned-floor/4bit'."""
  floor = "-floor" if scheme.int_conversion == "floor" else ""
  for name, fields in PRESETS.items():
    if all(getattr(scheme, k) == v for k, v in fields.items()):
      return f"{name}{floor}/{scheme.precision}bit"
  return (f"{'tensor' if scheme.per_tensor else 'global'}-"
          f"{'asym' if scheme.asymmetric else 'sym'}-"
          f"{'unsigned' if scheme.unsigned else 'signed'}-"
          f"{'round' if scheme.rounding else scheme.int_conversion[:5]}/{scheme.precision}bit")

