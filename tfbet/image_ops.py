"""The single-image augmentation operations: the specification of the batched pass.

Each operation takes one image, ``[height, width, channels]``, and its argument (AutoAugment's
14 operations at a magnitude level, crop with padding, Cutout) and is tested against numpy;
``tfbet.batch_augment`` computes exactly these numbers for whole batches (docs/design.md §3,
"Determinism").

The AutoAugment operations and crop work on uint8 images (the operations are defined on 8-bit
pixels: posterize, solarize, histograms); Cutout works on any dtype. The operations follow the
semantics of their PIL namesakes, with two documented choices of ours: results are rounded (not
truncated) to 8 bit, and shear and rotation act about the image centre with nearest-neighbour
sampling.
"""
import math
from typing import Sequence

import tensorflow as tf

# Magnitude levels 0..9 span these ranges (Cubuk et al., 2018, Table 1); symmetric operations
# get a random sign.
NUM_LEVELS = 10
MAX_SHEAR = 0.3
MAX_TRANSLATE_FRACTION = 150.0 / 331.0  # 150 px on the 331 px images of the search.
MAX_ROTATE_DEGREES = 30.0
MAX_ENHANCE_DELTA = 0.9  # Contrast, Color, Brightness, Sharpness factors in [0.1, 1.9].

OP_NAMES = (
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "AutoContrast", "Invert",
    "Equalize", "Solarize", "Posterize", "Contrast", "Color", "Brightness", "Sharpness",
)


# ----------------------------------------------------------------------------- helpers
# The pixel arithmetic shared with the batched pass (public for tfbet.batch_augment, which must
# round exactly as the operations here do).


def to_float(image):
  """Pixel values as float32, on their 0..255 scale."""
  return tf.cast(image, tf.float32)


def to_uint8(values):
  """Rounds to the nearest 8-bit value (PIL truncates; rounding keeps brightness unbiased)."""
  return tf.cast(tf.clip_by_value(tf.round(values), 0.0, 255.0), tf.uint8)


def fill_like(image, fill):
  """The fill colour as a [channels] tensor of the image's dtype."""
  fill = tf.convert_to_tensor(fill)
  if image.dtype == tf.uint8 and fill.dtype != tf.uint8:
    fill = to_uint8(tf.cast(fill, tf.float32))
  fill = tf.cast(fill, image.dtype)
  return tf.broadcast_to(fill, tf.shape(image)[-1:])


def _sample_nearest(image, source_y, source_x, fill):
  """out[y, x] = image[round(source_y), round(source_x)], or `fill` outside the image.

  Coordinates are pixel indices (pixel (i, j) sits at y = i, x = j); nothing is interpolated,
  so 8-bit values stay exact.
  """
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  row = tf.cast(tf.round(source_y), tf.int32)
  col = tf.cast(tf.round(source_x), tf.int32)
  inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
  indices = tf.stack([tf.clip_by_value(row, 0, height - 1),
                      tf.clip_by_value(col, 0, width - 1)], axis=-1)
  sampled = tf.gather_nd(image, indices)
  fill = tf.reshape(fill_like(image, fill), [1, 1, -1])
  return tf.where(inside[..., tf.newaxis], sampled, fill)


def _output_grid(image):
  """Pixel coordinates (y, x) of the output and the image centre (cy, cx), all float32."""
  shape = tf.shape(image)
  height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  y, x = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
  return y, x, (height - 1.0) / 2.0, (width - 1.0) / 2.0


def blend(degenerate, image, factor):
  """PIL's ImageEnhance: degenerate + factor * (image - degenerate), back to 8 bit."""
  degenerate = to_float(degenerate)
  return to_uint8(degenerate + tf.cast(factor, tf.float32) * (to_float(image) - degenerate))


def _grayscale(image):
  """ITU-R 601-2 luma (PIL's "L" mode), rounded to 8 bit, shape [h, w, 1]."""
  values = to_float(image)
  if image.shape[-1] == 1:
    return values
  if image.shape[-1] != 3:
    raise ValueError(f"image must have 1 or 3 channels, got shape {image.shape}.")
  luma = tf.tensordot(values, tf.constant([0.299, 0.587, 0.114]), axes=[[2], [0]])
  return tf.round(luma)[..., tf.newaxis]


# ----------------------------------------------------------------------------- geometric ops


def shear_x(image, shear, fill):
  """out[y, x] = image[y, x + shear * (y - cy)]: a horizontal shear about the centre."""
  y, x, cy, _ = _output_grid(image)
  return _sample_nearest(image, y, x + tf.cast(shear, tf.float32) * (y - cy), fill)


def shear_y(image, shear, fill):
  """out[y, x] = image[y + shear * (x - cx), x]: a vertical shear about the centre."""
  y, x, _, cx = _output_grid(image)
  return _sample_nearest(image, y + tf.cast(shear, tf.float32) * (x - cx), x, fill)


def translate_x(image, pixels, fill):
  """Moves the content `pixels` to the right (negative: left)."""
  y, x, _, _ = _output_grid(image)
  return _sample_nearest(image, y, x - tf.cast(pixels, tf.float32), fill)


def translate_y(image, pixels, fill):
  """Moves the content `pixels` down (negative: up)."""
  y, x, _, _ = _output_grid(image)
  return _sample_nearest(image, y - tf.cast(pixels, tf.float32), x, fill)


def rotate(image, degrees, fill):
  """Rotates the content counter-clockwise (as displayed) by `degrees` about the centre."""
  y, x, cy, cx = _output_grid(image)
  radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
  cos, sin = tf.cos(radians), tf.sin(radians)
  # Each coordinate as (centre + own offset * cos) - other offset * (+-sin): the batched pass
  # rounds every geometric operation in this order (and graph optimizers regroup chains of
  # additions, never subtractions).
  source_x = cx + (x - cx) * cos - (y - cy) * sin
  source_y = cy + (y - cy) * cos - (x - cx) * -sin
  return _sample_nearest(image, source_y, source_x, fill)


# ----------------------------------------------------------------------------- colour ops


def invert(image):
  """255 - pixel."""
  return tf.constant(255, tf.uint8) - image


def solarize(image, threshold):
  """Inverts the pixels >= threshold (threshold 256 leaves the image unchanged)."""
  values = to_float(image)
  return tf.where(values < tf.cast(threshold, tf.float32), image, invert(image))


def posterize(image, bits):
  """Keeps the `bits` most significant bits of every pixel (bits in 1..8)."""
  shift = tf.cast(8 - tf.cast(bits, tf.int32), tf.uint8)
  return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def auto_contrast(image):
  """Stretches each channel linearly so its darkest pixel is 0 and its brightest 255."""
  values = to_float(image)
  low = tf.reduce_min(values, axis=[0, 1], keepdims=True)
  high = tf.reduce_max(values, axis=[0, 1], keepdims=True)
  flat = high <= low
  scale = tf.where(flat, 1.0, 255.0 / tf.where(flat, 1.0, high - low))
  stretched = (values - low) * scale
  return tf.where(flat, image, to_uint8(stretched))


def _equalize_channel(channel):
  """PIL's histogram equalization of one uint8 channel [h, w]."""
  values = tf.cast(channel, tf.int32)
  histogram = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256,
                               dtype=tf.int32)
  last_used = tf.reduce_max(tf.where(histogram > 0)[:, 0])
  step = (tf.reduce_sum(histogram) - tf.gather(histogram, last_used)) // 256
  safe_step = tf.maximum(step, 1)
  lookup = (tf.cumsum(histogram, exclusive=True) + safe_step // 2) // safe_step
  lookup = tf.cast(tf.minimum(lookup, 255), tf.uint8)
  return tf.where(step > 0, tf.gather(lookup, values), channel)


def equalize(image):
  """Equalizes each channel's histogram (no change where it has < 2 used levels)."""
  channels = tf.unstack(image, num=image.shape[-1], axis=-1)
  return tf.stack([_equalize_channel(c) for c in channels], axis=-1)


def contrast(image, factor):
  """Blends with a uniform image of the mean grey level (factor 1 = unchanged, 0 = uniform)."""
  mean = tf.round(tf.reduce_mean(_grayscale(image)))
  return blend(tf.fill(tf.shape(image), mean), image, factor)


def color(image, factor):
  """Blends with the greyscale image (factor 0 = grey); no change for 1-channel images."""
  degenerate = tf.broadcast_to(_grayscale(image), tf.shape(image))
  return blend(degenerate, image, factor)


def brightness(image, factor):
  """Blends with black, i.e. scales every pixel by factor."""
  return blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor):
  """Blends with a smoothed copy (3x3 kernel, centre weight 5 of 13; borders unsmoothed)."""
  values = to_float(image)
  channels = image.shape[-1]
  kernel = tf.constant([[1., 1., 1.], [1., 5., 1.], [1., 1., 1.]]) / 13.0
  kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, channels, 1])
  smooth = tf.round(tf.nn.depthwise_conv2d(values[tf.newaxis], kernel, [1, 1, 1, 1],
                                           "VALID")[0])
  interior = tf.pad(tf.ones_like(smooth, tf.bool), [[1, 1], [1, 1], [0, 0]])
  degenerate = tf.where(interior, tf.pad(smooth, [[1, 1], [1, 1], [0, 0]]), values)
  return blend(degenerate, image, factor)


# ----------------------------------------------------------------------------- AutoAugment


def level_to_argument(name: str, level, sign, image_shape: Sequence[int]):
  """The argument of operation `name` at magnitude level 0..9 (sign +-1 for symmetric ops)."""
  level = tf.cast(level, tf.float32) / (NUM_LEVELS - 1)
  sign = tf.cast(sign, tf.float32)
  if name in ("ShearX", "ShearY"):
    return sign * MAX_SHEAR * level
  if name == "TranslateX":
    return sign * MAX_TRANSLATE_FRACTION * level * float(image_shape[1])
  if name == "TranslateY":
    return sign * MAX_TRANSLATE_FRACTION * level * float(image_shape[0])
  if name == "Rotate":
    return sign * MAX_ROTATE_DEGREES * level
  if name == "Solarize":
    return 256.0 - 256.0 * level
  if name == "Posterize":
    return tf.cast(tf.round(8.0 - 4.0 * level), tf.int32)
  if name in ("Contrast", "Color", "Brightness", "Sharpness"):
    return 1.0 + sign * MAX_ENHANCE_DELTA * level
  if name in ("AutoContrast", "Invert", "Equalize"):
    return None
  raise ValueError(f"name must be one of {OP_NAMES}, got {name!r}.")


def apply_op(image, name: str, level, sign=1.0, fill=128):
  """Applies AutoAugment operation `name` at magnitude `level` to a uint8 image.

  `fill` (uint8 scale, scalar or one value per channel) colours the areas that geometric
  operations leave empty.
  """
  image = tf.convert_to_tensor(image)
  if image.dtype != tf.uint8:
    raise TypeError(f"image must be uint8 for AutoAugment operations, got {image.dtype}.")
  argument = level_to_argument(name, level, sign, image.shape)
  geometric = {"ShearX": shear_x, "ShearY": shear_y, "TranslateX": translate_x,
               "TranslateY": translate_y, "Rotate": rotate}
  if name in geometric:
    return geometric[name](image, argument, fill)
  unary = {"AutoContrast": auto_contrast, "Invert": invert, "Equalize": equalize}
  if name in unary:
    return unary[name](image)
  with_argument = {"Solarize": solarize, "Posterize": posterize, "Contrast": contrast,
                   "Color": color, "Brightness": brightness, "Sharpness": sharpness}
  return with_argument[name](image, argument)


# ----------------------------------------------------------------------------- crop, Cutout


def crop_with_padding(image, padding: int, offset_y, offset_x, fill):
  """Pads by `padding` pixels of `fill` on every side, then crops the original size at offset.

  Offsets are in [0, 2 * padding]; offset (padding, padding) returns the image unchanged.
  """
  y, x, _, _ = _output_grid(image)
  shift_y = tf.cast(offset_y, tf.float32) - float(padding)
  shift_x = tf.cast(offset_x, tf.float32) - float(padding)
  return _sample_nearest(image, y + shift_y, x + shift_x, fill)


def cutout(image, size: int, center_y, center_x, fill):
  """Sets the size x size square with top-left corner (center - size // 2) to `fill`.

  The square is clipped at the image border (as in DeVries & Taylor, 2017), so it can be
  smaller than size x size near the edges.
  """
  shape = tf.shape(image)
  rows = tf.range(shape[0])[:, tf.newaxis]
  cols = tf.range(shape[1])[tf.newaxis, :]
  top = tf.cast(center_y, tf.int32) - size // 2
  left = tf.cast(center_x, tf.int32) - size // 2
  inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
  fill = tf.reshape(fill_like(image, fill), [1, 1, -1])
  return tf.where(inside[..., tf.newaxis], fill, image)
