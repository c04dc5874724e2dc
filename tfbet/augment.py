"""Training augmentation for CIFAR (App. F): which stages run, and one example's augmentation.

App. F trains on CIFAR with AutoAugment (Cubuk et al., 2018, CIFAR-10 policy), random crops
with 4 px padding, horizontal flips and Cutout 16x16, filling every area that an augmentation
leaves empty with the mean image colour.

Three modules, one job each: this one holds the settings (``Augmentation``), the policy and
``augment_image``, the per-example reference that draws its decisions from a stateless seed;
``tfbet.image_ops`` the single-image operations it applies, each tested against numpy;
``tfbet.batch_augment`` the batched pass the training pipeline runs, equal to ``augment_image``'s
operations example by example, bit for bit (docs/design.md §3, "Determinism").
``benchmarks/bench_pipeline.py`` times the batched pass against ``augment_image``.
"""
import dataclasses
import importlib
from typing import Tuple

import gin
import tensorflow as tf

from tfbet import checks
from tfbet import image_ops

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

# The stages, numbered: an example's seed splits into one seed per stage (augment_image) and the
# batched pass draws each stage from its own stream (batch_augment.draw_parameters), so
# switching a stage on or off leaves the randomness of the others unchanged.
CROP_STAGE, FLIP_STAGE, AUTOAUGMENT_STAGE, CUTOUT_STAGE, NUM_STAGES = 0, 1, 2, 3, 4


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


# Names that moved to the modules of their job (docs/design.md §2); reading them here still works.
_MOVED = {
    **dict.fromkeys(("NUM_LEVELS", "MAX_SHEAR", "MAX_TRANSLATE_FRACTION", "MAX_ROTATE_DEGREES",
                     "MAX_ENHANCE_DELTA", "OP_NAMES", "shear_x", "shear_y", "translate_x",
                     "translate_y", "rotate", "invert", "solarize", "posterize", "auto_contrast",
                     "equalize", "contrast", "color", "brightness", "sharpness",
                     "level_to_argument", "apply_op", "crop_with_padding", "cutout"),
                    "tfbet.image_ops"),
    **dict.fromkeys(("draw_parameters", "augment_batch", "autoaugment_batch"),
                    "tfbet.batch_augment"),
}


def __getattr__(name):
  if name not in _MOVED:
    raise AttributeError(f"module 'tfbet.augment' has no attribute {name!r}")
  return getattr(importlib.import_module(_MOVED[name]), name)


# ----------------------------------------------------------------------------- AutoAugment


def check_policy(policy):
  """Refuses a policy that is not sub-policies of equal length of (operation, probability,
  level) triples."""
  if not policy:
    raise ValueError("policy must hold at least one sub-policy.")
  for sub_policy in policy:
    if len(sub_policy) != len(policy[0]):
      raise ValueError(f"all sub-policies must have the same length, got {policy!r}.")
    for name, probability, level in sub_policy:
      checks.choice(name, "policy operation", image_ops.OP_NAMES)
      checks.probability(probability, "policy probability")
      checks.integer(level, "policy level", minimum=0, maximum=image_ops.NUM_LEVELS - 1)


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
  check_policy(policy)
  image = tf.convert_to_tensor(image)
  if image.dtype != tf.uint8:
    raise TypeError(f"image must be uint8 for AutoAugment, got {image.dtype}.")
  static_shape = image.shape
  steps = len(policy[0])
  seeds = tf.random.experimental.stateless_split(seed, num=1 + 2 * steps)
  choice = tf.random.stateless_uniform([], seed=seeds[0], minval=0, maxval=len(policy),
                                       dtype=tf.int32)
  op_index = tf.constant([[image_ops.OP_NAMES.index(n) for n, _, _ in sub] for sub in policy],
                         tf.int32)
  probability = tf.constant([[p for _, p, _ in sub] for sub in policy], tf.float32)
  level = tf.constant([[lv for _, _, lv in sub] for sub in policy], tf.int32)
  for step in range(steps):
    apply = tf.random.stateless_uniform([], seed=seeds[1 + 2 * step]) < probability[choice, step]
    sign = tf.where(tf.random.stateless_uniform([], seed=seeds[2 + 2 * step]) < 0.5, -1.0, 1.0)
    step_level = level[choice, step]

    def run_op(image=image, op=op_index[choice, step], step_level=step_level, sign=sign):
      branches = [
          (lambda name=name: image_ops.apply_op(image, name, step_level, sign, fill))
          for name in image_ops.OP_NAMES]
      return tf.switch_case(op, branches)

    image = tf.cond(apply, run_op, lambda image=image: image)
    image = tf.ensure_shape(image, static_shape)
  return image


# ----------------------------------------------------------------------------- crop, flip, Cutout


def random_crop_with_padding(image, padding: int, seed, fill):
  """image_ops.crop_with_padding at an offset drawn uniformly from [0, 2 * padding]^2."""
  offsets = tf.random.stateless_uniform([2], seed=seed, minval=0, maxval=2 * padding + 1,
                                        dtype=tf.int32)
  return image_ops.crop_with_padding(image, padding, offsets[0], offsets[1], fill)


def random_flip_left_right(image, seed):
  """Mirrors the image horizontally with probability 1/2."""
  flip = tf.random.stateless_uniform([], seed=seed) < 0.5
  return tf.where(flip, image[:, ::-1, :], image)


def random_cutout(image, size: int, seed, fill):
  """image_ops.cutout centred at a pixel drawn uniformly from the image."""
  shape = tf.shape(image)
  pixel = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=shape[0] * shape[1],
                                      dtype=tf.int32)
  return image_ops.cutout(image, size, pixel // shape[1], pixel % shape[1], fill)


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
  fill_uint8 = image_ops.to_uint8(fill * 255.0)
  seeds = tf.random.experimental.stateless_split(seed, num=NUM_STAGES)
  if augmentation.crop_padding:
    image = random_crop_with_padding(image, augmentation.crop_padding, seeds[CROP_STAGE],
                                     fill_uint8)
  if augmentation.flip:
    image = random_flip_left_right(image, seeds[FLIP_STAGE])
  if augmentation.autoaugment:
    image = autoaugment(image, seeds[AUTOAUGMENT_STAGE], fill_uint8)
  image = image_ops.to_float(image) / 255.0
  if augmentation.cutout_size:
    image = random_cutout(image, augmentation.cutout_size, seeds[CUTOUT_STAGE], fill)
  return image
