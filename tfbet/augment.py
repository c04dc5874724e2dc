"""Training augmentation for CIFAR (App. F) as deterministic TensorFlow ops.

App. F trains on CIFAR with AutoAugment (Cubuk et al., 2018, CIFAR-10 policy), random crops
with 4 px padding, horizontal flips and Cutout 16x16, filling every area that an augmentation
leaves empty with the mean image colour.

Two layers. The single-image operations (``[height, width, channels]``: shear_x ... sharpness,
crop_with_padding, cutout, and augment_image, which draws its decisions from a stateless seed)
are the specification, each tested against numpy. The training pipeline runs the batched pass:
draw_parameters draws every random decision of an epoch up front, one row per example, from
Philox streams keyed by (seed, epoch, stage), and augment_batch applies a batch's rows with one
vectorized pass per stage and policy step; the result equals the single-image operations applied
example by example, bit for bit, and is a pure function of (seed, epoch): a training run resumed
at epoch e sees exactly the batches of an uninterrupted one. In a graph (the tf.data pipeline)
augment_batch runs as one tf.function traced once per setting; TensorFlow's graph optimizer turns
its final division by 255 into a product, which moves values by at most one ulp, never a pixel. augment_image remains the
per-example reference that benchmarks/bench_pipeline.py times the batched pass against.

The AutoAugment operations, crop and flip work on uint8 images (the operations are defined on
8-bit pixels: posterize, solarize, histograms); Cutout works on any dtype. The operations follow
the semantics of their PIL namesakes, with two documented choices of ours: results are rounded
(not truncated) to 8 bit, and shear and rotation act about the image centre with
nearest-neighbour sampling.
"""
import dataclasses
import functools
import math
from typing import Dict, Sequence, Tuple

import gin
import numpy as np
import tensorflow as tf

from tfbet import checks

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

# The 25 sub-policies found on reduced CIFAR-10 (Cubuk et al., 2018, appendix): each is two
# (operation, probability, magnitude level) triples applied in order. Checked value by value
# against the public PyTorch implementation the paper cites for its AutoAugment (App. F).
CIFAR10_POLICY = (
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 8), ("Equalize", 0.8, 4)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
    (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)),
)

# Seeds an example's augmentation splits into, one per stage, so switching a stage on or off
# leaves the randomness of the others unchanged.
_CROP, _FLIP, _AUTOAUGMENT, _CUTOUT, _NUM_STAGE_SEEDS = 0, 1, 2, 3, 4


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Augmentation:
  """Which training augmentations run, in this order: crop, flip, AutoAugment, Cutout.

  Attributes:
    crop_padding: pad by this many pixels (mean colour) and crop back at a random offset; 0 = off.
    flip: random horizontal flips with probability 1/2.
    autoaugment: one random sub-policy of CIFAR10_POLICY per example.
    cutout_size: side of the square set to the mean colour (Cutout); 0 = off.
  """
  crop_padding: int = 0
  flip: bool = False
  autoaugment: bool = False
  cutout_size: int = 0

  def __post_init__(self):
    # Each field checked and stored in its canonical type (plain int and bools).
    for field in ("crop_padding", "cutout_size"):
      object.__setattr__(self, field, checks.count(getattr(self, field), f"Augmentation.{field}"))
    for field in ("flip", "autoaugment"):
      object.__setattr__(self, field,
                         checks.boolean(getattr(self, field), f"Augmentation.{field}"))

  @property
  def enabled(self) -> bool:
    return bool(self.crop_padding or self.flip or self.autoaugment or self.cutout_size)


NO_AUGMENTATION = Augmentation(crop_padding=0, flip=False, autoaugment=False, cutout_size=0)
# App. F: AutoAugment + Cutout 16x16, random crops with up to 4 px, flips.
CIFAR_AUGMENTATION = Augmentation(crop_padding=4, flip=True, autoaugment=True, cutout_size=16)


# ----------------------------------------------------------------------------- helpers


def _to_float(image):
  return tf.cast(image, tf.float32)


def _to_uint8(values):
  """Rounds to the nearest 8-bit value (PIL truncates; rounding keeps brightness unbiased)."""
  return tf.cast(tf.clip_by_value(tf.round(values), 0.0, 255.0), tf.uint8)


def _fill_like(image, fill):
  """The fill colour as a [channels] tensor of the image's dtype."""
  fill = tf.convert_to_tensor(fill)
  if image.dtype == tf.uint8 and fill.dtype != tf.uint8:
    fill = _to_uint8(tf.cast(fill, tf.float32))
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
  fill = tf.reshape(_fill_like(image, fill), [1, 1, -1])
  return tf.where(inside[..., tf.newaxis], sampled, fill)


def _output_grid(image):
  """Pixel coordinates (y, x) of the output and the image centre (cy, cx), all float32."""
  shape = tf.shape(image)
  height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  y, x = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
  return y, x, (height - 1.0) / 2.0, (width - 1.0) / 2.0


def _blend(degenerate, image, factor):
  """PIL's ImageEnhance: degenerate + factor * (image - degenerate), back to 8 bit."""
  degenerate = _to_float(degenerate)
  return _to_uint8(degenerate + tf.cast(factor, tf.float32) * (_to_float(image) - degenerate))


def _grayscale(image):
  """ITU-R 601-2 luma (PIL's "L" mode), rounded to 8 bit, shape [h, w, 1]."""
  values = _to_float(image)
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
  values = _to_float(image)
  return tf.where(values < tf.cast(threshold, tf.float32), image, invert(image))


def posterize(image, bits):
  """Keeps the `bits` most significant bits of every pixel (bits in 1..8)."""
  shift = tf.cast(8 - tf.cast(bits, tf.int32), tf.uint8)
  return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def auto_contrast(image):
  """Stretches each channel linearly so its darkest pixel is 0 and its brightest 255."""
  values = _to_float(image)
  low = tf.reduce_min(values, axis=[0, 1], keepdims=True)
  high = tf.reduce_max(values, axis=[0, 1], keepdims=True)
  flat = high <= low
  scale = tf.where(flat, 1.0, 255.0 / tf.where(flat, 1.0, high - low))
  stretched = (values - low) * scale
  return tf.where(flat, image, _to_uint8(stretched))


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
  return _blend(tf.fill(tf.shape(image), mean), image, factor)


def color(image, factor):
  """Blends with the greyscale image (factor 0 = grey); no change for 1-channel images."""
  degenerate = tf.broadcast_to(_grayscale(image), tf.shape(image))
  return _blend(degenerate, image, factor)


def brightness(image, factor):
  """Blends with black, i.e. scales every pixel by factor."""
  return _blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor):
  """Blends with a smoothed copy (3x3 kernel, centre weight 5 of 13; borders unsmoothed)."""
  values = _to_float(image)
  channels = image.shape[-1]
  kernel = tf.constant([[1., 1., 1.], [1., 5., 1.], [1., 1., 1.]]) / 13.0
  kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, channels, 1])
  smooth = tf.round(tf.nn.depthwise_conv2d(values[tf.newaxis], kernel, [1, 1, 1, 1],
                                           "VALID")[0])
  interior = tf.pad(tf.ones_like(smooth, tf.bool), [[1, 1], [1, 1], [0, 0]])
  degenerate = tf.where(interior, tf.pad(smooth, [[1, 1], [1, 1], [0, 0]]), values)
  return _blend(degenerate, image, factor)


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


def _validate_policy(policy):
  if not policy:
    raise ValueError("policy must hold at least one sub-policy.")
  for sub_policy in policy:
    if len(sub_policy) != len(policy[0]):
      raise ValueError(f"all sub-policies must have the same length, got {policy!r}.")
    for name, probability, level in sub_policy:
      checks.choice(name, "policy operation", OP_NAMES)
      checks.probability(probability, "policy probability")
      checks.integer(level, "policy level", minimum=0, maximum=NUM_LEVELS - 1)


def autoaugment(image, seed, fill, policy=CIFAR10_POLICY):
  """Applies one uniformly drawn sub-policy of `policy` to a uint8 image.

  Each of the sub-policy's operations runs with its probability; symmetric operations get a
  random sign. All draws come from `seed` (shape [2] integer tensor).

  Args:
    image: uint8 [height, width, channels].
    seed: stateless seed, shape [2].
    fill: colour of areas that geometric operations leave empty, [channels] (uint8 scale).
    policy: sequence of sub-policies, each a sequence of (name, probability, level).
  """
  _validate_policy(policy)
  image = tf.convert_to_tensor(image)
  if image.dtype != tf.uint8:
    raise TypeError(f"image must be uint8 for AutoAugment, got {image.dtype}.")
  static_shape = image.shape
  steps = len(policy[0])
  seeds = tf.random.experimental.stateless_split(seed, num=1 + 2 * steps)
  choice = tf.random.stateless_uniform([], seed=seeds[0], minval=0, maxval=len(policy),
                                       dtype=tf.int32)
  op_index = tf.constant([[OP_NAMES.index(n) for n, _, _ in sub] for sub in policy], tf.int32)
  probability = tf.constant([[p for _, p, _ in sub] for sub in policy], tf.float32)
  level = tf.constant([[lv for _, _, lv in sub] for sub in policy], tf.int32)
  for step in range(steps):
    apply = tf.random.stateless_uniform([], seed=seeds[1 + 2 * step]) < probability[choice, step]
    sign = tf.where(tf.random.stateless_uniform([], seed=seeds[2 + 2 * step]) < 0.5, -1.0, 1.0)
    step_level = level[choice, step]

    def run_op(image=image, op=op_index[choice, step], step_level=step_level, sign=sign):
      branches = [
          (lambda name=name: apply_op(image, name, step_level, sign, fill))
          for name in OP_NAMES]
      return tf.switch_case(op, branches)

    image = tf.cond(apply, run_op, lambda image=image: image)
    image = tf.ensure_shape(image, static_shape)
  return image


# ----------------------------------------------------------------------------- crop, flip, Cutout


def crop_with_padding(image, padding: int, offset_y, offset_x, fill):
  """Pads by `padding` pixels of `fill` on every side, then crops the original size at offset.

  Offsets are in [0, 2 * padding]; offset (padding, padding) returns the image unchanged.
  """
  y, x, _, _ = _output_grid(image)
  shift_y = tf.cast(offset_y, tf.float32) - float(padding)
  shift_x = tf.cast(offset_x, tf.float32) - float(padding)
  return _sample_nearest(image, y + shift_y, x + shift_x, fill)


def random_crop_with_padding(image, padding: int, seed, fill):
  """crop_with_padding at an offset drawn uniformly from [0, 2 * padding]^2."""
  offsets = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=2 * padding + 1,
                                        dtype=tf.int32)
  return crop_with_padding(image, padding, offsets[0], offsets[1], fill)


def random_flip_left_right(image, seed):
  """Mirrors the image horizontally with probability 1/2."""
  flip = tf.random.stateless_uniform([], seed=seed) < 0.5
  return tf.where(flip, image[:, ::-1, :], image)


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
  fill = tf.reshape(_fill_like(image, fill), [1, 1, -1])
  return tf.where(inside[..., tf.newaxis], fill, image)


def random_cutout(image, size: int, seed, fill):
  """cutout centred at a pixel drawn uniformly from the image."""
  shape = tf.shape(image)
  pixel = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=shape[0] * shape[1],
                                      dtype=tf.int32)
  return cutout(image, size, pixel // shape[1], pixel % shape[1], fill)


def augment_image(image, seed, augmentation: Augmentation, fill: Tuple[float, ...]):
  """Runs the enabled stages on one uint8 image; returns float32 in [0, 1].

  Args:
    image: uint8 [height, width, channels].
    seed: stateless seed of this example, shape [2].
    augmentation: which stages run.
    fill: mean colour in [0, 1], [channels]; empty areas get this colour (App. F). Crop and
      AutoAugment still work on 8 bit and use it rounded to the nearest uint8 value.
  """
  fill = tf.convert_to_tensor(fill, tf.float32)
  fill_uint8 = _to_uint8(fill * 255.0)
  seeds = tf.random.experimental.stateless_split(seed, num=_NUM_STAGE_SEEDS)
  if augmentation.crop_padding:
    image = random_crop_with_padding(image, augmentation.crop_padding, seeds[_CROP], fill_uint8)
  if augmentation.flip:
    image = random_flip_left_right(image, seeds[_FLIP])
  if augmentation.autoaugment:
    image = autoaugment(image, seeds[_AUTOAUGMENT], fill_uint8)
  image = _to_float(image) / 255.0
  if augmentation.cutout_size:
    image = random_cutout(image, augmentation.cutout_size, seeds[_CUTOUT], fill)
  return image



# ----------------------------------------------------------------------------- batched pipeline
#
# The training pipeline augments whole batches: the random decisions of every example are drawn
# up front (draw_parameters, numpy Philox keyed by (seed, epoch, stage), indexed by the example),
# and augment_batch applies them to a batch with one vectorized pass per stage and policy step.
# Each batched operation computes exactly what its single-image namesake above computes, so a
# batch equals the single-image operations applied example by example, bit for bit.

_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
# Pixel-wise operations whose 256-entry table depends only on (operation, level, sign): constants.
_FIXED_TABLE = ("Invert", "Solarize", "Posterize", "Brightness")
# Pixel-wise operations whose table depends on the image (histogram, range, mean grey).
_IMAGE_TABLE = ("AutoContrast", "Equalize", "Contrast")
# Groups a policy step dispatches to, each with one pass over its examples: unchanged,
# geometric (one resampling), fixed table, image table (one table per example and channel),
# Color, Sharpness.
_GROUPS = ("unchanged", "geometric", "fixed table", "image table", "Color", "Sharpness")
_GROUP_OF_OP = tuple(_GROUPS.index("geometric" if name in _GEOMETRIC else
                                   "fixed table" if name in _FIXED_TABLE else
                                   "image table" if name in _IMAGE_TABLE else name)
                     for name in OP_NAMES)


def _stage_generator(seed: int, epoch: int, stage: int) -> np.random.Generator:
  return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, epoch, stage])))


def draw_parameters(augmentation: Augmentation, num_examples: int, image_shape: Sequence[int],
                    seed: int, epoch: int, policy=CIFAR10_POLICY) -> Dict[str, np.ndarray]:
  """Every random decision of an epoch's augmentation, one row per example.

  Each stage draws from its own Philox stream keyed by (seed, epoch, stage), so switching a
  stage on or off leaves the others' decisions unchanged. Only enabled stages have entries:
    crop_offset: int32 [n, 2] (row, column) offsets in [0, 2 * crop_padding].
    flip: bool [n], true with probability 1/2.
    policy_choice: int32 [n], a uniform sub-policy index; policy_apply: bool [n, steps], each
      step with its probability; policy_sign: float32 [n, steps], +-1 with probability 1/2.
    cutout_center: int32 [n, 2] (row, column), uniform over the pixels.
  """
  height, width = int(image_shape[0]), int(image_shape[1])
  parameters = {}
  if augmentation.crop_padding:
    generator = _stage_generator(seed, epoch, _CROP)
    parameters["crop_offset"] = generator.integers(
        0, 2 * augmentation.crop_padding + 1, (num_examples, 2)).astype(np.int32)
  if augmentation.flip:
    parameters["flip"] = _stage_generator(seed, epoch, _FLIP).random(num_examples) < 0.5
  if augmentation.autoaugment:
    _validate_policy(policy)
    generator = _stage_generator(seed, epoch, _AUTOAUGMENT)
    steps = len(policy[0])
    choice = generator.integers(0, len(policy), num_examples)
    probability = np.array([[p for _, p, _ in sub] for sub in policy], np.float64)[choice]
    parameters["policy_choice"] = choice.astype(np.int32)
    parameters["policy_apply"] = generator.random((num_examples, steps)) < probability
    parameters["policy_sign"] = np.where(generator.random((num_examples, steps)) < 0.5,
                                         -1.0, 1.0).astype(np.float32)
  if augmentation.cutout_size:
    generator = _stage_generator(seed, epoch, _CUTOUT)
    parameters["cutout_center"] = np.stack(
        [generator.integers(0, height, num_examples), generator.integers(0, width, num_examples)],
        axis=-1).astype(np.int32)
  return parameters


def _per_example(values):
  """A [b] vector broadcast against [b, h, w(, c)]."""
  return values[:, tf.newaxis, tf.newaxis]


def _table_key(op, level, sign):
  """Row of _constants() for (OP_NAMES index, level, sign +-1)."""
  return (op * NUM_LEVELS + level) * 2 + tf.cast(sign > 0, tf.int32)


@functools.lru_cache(maxsize=None)
def _constants(height: int, width: int) -> Dict[str, np.ndarray]:
  """What each (operation, level, sign) means, row _table_key(op, level, sign) of:

    argument: float32, level_to_argument (0 where the operation has none).
    affine: float32 [6], the map (a, nb, e, nd, tx, ty) of a geometric operation, with
      source x = (cx + a (x - cx)) - nb (y - cy) - tx and
      source y = (cy + e (y - cy)) - nd (x - cx) - ty
      (the identity for other operations). Every single-image geometric operation rounds in
      this order with the terms it lacks being exact (factor 1, term 0), so one formula
      reproduces all five bit for bit.
    pixel_table: uint8 [256], what a _FIXED_TABLE operation makes of each pixel value (the
      identity for other operations).

  Computed once, eagerly, by the single-image code itself on scalars and on an image of all 256
  values, so the batched pass uses exactly the single-image numbers.
  """
  values = np.arange(256, dtype=np.uint8)
  rows = {"argument": [], "affine": [], "pixel_table": []}
  with tf.init_scope():  # eagerly, also when first called while tracing a function
    for name in OP_NAMES:
      for level in range(NUM_LEVELS):
        for sign in (-1.0, 1.0):
          argument = level_to_argument(name, level, sign, (height, width))
          argument = 0.0 if argument is None else tf.cast(argument, tf.float32)
          affine = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
          if name == "ShearX":
            affine[1] = -argument
          elif name == "ShearY":
            affine[3] = -argument
          elif name == "TranslateX":
            affine[4] = argument
          elif name == "TranslateY":
            affine[5] = argument
          elif name == "Rotate":
            radians = argument * (math.pi / 180.0)  # as rotate() computes them
            cos, sin = tf.cos(radians), tf.sin(radians)
            affine = [cos, sin, cos, -sin, 0.0, 0.0]
          rows["argument"].append(np.float32(argument))
          rows["affine"].append([np.float32(v) for v in affine])
          rows["pixel_table"].append(
              apply_op(values.reshape(1, 256, 1), name, level, sign).numpy().reshape(256)
              if name in _FIXED_TABLE else values)
  return {key: np.array(value) for key, value in rows.items()}


def _gather_pixels(images, row, col, fill):
  """out[i, y, x] = images[i, row, col], or `fill` outside the image; row and col are int32
  broadcastable to [b, h, w].

  One gather of whole pixels: pixels outside the image read a fill pixel appended after the
  last one, so no select over the channels is needed.
  """
  height, width, channels = images.shape[1:]
  clipped_row = tf.clip_by_value(row, 0, height - 1)
  clipped_col = tf.clip_by_value(col, 0, width - 1)
  inside = tf.equal(clipped_row, row) & tf.equal(clipped_col, col)
  example = _per_example(tf.range(tf.shape(images)[0]))
  pixel = (example * height + clipped_row) * width + clipped_col
  pixels = tf.concat([tf.reshape(images, [-1, channels]), _fill_like(images, fill)[tf.newaxis]],
                     axis=0)
  return tf.gather(pixels, tf.where(inside, pixel, tf.size(pixel)))


def _sample_nearest_batch(images, source_y, source_x, fill):
  """_sample_nearest for a batch: source coordinates [b, h, w] per example."""
  return _gather_pixels(images, tf.cast(tf.round(source_y), tf.int32),
                        tf.cast(tf.round(source_x), tf.int32), fill)


def _geometric_batch(images, key, fill):
  """Applies each example's geometric operation (_table_key `key`) with one resampling."""
  height, width = images.shape[1:3]
  cy, cx = (height - 1) / 2, (width - 1) / 2
  dy = (np.arange(height, dtype=np.float32) - np.float32(cy))[tf.newaxis, :, tf.newaxis]
  dx = (np.arange(width, dtype=np.float32) - np.float32(cx))[tf.newaxis, tf.newaxis, :]
  affine = tf.gather(_constants(height, width)["affine"], key)
  a, nb, e, nd, tx, ty = (_per_example(c) for c in tf.unstack(affine, num=6, axis=-1))
  source_x = (cx + dx * a) - dy * nb - tx
  source_y = (cy + dy * e) - dx * nd - ty
  return _sample_nearest_batch(images, source_y, source_x, fill)


def _blend_batch(degenerate, images, factor):
  return _blend(degenerate, images, _per_example(factor)[..., tf.newaxis])


def _grayscale_batch(images):
  """_grayscale for a batch: [b, h, w, 1] float32."""
  values = _to_float(images)
  if images.shape[-1] == 1:
    return values
  if images.shape[-1] != 3:
    raise ValueError(f"images must have 1 or 3 channels, got shape {images.shape}.")
  luma = tf.tensordot(values, tf.constant([0.299, 0.587, 0.114]), axes=[[3], [0]])
  return tf.round(luma)[..., tf.newaxis]


def _fixed_table_batch(images, key):
  """Applies each example's _FIXED_TABLE operation with one gather through a constant table."""
  tables = _constants(*images.shape[1:3])["pixel_table"].reshape(-1)
  return tf.gather(tables, tf.reshape(key, [-1, 1, 1, 1]) * 256 + tf.cast(images, tf.int32))


def _image_tables(images, op, key):
  """Per example and channel, the uint8 [b, c, 256] table of its _IMAGE_TABLE operation, and
  the index of each pixel value in these tables flattened.

  Entry v is what the single-image operation makes of pixel value v, with the same float32
  arithmetic. AutoContrast and Contrast are both round(offset + factor * (v - centre)) (the
  single-image operations round in this order), Equalize is PIL's cumulative-histogram table.
  """
  height, width, channels = images.shape[1:]
  shape = tf.shape(images)
  # Offsets on rows of height * width * channels values (an offset that repeats along the
  # innermost axis only would be slow to add).
  channel_offset = tf.tile(tf.range(channels) * 256, [shape[1] * shape[2]])
  index = (tf.reshape(tf.cast(images, tf.int32), [shape[0], -1]) + channel_offset
           + tf.range(shape[0])[:, tf.newaxis] * (channels * 256))
  histograms = tf.reshape(  # one bincount for every example and channel
      tf.math.bincount(tf.reshape(index, [-1]), minlength=shape[0] * channels * 256,
                       maxlength=shape[0] * channels * 256, dtype=tf.int32),
      [-1, channels, 256])
  level_value = np.arange(256, dtype=np.int32)
  is_contrast = tf.equal(op, OP_NAMES.index("Contrast"))[:, tf.newaxis, tf.newaxis]
  # AutoContrast: a linear stretch per channel (offset 0), the identity for a flat channel.
  used = histograms > 0
  low = tf.cast(tf.reduce_min(tf.where(used, level_value, 256), axis=-1, keepdims=True),
                tf.float32)
  last_used = tf.reduce_max(tf.where(used, level_value, -1), axis=-1, keepdims=True)
  high = tf.cast(last_used, tf.float32)
  flat = high <= low
  scale = tf.where(flat, 1.0, 255.0 / tf.where(flat, 1.0, high - low))
  # Contrast: blend with the rounded mean grey level of the example.
  grey = tf.round(tf.reduce_mean(_grayscale_batch(images), axis=[1, 2, 3]))[:, tf.newaxis,
                                                                            tf.newaxis]
  factor = tf.gather(_constants(height, width)["argument"], key)[:, tf.newaxis, tf.newaxis]
  offset = tf.where(is_contrast, grey, 0.0)
  slope = tf.where(is_contrast, factor, scale)
  centre = tf.where(is_contrast, grey, tf.where(flat, 0.0, low))
  linear = _to_uint8(offset + slope * (level_value.astype(np.float32) - centre))
  # Equalize: PIL's cumulative-histogram table, the identity where it has a single step.
  step = (tf.reduce_sum(histograms, axis=-1, keepdims=True)
          - tf.gather(histograms, tf.maximum(last_used, 0), batch_dims=2)) // 256
  safe_step = tf.maximum(step, 1)
  equalized = tf.minimum((tf.cumsum(histograms, axis=-1, exclusive=True) + safe_step // 2)
                         // safe_step, 255)
  equalized = tf.cast(tf.where(step > 0, equalized, level_value), tf.uint8)
  is_equalize = tf.equal(op, OP_NAMES.index("Equalize"))[:, tf.newaxis, tf.newaxis]
  return tf.where(is_equalize, equalized, linear), index


def _image_table_batch(images, op, key):
  """Applies each example's _IMAGE_TABLE operation with one gather through its tables."""
  tables, index = _image_tables(images, op, key)
  return tf.reshape(tf.gather(tf.reshape(tables, [-1]), index), tf.shape(images))


def _sharpness_batch(images, factor):
  values = _to_float(images)
  channels = images.shape[-1]
  kernel = tf.constant([[1., 1., 1.], [1., 5., 1.], [1., 1., 1.]]) / 13.0
  kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, channels, 1])
  smooth = tf.round(tf.nn.depthwise_conv2d(values, kernel, [1, 1, 1, 1], "VALID"))
  shape = tf.shape(images)
  smooth = smooth[:, :shape[1] - 2, :shape[2] - 2]  # the kernel returns [0, h, w] on no images
  padding = [[0, 0], [1, 1], [1, 1], [0, 0]]
  interior = tf.pad(tf.ones_like(smooth, tf.bool), padding)
  degenerate = tf.where(interior, tf.pad(smooth, padding), values)
  return _blend_batch(degenerate, images, factor)


def _policy_step_batch(images, op, level, sign, fill):
  """Applies OP_NAMES[op] (op < 0: nothing) to each example; each group sees only its own."""
  group = tf.where(op < 0, 0, tf.gather(tf.constant(_GROUP_OF_OP, tf.int32),
                                        tf.maximum(op, 0)))
  key = _table_key(tf.maximum(op, 0), level, sign)
  num_groups = len(_GROUPS)
  positions = tf.dynamic_partition(tf.range(tf.shape(images)[0]), group, num_groups)
  parts = dict(zip(_GROUPS, tf.dynamic_partition(images, group, num_groups)))
  ops = dict(zip(_GROUPS, tf.dynamic_partition(op, group, num_groups)))
  keys = dict(zip(_GROUPS, tf.dynamic_partition(key, group, num_groups)))
  arguments = _constants(*images.shape[1:3])["argument"]
  color = parts["Color"]
  results = {
      "unchanged": parts["unchanged"],
      "geometric": _geometric_batch(parts["geometric"], keys["geometric"], fill),
      "fixed table": _fixed_table_batch(parts["fixed table"], keys["fixed table"]),
      "image table": _image_table_batch(parts["image table"], ops["image table"],
                                        keys["image table"]),
      "Color": _blend_batch(tf.broadcast_to(_grayscale_batch(color), tf.shape(color)), color,
                            tf.gather(arguments, keys["Color"])),
      "Sharpness": _sharpness_batch(parts["Sharpness"], tf.gather(arguments, keys["Sharpness"])),
  }
  return tf.dynamic_stitch(positions, [results[name] for name in _GROUPS])


def autoaugment_batch(images, choice, apply, sign, fill, policy=CIFAR10_POLICY):
  """autoaugment for a batch with given decisions (see draw_parameters).

  Args:
    images: uint8 [b, height, width, channels].
    choice: int32 [b] sub-policy index; apply: bool [b, steps]; sign: float32 [b, steps].
    fill: [channels] colour of emptied areas (uint8 scale).
    policy: sequence of sub-policies, each a sequence of (name, probability, level).
  """
  _validate_policy(policy)
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8:
    raise TypeError(f"images must be uint8 for AutoAugment, got {images.dtype}.")
  op_table = tf.constant([[OP_NAMES.index(n) for n, _, _ in sub] for sub in policy], tf.int32)
  level_table = tf.constant([[lv for _, _, lv in sub] for sub in policy], tf.int32)
  static_shape = images.shape
  op = tf.where(apply, tf.gather(op_table, choice), -1)  # [b, steps], -1: not applied
  level = tf.gather(level_table, choice)
  sign = tf.convert_to_tensor(sign, tf.float32)

  def step(i, images):
    images = _policy_step_batch(images, op[:, i], level[:, i], sign[:, i], fill)
    return i + 1, tf.ensure_shape(images, static_shape)

  # One loop body for all steps: in a graph, the operations (and the cost of setting them up,
  # paid by the pipeline every epoch) do not grow with the number of steps.
  _, images = tf.while_loop(lambda i, _: i < len(policy[0]), step, (tf.constant(0), images))
  return images


def _crop_and_flip_batch(images, padding: int, offsets, flip, fill):
  """crop_with_padding (offsets [b, 2], or None) then a mirror where flip [b] (or None).

  Both only pick a source row and column for each pixel, so they share one gather.
  """
  height, width = images.shape[1:3]
  rows = np.arange(height, dtype=np.int32)[tf.newaxis]
  cols = np.arange(width, dtype=np.int32)[tf.newaxis]
  if offsets is not None:
    rows = offsets[:, :1] - padding + rows  # [b, h] source rows
    cols = offsets[:, 1:] - padding + cols  # [b, w] source columns
  if flip is not None:
    cols = tf.where(flip[:, tf.newaxis], tf.reverse(cols, axis=[1]), cols)
  return _gather_pixels(images, rows[:, :, tf.newaxis], cols[:, tf.newaxis, :], fill)


def _cutout_batch(images, size: int, centers, fill):
  """cutout for a batch: centers int32 [b, 2] (row, column).

  Works on rows of width * channels values, so the mask and the fill colour repeat only along
  outer axes (a select that repeats a value along the innermost axis is several times slower).
  """
  shape = tf.shape(images)
  batch, height, width = shape[0], shape[1], shape[2]
  top = centers[:, :1] - size // 2
  left = centers[:, 1:] - size // 2
  rows = tf.range(height)[tf.newaxis]
  cols = tf.repeat(tf.range(width), images.shape[-1])[tf.newaxis]  # the column of each value
  inside = (((rows >= top) & (rows < top + size))[:, :, tf.newaxis]
            & ((cols >= left) & (cols < left + size))[:, tf.newaxis, :])
  fill = tf.tile(_fill_like(images, fill), [width])
  return tf.reshape(tf.where(inside, fill, tf.reshape(images, [batch, height, -1])), shape)


def augment_batch(images, parameters, augmentation: Augmentation, fill):
  """augment_image for a batch, with the decisions of draw_parameters; float32 in [0, 1].

  Args:
    images: uint8 [b, height, width, channels].
    parameters: the rows of draw_parameters(...) for these examples (tensors or arrays).
    augmentation: which stages run (the one the parameters were drawn for).
    fill: mean colour in [0, 1], [channels] (see augment_image).
  """
  keys = {"crop_offset": augmentation.crop_padding, "flip": augmentation.flip,
          "policy_choice": augmentation.autoaugment, "policy_apply": augmentation.autoaugment,
          "policy_sign": augmentation.autoaugment, "cutout_center": augmentation.cutout_size}
  missing = sorted(key for key, enabled in keys.items() if enabled and key not in parameters)
  if missing:
    raise ValueError(f"parameters lack {missing} for {augmentation} (use draw_parameters with the "
                     "same augmentation).")
  parameters = {key: parameters[key] for key, enabled in keys.items() if enabled}
  images = tf.convert_to_tensor(images)
  fill = tf.convert_to_tensor(fill, tf.float32)
  if tf.inside_function():  # e.g. the tf.data pipeline, rebuilt every epoch
    return _traced_augment_batch(augmentation)(images, parameters, fill)
  return _augment_batch(images, parameters, augmentation, fill)


@functools.lru_cache(maxsize=None)
def _traced_augment_batch(augmentation: Augmentation):
  """_augment_batch for one setting as a tf.function: traced once per setting and batch shape
  instead of once per epoch (the graph has over a thousand operations)."""
  return tf.function(lambda images, parameters, fill: _augment_batch(
      images, parameters, augmentation, fill), reduce_retracing=True)


def _augment_batch(images, parameters, augmentation: Augmentation, fill):
  fill_uint8 = _to_uint8(fill * 255.0)
  if augmentation.crop_padding or augmentation.flip:
    images = _crop_and_flip_batch(
        images, augmentation.crop_padding,
        parameters["crop_offset"] if augmentation.crop_padding else None,
        parameters["flip"] if augmentation.flip else None, fill_uint8)
  if augmentation.autoaugment:
    images = autoaugment_batch(images, parameters["policy_choice"], parameters["policy_apply"],
                               parameters["policy_sign"], fill_uint8)
  images = _to_float(images) / 255.0
  if augmentation.cutout_size:
    images = _cutout_batch(images, augmentation.cutout_size, parameters["cutout_center"], fill)
  return images
