"""The batched augmentation pass of the training pipeline (App. F, docs/design.md §3).

``draw_parameters`` draws every random decision of an epoch up front, one row per example, from
Philox streams keyed by (seed, epoch, stage), and ``augment_batch`` applies a batch's rows with one
vectorized pass per stage and policy step. Each batched operation computes exactly what its
single-image namesake in ``tfbet.image_ops`` computes, so a batch equals
``augment.augment_image``'s operations applied example by example, bit for bit, and is a pure
function of (seed, epoch): a training run resumed at epoch e sees exactly the batches of an
uninterrupted one. In a graph (the tf.data pipeline) ``augment_batch`` runs as one tf.function
traced once per setting; TensorFlow's graph optimizer turns its final division by 255 into a
product, which moves values by at most one ulp, never a pixel.
"""
import functools
import math
from typing import Dict, Sequence

import numpy as np
import tensorflow as tf

from tfbet import augment
from tfbet import image_ops

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
                     for name in image_ops.OP_NAMES)


def _stage_generator(seed: int, epoch: int, stage: int) -> np.random.Generator:
  return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, epoch, stage])))


def draw_parameters(augmentation: augment.Augmentation, num_examples: int,
                    image_shape: Sequence[int], seed: int, epoch: int,
                    policy=augment.CIFAR10_POLICY) -> Dict[str, np.ndarray]:
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
    generator = _stage_generator(seed, epoch, augment.CROP_STAGE)
    parameters["crop_offset"] = generator.integers(
        0, 2 * augmentation.crop_padding + 1, (num_examples, 2)).astype(np.int32)
  if augmentation.flip:
    generator = _stage_generator(seed, epoch, augment.FLIP_STAGE)
    parameters["flip"] = generator.random(num_examples) < 0.5
  if augmentation.autoaugment:
    augment.check_policy(policy)
    generator = _stage_generator(seed, epoch, augment.AUTOAUGMENT_STAGE)
    steps = len(policy[0])
    choice = generator.integers(0, len(policy), num_examples)
    probability = np.array([[p for _, p, _ in sub] for sub in policy], np.float64)[choice]
    parameters["policy_choice"] = choice.astype(np.int32)
    parameters["policy_apply"] = generator.random((num_examples, steps)) < probability
    parameters["policy_sign"] = np.where(generator.random((num_examples, steps)) < 0.5,
                                         -1.0, 1.0).astype(np.float32)
  if augmentation.cutout_size:
    generator = _stage_generator(seed, epoch, augment.CUTOUT_STAGE)
    parameters["cutout_center"] = np.stack(
        [generator.integers(0, height, num_examples), generator.integers(0, width, num_examples)],
        axis=-1).astype(np.int32)
  return parameters


def _per_example(values):
  """A [b] vector broadcast against [b, h, w(, c)]."""
  return values[:, tf.newaxis, tf.newaxis]


def _table_key(op, level, sign):
  """Row of _constants() for (image_ops.OP_NAMES index, level, sign +-1)."""
  return (op * image_ops.NUM_LEVELS + level) * 2 + tf.cast(sign > 0, tf.int32)


@functools.lru_cache(maxsize=None)
def _constants(height: int, width: int) -> Dict[str, np.ndarray]:
  """What each (operation, level, sign) means, row _table_key(op, level, sign) of:

    argument: float32, image_ops.level_to_argument (0 where the operation has none).
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
    for name in image_ops.OP_NAMES:
      for level in range(image_ops.NUM_LEVELS):
        for sign in (-1.0, 1.0):
          argument = image_ops.level_to_argument(name, level, sign, (height, width))
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
              image_ops.apply_op(values.reshape(1, 256, 1), name, level, sign).numpy().reshape(256)
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
  pixels = tf.concat([tf.reshape(images, [-1, channels]),
                      image_ops.fill_like(images, fill)[tf.newaxis]], axis=0)
  return tf.gather(pixels, tf.where(inside, pixel, tf.size(pixel)))


def _sample_nearest_batch(images, source_y, source_x, fill):
  """image_ops' nearest-neighbour sampling for a batch: source coordinates [b, h, w] per
  example."""
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
  return image_ops.blend(degenerate, images, _per_example(factor)[..., tf.newaxis])


def _grayscale_batch(images):
  """image_ops' greyscale (ITU-R 601-2 luma, rounded) for a batch: [b, h, w, 1] float32."""
  values = image_ops.to_float(images)
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
  is_contrast = tf.equal(op, image_ops.OP_NAMES.index("Contrast"))[:, tf.newaxis, tf.newaxis]
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
  linear = image_ops.to_uint8(offset + slope * (level_value.astype(np.float32) - centre))
  # Equalize: PIL's cumulative-histogram table, the identity where it has a single step.
  step = (tf.reduce_sum(histograms, axis=-1, keepdims=True)
          - tf.gather(histograms, tf.maximum(last_used, 0), batch_dims=2)) // 256
  safe_step = tf.maximum(step, 1)
  equalized = tf.minimum((tf.cumsum(histograms, axis=-1, exclusive=True) + safe_step // 2)
                         // safe_step, 255)
  equalized = tf.cast(tf.where(step > 0, equalized, level_value), tf.uint8)
  is_equalize = tf.equal(op, image_ops.OP_NAMES.index("Equalize"))[:, tf.newaxis, tf.newaxis]
  return tf.where(is_equalize, equalized, linear), index


def _image_table_batch(images, op, key):
  """Applies each example's _IMAGE_TABLE operation with one gather through its tables."""
  tables, index = _image_tables(images, op, key)
  return tf.reshape(tf.gather(tf.reshape(tables, [-1]), index), tf.shape(images))


def _sharpness_batch(images, factor):
  values = image_ops.to_float(images)
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


def autoaugment_batch(images, choice, apply, sign, fill, policy=augment.CIFAR10_POLICY):
  """autoaugment for a batch with given decisions (see draw_parameters).

  Args:
    images: uint8 [b, height, width, channels].
    choice: int32 [b] sub-policy index; apply: bool [b, steps]; sign: float32 [b, steps].
    fill: [channels] colour of emptied areas (uint8 scale).
    policy: sequence of sub-policies, each a sequence of (name, probability, level).
  """
  augment.check_policy(policy)
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8:
    raise TypeError(f"images must be uint8 for AutoAugment, got {images.dtype}.")
  op_table = tf.constant([[image_ops.OP_NAMES.index(n) for n, _, _ in sub] for sub in policy],
                         tf.int32)
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
  fill = tf.tile(image_ops.fill_like(images, fill), [width])
  return tf.reshape(tf.where(inside, fill, tf.reshape(images, [batch, height, -1])), shape)


def augment_batch(images, parameters, augmentation: augment.Augmentation, fill):
  """augment.augment_image for a batch, with the decisions of draw_parameters; float32 in [0, 1].

  Args:
    images: uint8 [b, height, width, channels].
    parameters: the rows of draw_parameters(...) for these examples (tensors or arrays).
    augmentation: which stages run (the one the parameters were drawn for).
    fill: mean colour in [0, 1], [channels] (see augment.augment_image).
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
def _traced_augment_batch(augmentation: augment.Augmentation):
  """_augment_batch for one setting as a tf.function: traced once per setting and batch shape
  instead of once per epoch (the graph has over a thousand operations)."""
  return tf.function(lambda images, parameters, fill: _augment_batch(
      images, parameters, augmentation, fill), reduce_retracing=True)


def _augment_batch(images, parameters, augmentation: augment.Augmentation, fill):
  fill_uint8 = image_ops.to_uint8(fill * 255.0)
  if augmentation.crop_padding or augmentation.flip:
    images = _crop_and_flip_batch(
        images, augmentation.crop_padding,
        parameters["crop_offset"] if augmentation.crop_padding else None,
        parameters["flip"] if augmentation.flip else None, fill_uint8)
  if augmentation.autoaugment:
    images = autoaugment_batch(images, parameters["policy_choice"], parameters["policy_apply"],
                               parameters["policy_sign"], fill_uint8)
  images = image_ops.to_float(images) / 255.0
  if augmentation.cutout_size:
    images = _cutout_batch(images, augmentation.cutout_size, parameters["cutout_center"], fill)
  return images
