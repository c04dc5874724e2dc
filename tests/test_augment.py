"""Tests of tfbet.augment, tfbet.image_ops and tfbet.batch_augment against numpy references
written here."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfbet import augment  # noqa: E402
from tfbet import batch_augment  # noqa: E402
from tfbet import image_ops  # noqa: E402

FILL = np.array([11, 22, 33], np.uint8)


@pytest.fixture(name="image")
def fixture_image():
  return np.random.default_rng(7).integers(0, 256, (12, 10, 3), dtype=np.uint8)


def _seed(a, b=0):
  return tf.constant([a, b], tf.int64)


def _shift_reference(image, dy, dx, fill):
  """out[y, x] = image[y - dy, x - dx], fill outside."""
  h, w, _ = image.shape
  out = np.empty_like(image)
  out[:] = fill
  for y in range(h):
    for x in range(w):
      if 0 <= y - dy < h and 0 <= x - dx < w:
        out[y, x] = image[y - dy, x - dx]
  return out


def test_cifar10_policy_has_25_sub_policies_of_two_valid_operations():
  assert len(augment.CIFAR10_POLICY) == 25
  for sub_policy in augment.CIFAR10_POLICY:
    assert len(sub_policy) == 2
    for name, probability, level in sub_policy:
      assert name in image_ops.OP_NAMES
      assert 0.0 <= probability <= 1.0
      assert level in range(10)
  used = {name for sub in augment.CIFAR10_POLICY for name, _, _ in sub}
  assert used == set(image_ops.OP_NAMES) - {"ShearX"}
  assert len(image_ops.OP_NAMES) == 14


def test_invert_solarize_posterize_match_numpy(image):
  t = tf.constant(image)
  np.testing.assert_array_equal(image_ops.invert(t).numpy(), 255 - image)
  for threshold in (0.0, 100.0, 227.56, 256.0):
    expected = np.where(image < threshold, image, 255 - image)
    np.testing.assert_array_equal(image_ops.solarize(t, threshold).numpy(), expected)
  for bits in range(1, 9):
    expected = (image // 2 ** (8 - bits)) * 2 ** (8 - bits)
    np.testing.assert_array_equal(image_ops.posterize(t, bits).numpy(), expected)


def test_magnitude_levels_map_to_the_autoaugment_ranges():
  shape = (32, 32, 3)
  bits = [int(image_ops.level_to_argument("Posterize", lv, 1.0, shape)) for lv in range(10)]
  assert bits == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
  thresholds = [float(image_ops.level_to_argument("Solarize", lv, 1.0, shape)) for lv in range(10)]
  np.testing.assert_allclose(thresholds, np.linspace(256, 0, 10), rtol=1e-6)
  assert float(image_ops.level_to_argument("Rotate", 9, -1.0, shape)) == pytest.approx(-30.0)
  assert float(image_ops.level_to_argument("ShearY", 9, 1.0, shape)) == pytest.approx(0.3)
  assert float(image_ops.level_to_argument("TranslateX", 9, 1.0, shape)) == pytest.approx(
      150 / 331 * 32, rel=1e-6)
  assert float(image_ops.level_to_argument("Color", 9, -1.0, shape)) == pytest.approx(0.1)
  assert float(image_ops.level_to_argument("Sharpness", 0, 1.0, shape)) == pytest.approx(1.0)
  assert image_ops.level_to_argument("Equalize", 5, 1.0, shape) is None


def test_translations_shift_content_and_fill_with_the_given_colour(image):
  t = tf.constant(image)
  np.testing.assert_array_equal(image_ops.translate_x(t, 3, FILL).numpy(),
                                _shift_reference(image, 0, 3, FILL))
  np.testing.assert_array_equal(image_ops.translate_x(t, -4, FILL).numpy(),
                                _shift_reference(image, 0, -4, FILL))
  np.testing.assert_array_equal(image_ops.translate_y(t, 5, FILL).numpy(),
                                _shift_reference(image, 5, 0, FILL))


def test_rotation_by_90_degrees_is_numpy_rot90_and_by_0_is_identity():
  square = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
  t = tf.constant(square)
  np.testing.assert_array_equal(image_ops.rotate(t, 90.0, FILL).numpy(), np.rot90(square))
  np.testing.assert_array_equal(image_ops.rotate(t, -90.0, FILL).numpy(), np.rot90(square, -1))
  np.testing.assert_array_equal(image_ops.rotate(t, 0.0, FILL).numpy(), square)


def test_shear_matches_a_numpy_nearest_neighbour_reference(image):
  h, w, _ = image.shape
  cy, cx = np.float32((h - 1) / 2), np.float32((w - 1) / 2)
  for shear in (0.3, -0.2):
    s = np.float32(shear)
    expected_x = np.empty_like(image)
    expected_y = np.empty_like(image)
    for y in range(h):
      for x in range(w):
        sx = int(np.round(np.float32(x) + s * (np.float32(y) - cy)))
        expected_x[y, x] = image[y, sx] if 0 <= sx < w else FILL
        sy = int(np.round(np.float32(y) + s * (np.float32(x) - cx)))
        expected_y[y, x] = image[sy, x] if 0 <= sy < h else FILL
    np.testing.assert_array_equal(image_ops.shear_x(tf.constant(image), shear, FILL).numpy(),
                                  expected_x)
    np.testing.assert_array_equal(image_ops.shear_y(tf.constant(image), shear, FILL).numpy(),
                                  expected_y)


def test_auto_contrast_stretches_each_channel_to_full_range():
  image = np.random.default_rng(2).integers(40, 200, (6, 5, 3), dtype=np.uint8)
  image[..., 2] = 90  # a flat channel stays as it is
  expected = image.astype(np.float32)
  for c in range(2):
    lo, hi = expected[..., c].min(), expected[..., c].max()
    expected[..., c] = np.round((expected[..., c] - lo) * (np.float32(255.0) / (hi - lo)))
  result = image_ops.auto_contrast(tf.constant(image)).numpy()
  np.testing.assert_array_equal(result, expected.astype(np.uint8))
  assert result[..., :2].min() == 0 and result[..., :2].max() == 255


def _equalize_reference(image):
  out = image.copy()
  for c in range(image.shape[-1]):
    hist = np.bincount(image[..., c].ravel(), minlength=256)
    used = np.flatnonzero(hist)
    if len(used) < 2:
      continue
    step = (hist.sum() - hist[used[-1]]) // 256
    if step == 0:
      continue
    lut, n = [], step // 2
    for i in range(256):
      lut.append(min(n // step, 255))
      n += hist[i]
    out[..., c] = np.array(lut, np.uint8)[image[..., c]]
  return out


def test_equalize_matches_a_numpy_histogram_equalization():
  rng = np.random.default_rng(3)
  image = np.clip(rng.normal(100, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
  image[..., 1] = 17  # single level: unchanged
  np.testing.assert_array_equal(image_ops.equalize(tf.constant(image)).numpy(),
                                _equalize_reference(image))


def test_enhancements_blend_towards_their_degenerate_image(image):
  t = tf.constant(image)
  np.testing.assert_array_equal(image_ops.brightness(t, 0.5).numpy(),
                                np.clip(np.round(image * 0.5), 0, 255).astype(np.uint8))
  np.testing.assert_array_equal(image_ops.brightness(t, 1.9).numpy(),
                                np.clip(np.round(image * np.float32(1.9)), 0, 255))
  for op in (image_ops.contrast, image_ops.color, image_ops.brightness, image_ops.sharpness):
    np.testing.assert_array_equal(op(t, 1.0).numpy(), image)
  luma = np.round(image.astype(np.float64) @ [0.299, 0.587, 0.114])
  np.testing.assert_array_equal(image_ops.contrast(t, 0.0).numpy(),
                                np.full(image.shape, np.round(luma.mean()), np.uint8))
  np.testing.assert_array_equal(image_ops.color(t, 0.0).numpy(),
                                np.repeat(luma[..., None], 3, axis=-1).astype(np.uint8))
  gray = tf.constant(image[..., :1])
  np.testing.assert_array_equal(image_ops.color(gray, 0.0).numpy(), image[..., :1])


def test_sharpness_degenerate_is_the_13_weight_smoothing_inside_the_border(image):
  x = image.astype(np.float64)
  smooth = x.copy()
  for y in range(1, x.shape[0] - 1):
    for c in range(1, x.shape[1] - 1):
      window = x[y - 1:y + 2, c - 1:c + 2]
      smooth[y, c] = np.round((window.sum(axis=(0, 1)) + 4 * x[y, c]) / 13.0)
  np.testing.assert_array_equal(image_ops.sharpness(tf.constant(image), 0.0).numpy(),
                                smooth.astype(np.uint8))


@pytest.mark.parametrize("channels", [1, 3])
def test_every_operation_keeps_shape_dtype_and_range(channels):
  image = np.random.default_rng(4).integers(0, 256, (9, 7, channels), dtype=np.uint8)
  for name in image_ops.OP_NAMES:
    for level in (0, 4, 9):
      for sign in (-1.0, 1.0):
        out = image_ops.apply_op(tf.constant(image), name, level, sign, FILL[:channels])
        assert out.dtype == tf.uint8 and out.shape == image.shape, name


def test_crop_with_padding_matches_numpy_pad_and_slice(image):
  padding = 4
  padded = np.empty((image.shape[0] + 8, image.shape[1] + 8, 3), np.uint8)
  padded[:] = FILL
  padded[4:-4, 4:-4] = image
  for oy, ox in ((0, 0), (4, 4), (8, 1), (3, 7)):
    expected = padded[oy:oy + image.shape[0], ox:ox + image.shape[1]]
    np.testing.assert_array_equal(
        image_ops.crop_with_padding(tf.constant(image), padding, oy, ox, FILL).numpy(), expected)


def test_random_crop_uses_every_offset_and_is_one_of_the_candidates(image):
  padding = 1
  padded = np.empty((image.shape[0] + 2, image.shape[1] + 2, 3), np.uint8)
  padded[:] = FILL
  padded[1:-1, 1:-1] = image
  seen = set()
  for s in range(60):
    out = augment.random_crop_with_padding(tf.constant(image), padding, _seed(s), FILL).numpy()
    matches = [(oy, ox) for oy in range(3) for ox in range(3)
               if np.array_equal(out, padded[oy:oy + 12, ox:ox + 10])]
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) == 9


def test_random_flip_mirrors_about_half_of_the_time(image):
  flips = 0
  for s in range(40):
    out = augment.random_flip_left_right(tf.constant(image), _seed(s)).numpy()
    if np.array_equal(out, image[:, ::-1]):
      flips += 1
    else:
      np.testing.assert_array_equal(out, image)
  assert 8 <= flips <= 32


def test_cutout_sets_a_16_square_to_the_mean_colour():
  image = np.random.default_rng(5).random((32, 32, 3)).astype(np.float32)
  mean = np.array([0.49, 0.48, 0.45], np.float32)
  out = image_ops.cutout(tf.constant(image), 16, 20, 9, mean).numpy()
  expected = image.copy()
  expected[12:28, 1:17] = mean
  np.testing.assert_array_equal(out, expected)
  # Clipped at the border: centre (2, 30) keeps rows 0..9, cols 22..31.
  out = image_ops.cutout(tf.constant(image), 16, 2, 30, mean).numpy()
  expected = image.copy()
  expected[0:10, 22:32] = mean
  np.testing.assert_array_equal(out, expected)


def test_random_cutout_is_the_cutout_at_one_centre():
  image = np.random.default_rng(6).random((10, 12, 1)).astype(np.float32) + 1.0
  fill = np.array([0.25], np.float32)
  for s in range(5):
    out = augment.random_cutout(tf.constant(image), 4, _seed(s), fill).numpy()
    matches = []
    for cy in range(10):
      for cx in range(12):
        expected = image.copy()
        expected[max(cy - 2, 0):cy + 2, max(cx - 2, 0):cx + 2] = fill
        if np.array_equal(out, expected):
          matches.append((cy, cx))
    assert len(matches) == 1


def test_autoaugment_is_deterministic_under_the_same_seed(image):
  t = tf.constant(image)
  outputs = [augment.autoaugment(t, _seed(s), FILL).numpy() for s in range(12)]
  again = [augment.autoaugment(t, _seed(s), FILL).numpy() for s in range(12)]
  for a, b in zip(outputs, again):
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == image.shape
  assert len({o.tobytes() for o in outputs}) > 3


def test_autoaugment_applies_each_operation_with_its_probability(image):
  t = tf.constant(image)
  always_once = ((("Invert", 1.0, 0), ("Invert", 0.0, 0)),)
  always_twice = ((("Invert", 1.0, 0), ("Invert", 1.0, 0)),)
  for s in range(5):
    np.testing.assert_array_equal(
        augment.autoaugment(t, _seed(s), FILL, policy=always_once).numpy(), 255 - image)
    np.testing.assert_array_equal(
        augment.autoaugment(t, _seed(s), FILL, policy=always_twice).numpy(), image)
  with pytest.raises(ValueError, match="operation"):
    augment.autoaugment(t, _seed(0), FILL, policy=((("Blur", 1.0, 0), ("Invert", 1.0, 0)),))
  with pytest.raises(ValueError, match="probability"):
    augment.autoaugment(t, _seed(0), FILL, policy=((("Invert", 1.5, 0), ("Invert", 1.0, 0)),))


def test_augment_image_with_every_stage_off_only_scales(image):
  out = augment.augment_image(tf.constant(image), _seed(3), augment.NO_AUGMENTATION,
                              (0.5, 0.5, 0.5))
  np.testing.assert_array_equal(out.numpy(), image.astype(np.float32) / 255.0)


def test_augmentation_rejects_bad_settings():
  with pytest.raises(ValueError, match="crop_padding"):
    augment.Augmentation(crop_padding=-1)
  with pytest.raises(ValueError, match="cutout_size"):
    augment.Augmentation(cutout_size=2.5)
  with pytest.raises(TypeError, match="flip"):
    augment.Augmentation(flip=1)
  assert augment.CIFAR_AUGMENTATION == augment.Augmentation(4, True, True, 16)
  assert not augment.NO_AUGMENTATION.enabled


# ----------------------------------------------------------------------------- batched pipeline

FILL_FLOAT = np.array([0.25, 0.5, 0.75], np.float32)
# Every operation at two levels, in both steps of a sub-policy, always applied.
ALL_OPS_POLICY = tuple(
    ((name, 1.0, (3 * i) % 10), (image_ops.OP_NAMES[(i + 5) % 14], 1.0, 9 - i % 10))
    for i, name in enumerate(image_ops.OP_NAMES))


def _reference_augmentation(image, row, augmentation, fill, policy=augment.CIFAR10_POLICY):
  """One example through the single-image operations with the decisions of one parameter row."""
  fill_uint8 = image_ops.to_uint8(tf.constant(fill) * 255.0)  # pylint: disable=protected-access
  image = tf.constant(image)
  if augmentation.crop_padding:
    image = image_ops.crop_with_padding(image, augmentation.crop_padding, *row["crop_offset"],
                                      fill_uint8)
  if augmentation.flip and row["flip"]:
    image = image[:, ::-1]
  if augmentation.autoaugment:
    for step, (name, _, level) in enumerate(policy[row["policy_choice"]]):
      if row["policy_apply"][step]:
        image = image_ops.apply_op(image, name, level, row["policy_sign"][step], fill_uint8)
  image = tf.cast(image, tf.float32) / 255.0
  if augmentation.cutout_size:
    image = image_ops.cutout(image, augmentation.cutout_size, *row["cutout_center"], fill)
  return image.numpy()


def _rows(parameters, i):
  return {key: value[i] for key, value in parameters.items()}


@pytest.mark.parametrize("channels", [1, 3])
def test_batched_augmentation_equals_the_single_image_operations_example_by_example(channels):
  images = np.random.default_rng(8).integers(0, 256, (40, 32, 32, channels), dtype=np.uint8)
  fill = FILL_FLOAT[:channels]
  parameters = batch_augment.draw_parameters(augment.CIFAR_AUGMENTATION, 40, (32, 32), seed=5, epoch=2)
  batch = batch_augment.augment_batch(images, parameters, augment.CIFAR_AUGMENTATION, fill).numpy()
  assert batch.dtype == np.float32 and batch.shape == images.shape
  for i, image in enumerate(images):
    np.testing.assert_array_equal(
        batch[i], _reference_augmentation(image, _rows(parameters, i),
                                          augment.CIFAR_AUGMENTATION, fill), err_msg=str(i))


def test_every_batched_policy_operation_equals_its_single_image_operation():
  images = np.random.default_rng(9).integers(0, 256, (42, 12, 10, 3), dtype=np.uint8)
  images[0] = 77  # flat image: auto-contrast and equalize leave it unchanged
  only_policy = augment.Augmentation(autoaugment=True)
  parameters = batch_augment.draw_parameters(only_policy, 42, (12, 10), seed=1, epoch=0,
                                       policy=ALL_OPS_POLICY)
  parameters["policy_choice"] = np.arange(42, dtype=np.int32) % 14  # every sub-policy 3 times
  batch = batch_augment.autoaugment_batch(images, parameters["policy_choice"],
                                    parameters["policy_apply"], parameters["policy_sign"], FILL,
                                    policy=ALL_OPS_POLICY).numpy()
  for i, image in enumerate(images):
    expected = tf.constant(image)
    for step, (name, _, level) in enumerate(ALL_OPS_POLICY[i % 14]):
      expected = image_ops.apply_op(expected, name, level, parameters["policy_sign"][i, step], FILL)
    np.testing.assert_array_equal(batch[i], expected.numpy(), err_msg=str(ALL_OPS_POLICY[i % 14]))


def _within_binomial(count, total, probability, sigmas=5.0):
  spread = sigmas * np.sqrt(total * probability * (1 - probability)) + 1
  return abs(count - total * probability) <= spread


def test_drawn_decisions_follow_the_policy_table_within_binomial_tolerance():
  n = 100_000
  parameters = batch_augment.draw_parameters(augment.CIFAR_AUGMENTATION, n, (32, 32), seed=3, epoch=7)
  choice = parameters["policy_choice"]
  policy = augment.CIFAR10_POLICY
  for index, sub_policy in enumerate(policy):
    chosen = choice == index
    assert _within_binomial(chosen.sum(), n, 1 / len(policy)), index
    for step, (_, probability, _) in enumerate(sub_policy):
      applied = parameters["policy_apply"][chosen, step].sum()
      assert _within_binomial(applied, chosen.sum(), probability), (index, step)
  # Each operation runs with the share the table gives it (1/25 * sum of its probabilities).
  applied_ops = np.array([[image_ops.OP_NAMES.index(name) for name, _, _ in sub] for sub in policy])
  counts = np.bincount(applied_ops[choice][parameters["policy_apply"]], minlength=14)
  for op, name in enumerate(image_ops.OP_NAMES):
    share = sum(p for sub in policy for n_, p, _ in sub if n_ == name) / len(policy)
    assert _within_binomial(counts[op], n, share), name
  signs = parameters["policy_sign"]
  assert set(np.unique(signs)) == {-1.0, 1.0} and _within_binomial((signs > 0).sum(), 2 * n, 0.5)
  assert _within_binomial(parameters["flip"].sum(), n, 0.5)
  for axis, size in ((0, 9), (1, 9)):
    counts = np.bincount(parameters["crop_offset"][:, axis], minlength=size)
    assert len(counts) == size and all(_within_binomial(c, n, 1 / size) for c in counts)
  for axis in (0, 1):
    counts = np.bincount(parameters["cutout_center"][:, axis], minlength=32)
    assert len(counts) == 32 and all(_within_binomial(c, n, 1 / 32) for c in counts)


def test_batched_crop_flip_and_cutout_shares_measured_on_the_output():
  n, size, padding = 3000, 15, 2
  position = (np.arange(size)[:, None] * 16 + np.arange(size)[None, :] + 1).astype(np.uint8)
  images = np.repeat(position[None, :, :, None], n, axis=0)  # pixel value encodes (y, x)
  setting = augment.Augmentation(crop_padding=padding, flip=True)
  parameters = batch_augment.draw_parameters(setting, n, (size, size), seed=11, epoch=0)
  out = np.round(batch_augment.augment_batch(images, parameters, setting, [0.0]).numpy()[..., 0] * 255)
  centre = out[:, 7, 7].astype(int) - 1
  offset_y, offset_x = centre // 16 - 7 + padding, centre % 16 - 7 + padding
  flipped = out[:, 7, 6] > out[:, 7, 8]
  for offsets in (offset_y, offset_x):
    counts = np.bincount(offsets, minlength=2 * padding + 1)
    assert len(counts) == 2 * padding + 1
    assert all(_within_binomial(c, n, 1 / (2 * padding + 1)) for c in counts)
  assert _within_binomial(flipped.sum(), n, 0.5)

  cut = augment.Augmentation(cutout_size=4)
  parameters = batch_augment.draw_parameters(cut, n, (size, size), seed=12, epoch=0)
  out = batch_augment.augment_batch(np.full((n, size, size, 1), 255, np.uint8), parameters, cut, [0.0])
  centres = []
  for square in out.numpy()[..., 0] == 0:
    rows, cols = np.nonzero(square)
    # Clipped squares keep their far edge: the centre is 2 before the end or 2 after the start.
    centres.append((rows.max() - 1 if rows.min() == 0 else rows.min() + 2,
                    cols.max() - 1 if cols.min() == 0 else cols.min() + 2))
    assert square.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1) <= 16
  centres = np.array(centres)
  np.testing.assert_array_equal(centres, parameters["cutout_center"])
  for axis in (0, 1):
    counts = np.bincount(centres[:, axis], minlength=size)
    assert all(_within_binomial(c, n, 1 / size) for c in counts)


def test_drawn_decisions_are_a_pure_function_of_seed_and_epoch_per_stage():
  setting = augment.CIFAR_AUGMENTATION
  first = batch_augment.draw_parameters(setting, 500, (32, 32), seed=4, epoch=1)
  again = batch_augment.draw_parameters(setting, 500, (32, 32), seed=4, epoch=1)
  other_epoch = batch_augment.draw_parameters(setting, 500, (32, 32), seed=4, epoch=2)
  other_seed = batch_augment.draw_parameters(setting, 500, (32, 32), seed=5, epoch=1)
  assert set(first) == {"crop_offset", "flip", "policy_choice", "policy_apply", "policy_sign",
                        "cutout_center"}
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first[key], other_epoch[key]), key
    assert not np.array_equal(first[key], other_seed[key]), key
  # Switching a stage off leaves the decisions of the others unchanged.
  crop_only = batch_augment.draw_parameters(augment.Augmentation(crop_padding=4), 500, (32, 32), 4, 1)
  assert set(crop_only) == {"crop_offset"}
  np.testing.assert_array_equal(crop_only["crop_offset"], first["crop_offset"])


def test_augment_batch_with_every_stage_off_only_scales_and_refuses_missing_decisions():
  images = np.random.default_rng(10).integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
  parameters = batch_augment.draw_parameters(augment.NO_AUGMENTATION, 3, (5, 4), 0, 0)
  assert parameters == {}
  out = batch_augment.augment_batch(images, parameters, augment.NO_AUGMENTATION, FILL_FLOAT)
  np.testing.assert_array_equal(out.numpy(), images.astype(np.float32) / 255.0)
  with pytest.raises(ValueError, match=r"parameters lack \['flip'\]"):
    batch_augment.augment_batch(images, parameters, augment.Augmentation(flip=True), FILL_FLOAT)



def test_batched_augmentation_in_a_graph_equals_the_eager_one():
  """The pipeline runs augment_batch in a graph (a cached tf.function), where graph optimizers
  regroup arithmetic: no pixel may change (they only turn the final division by 255 into a
  product, within one ulp). Every geometric operation at every level and sign, then App. F."""
  policy = tuple(((name, 1.0, level), (name, 0.0, level))
                 for name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
                 for level in range(image_ops.NUM_LEVELS))
  images = np.random.default_rng(13).integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
  choice = np.arange(100, dtype=np.int32) % 50
  apply = np.ones((100, 2), bool)
  sign = np.repeat([[1.0], [-1.0]], 50, axis=0).astype(np.float32) * np.ones((1, 2), np.float32)
  run = lambda x: batch_augment.autoaugment_batch(x, choice, apply, sign, FILL, policy=policy)
  np.testing.assert_array_equal(tf.function(run)(images).numpy(), run(images).numpy())

  parameters = batch_augment.draw_parameters(augment.CIFAR_AUGMENTATION, 64, (32, 32), seed=6, epoch=0)
  eager = batch_augment.augment_batch(images[:64], parameters, augment.CIFAR_AUGMENTATION, FILL_FLOAT)
  graph = tf.function(lambda x: batch_augment.augment_batch(x, parameters, augment.CIFAR_AUGMENTATION,
                                                      FILL_FLOAT))(images[:64])
  np.testing.assert_array_max_ulp(graph.numpy(), eager.numpy(), maxulp=1)
  np.testing.assert_array_equal(np.round(graph.numpy() * 255), np.round(eager.numpy() * 255))


def test_names_that_moved_out_of_augment_still_read_from_there_and_others_fail():
  assert augment.draw_parameters is batch_augment.draw_parameters
  assert augment.augment_batch is batch_augment.augment_batch
  assert augment.shear_x is image_ops.shear_x and augment.OP_NAMES == image_ops.OP_NAMES
  assert augment.NUM_LEVELS == 10
  with pytest.raises(AttributeError, match="no attribute 'to_uint8'"):
    augment.to_uint8  # pylint: disable=pointless-statement
