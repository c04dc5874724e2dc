"""The compiled bit error ops (custom_ops/): loader and argument-checking wrappers.

Memory model: one quantized weight per uint8, bit 0 least significant, bit b of element i at the
global bit address ``offset + 8 * i + b``. A chip is a seed; every bit address owns a uniform
``u(seed, address)`` in (0, 1] that does not depend on the rate, so a bit is faulty at rate p iff
``u <= p``: masks of one chip are exactly nested across rates, any slice of memory is computed on
its own from its offset, and nothing is stored per chip. ``custom_ops/bit_errors.h`` documents how
the uniforms are drawn (Philox4x32-10, an eighth of a block per byte at small rates).

Errors are applied as ``((v ^ flip) | set) & ~clear`` (``apply_bit_errors``).

The wrappers check Python values (ints, floats, numpy arrays) here, with ``ValueError`` /
``TypeError`` naming the argument; tensors, also symbolic ones inside ``tf.function``, are checked
by the kernels, which raise ``tf.errors.InvalidArgumentError`` naming the input.
"""
import glob
import numbers
import os

import numpy as np
import tensorflow as tf

__all__ = [
    "LIBRARY_PATH",
    "apply_bit_errors",
    "asymmetric_masks",
    "profiled_masks",
    "random_flip_mask",
]

# Op names registered by the library; none of them has a gradient.
OP_NAMES = ("TfbetRandomFlipMask", "TfbetAsymmetricMasks", "TfbetProfiledMasks",
            "TfbetApplyBitErrors")

# Overrides where the library is loaded from (e.g. the Bazel-built custom_ops/bazel_build.sh copy).
_LIBRARY_ENV = "TFBET_OPS_LIBRARY"

# Tolerance on p0t1 + p1t0 <= 1 per cell of a profiled map; the kernel uses the same.
_MAP_SUM_TOLERANCE = 1e-6

_INT64_MIN = -2**63
_INT64_MAX = 2**63 - 1


def _find_library():
  """Path of the compiled op library: $TFBET_OPS_LIBRARY, else _tfbet_ops*.so next to this file."""
  override = os.environ.get(_LIBRARY_ENV)
  if override:
    if not os.path.isfile(override):
      raise ImportError(f"{_LIBRARY_ENV}={override!r} does not name an existing file.")
    return override
  here = os.path.dirname(os.path.abspath(__file__))
  candidates = sorted(glob.glob(os.path.join(here, "_tfbet_ops*.so")))
  if not candidates:
    raise ImportError(
        f"The compiled tfbet ops (_tfbet_ops*.so) were not found in {here}. Build them from the "
        "repository root with `pip install --no-build-isolation -e .` (or set "
        f"{_LIBRARY_ENV} to a library built by custom_ops/bazel_build.sh).")
  return candidates[0]


LIBRARY_PATH = _find_library()
_ops = tf.load_op_library(LIBRARY_PATH)

for _op_name in OP_NAMES:
  tf.no_gradient(_op_name)  # ops.NotDifferentiable: masks are data, not functions of weights


# --------------------------------------------------------------------------------------------
# Argument checks. Python values are checked here; tensors by the kernels.


def _is_python_value(value):
  return not (tf.is_tensor(value) or isinstance(value, tf.Variable))


def _python_scalar(value, name, kind):
  """A Python/numpy scalar as int (kind 'int') or float (kind 'float'); bools are rejected."""
  if isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{name} must be a number, got a bool ({value!r}).")
  if isinstance(value, numbers.Integral):
    number = int(value)
  elif isinstance(value, numbers.Real) and kind == "float":
    number = float(value)
  else:
    array = np.asarray(value)
    if array.ndim != 0:
      raise ValueError(f"{name} must be a scalar, got shape {array.shape}.")
    if np.issubdtype(array.dtype, np.integer):
      number = int(array)
    elif kind == "float" and np.issubdtype(array.dtype, np.floating):
      number = float(array)
    else:
      wanted = "an integer" if kind == "int" else "a real number"
      raise TypeError(f"{name} must be {wanted}, got {value!r} of type {type(value).__name__}.")
  return number if kind == "int" else float(number)


def _integer_tensor(value, name, dtype):
  """An integer tensor as ``dtype``; a non-integer tensor is a TypeError.

  A tensor of a wider (or differently signed) dtype is range-checked before the cast, in graph
  too, so that e.g. an int64 precision of 2**32 + 3 fails instead of becoming 3.
  """
  tensor = tf.convert_to_tensor(value)
  if not tensor.dtype.is_integer:
    raise TypeError(f"{name} must be an integer tensor, got dtype {tensor.dtype.name}.")
  if tensor.dtype == dtype:
    return tensor
  checks = []
  message = f"{name} must fit in {dtype.name} [{dtype.min}, {dtype.max}] ({tensor.dtype.name} given)"
  if tensor.dtype.min < dtype.min:
    checks.append(tf.debugging.assert_greater_equal(
        tensor, tf.constant(dtype.min, tensor.dtype), message=message))
  if tensor.dtype.max > dtype.max:
    checks.append(tf.debugging.assert_less_equal(
        tensor, tf.constant(dtype.max, tensor.dtype), message=message))
  with tf.control_dependencies([check for check in checks if check is not None]):
    return tf.cast(tensor, dtype)


def _float_tensor(value, name):
  """A floating tensor cast to float64; a non-floating tensor is a TypeError."""
  tensor = tf.convert_to_tensor(value)
  if not tensor.dtype.is_floating:
    raise TypeError(f"{name} must be a floating tensor, got dtype {tensor.dtype.name}.")
  return tf.cast(tensor, tf.float64) if tensor.dtype != tf.float64 else tensor


def _shape_arg(shape):
  """A 1-D int32/int64 tensor from a list/tuple/TensorShape of dimensions or a 1-D tensor."""
  if isinstance(shape, tf.TensorShape):
    if not shape.is_fully_defined():
      raise ValueError(f"shape must be fully defined, got {shape}.")
    shape = shape.as_list()
  if _is_python_value(shape):
    if isinstance(shape, numbers.Number) and not isinstance(shape, bool):
      shape = [shape]
    dims = np.asarray(shape)
    if dims.ndim != 1:
      raise ValueError(f"shape must be a 1-D list of dimensions, got {shape!r}.")
    if dims.size and not np.issubdtype(dims.dtype, np.integer):
      raise TypeError(f"shape must hold integers, got {shape!r}.")
    if np.any(dims < 0):
      raise ValueError(f"shape must hold dimensions >= 0, got {shape!r}.")
    return tf.constant(dims.astype(np.int64), dtype=tf.int64)
  tensor = tf.convert_to_tensor(shape)
  if tensor.dtype not in (tf.int32, tf.int64):
    raise TypeError(f"shape must be an int32 or int64 tensor, got dtype {tensor.dtype.name}.")
  return tensor


def _seed_arg(seed):
  if _is_python_value(seed):
    value = _python_scalar(seed, "seed", "int")
    if not _INT64_MIN <= value <= _INT64_MAX:
      raise ValueError(f"seed must be an integer in [-2**63, 2**63 - 1], got {value}.")
    return tf.constant(value, dtype=tf.int64)
  return _integer_tensor(seed, "seed", tf.int64)


def _rate_arg(rate, name):
  if _is_python_value(rate):
    value = _python_scalar(rate, name, "float")
    if not 0.0 <= value <= 1.0:
      raise ValueError(f"{name} must be in [0, 1], got {value}.")
    return tf.constant(value, dtype=tf.float64)
  return _float_tensor(rate, name)


def _precision_arg(precision):
  if _is_python_value(precision):
    value = _python_scalar(precision, "precision", "int")
    if not 1 <= value <= 8:
      raise ValueError(f"precision must be in 1..8 (bits per weight), got {value}.")
    return tf.constant(value, dtype=tf.int32)
  return _integer_tensor(precision, "precision", tf.int32)


def _offset_arg(offset, byte_aligned):
  if _is_python_value(offset):
    value = _python_scalar(offset, "offset", "int")
    if not 0 <= value <= _INT64_MAX:
      raise ValueError(f"offset must be a bit address in [0, 2**63 - 1], got {value}.")
    if byte_aligned and value % 8:
      raise ValueError(f"offset must be a multiple of 8 (byte aligned) for this op, got {value}; "
                       "profiled_masks accepts any offset.")
    return tf.constant(value, dtype=tf.int64)
  return _integer_tensor(offset, "offset", tf.int64)


def _map_args(p0t1, p1t0):
  """Profiled maps as two tensors of one floating dtype; numpy maps are checked here."""
  maps = []
  for name, value in (("p0t1", p0t1), ("p1t0", p1t0)):
    if _is_python_value(value):
      array = np.asarray(value)
      if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} must hold floating probabilities, got dtype {array.dtype}.")
      if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D rows x cols map, got shape {array.shape}.")
      if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}.")
      if not np.all((array >= 0) & (array <= 1)):
        raise ValueError(f"{name} must hold probabilities in [0, 1], got values in "
                         f"[{np.nanmin(array)}, {np.nanmax(array)}] (or NaN).")
      if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
      maps.append(array)
    else:
      tensor = tf.convert_to_tensor(value)
      if tensor.dtype not in (tf.float32, tf.float64):
        raise TypeError(f"{name} must be a float32 or float64 tensor, got dtype "
                        f"{tensor.dtype.name}.")
      maps.append(tensor)
  if all(isinstance(m, np.ndarray) for m in maps):
    if maps[0].shape != maps[1].shape:
      raise ValueError(f"p0t1 and p1t0 must have the same shape, got {maps[0].shape} and "
                       f"{maps[1].shape}.")
    total = maps[0].astype(np.float64) + maps[1].astype(np.float64)
    if np.any(total > 1.0 + _MAP_SUM_TOLERANCE):
      row, col = np.argwhere(total > 1.0 + _MAP_SUM_TOLERANCE)[0]
      raise ValueError(f"p0t1 + p1t0 must be <= 1 in every cell, got {total[row, col]} at "
                       f"row {row}, col {col}.")
  dtypes = {tf.as_dtype(m.dtype) for m in maps}
  dtype = tf.float32 if dtypes == {tf.float32} else tf.float64
  return [tf.cast(m, dtype) if tf.as_dtype(m.dtype) != dtype else tf.convert_to_tensor(m)
          for m in maps]


def _uint8_arg(value, name):
  tensor = tf.convert_to_tensor(value)
  if tensor.dtype != tf.uint8:
    raise TypeError(f"{name} must be a uint8 tensor (one quantized weight per byte), got dtype "
                    f"{tensor.dtype.name}.")
  return tensor


# --------------------------------------------------------------------------------------------
# Ops.


def random_flip_mask(shape, seed, rate, precision=8, offset=0, name=None):
  """Symmetric random bit error mask (Sec. 3): XOR it into the quantized weights.

  Args:
    shape: shape of the mask (list, TensorShape or 1-D int32/int64 tensor).
    seed: int64 scalar, the chip; may be a runtime tensor.
    rate: bit error rate p in [0, 1] (float64 scalar or Python float).
    precision: m in 1..8; only the m low bits of every byte can be set.
    offset: bit address of bit 0 of element 0, >= 0 and a multiple of 8.
    name: optional op name.

  Returns:
    uint8 tensor of `shape`: bit b of element i is set iff b < m and u(seed, offset+8i+b) <= p.
  """
  return _ops.tfbet_random_flip_mask(
      shape=_shape_arg(shape), seed=_seed_arg(seed), rate=_rate_arg(rate, "rate"),
      precision=_precision_arg(precision), offset=_offset_arg(offset, byte_aligned=True),
      name=name)


def asymmetric_masks(shape, seed, rate_0to1, rate_1to0, precision=8, offset=0, name=None):
  """Set and clear masks for 0-to-1 and 1-to-0 bit errors (App. C.1).

  A bit is set iff u <= rate_0to1 and cleared iff u > 1 - rate_1to0, with the uniforms of
  `random_flip_mask`: at rate_1to0 = 0 the set mask equals the flip mask at rate_0to1.

  Args:
    shape: shape of the masks.
    seed: int64 scalar, the chip.
    rate_0to1: probability in [0, 1] that a bit reads 1.
    rate_1to0: probability in [0, 1] that a bit reads 0; rate_0to1 + rate_1to0 <= 1.
    precision: m in 1..8.
    offset: bit address of bit 0 of element 0, >= 0 and a multiple of 8.
    name: optional op name.

  Returns:
    (set, clear), two uint8 tensors of `shape` that never share a bit.
  """
  rate_0to1_tensor = _rate_arg(rate_0to1, "rate_0to1")
  rate_1to0_tensor = _rate_arg(rate_1to0, "rate_1to0")
  if _is_python_value(rate_0to1) and _is_python_value(rate_1to0):
    if float(rate_0to1) + float(rate_1to0) > 1.0 + 1e-12:
      raise ValueError(f"rate_0to1 + rate_1to0 must be <= 1 (a bit cannot be both), got "
                       f"{rate_0to1} + {rate_1to0}.")
  set_mask, clear_mask = _ops.tfbet_asymmetric_masks(
      shape=_shape_arg(shape), seed=_seed_arg(seed), rate_0to1=rate_0to1_tensor,
      rate_1to0=rate_1to0_tensor, precision=_precision_arg(precision),
      offset=_offset_arg(offset, byte_aligned=True), name=name)
  return set_mask, clear_mask


def profiled_masks(shape, seed, p0t1, p1t0, precision=8, offset=0, name=None):
  """Set and clear masks of a profiled chip (App. C.1): per-bit-cell flip probabilities.

  Weights are laid out linearly over the rows x cols cell array from `offset`, wrapping around:
  bit address a uses cell a mod (rows * cols) in row-major order. A bit is set iff
  u(seed, a) <= p0t1[cell] and cleared iff u(seed, a) > 1 - p1t0[cell]; cells with probability 1
  (persistent faults) are always faulty.

  Args:
    shape: shape of the masks.
    seed: int64 scalar, the draw of the non-persistent errors.
    p0t1: 2-D float32/float64 map of 0-to-1 flip probabilities in [0, 1].
    p1t0: map of 1-to-0 flip probabilities, same shape; p0t1 + p1t0 <= 1 per cell.
    precision: m in 1..8.
    offset: bit address of bit 0 of element 0 on the array, any integer >= 0.
    name: optional op name.

  Returns:
    (set, clear), two uint8 tensors of `shape`.
  """
  to_one, to_zero = _map_args(p0t1, p1t0)
  set_mask, clear_mask = _ops.tfbet_profiled_masks(
      shape=_shape_arg(shape), seed=_seed_arg(seed), p0t1=to_one, p1t0=to_zero,
      precision=_precision_arg(precision), offset=_offset_arg(offset, byte_aligned=False),
      name=name)
  return set_mask, clear_mask


def apply_bit_errors(values, flip=None, set_mask=None, clear_mask=None, name=None):
  """Perturbed codes ``((values ^ flip) | set_mask) & ~clear_mask``; missing masks are zero.

  Args:
    values: uint8 tensor of quantized weights.
    flip: optional uint8 mask of the same shape, bits to invert.
    set_mask: optional uint8 mask of the same shape, bits forced to 1.
    clear_mask: optional uint8 mask of the same shape, bits forced to 0.
    name: optional op name.

  Returns:
    uint8 tensor of the shape of `values`; equal to `values` when every mask is zero or None.
  """
  values = _uint8_arg(values, "values")
  masks = {"flip": flip, "set_mask": set_mask, "clear_mask": clear_mask}
  if all(mask is None for mask in masks.values()):
    return tf.identity(values, name=name)
  tensors = {}
  for mask_name, mask in masks.items():
    if mask is None:
      continue
    tensor = _uint8_arg(mask, mask_name)
    if not tensor.shape.is_compatible_with(values.shape):
      raise ValueError(f"{mask_name} must have the shape of values {values.shape}, got "
                       f"{tensor.shape}.")
    tensors[mask_name] = tensor
  if len(tensors) == 1:  # one pass over two arrays, instead of the kernel reading two zero masks
    (mask_name, tensor), = tensors.items()
    tensor = _same_shape(tensor, values, mask_name)
    if mask_name == "flip":
      return tf.bitwise.bitwise_xor(values, tensor, name=name)
    if mask_name == "set_mask":
      return tf.bitwise.bitwise_or(values, tensor, name=name)
    return tf.bitwise.bitwise_and(values, tf.bitwise.invert(tensor), name=name)
  return _ops.tfbet_apply_bit_errors(
      values, *[tensors[n] if n in tensors else tf.zeros_like(values) for n in masks], name=name)


def _same_shape(mask, values, mask_name):
  """`mask`, checked at run time to have the shape of `values` (bitwise ops would broadcast)."""
  if mask.shape.is_fully_defined() and values.shape.is_fully_defined():
    return mask  # equal: is_compatible_with above
  with tf.control_dependencies([tf.debugging.assert_equal(
      tf.shape(mask), tf.shape(values),
      message=f"{mask_name} must have the shape of values")]):
    return tf.identity(mask)
